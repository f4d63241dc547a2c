"""Overlapping runs on one GREEN-API instance and one results table (a manual trigger beside the schedule, a
backfill): one sends, the other waits for it through the usage history table, then checks what is left. Asserted
on what the emulator saw: every number checked once across both runs, no 429, never more than the instance's 10
calls in any second, every answer stored. (Both runs' health gates ask getStateInstance, 1 request/s, at the
same instant: one may get a 429, retried after the connection's backoff; that call costs no quota. The sending
run's instance watch polls it every state_poll_interval, 5 s by default: at 1 s it would take the instance's whole
getStateInstance allowance, and the other run's gate would meet 429s until its retries run out.)"""

from __future__ import annotations

import bisect
import json
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_greenapi.emulator import EmulatedInstance, FaultPlan, GreenApiEmulator
from airflow_provider_greenapi.errors import BulkCheckStopped, OtherRunStillSending
from airflow_provider_greenapi.warehouse.usage_history import UsageHistory, UsageRecorder, runs
from tests.conftest import ID_INSTANCE, TOKEN, Warehouse
from tests.harness import Harness
from tests.test_killed_runs import process_target

CHECK = "checkWhatsapp"
INSTANCE_LIMIT = 10  # GREEN-API's checkWhatsapp calls per second per instance
PACE = 8.0  # each run's own pace: two runs sending at once would make about 16 a second
WAITING_LOG = "waiting for it to finish"


def start_run(emulator: GreenApiEmulator, warehouse: Warehouse, numbers: list[str]) -> subprocess.Popen[bytes]:
    """A run of ``numbers`` in its own process (the usage history on), as a second Airflow worker runs it."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.harness", emulator.base_url, warehouse.dialect.value, process_target(warehouse),
         ",".join(numbers), "--chunk-size", "5", "--history", "--requests-per-second", str(PACE),
         "--retry-backoff", "1", "--state-poll-interval", "5", "--json"],  # the defaults' order (2 s, 5 s)
        cwd=os.path.dirname(os.path.dirname(__file__)), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def most_in_one_second(arrivals: list[float]) -> int:
    """The most calls that arrived within any one second (a window [t, t + 1))."""
    arrivals = sorted(arrivals)
    return max((bisect.bisect_left(arrivals, t + 1.0) - i for i, t in enumerate(arrivals)), default=0)


def test_most_in_one_second_counts_a_sliding_window():
    assert most_in_one_second([]) == 0
    assert most_in_one_second([0.0, 0.5, 0.99, 1.0, 1.5]) == 3
    assert most_in_one_second([i / 8 for i in range(30)]) == 8


def test_two_processes_at_once_check_each_number_once_at_the_instances_pace(any_warehouse):
    warehouse = any_warehouse
    if warehouse.engine == "duckdb":
        pytest.skip("a DuckDB file is open in one process at a time: two workers cannot share its results table")
    numbers = [f"7918{i:07d}" for i in range(48)]
    with GreenApiEmulator([EmulatedInstance(ID_INSTANCE, TOKEN, plan="business",
                                            faults=FaultPlan(latency_ms=50))]) as emu:
        Harness(emu, warehouse).run([], history=True)  # the tables, as an earlier run left them
        processes = [start_run(emu, warehouse, numbers) for _ in range(2)]
        outputs = [process.communicate(timeout=240) for process in processes]
        for process, (_, err) in zip(processes, outputs, strict=True):
            assert process.returncode == 0, err.decode()[-3000:]
        summaries = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
        logs = [err.decode() for _, err in outputs]

        checks = emu.journal(ID_INSTANCE, CHECK)
        assert Counter(entry.number for entry in checks) == Counter(numbers), "a number checked twice, or never"
        assert [e.status for e in checks if e.status != 200] == []  # no 429: the pace held across the runs
        assert most_in_one_second([entry.arrived for entry in checks]) <= INSTANCE_LIMIT

    checked = [s["exists"] + s["not_exists"] + s["rejected"] + s["error"] for s in summaries]
    assert sum(checked) == len(numbers), summaries
    assert [s["pending"] for s in summaries] == [0, 0], summaries
    assert sum(s["quota_spent"] for s in summaries) == len(numbers), summaries
    # queued asked in SQL: fakesnow's server reads a NULL timestamp back as 1970-01-01
    rows = warehouse.fetch_all("SELECT phone_number, status, CASE WHEN queued_at IS NULL THEN 0 ELSE 1 END "
                               "FROM whatsapp_checks")
    assert sorted(row[0] for row in rows) == sorted(numbers)
    assert {(row[1] in ("exists", "not_exists"), row[2]) for row in rows} == {(True, 0)}, "an answer not stored"
    # The runs overlapped: one waited for the other (and said so, once), then found nothing or little left.
    assert sorted(log.count(WAITING_LOG) for log in logs) == [0, 1], logs
    waited = summaries[[WAITING_LOG in log for log in logs].index(True)]
    assert waited["distinct_numbers"] == waited["fresh"] + checked[summaries.index(waited)], waited
    connection = warehouse.connect()
    try:
        month = datetime.now(timezone.utc).strftime("%Y-%m")
        states = [run.state for run in runs(UsageHistory(connection, warehouse.dialect).month_rows(month))]
    finally:
        connection.close()
    assert states == ["done"] * 3


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def test_a_run_gives_up_after_wait_for_other_runs_with_an_error_a_retry_can_fix(emulator, warehouse):
    """Another run sending (a live ``running`` row, its heartbeat fresh): this run waits, then stops before
    reading, staging or sending anything, with a message that says why and what to do."""
    harness = Harness(emulator, warehouse)
    harness.run([], history=True)  # the tables
    connection = warehouse.connect_from_threads()
    other = UsageRecorder(UsageHistory(connection, warehouse.dialect), ID_INSTANCE, "token-other", "contacts",
                          "scheduled__2026-12-01", lambda: datetime.now(timezone.utc), interval=0.2)
    other.start()  # sending, and its heartbeat keeps going
    try:
        with pytest.raises(BulkCheckStopped) as stopped:
            harness.run(["79001234567", "79001234568"], history=True, wait_for_other_runs=timedelta(seconds=1))
    finally:
        other.stop("done")
        connection.close()
    message = str(stopped.value)
    assert stopped.value.retry_can_fix and isinstance(stopped.value.__cause__, OtherRunStillSending)
    assert "contacts/scheduled__2026-12-01" in message and "wait_for_other_runs" in message, message
    assert (stopped.value.summary.inputs, stopped.value.summary.checked) == (0, 0)  # its turn comes before reading
    assert emulator.counters(ID_INSTANCE).count(CHECK) == 0
    assert harness.rows() == [], "nothing staged: the retry reads the source as the other run left the table"


def test_a_killed_run_does_not_hold_the_next_one_back(emulator, warehouse):
    """A ``running`` row not heard from for STALE_AFTER is a killed run's: the next run sends at once."""
    harness = Harness(emulator, warehouse)
    harness.run([], history=True)
    connection = warehouse.connect_from_threads()
    try:
        past = datetime.now(timezone.utc) - timedelta(minutes=5)
        killed = UsageRecorder(UsageHistory(connection, warehouse.dialect), ID_INSTANCE, "token-killed", "contacts",
                               "r1", lambda: past, interval=3600)
        killed._write("running")  # its first write, and never another (SIGKILL)
    finally:
        connection.close()
    summary = harness.run(["79001234567"], history=True, wait_for_other_runs=timedelta(0))
    assert summary.checked == 1 and emulator.counters(ID_INSTANCE).count(CHECK) == 1


