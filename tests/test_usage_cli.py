"""``airflow greenapi usage`` through Airflow's real CLI (a subprocess on a migrated throwaway Airflow home):
the month per instance from a warehouse's ledger and history, in a table and as JSON, never the token.
Airflow 2.11 to 3.1 read no provider CLI: there the same command runs as the ``greenapi`` console script, which
works on every line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from airflow_provider_greenapi._compat import PROVIDER_CLI
from airflow_provider_greenapi.emulator import airflow_connection
from airflow_provider_greenapi.warehouse import Dialect, UsageLedger
from airflow_provider_greenapi.warehouse.usage_history import RunDay, UsageHistory
from tests.airflow_cli import AIRFLOW, migrate
from tests.conftest import TOKEN

pytestmark = pytest.mark.matrix  # provider CLI registration differs between Airflow lines

MONTH = "2026-12"


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-cli-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}"})
    migrate(env)
    return env


def seeded_warehouse(path, dag_id="contacts_daily", run_id="scheduled__2026-12-09"):
    import sqlite3

    connection = sqlite3.connect(path, check_same_thread=False)
    clock = lambda: datetime(2026, 12, 9, 6, 0, tzinfo=timezone.utc)  # noqa: E731
    ledger = UsageLedger(connection, Dialect.SQLITE, "1101000001", 30000, clock=clock)
    ledger.ensure_table()
    for _ in range(3):
        ledger.reserve_call()
    history = UsageHistory(connection, Dialect.SQLITE)
    history.ensure_table()
    history.write(RunDay("1101000001", "tok-1", "2026-12-09", dag_id, run_id, clock(), clock(), 3, 967,
                         "max_checks=auto: (30000 quota - 0 used in 2026-12 - 0 reserve) / 31 runs left = 967",
                         "done"))
    connection.close()


GREENAPI = str(Path(sys.executable).with_name("greenapi"))  # the console script, on every line


def run_usage(env, *args, command=None):
    command = command or ([AIRFLOW, "greenapi", "usage"] if PROVIDER_CLI else [GREENAPI, "usage"])
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=300)


def test_the_month_per_instance_as_a_table_and_as_json(airflow_home, tmp_path, emulator):
    env = airflow_home
    seeded_warehouse(tmp_path / "w.db")
    env = {**env, "AIRFLOW_CONN_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "w.db")}),
           "AIRFLOW_CONN_GREENAPI_DEFAULT": airflow_connection(emulator.base_url, "1101000001", TOKEN,
                                                               monthly_quota=30000)}
    table = run_usage(env, "warehouse", "--month", MONTH, "--greenapi-conn-id", "greenapi_default")
    assert table.returncode == 0, table.stderr[-3000:]
    assert "Instance 1101000001, 2026-12: 3 checkWhatsapp calls of quota 30000, 29997 left" in table.stdout
    assert "checks per day: 09: 3" in table.stdout
    assert "contacts_daily" in table.stdout and "scheduled__2026-12-09" in table.stdout
    as_json = run_usage(env, "warehouse", "--month", MONTH, "--output", "json")
    assert as_json.returncode == 0, as_json.stderr[-3000:]
    report = json.loads(as_json.stdout[as_json.stdout.index("{"):])
    (instance,) = report["instances"]
    assert (instance["calls"], instance["checks_per_day"]) == (3, {"2026-12-09": 3})
    assert instance["quota"] is None  # no GREEN-API connection named: GREEN-API never reported a total
    assert instance["runs"][0]["budget"] == 967 and instance["runs"][0]["state"] == "done"
    for done in (table, as_json):
        assert TOKEN not in done.stdout + done.stderr


def test_bad_arguments_say_what_is_expected(airflow_home, tmp_path):
    env = airflow_home
    env = {**env, "AIRFLOW_CONN_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "w.db")})}
    bad_month = run_usage(env, "warehouse", "--month", "December")
    assert bad_month.returncode != 0 and "YYYY-MM" in bad_month.stderr
    unknown = run_usage(env, "nowhere")
    assert unknown.returncode != 0 and "nowhere" in unknown.stderr
    empty = run_usage(env, "warehouse", "--month", "2026-11")
    assert empty.returncode == 0 and "No GREEN-API usage recorded for 2026-11" in empty.stdout


@pytest.mark.parametrize("command", [[GREENAPI, "usage"],
                                     [sys.executable, "-m", "airflow_provider_greenapi.cli", "usage"]],
                         ids=["console-script", "python-m"])
def test_the_console_script_prints_only_the_report_on_every_line(airflow_home, tmp_path, command):
    """``greenapi usage`` works where Airflow loads no provider CLI (2.11-3.1) and beside ``airflow greenapi``;
    its JSON is the whole of stdout, so that it can be piped (Airflow 3.0 logs its set-up to stdout)."""
    seeded_warehouse(tmp_path / "w.db")
    warehouse = json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "w.db")})
    done = run_usage({**airflow_home, "AIRFLOW_CONN_WAREHOUSE": warehouse}, "warehouse", "--month", MONTH, "-o", "json",
                     command=command)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["instances"][0]["calls"] == 3


@pytest.mark.skipif(not PROVIDER_CLI, reason="Airflow 2.11 to 3.1 read no provider CLI commands")
def test_the_command_is_listed_in_airflows_help(airflow_home):
    env = airflow_home
    listed = subprocess.run([AIRFLOW, "greenapi", "--help"], env=env, capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0 and "usage" in listed.stdout


def airflow_cli(env, *args):
    done = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"airflow {' '.join(args[:2])}: {done.stdout[-2000:]}{done.stderr[-2000:]}"


def test_connections_stored_in_airflows_database_as_the_readme_adds_them(airflow_home, tmp_path, emulator):
    """``airflow connections add`` stores into the metadata database; the command reads them there (a CLI
    process of Airflow 3.x looks only at AIRFLOW_CONN_* variables unless it says it is a server process)."""
    seeded_warehouse(tmp_path / "db.db")
    airflow_cli(airflow_home, "connections", "add", "warehouse_in_db", "--conn-type", "sqlite",
                "--conn-host", str(tmp_path / "db.db"))
    airflow_cli(airflow_home, "connections", "add", "greenapi_in_db", "--conn-type", "greenapi",
                "--conn-host", emulator.base_url, "--conn-login", "1101000001", "--conn-password", TOKEN,
                "--conn-extra", json.dumps({"monthly_quota": 30000}))
    done = run_usage(airflow_home, "warehouse_in_db", "--month", MONTH, "--greenapi-conn-id", "greenapi_in_db")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Instance 1101000001, 2026-12: 3 checkWhatsapp calls of quota 30000, 29997 left" in done.stdout
    assert TOKEN not in done.stdout + done.stderr


def test_the_quota_set_on_any_connection_a_conflict_and_an_unreadable_connection(airflow_home, tmp_path, emulator):
    """The instance's quota is the one set on any of its connections (not the last one named); connections
    that disagree show the conflict and no quota; an unreadable connection is one line naming it, without
    the value it holds (here the token pasted into monthly_quota), and the rest of the report is shown."""
    seeded_warehouse(tmp_path / "w.db")
    url = emulator.base_url
    env = {**airflow_home,
           "AIRFLOW_CONN_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "w.db")}),
           "AIRFLOW_CONN_GREENAPI_A": airflow_connection(url, "1101000001", TOKEN, monthly_quota=30000),
           "AIRFLOW_CONN_GREENAPI_Z": airflow_connection(url, "1101000001", TOKEN),
           "AIRFLOW_CONN_GREENAPI_OTHER": airflow_connection(url, "1101000002", TOKEN, monthly_quota=2000),
           "AIRFLOW_CONN_GREENAPI_OTHER2": airflow_connection(url, "1101000002", TOKEN, monthly_quota=5000),
           "AIRFLOW_CONN_GREENAPI_BAD": airflow_connection(url, "1101000003", TOKEN, monthly_quota=TOKEN)}
    two = run_usage(env, "warehouse", "--month", MONTH, "--greenapi-conn-id", "greenapi_a",
                    "--greenapi-conn-id", "greenapi_z")
    assert two.returncode == 0, two.stderr[-3000:]
    assert "3 checkWhatsapp calls of quota 30000, 29997 left" in two.stdout

    mixed = run_usage(env, "warehouse", "--month", MONTH, "-o", "json", *(
        a for c in ("greenapi_a", "greenapi_other", "greenapi_bad", "greenapi_other2")
        for a in ("--greenapi-conn-id", c)))
    assert mixed.returncode == 1  # the report is printed, the status says a named connection was unusable
    report = json.loads(mixed.stdout[mixed.stdout.index("{"):])
    by_id = {i["instance_id"]: i for i in report["instances"]}
    assert (by_id["1101000001"]["quota"], by_id["1101000001"]["left"]) == (30000, 29997)
    assert by_id["1101000002"]["quota"] is None
    assert by_id["1101000002"]["quota_conflict"] == {"greenapi_other": 2000, "greenapi_other2": 5000}
    (error,) = report["connection_errors"]
    assert "'greenapi_bad'" in error and "monthly_quota" in error
    assert "greenapi_bad" in mixed.stderr

    table = run_usage(env, "warehouse", "--month", MONTH, "--greenapi-conn-id", "greenapi_bad",
                      "--greenapi-conn-id", "greenapi_other", "--greenapi-conn-id", "greenapi_other2")
    assert table.returncode == 1
    assert "! GREEN-API connection 'greenapi_bad' skipped" in table.stdout
    assert "quota conflict" in table.stdout and "'greenapi_other' says 2000" in table.stdout
    for done in (two, mixed, table):
        assert TOKEN not in done.stdout + done.stderr


def test_long_dag_and_run_ids_are_shown_whole(airflow_home, tmp_path):
    dag_id = "customer_contacts_whatsapp_presence_check_for_the_emea_marketing_team"
    run_id = "manual__2026-12-09T06:00:00.123456+00:00_backfill_of_the_emea_contacts_after_the_crm_migration"
    seeded_warehouse(tmp_path / "w.db", dag_id, run_id)
    env = {**airflow_home, "AIRFLOW_CONN_WAREHOUSE": json.dumps({"conn_type": "sqlite",
                                                                 "host": str(tmp_path / "w.db")})}
    done = run_usage(env, "warehouse", "--month", MONTH)
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = [line for line in done.stdout.splitlines() if dag_id in line]
    assert run_id in row and row.split()[-3:] == ["3", "967", "done"]


def test_a_token_in_the_quota_extra_is_described_never_printed(airflow_home, tmp_path, emulator):
    """A token pasted into monthly_quota: the error says what was expected and what the value looked like."""
    seeded_warehouse(tmp_path / "w.db")
    for stored in (TOKEN, f"  {TOKEN}\n"):
        env = {**airflow_home,
               "AIRFLOW_CONN_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "w.db")}),
               "AIRFLOW_CONN_GREENAPI_DEFAULT": airflow_connection(emulator.base_url, "1101000001", stored,
                                                                   monthly_quota=stored)}
        done = run_usage(env, "warehouse", "--month", MONTH, "--greenapi-conn-id", "greenapi_default")
        assert done.returncode != 0
        assert f"extra monthly_quota must be a number (got a text of {len(stored)} characters)" in done.stderr
        assert TOKEN not in done.stdout + done.stderr


def test_a_killed_run_reads_interrupted_and_the_days_add_up_to_the_ledger(airflow_home, tmp_path, request,
                                                                           monkeypatch):
    """A task process killed with SIGKILL mid-run, a minute later: the CLI shows it ``interrupted`` (not
    ``running`` for ever) and checks per day that add up to the ledger's calls."""
    from airflow_provider_greenapi.emulator import EmulatedInstance, FaultPlan, GreenApiEmulator
    from airflow_provider_greenapi.warehouse.usage_history import STALE_AFTER
    from tests.conftest import ID_INSTANCE, make_warehouse
    from tests.harness import Harness
    from tests.test_killed_runs import kill_mid_run

    warehouse = make_warehouse("sqlite", tmp_path, request, monkeypatch)
    numbers = [f"7918{i:07d}" for i in range(40)]
    with GreenApiEmulator([EmulatedInstance(ID_INSTANCE, TOKEN, faults=FaultPlan(latency_ms=50))]) as emu:
        Harness(emu, warehouse, max_in_flight=2).run(numbers[:1], history=True)
        kill_mid_run(emu, warehouse, numbers, 7)
    now = datetime.now(timezone.utc)
    aged = Dialect.SQLITE.engine.to_db_time(now - STALE_AFTER - STALE_AFTER / 4)  # as if a minute went by
    connection = warehouse.connect()
    connection.execute("UPDATE greenapi_usage_runs SET updated_at = ? WHERE state = 'running'", (aged,))
    connection.commit()
    connection.close()
    env = {**airflow_home, "AIRFLOW_CONN_WAREHOUSE": warehouse.airflow_uri}
    as_json = run_usage(env, "warehouse", "--output", "json")
    assert as_json.returncode == 0, as_json.stderr[-3000:]
    (instance,) = json.loads(as_json.stdout[as_json.stdout.index("{"):])["instances"]
    assert sorted(run["state"] for run in instance["runs"]) == ["done", "interrupted"]
    assert instance["calls_outside_runs"] == 0
    assert sum(instance["checks_per_day"].values()) == instance["calls"] == warehouse.fetch_all(
        "SELECT calls FROM greenapi_usage")[0][0]
    table = run_usage(env, "warehouse")
    assert table.returncode == 0 and "  interrupted" in table.stdout and "  running" not in table.stdout
