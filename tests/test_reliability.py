"""Reliability: the faults GREEN-API, networks and databases really produce, a killed process, bad input,
and secrets. Every scenario runs through the emulator (real HTTP) into a real SQLite or PostgreSQL, and
ends with the invariants of tests.harness.assert_invariants."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from airflow_provider_greenapi._compat import AirflowFailException
from airflow_provider_greenapi.emulator import EmulatedInstance, FaultPlan, GreenApiEmulator
from airflow_provider_greenapi.errors import BulkCheckStopped, GreenApiCredentialsError
from airflow_provider_greenapi.operators.check_whatsapp import CheckWhatsappOperator
from airflow_provider_greenapi.warehouse import Dialect, UsageLedger
from tests.conftest import ID_INSTANCE, TOKEN, Warehouse, greenapi_connection
from tests.harness import Harness, assert_invariants
from tests.postgres_server import PostgresCluster, why_unavailable

NUMBERS = [f"7911{i:07d}" for i in range(10)]

FAULTS = {
    "429 storm": (FaultPlan(error_rate=0.5, errors=("429",), seed=1), {}),
    "429 with Retry-After": (FaultPlan(script=("429_retry_after",) * 2, retry_after_s=1), {}),
    "500/502 bursts": (FaultPlan(script=("500", "500", "502", "502", "500"), error_rate=0.2,
                                 errors=("500", "502"), seed=2), {}),
    "499": (FaultPlan(error_rate=0.3, errors=("499",), seed=3), {}),
    "read timeouts (hang past the client's timeout)": (FaultPlan(script=("hang", "hang"), hang_s=1.5),
                                                       {"timeout": 0.5}),
    "dropped connections": (FaultPlan(error_rate=0.3, errors=("drop",), seed=4), {}),
    "intermittent 400 timeout limit": (FaultPlan(error_rate=0.3, errors=("timeout_limit",), seed=5), {}),
    "503 and 'instance in starting process'": (FaultPlan(error_rate=0.3, errors=("503", "starting"), seed=6), {}),
}


@pytest.mark.parametrize("scenario", list(FAULTS))
def test_transient_faults_are_survived(emulator, warehouse, scenario):
    plan, settings = FAULTS[scenario]
    emulator.inject_faults(ID_INSTANCE, plan)
    harness = Harness(emulator, warehouse, max_retries=8, **settings)
    summary = harness.run(NUMBERS)
    assert summary.exists + summary.not_exists == len(NUMBERS), summary
    assert summary.retries > 0
    assert_invariants(harness, summary)
    counters = emulator.counters(ID_INSTANCE)
    assert sum(counters.checked_numbers.values()) == len(NUMBERS)  # each number answered exactly once


def test_an_outage_longer_than_the_retries_is_stored_as_error_never_as_not_exists(emulator, warehouse):
    emulator.inject_faults(ID_INSTANCE, FaultPlan(error_rate=1.0, errors=("500", "drop", "timeout_limit")))
    harness = Harness(emulator, warehouse, max_retries=1)
    with pytest.raises(BulkCheckStopped, match="in a row failed") as stopped:
        harness.run(NUMBERS * 6 + [f"7912{i:07d}" for i in range(60)], max_consecutive_errors=5)
    assert stopped.value.retry_can_fix  # an outage: Airflow's retries apply
    statuses = {row[1] for row in harness.table().values()}
    assert "not_exists" not in statuses and "exists" not in statuses
    assert statuses <= {"error", "pending"}


# --- the warehouse fails mid-run ---------------------------------------------------------------------------

def _run_in_thread(harness, numbers, **options):
    outcome: dict[str, object] = {}

    def target():
        try:
            outcome["summary"] = harness.run(numbers, **options)
        except Exception as error:
            outcome["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


def _wait_for_calls(emulator, n, timeout=30):
    deadline = time.monotonic() + timeout
    while emulator.counters(ID_INSTANCE).count("checkWhatsapp") < n:
        assert time.monotonic() < deadline, "the run did not get going"
        time.sleep(0.02)


def _sqlite_warehouse(tmp_path, busy_timeout):
    path = str(tmp_path / "locked.db")
    return Warehouse(Dialect.SQLITE, "w", lambda: sqlite3.connect(path, timeout=busy_timeout), path), path


MANY = [f"7913{i:07d}" for i in range(30)]


def _lock_the_file_mid_run(emulator, tmp_path, busy_timeout):
    """Start a run on a SQLite warehouse, and once it is sending take the file's exclusive lock."""
    warehouse, path = _sqlite_warehouse(tmp_path, busy_timeout)
    harness = Harness(emulator, warehouse, max_in_flight=2)
    harness.busy_timeout = busy_timeout
    thread, outcome = _run_in_thread(harness, MANY, chunk_size=3, commit_interval=0.2)
    _wait_for_calls(emulator, 8)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    return harness, thread, outcome, locker


