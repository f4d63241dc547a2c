"""The usage history table on every engine: the recorder's rows (one per run, instance and day), their updates
while a run sends, a run across midnight, and the read-only month queries the CLI and the UI use."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_greenapi.warehouse import UsageLedger
from airflow_provider_greenapi.warehouse.ledger import usage_in_month
from airflow_provider_greenapi.warehouse.usage_history import UsageHistory, UsageRecorder, checks_per_day, runs


@pytest.fixture
def warehouse(any_warehouse):
    return any_warehouse


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def test_a_run_across_midnight_gets_a_row_per_day_and_the_month_adds_up(warehouse):
    connection = warehouse.provider_connect()
    history = UsageHistory(connection, warehouse.dialect)
    history.ensure_table()
    history.ensure_table()  # idempotent
    clock, sent = Clock(datetime(2026, 12, 20, 23, 58, tzinfo=timezone.utc)), [0]
    recorder = UsageRecorder(history, "1101000001", "token-a", "contacts", "scheduled__2026-12-20", lambda: sent[0],
                             clock, interval=3600)  # no background writes: the test drives them
    recorder.start(120, "max_checks=auto: ...")
    sent[0] = 70
    recorder._write("running")
    clock.now += timedelta(minutes=5)  # past midnight
    sent[0] = 100
    recorder.stop("done")
    other = UsageRecorder(history, "1101000002", "token-b", "contacts", "manual__x", lambda: 7, clock, 3600)
    other.start()
    other.stop("stopped")

    rows = history.month_rows("2026-12")
    assert sorted((r.instance_id, r.day, r.checks, r.state) for r in rows) == [
        ("1101000001", "2026-12-20", 70, "running"),
        ("1101000001", "2026-12-21", 30, "done"),
        ("1101000002", "2026-12-21", 7, "stopped"),
    ]
    assert checks_per_day(rows) == {"1101000001": {"2026-12-20": 70, "2026-12-21": 30},
                                    "1101000002": {"2026-12-21": 7}}
    first, second = runs(rows)[1], runs(rows)[0]
    assert (first.instance_id, first.checks, first.budget, first.state) == ("1101000001", 100, 120, "done")
    assert second.run_id == "manual__x" and second.budget is None
    assert history.month_rows("2026-11") == []
    connection.close()


def test_the_month_report_reads_every_instances_ledger_row(warehouse):
    connection = warehouse.provider_connect()
    clock = Clock(datetime(2026, 12, 5, tzinfo=timezone.utc))
    for instance, spent in (("1101000001", 1200), ("1101000002", 40)):
        ledger = UsageLedger(connection, warehouse.dialect, instance, None, clock=clock)
        ledger.ensure_table()
        ledger.record_reported(spent, 30000 if instance == "1101000002" else None)
    report = usage_in_month(connection, warehouse.dialect, "2026-12", quotas={"1101000001": 5000})
    assert [(u.instance_id, u.calls, u.quota, u.left) for u in report] == [
        ("1101000001", 1200, 5000, 3800), ("1101000002", 40, 30000, 29960)]
    assert usage_in_month(connection, warehouse.dialect, "2026-11") == []
    connection.close()
