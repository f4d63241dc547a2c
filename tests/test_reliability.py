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