def test_a_short_sqlite_lock_is_waited_out(emulator, tmp_path):
    harness, thread, outcome, locker = _lock_the_file_mid_run(emulator, tmp_path, busy_timeout=5)
    time.sleep(1.0)
    locker.execute("COMMIT")
    thread.join()
    assert "error" not in outcome, outcome
    assert_invariants(harness, outcome["summary"])


def test_a_long_sqlite_lock_stops_the_run_and_a_rerun_finishes(emulator, tmp_path):
    harness, thread, outcome, locker = _lock_the_file_mid_run(emulator, tmp_path, busy_timeout=0.5)
    thread.join(timeout=60)
    locker.execute("COMMIT")
    assert "locked" in str(outcome.get("error")), outcome
    calls_at_stop = emulator.counters(ID_INSTANCE).count("checkWhatsapp")
    assert calls_at_stop < len(MANY)
    summary = harness.run(MANY)
    assert summary.pending == 0
    table = harness.table()
    assert set(table) == set(MANY)
    assert all(row[1] in ("exists", "not_exists") for row in table.values())
    extra_calls = emulator.counters(ID_INSTANCE).count("checkWhatsapp") - len(MANY)
    assert extra_calls <= 3 + 2  # at most one uncommitted chunk plus the requests in flight
    assert_invariants(harness, summary)


@pytest.mark.postgres
def test_postgres_stopping_mid_run_stops_the_run_and_a_rerun_finishes(emulator):
    reason = why_unavailable()
    if reason:
        pytest.skip(reason)
    import psycopg

    cluster = PostgresCluster()
    server = cluster.start()
    try:
        warehouse = Warehouse(Dialect.POSTGRES, "pg", lambda: psycopg.connect(
            host=server.host, port=server.port, user=server.user, dbname=server.database,
            connect_timeout=3), server.airflow_conn())
        harness = Harness(emulator, warehouse, max_in_flight=2)
        thread, outcome = _run_in_thread(harness, MANY, chunk_size=3, commit_interval=0.2)
        _wait_for_calls(emulator, 8)
        cluster.stop()
        thread.join(timeout=60)
        assert "error" in outcome or outcome["summary"].stopped_reason, outcome
        cluster.restart()
        summary = harness.run(MANY)
        assert summary.pending == 0 and set(harness.table()) == set(MANY)
        assert emulator.counters(ID_INSTANCE).count("checkWhatsapp") - len(MANY) <= 3 + 2
        assert_invariants(harness, summary)
    finally:
        cluster.close()


# --- a killed process --------------------------------------------------------------------------------------

