"""Task processes killed with SIGKILL at random points, on every engine (Snowflake: see the skip), then a
rerun (as Airflow's retry does): the usage ledger is never under GREEN-API's count (the emulator's) and over it
by at most the stated bound (:meth:`UsageLedger.most_unsent` per kill); the usage history adds up to the
ledger, and the killed runs read ``interrupted``, in the report the CLI and the UI view show."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest

from airflow_provider_greenapi.emulator import EmulatedInstance, FaultPlan, GreenApiEmulator
from airflow_provider_greenapi.usage_report import describe, month_usage
from airflow_provider_greenapi.warehouse import UsageLedger
from airflow_provider_greenapi.warehouse.usage_history import STALE_AFTER, UsageHistory, runs
from tests.conftest import ID_INSTANCE, TOKEN, Warehouse
from tests.harness import Harness

IN_FLIGHT, PACE = 2, 10.0  # the harness's max_in_flight and requests_per_second


def process_target(warehouse: Warehouse) -> str:
    """What ``python -m tests.harness`` needs to open the warehouse."""
    if warehouse.engine == "sqlite":
        return str(warehouse.airflow_uri and json.loads(warehouse.airflow_uri)["host"])
    if warehouse.engine == "postgres":
        return warehouse.airflow_uri.replace("postgres://", "postgresql://")
    return warehouse.airflow_uri


def kill_mid_run(emulator: GreenApiEmulator, warehouse: Warehouse, numbers: list[str], calls: int) -> None:
    """A run of ``numbers`` in its own process (usage history on), killed once GREEN-API has answered
    ``calls`` more checkWhatsapp requests; its history rows then aged past STALE_AFTER (:func:`age_live_rows`)."""
    start = emulator.counters(ID_INSTANCE).count("checkWhatsapp")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.harness", emulator.base_url, warehouse.dialect.value,
         process_target(warehouse), ",".join(numbers), "--chunk-size", "5", "--history"],
        cwd=os.path.dirname(os.path.dirname(__file__)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while emulator.counters(ID_INSTANCE).count("checkWhatsapp") < start + calls:
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
        assert time.monotonic() < deadline, "the run did not get going"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=10) == -signal.SIGKILL
    age_live_rows(warehouse)


def age_live_rows(warehouse: Warehouse) -> None:
    """Make the killed run's history rows a minute old, as Airflow's retry_delay (5 minutes by default) does
    before the retry: a run whose row is still fresh is taken for a live one, and the next run on the instance
    waits for it (one run sends per instance at a time)."""
    aged = warehouse.dialect.engine.to_db_time(datetime.now(timezone.utc) - STALE_AFTER - STALE_AFTER / 4)
    p = warehouse.placeholder
    warehouse.execute(f"UPDATE greenapi_usage_runs SET updated_at = {p} WHERE state IN ('running', 'waiting')",
                      (aged,))


def test_runs_killed_at_random_points_leave_a_bounded_ledger_and_a_history_that_adds_up(any_warehouse):
    warehouse = any_warehouse
    if warehouse.engine == "snowflake":
        pytest.skip("fakesnow's server stalls after a killed client when the machine is loaded (HTTP 500, then "
                    "the 300 s timeout; it passed alone, 42 and 39 over): Snowflake's bound is asserted by "
                    "test_reliability.py::test_sigkill_mid_run_then_rerun_checks_every_number_once")
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    numbers = [f"7917{i:07d}" for i in range(80)]
    kills = 3
    with GreenApiEmulator([EmulatedInstance(ID_INSTANCE, TOKEN, plan="business",
                                            faults=FaultPlan(latency_ms=rng.choice([5, 50])))]) as emu:
        harness = Harness(emu, warehouse, max_in_flight=IN_FLIGHT, requests_per_second=PACE)
        harness.run(numbers[:1], history=True)  # the tables, and a run that ends well
        for _ in range(kills):
            kill_mid_run(emu, warehouse, numbers, rng.randint(1, 12))
        later = datetime.now(timezone.utc) + STALE_AFTER + STALE_AFTER / 4  # the retry, past the heartbeats
        summary = harness.run(numbers, history=True, clock=lambda: later)
        assert summary.pending == 0

        spent = emu.counters(ID_INSTANCE).count("checkWhatsapp")
        counted = harness.ledger_calls()
        bound = UsageLedger(None, warehouse.dialect, ID_INSTANCE).most_unsent(IN_FLIGHT, PACE)
        assert spent <= counted <= spent + kills * bound, (f"seed {seed}", spent, counted, bound)

        month = later.strftime("%Y-%m")
        connection = warehouse.provider_connect()
        try:
            rows = UsageHistory(connection, warehouse.dialect).month_rows(month, now=later)
        finally:
            connection.close()
        assert sum(row.checks for row in rows) == counted, f"seed {seed}: the history does not add up to the ledger"
        states = sorted(run.state for run in runs(rows))
        assert states == ["done"] * 2 + ["interrupted"] * kills, (f"seed {seed}", states)
        print(f"{warehouse.engine}: the ledger over GREEN-API's count by {counted - spent} after {kills} kills "
              f"(bound {kills * bound})")

        # What `airflow greenapi usage` and the UI view show (both print month_usage's report).
        (report,) = month_usage(warehouse.conn_id, month)
        assert report.calls == counted and sum(report.per_day.values()) == counted, f"seed {seed}"
        assert sorted(run.state for run in report.runs) == states
        assert describe([report], month).count("  interrupted") == kills
        from airflow_provider_greenapi.plugins.quota_view import _render  # FastAPI: Airflow 3.1+ only

        assert _render([warehouse.conn_id], warehouse.conn_id, month, [report], None).count(">interrupted<") == kills