def test_a_dry_run_does_not_wait_and_a_real_one_waits_even_with_nothing_new(emulator, warehouse):
    """A dry run writes nothing, so it goes on beside a run that is sending; a real run waits for its turn even
    when nothing of its input changed: it reads the results table (what is owed) only as the other run left it."""
    harness = Harness(emulator, warehouse)
    harness.run(["79001234567"], history=True)
    connection = warehouse.connect_from_threads()
    other = UsageRecorder(UsageHistory(connection, warehouse.dialect), ID_INSTANCE, "token-other", "contacts",
                          "manual__1", lambda: datetime.now(timezone.utc), interval=0.2)
    other.start()
    try:
        dry = harness.run(["79001234567"], history=True, dry_run=True, wait_for_other_runs=timedelta(0))
        with pytest.raises(BulkCheckStopped) as stopped:
            harness.run(["79001234567"], history=True, wait_for_other_runs=timedelta(0))
    finally:
        other.stop("done")
        connection.close()
    assert (dry.checked, dry.pending, dry.unchanged, dry.stopped_reason) == (0, 0, 1, None)
    assert isinstance(stopped.value.__cause__, OtherRunStillSending)
    assert emulator.counters(ID_INSTANCE).count(CHECK) == 1


def test_a_long_staging_from_a_sqlite_source_in_the_same_file_keeps_its_heartbeat(emulator, tmp_path, monkeypatch):
    """The run's row is kept live while it stages (its turn holds), and on SQLite that heartbeat must go through
    the results' own connection: a source cursor open on it and the history written on another connection
    locked each other out ("database is locked" at a million contacts). Wired as the operator wires it, with a
    heartbeat every 0.05 s, so that many beats fall while the source is read."""
    import sqlite3
    from contextlib import ExitStack

    from airflow_provider_greenapi.client import ClientSettings, GreenApiClient
    from airflow_provider_greenapi.numbers import PhoneNumberNormalizer
    from airflow_provider_greenapi.pipeline import CheckOptions
    from airflow_provider_greenapi.pipeline.wiring import wire_run
    from airflow_provider_greenapi.warehouse import open_warehouse

    path = tmp_path / "warehouse.db"
    with sqlite3.connect(path) as seed:
        seed.execute("CREATE TABLE contacts (contact_id INTEGER PRIMARY KEY, phone TEXT)")
        seed.executemany("INSERT INTO contacts VALUES (?, ?)", ((i, f"+7 901 {i:07d}") for i in range(50_000)))
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    with ExitStack() as stack:
        run = wire_run(stack, open_warehouse("warehouse"), instance_id=ID_INSTANCE, monthly_quota=None,
                       make_client=lambda ledger: GreenApiClient(emulator.base_url, ID_INSTANCE, TOKEN,
                                                                 ClientSettings(retry_backoff=0.01), ledger=ledger),
                       normalizer=PhoneNumberNormalizer(),
                       options=CheckOptions(max_checks=0, chunk_size=100, commit_interval=0.05))
        inputs = run.query_inputs(stack, "warehouse", "SELECT contact_id, phone FROM contacts", "phone",
                                  "contact_id", changed_only=None)
        summary = run.run(inputs)
    assert (summary.inputs, summary.pending) == (50_000, 50_000)
    with sqlite3.connect(path) as check:
        rows = check.execute("SELECT state, updated_at > started_at FROM greenapi_usage_runs").fetchall()
    assert rows == [("done", 1)]