def test_sigkill_mid_run_then_rerun_checks_every_number_once(any_warehouse, tmp_path):
    warehouse = any_warehouse
    numbers = [f"7914{i:07d}" for i in range(40)]
    chunk = 5
    with GreenApiEmulator([EmulatedInstance(ID_INSTANCE, TOKEN, plan="business",
                                            faults=FaultPlan(latency_ms=50))]) as emu:
        if warehouse.engine == "sqlite":
            target = warehouse.airflow_uri and json.loads(warehouse.airflow_uri)["host"]
        elif warehouse.engine == "postgres":
            target = warehouse.airflow_uri.replace("postgres://", "postgresql://")
        else:
            target = warehouse.airflow_uri
        harness = Harness(emu, warehouse, max_in_flight=2)
        harness.run(numbers[:1], chunk_size=chunk)  # create the tables up front
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.harness", emu.base_url, warehouse.dialect.value, target,
             ",".join(numbers), "--chunk-size", str(chunk)],
            cwd=os.path.dirname(os.path.dirname(__file__)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        _wait_for_calls(emu, 15)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=10) == -signal.SIGKILL
        answered_before = [n for n, row in harness.table().items() if row[1] in ("exists", "not_exists")]
        assert 0 < len(answered_before) < len(numbers)
        summary = harness.run(numbers)
        assert summary.pending == 0
        table = harness.table()
        assert sorted(table) == sorted(numbers)
        assert all(row[1] in ("exists", "not_exists") for row in table.values()), table
        # asked in SQL: fakesnow's server reads a NULL TIMESTAMP_NTZ back as 1970-01-01
        assert warehouse.fetch_all("SELECT COUNT(*) FROM whatsapp_checks WHERE queued_at IS NOT NULL") == [(0,)]
        quota = emu.counters(ID_INSTANCE).quota_used
        assert quota - len(numbers) <= chunk + 2, "more than one chunk (plus the requests in flight) re-spent"
        # the killed task's calls counted and not sent stay counted: never less than spent, at most most_unsent
        assert_invariants(harness, summary, ledger_slack=UsageLedger(None, warehouse.dialect, ID_INSTANCE)
                          .most_unsent(2, harness.settings["requests_per_second"]))


# --- bad input ---------------------------------------------------------------------------------------------

BAD_INPUTS = [None, "", "   ", "abc", "😀😀😀", 7.9001234567e10, -79001234567, True, False, "123",
              "1" * 20, "+7 900 123-45-67 ext. 12", b"79001234567", [], {}, "+999 1234 5678", "0" * 11,
              "79001234567\x00", "'; DROP TABLE whatsapp_checks; --"]
ARABIC_INDIC_DIGITS = "\u0667\u0669\u0660\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667"  # 79001234567
FULLWIDTH_DIGITS = "\uff17\uff19\uff10\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff18"  # 79001234568
FRIENDLY_INPUTS = [ARABIC_INDIC_DIGITS, FULLWIDTH_DIGITS, "tel:+79001234569", "79001234570@c.us"]


def test_bad_inputs_are_each_accounted_for(greenapi_conn, emulator, mocker):
    context = {"ti": mocker.MagicMock(), "dag_run": SimpleNamespace(run_id="r")}
    values = BAD_INPUTS + FRIENDLY_INPUTS
    summary = CheckWhatsappOperator(task_id="check", phone_numbers=values).execute(context)
    assert summary["inputs"] == len(values)
    assert summary["invalid"] + summary["duplicates"] == len(BAD_INPUTS)
    assert summary["distinct_numbers"] == len(FRIENDLY_INPUTS)  # non-ASCII digits, tel: and chatId forms
    rows = context["ti"].xcom_push.call_args.kwargs["value"]
    assert all(row["detail"] for row in rows if row["status"] == "invalid")
    assert emulator.counters(ID_INSTANCE).count("checkWhatsapp") == len(FRIENDLY_INPUTS)


def test_two_hundred_thousand_inputs_with_ninety_percent_duplicates(greenapi_conn, emulator, warehouse, mocker):
    """A dry run sends nothing (as the emulator saw it); a real run with a budget of 30 sends exactly 30
    distinct numbers, each once, out of the same 200 000 inputs."""
    values = [f"7915{i % 20000:07d}" for i in range(200_000)]
    context = {"ti": mocker.MagicMock(), "dag_run": SimpleNamespace(run_id="r")}
    summary = CheckWhatsappOperator(task_id="check", phone_numbers=values, destination_conn_id="warehouse",
                                    dry_run=True, chunk_size=5000).execute(context)
    assert (summary["inputs"], summary["duplicates"], summary["distinct_numbers"]) == (200_000, 180_000, 20_000)
    assert summary["pending"] == 20_000 and summary["quota_spent"] == 0
    assert emulator.journal(ID_INSTANCE, "checkWhatsapp") == []
    summary = CheckWhatsappOperator(task_id="check", phone_numbers=values, destination_conn_id="warehouse",
                                    max_checks=30, chunk_size=5000).execute(context)
    assert (summary["inputs"], summary["duplicates"], summary["distinct_numbers"]) == (200_000, 180_000, 20_000)
    requested = emulator.requested_numbers(ID_INSTANCE)
    assert len(requested) == 30 and set(requested.values()) == {1}
    assert summary["quota_spent"] == 30 and summary["pending"] == 20_000 - 30


