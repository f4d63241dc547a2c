"""The usage history table on every engine: the recorder's rows (one per run, instance and day), their updates
while a run sends, a run across midnight, and the read-only month queries the CLI and the UI use."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_greenapi.results import RunContext
from airflow_provider_greenapi.warehouse import UsageLedger
from airflow_provider_greenapi.warehouse.ledger import usage_in_month
from airflow_provider_greenapi.warehouse.usage_history import (
    RUNNING,
    STALE_AFTER,
    WAITING,
    RunDay,
    UsageHistory,
    UsageRecorder,
    checks_per_day,
    runs,
    runs_ahead,
    start_recording,
)


@pytest.fixture
def warehouse(any_warehouse):
    return any_warehouse


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def test_a_run_across_midnight_gets_a_row_per_day_and_the_month_adds_up(warehouse):
    """The ledger books the run's calls on the day it counts them, and gives back what it did not send."""
    connection = warehouse.provider_connect()
    clock = Clock(datetime(2026, 12, 20, 23, 58, tzinfo=timezone.utc))
    ledger = UsageLedger(warehouse.provider_connect(), warehouse.dialect, "1101000001", None, clock=clock)
    ledger.ensure_table()
    history = UsageHistory(connection, warehouse.dialect).sharing(ledger.connection, ledger.lock)
    history.ensure_table()
    history.ensure_table()  # idempotent
    recorder = UsageRecorder(history, "1101000001", "token-a", "contacts", "scheduled__2026-12-20", clock,
                             interval=3600)  # no background writes: the test drives them
    recorder.start(120, "max_checks=auto: ...")
    ledger.book_on(recorder.book)
    for _ in range(70):
        ledger.reserve_call()
    clock.now += timedelta(minutes=5)  # past midnight
    for _ in range(30):
        ledger.reserve_call()
    recorder.stop("done")
    ledger.close()  # gives back a batched engine's unsent block, in the ledger and in the history
    other = UsageRecorder(UsageHistory(connection, warehouse.dialect), "1101000002", "token-b", "contacts",
                          "manual__x", clock, 3600)
    other.start()
    other.stop("stopped")

    rows = UsageHistory(connection, warehouse.dialect).month_rows("2026-12", now=clock.now)
    days = checks_per_day(rows)
    assert sum(days["1101000001"].values()) == 100 == usage_in_month(connection, warehouse.dialect, "2026-12")[0].calls
    if warehouse.dialect.engine.ledger_block == 1:  # counted call by call: each on its own day
        assert days["1101000001"] == {"2026-12-20": 70, "2026-12-21": 30}
    assert days["1101000002"] == {"2026-12-21": 0}
    assert {(r.instance_id, r.state) for r in rows} == {("1101000001", "done"), ("1101000002", "stopped")}
    first, second = runs(rows)[1], runs(rows)[0]
    assert (first.instance_id, first.checks, first.budget, first.state) == ("1101000001", 100, 120, "done")
    assert second.run_id == "manual__x" and second.budget is None
    assert UsageHistory(connection, warehouse.dialect).month_rows("2026-11") == []
    connection.close()


