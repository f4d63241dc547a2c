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
from airflow_provider_greenapi.warehouse.usage_history import UsageHistory, UsageRecorder
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


def seeded_warehouse(path):
    import sqlite3

    connection = sqlite3.connect(path, check_same_thread=False)
    clock = lambda: datetime(2026, 12, 9, 6, 0, tzinfo=timezone.utc)  # noqa: E731
    ledger = UsageLedger(connection, Dialect.SQLITE, "1101000001", 30000, clock=clock)
    ledger.ensure_table()
    for _ in range(3):
        ledger.reserve_call()
    history = UsageHistory(connection, Dialect.SQLITE)
    history.ensure_table()
    recorder = UsageRecorder(history, "1101000001", "tok-1", "contacts_daily", "scheduled__2026-12-09", lambda: 3,
                             clock, interval=3600)
    recorder.start(967, "max_checks=auto: (30000 quota - 0 used in 2026-12 - 0 reserve) / 31 runs left = 967")
    recorder.stop("done")
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