def test_a_source_query_without_the_named_column_says_which_columns_it_has(greenapi_conn, warehouse, mocker):
    connection = warehouse.connect()
    connection.cursor().execute("CREATE TABLE people (person_id INTEGER, mobile TEXT, note TEXT)")
    connection.commit()
    connection.close()
    operator = CheckWhatsappOperator(task_id="check", sql="SELECT * FROM people", source_conn_id="warehouse",
                                     phone_column="phone", destination_conn_id="warehouse")
    with pytest.raises(AirflowFailException, match=r"no column 'phone'.*person_id, mobile, note"):
        operator.execute({"ti": mocker.MagicMock(), "dag_run": SimpleNamespace(run_id="r")})


def test_an_unknown_greenapi_connection_is_named(mocker, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_GREENAPI", raising=False)
    operator = CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS, greenapi_conn_id="no_such_greenapi")
    with pytest.raises(Exception, match="no_such_greenapi"):
        operator.execute({"ti": mocker.MagicMock(), "dag_run": None})


# --- secrets and personal data -----------------------------------------------------------------------------

def test_no_token_and_no_full_number_anywhere_in_a_fault_heavy_debug_run(warehouse, monkeypatch, caplog, mocker):
    caplog.set_level(logging.DEBUG)
    numbers = [f"7916{i:07d}" for i in range(8)]
    plan = FaultPlan(error_rate=0.5, errors=("500", "502", "429", "drop", "timeout_limit", "499"), seed=9)
    with GreenApiEmulator([EmulatedInstance(ID_INSTANCE, TOKEN, plan="business", faults=plan)],
                          log_requests=True) as emu:
        monkeypatch.setenv("AIRFLOW_CONN_GREENAPI_DEFAULT", greenapi_connection(emu, max_retries=8))
        context = {"ti": mocker.MagicMock(), "dag_run": SimpleNamespace(run_id="r"), "ds": "2026-11-28"}
        operator = CheckWhatsappOperator(task_id="check", phone_numbers=numbers, destination_conn_id="warehouse",
                                         destination_table="checks_{{ ds_nodash }}")
        operator.render_template_fields(context)
        summary = operator.execute(context)
        emu.set_state(ID_INSTANCE, "notAuthorized")
        with pytest.raises(AirflowFailException) as stopped:
            CheckWhatsappOperator(task_id="again", phone_numbers=numbers, destination_conn_id="warehouse",
                                  max_age=None).execute(context)
        monkeypatch.setenv("AIRFLOW_CONN_GREENAPI_DEFAULT", greenapi_connection(emu, token="x" + TOKEN[1:]))
        with pytest.raises(AirflowFailException, match="apiTokenInstance") as wrong_token:
            CheckWhatsappOperator(task_id="wrong", phone_numbers=numbers).execute(context)
    assert summary["retries"] > 0
    assert isinstance(stopped.value.__cause__, BulkCheckStopped)
    assert isinstance(wrong_token.value.__cause__, GreenApiCredentialsError)
    rendered = json.dumps({f: str(getattr(operator, f)) for f in operator.template_fields})
    xcoms = json.dumps([c.kwargs for c in context["ti"].xcom_push.call_args_list], default=str)
    texts = [caplog.text, json.dumps(summary), rendered, xcoms, str(stopped.value), str(wrong_token.value)]
    assert any("urllib3" in r.name for r in caplog.records) and any("emulator" in r.name for r in caplog.records)
    for text in texts:
        assert TOKEN not in text and TOKEN[1:] not in text
    for number in numbers:
        assert number not in caplog.text