def test_a_run_not_heard_from_reads_interrupted_and_a_later_run_writes_it_so(warehouse):
    """A run killed mid-way never writes its last state: past STALE_AFTER without a heartbeat, readers say
    ``interrupted``, and the next run on the instance writes it (a live run's heartbeat keeps it ``running``)."""
    connection = warehouse.provider_connect()
    history = UsageHistory(connection, warehouse.dialect)
    clock = Clock(datetime(2026, 12, 20, 9, 0, tzinfo=timezone.utc))
    killed = UsageRecorder(history, "1101000001", "token-killed", "contacts", "r1", clock, 3600)
    history.ensure_table()
    killed._write("running")  # its first write and never another, as a SIGKILL leaves it (no heartbeat thread
    # left behind: one kept writing through the test's connection until the interpreter's exit, and aborted it)
    clock.now += STALE_AFTER / 2
    live = UsageRecorder(history, "1101000001", "token-live", "contacts", "r2", clock, 3600)
    live.start()
    assert {r.state for r in history.month_rows("2026-12", now=clock.now)} == {"running"}
    clock.now += STALE_AFTER / 2 + timedelta(seconds=1)
    states = {r.run_token: r.state for r in history.month_rows("2026-12", now=clock.now)}
    assert states == {"token-killed": "interrupted", "token-live": "running"}
    live._write("running")  # its heartbeat
    later = start_recording(history, "1101000001", RunContext("token-next", "1101000001", "contacts", "r3"),
                            clock, 3600)
    assert later is not None
    far_later = clock.now + timedelta(days=1)  # what is written, not what a reader makes of it
    states = {r.run_token: r.state for r in history.month_rows("2026-12", now=clock.now - timedelta(days=1))}
    assert states == {"token-killed": "interrupted", "token-live": "running", "token-next": "running"}
    later.stop("done")
    live.stop("done")
    states = {r.run_token: r.state for r in history.month_rows("2026-12", now=far_later)}
    assert states == {"token-killed": "interrupted", "token-live": "done", "token-next": "done"}
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


def test_the_report_says_how_many_calls_no_run_booked(warehouse):
    """The checks per day add up to the ledger's calls but for what no run booked, which the report names."""
    from airflow_provider_greenapi.usage_report import describe, month_usage

    clock = Clock(datetime(2026, 12, 5, 8, 0, tzinfo=timezone.utc))
    ledger = UsageLedger(warehouse.provider_connect(), warehouse.dialect, "1101000001", None, clock=clock)
    ledger.ensure_table()
    history = UsageHistory(ledger.connection, warehouse.dialect, lock=ledger.lock)
    history.ensure_table()
    recorder = UsageRecorder(history, "1101000001", "token-a", "contacts", "r1", clock, 3600)
    recorder.start()
    ledger.book_on(recorder.book)
    for _ in range(4):
        ledger.reserve_call()
    recorder.stop("done")
    ledger.close()  # a batched engine's unsent block back, from the ledger and the history
    ledger = UsageLedger(warehouse.provider_connect(), warehouse.dialect, "1101000001", None, clock=clock)
    ledger.record_reported(10, None)  # a 466: GREEN-API counted 10
    ledger.close()
    (report,) = month_usage(warehouse.conn_id, "2026-12")
    assert (report.calls, sum(report.per_day.values()), report.outside_runs) == (10, 4, 6)
    assert report.to_dict()["calls_outside_runs"] == 6
    assert "  6 calls booked by no run" in describe([report], "2026-12")


def test_a_booking_that_fails_never_fails_the_count(warehouse):
    """The history is informative: if its row cannot be written (here its table is missing), the ledger drops
    the booking, rolls back and counts the calls all the same."""
    clock = Clock(datetime(2026, 12, 5, 8, 0, tzinfo=timezone.utc))
    ledger = UsageLedger(warehouse.provider_connect(), warehouse.dialect, "1101000001", None, clock=clock)
    ledger.ensure_table()
    recorder = UsageRecorder(UsageHistory(ledger.connection, warehouse.dialect, "no_such_history", ledger.lock),
                             "1101000001", "token-a", "contacts", "r1", clock, 3600)
    ledger.book_on(recorder.book)
    for _ in range(3):
        ledger.reserve_call()  # a warning says the booking is dropped
    ledger.close()
    (calls,), = warehouse.fetch_all("SELECT calls FROM greenapi_usage")
    # fakesnow keeps the block's UPDATE though the failed booking's transaction was rolled back: never under
    block = warehouse.dialect.engine.ledger_block
    assert 3 <= calls <= 3 + (block if block > 1 else 0)


def _row(token: str, state: str, started: datetime) -> RunDay:
    return RunDay("1101000001", token, "2026-12-20", "contacts", token, started, started, 0, None, None, state)