SECRETS_DAG = '''
import pendulum
from airflow.sdk import DAG

from airflow_provider_greenapi.operators.check_whatsapp import CheckWhatsappOperator

NUMBERS = [f"7917{i:07d}" for i in range(12)]

with DAG("greenapi_secrets_probe", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    for name in ("plain", "padded"):
        CheckWhatsappOperator(task_id=f"check_{name}", greenapi_conn_id=f"greenapi_{name}", phone_numbers=NUMBERS,
                              destination_conn_id="warehouse", destination_table=f"checks_{name}_{{{{ ds_nodash }}}}")
    CheckWhatsappOperator(task_id="check_padded_into_xcom", greenapi_conn_id="greenapi_padded",
                          phone_numbers=NUMBERS[:6])
    CheckWhatsappOperator(task_id="check_wrong_token", greenapi_conn_id="greenapi_wrong", phone_numbers=NUMBERS)
'''
PLAIN_TOKEN, PADDED_TOKEN = "plain-secret-token-1679091c5a880faf", "padded-secret-token-8f14e45fceea167a"
STORED = {"plain": PLAIN_TOKEN, "padded": f" \t{PADDED_TOKEN}  \n", "wrong": "  wrong-padded-token-c9f0f895fb98\n"}


def token_forms() -> dict[str, str]:
    """Each token in every form that would be a leak: as stored, stripped (as sent), percent-encoded, and
    stripped of its first or last character (partial masking)."""
    from urllib.parse import quote

    forms = {}
    for name, stored in STORED.items():
        token = stored.strip()
        forms.update({f"{name} as stored": stored, f"{name} as sent": token, f"{name} quoted": quote(token, safe=""),
                      f"{name} but its first character": token[1:], f"{name} but its last character": token[:-1]})
    return forms


@pytest.mark.slow
def test_the_token_appears_nowhere_in_a_real_debug_run_the_cli_or_the_quota_view(tmp_path):
    """A real deployment's path at DEBUG (urllib3's request lines included): an `airflow api-server`, and
    `airflow dags test --use-executor`, whose LocalExecutor runs each task as Airflow's supervised task
    process; tokens with and without surrounding whitespace, faults that echo the path (token included) back.
    Every form of each token is counted in the output, the task logs and the server's log, the XComs, the
    rendered templates, the warehouse, `airflow greenapi usage` (with the token pasted into monthly_quota
    too) and the quota view's HTML as the server sends it."""
    import sqlite3 as sqlite
    import urllib.request

    from tests.airflow_cli import AIRFLOW, api_server, migrate

    home = tmp_path / "home"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "greenapi_secrets_probe.py").write_text(SECRETS_DAG)
    warehouse = tmp_path / "warehouse.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
                "AIRFLOW__CORE__PARALLELISM": "1", "AIRFLOW__API_AUTH__JWT_SECRET": "secrets-probe-jwt-secret",
                "AIRFLOW__CORE__AUTH_MANAGER":
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True", "NO_COLOR": "1"})
    migrate(env)
    faults = FaultPlan(error_rate=0.4, errors=("500", "drop", "400_echo", "500_echo"), seed=24)
    instances = {"plain": "1101000001", "padded": "1101000002", "wrong": "1101000002"}
    with GreenApiEmulator([EmulatedInstance(instances["plain"], PLAIN_TOKEN, plan="business", faults=faults),
                           EmulatedInstance(instances["padded"], PADDED_TOKEN, plan="business", faults=faults)],
                          log_requests=True) as emu:
        connections = {f"greenapi_{name}": {"conn_type": "greenapi", "host": emu.base_url, "login": instances[name],
                                            "password": stored, "extra": {"max_retries": 2, "retry_backoff": 0.01,
                                                                          "monthly_quota": 30000}}
                       for name, stored in STORED.items()}
        connections["greenapi_quota_token"] = {**connections["greenapi_padded"],
                                               "extra": {"monthly_quota": STORED["padded"]}}
        connections["warehouse"] = {"conn_type": "sqlite", "host": str(warehouse)}
        (tmp_path / "connections.json").write_text(json.dumps(
            {conn_id: {**c, "extra": json.dumps(c.get("extra", {}))} for conn_id, c in connections.items()}))
        imported = subprocess.run([AIRFLOW, "connections", "import", str(tmp_path / "connections.json")], env=env,
                                  capture_output=True, text=True, timeout=300)
        assert imported.returncode == 0, imported.stderr[-3000:]
        with api_server(env, home / "api-server.log") as base_url:
            run_env = {**env, "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/"}
            run = subprocess.run([AIRFLOW, "dags", "test", "greenapi_secrets_probe", "2026-12-09", "--use-executor"],
                                 env=run_env, capture_output=True, text=True, timeout=600)
            with urllib.request.urlopen(f"{base_url}/auth/token", timeout=30) as answer:
                token = json.load(answer)["access_token"]
            view = urllib.request.Request(f"{base_url}/greenapi/quota?warehouse=warehouse&month=2026-12",
                                          headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(view, timeout=60) as answer:
                page = answer.read().decode()
        checked = {name: emu.counters(instance).count("checkWhatsapp") for name, instance in instances.items()}
        echoed = {e.status for e in emu.journal(instances["padded"], "checkWhatsapp")}
        # The CLI reads them from the environment too (it does not read connections stored in the database yet).
        cli_env = {**env, **{f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(c) for conn_id, c in connections.items()}}
        cli = [subprocess.run([AIRFLOW, "greenapi", "usage", "warehouse", "--month", "2026-12", "--greenapi-conn-id",
                               conn_id], env=cli_env, capture_output=True, text=True, timeout=300)
               for conn_id in ("greenapi_padded", "greenapi_quota_token")]
    logs = [run.stdout, run.stderr, *(p.read_text(errors="replace") for p in home.rglob("*.log"))]
    with sqlite.connect(home / "airflow.db") as db:
        states = dict(db.execute("SELECT task_id, state FROM task_instance"))
        xcoms = [str(row) for row in db.execute("SELECT key, task_id, value FROM xcom")]
        rendered = [str(row) for row in db.execute(
            "SELECT task_id, rendered_fields FROM rendered_task_instance_fields")]
    with sqlite.connect(warehouse) as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        stored_rows = [str(row) for t in tables for row in db.execute(f'SELECT * FROM "{t}"')]

    # The run did what this test needs: both tokens were sent, echoed back, logged by urllib3 at DEBUG.
    output = "\n".join(logs)
    assert states == {"check_plain": "success", "check_padded": "success", "check_padded_into_xcom": "success",
                      "check_wrong_token": "failed"}, output[-4000:]
    assert checked["plain"] > 0 and checked["padded"] > 0 and {400, 500} <= echoed
    assert "urllib3.connectionpool" in output and "/checkWhatsapp/***" in output and "apiTokenInstance" in output
    assert any("results" in x for x in xcoms) and any("checks_padded_20261209" in r for r in rendered)
    assert cli[0].returncode == 0 and "Instance 1101000002" in cli[0].stdout
    assert cli[1].returncode != 0 and "monthly_quota must be a number (got a text of" in cli[1].stderr
    assert "monthly_quota must be a number (got a text of" in page
    places = {"logs and output": output, "XComs": "\n".join(xcoms), "rendered templates": "\n".join(rendered),
              "warehouse": "\n".join(stored_rows), "CLI": "".join(c.stdout + c.stderr for c in cli),
              "quota view": page}
    hits = {(form, place): text.count(value) for form, value in token_forms().items()
            for place, text in places.items() if value in text}
    lines = [line for text in places.values() for line in text.splitlines()
             if any(value in line for value in token_forms().values())]
    assert hits == {}, f"token forms found: {hits}\n" + "\n".join(lines[:20])