def test_of_two_runs_started_at_the_same_instant_exactly_one_goes_first():
    """The ordering rule: a waiting run goes after every run sending, and after the runs waiting that started
    before it; a tie in start time is broken by the run token."""
    now = datetime(2026, 12, 20, 9, 0, tzinfo=timezone.utc)
    a, b = _row("token-a", WAITING, now), _row("token-b", WAITING, now)
    assert (runs_ahead(a, [a, b]), runs_ahead(b, [a, b])) == ([], [a])
    later = _row("token-0", WAITING, now + timedelta(seconds=1))  # a smaller token, started later: behind
    assert runs_ahead(later, [a, later]) == [a] and runs_ahead(a, [a, later]) == []
    sending = _row("token-z", RUNNING, now + timedelta(minutes=1))  # sending goes first, whenever it started
    assert runs_ahead(a, [a, b, sending]) == [sending]


def test_runs_starting_together_take_turns_and_a_killed_run_holds_none_back(warehouse):
    """Through the table: each run writes its row before it looks, so of two runs starting together exactly one
    sends; a killed run (its row silent for STALE_AFTER) blocks nobody."""
    connection = warehouse.provider_connect()
    history = UsageHistory(connection, warehouse.dialect)
    history.ensure_table()
    clock = Clock(datetime(2026, 12, 20, 9, 0, tzinfo=timezone.utc))
    killed = UsageRecorder(history, "1101000001", "token-killed", "contacts", "r0", clock, 3600)
    killed._write("running")  # sending when it was killed: its first write, and no heartbeat thread after it
    clock.now += STALE_AFTER + timedelta(seconds=1)
    first, second = (UsageRecorder(history, "1101000001", token, "contacts", token, clock, 3600)
                     for token in ("token-a", "token-b"))
    first.start(state=WAITING)
    second.start(state=WAITING)  # the same instant: the token decides
    other_instance = UsageRecorder(history, "1101000002", "token-c", "contacts", "c", clock, 3600)
    other_instance.start(state=WAITING)
    assert [row.run_token for row in second.take_turn()] == ["token-a"]
    assert first.take_turn() == [] and first.state == RUNNING
    assert other_instance.take_turn() == []  # another instance: its own turn
    clock.now += timedelta(seconds=5)
    ahead = second.take_turn()
    assert [(row.run_token, row.state) for row in ahead] == [("token-a", RUNNING)] and second.state == WAITING
    first.stop("done")
    assert second.take_turn() == [] and second.state == RUNNING
    states = {r.run_token: r.state for r in history.month_rows("2026-12", now=clock.now)}
    assert states == {"token-killed": "interrupted", "token-a": "done", "token-b": RUNNING, "token-c": RUNNING}
    second.stop("done")
    other_instance.stop("done")
    connection.close()


def test_a_run_that_finds_another_sending_after_its_own_write_goes_back_to_waiting(warehouse):
    """Both runs saw none ahead (each read before the other wrote) and wrote ``running``: the look after the
    write sends at least one back to ``waiting``, so they never send together."""
    connection = warehouse.provider_connect()
    history = UsageHistory(connection, warehouse.dialect)
    history.ensure_table()
    clock = Clock(datetime(2026, 12, 20, 9, 0, tzinfo=timezone.utc))
    late = UsageRecorder(history, "1101000001", "token-late", "contacts", "late", clock, 3600)
    late.start(state=RUNNING)  # its row appeared after the other's first look, already sending
    early = UsageRecorder(history, "1101000001", "token-early", "contacts", "early", clock, 3600)
    early._started -= timedelta(seconds=1)  # started first, so no waiting run is ahead of it
    early.start(state=WAITING)
    assert [row.run_token for row in early.take_turn()] == ["token-late"] and early.state == WAITING
    late.stop("done")
    assert early.take_turn() == [] and early.state == RUNNING
    early.stop("done")
    connection.close()
