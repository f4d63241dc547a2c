"""The monthly usage ledger on real SQLite and PostgreSQL, including concurrent writers."""

from __future__ import annotations

import contextlib
import math
import threading
from datetime import datetime, timezone

import pytest

from airflow_provider_greenapi.errors import QuotaBudgetExhausted
from airflow_provider_greenapi.warehouse import UsageLedger
from airflow_provider_greenapi.warehouse.ledger import ReserveAhead

COUNT_EACH_CALL = ReserveAhead(max_calls=0)  # never counts ahead


@pytest.fixture
def warehouse(any_warehouse):
    """Every test here runs on all five engines (conftest.any_warehouse)."""
    return any_warehouse



_OPEN = []


@pytest.fixture(autouse=True)
def _close_ledgers():
    """Each ledger a test makes is closed after it (closing twice is harmless: the connection's close)."""
    yield
    while _OPEN:
        with contextlib.suppress(Exception):
            _OPEN.pop().close()


def make_ledger(warehouse, quota=None, clock=None, thread_safe=False, reserve_ahead=None):
    connection = warehouse.provider_connect()
    kwargs = {"clock": clock} if clock else {}
    if reserve_ahead is not None:
        kwargs["reserve_ahead"] = reserve_ahead
    ledger = UsageLedger(connection, warehouse.dialect, "1101000001", quota, **kwargs)
    ledger.ensure_table()
    _OPEN.append(ledger)
    return ledger


def test_calls_are_counted_per_month(warehouse):
    month = [datetime(2026, 11, 30, 23, 59, tzinfo=timezone.utc)]
    ledger = make_ledger(warehouse, clock=lambda: month[0])
    for _ in range(3):
        ledger.reserve_call()
    assert ledger.usage().calls == 3 and ledger.usage().month == "2026-11"
    month[0] = datetime(2026, 12, 1, 0, 0, tzinfo=timezone.utc)  # the quota resets on the 1st
    ledger.reserve_call()
    assert (ledger.usage().month, ledger.usage().calls) == ("2026-12", 1)


def test_the_monthly_quota_is_never_crossed(warehouse):
    ledger = make_ledger(warehouse, quota=2)
    ledger.reserve_call()
    ledger.reserve_call()
    with pytest.raises(QuotaBudgetExhausted, match="2 of 2"):
        ledger.reserve_call()
    usage = ledger.usage()
    assert (usage.calls, usage.left) == (2, 0)


def test_a_466_updates_the_ledger_and_then_caps_it(warehouse):
    ledger = make_ledger(warehouse)
    ledger.reserve_call()
    ledger.record_reported(used=100, total=100)
    usage = ledger.usage()
    assert (usage.calls, usage.reported_used, usage.reported_total, usage.quota) == (100, 100, 100, 100)
    with pytest.raises(QuotaBudgetExhausted):
        ledger.reserve_call()


def granted_calls(ledger, attempts):
    count = 0
    for _ in range(attempts):
        try:
            ledger.reserve_call()
            count += 1
        except QuotaBudgetExhausted:
            pass
    return count


def test_two_ledgers_share_one_count(warehouse):
    first, second = make_ledger(warehouse, quota=3), make_ledger(warehouse, quota=3)
    if warehouse.dialect.engine.ledger_block == 1:
        first.reserve_call()
        second.reserve_call()
        first.reserve_call()
        with pytest.raises(QuotaBudgetExhausted):
            second.reserve_call()
        assert first.usage().calls == 3
    else:  # blocks: the first ledger's block takes what is left, the second gets none while it is held
        assert (granted_calls(first, 2), granted_calls(second, 2)) == (2, 0)
        first.close()  # gives back the unsent call
        assert granted_calls(second, 5) == 1
    second.close()
    assert warehouse.fetch_all("SELECT calls FROM greenapi_usage") == [(3,)]


def test_a_block_is_counted_before_its_calls_and_given_back_at_close(warehouse):
    """On a batched engine the ledger counts a whole block up front (a crash over-counts at most that), and
    returns what was not sent at close; never above the quota."""
    block = warehouse.dialect.engine.ledger_block
    ledger = make_ledger(warehouse, quota=block + 5)
    ledger.reserve_call()
    assert warehouse.fetch_all("SELECT calls FROM greenapi_usage") == [(block,)]  # counted before sending
    assert ledger.usage().calls == 1  # what this task has spent
    assert granted_calls(ledger, block + 10) == block + 4
    ledger.close()
    assert warehouse.fetch_all("SELECT calls FROM greenapi_usage") == [(block + 5,)]


def spend_concurrently(ledgers, attempts, threads_each=2):
    granted, refused = [], []

    def spend(ledger):
        for _ in range(attempts):
            try:
                ledger.reserve_call()
                granted.append(1)
            except QuotaBudgetExhausted:
                refused.append(1)

    threads = [threading.Thread(target=spend, args=(ledger,)) for ledger in ledgers for _ in range(threads_each)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(granted), len(refused)


def test_concurrent_reservations_never_cross_the_quota_and_lose_nothing(warehouse):
    """Six threads of three ledgers race for 150 calls: never more than 150 granted; calls a ledger counted
    ahead (or a batched engine's block) are given back at close, so what is left is still there after."""
    ledgers = [make_ledger(warehouse, quota=150, thread_safe=True) for _ in range(3)]
    granted, refused = spend_concurrently(ledgers, 60)
    assert granted <= 150 and granted + refused == 6 * 60
    for ledger in ledgers:
        ledger.close()
    assert warehouse.fetch_all("SELECT calls FROM greenapi_usage") == [(granted,)]
    assert granted_calls(make_ledger(warehouse, quota=150), 200) == 150 - granted


def test_counting_each_call_concurrent_reservations_are_exact(warehouse):
    """Without counting ahead (the case at a real instance's pace) every call is counted as it goes: the
    threads together get exactly the quota."""
    if warehouse.dialect.engine.ledger_block > 1:
        pytest.skip("a batched engine always counts in blocks (see the block test)")
    ledgers = [make_ledger(warehouse, quota=150, reserve_ahead=COUNT_EACH_CALL) for _ in range(3)]
    assert spend_concurrently(ledgers, 60) == (150, 6 * 60 - 150)
    assert ledgers[0].usage().calls == 150


class SlowCommits:
    """A connection whose commits take a while, as an fsync on a busy disk does; counts them."""

    def __init__(self, connection):
        self.connection, self.commits = connection, 0

    def __getattr__(self, name):
        return getattr(self.connection, name)

    def commit(self):
        self.commits += 1
        threading.Event().wait(0.02)
        self.connection.commit()


def test_threads_of_one_task_share_commits(warehouse):
    ledger = make_ledger(warehouse, thread_safe=True)
    ledger.connection = slow = SlowCommits(ledger.connection)

    def spend():
        for _ in range(20):
            ledger.reserve_call()

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ledger.usage().calls == 160
    assert slow.commits < 160 / 2, "reservations waiting on a commit should share the next one"
    ledger.close()


def test_when_commits_are_the_bottleneck_calls_are_counted_ahead_and_the_rest_given_back(warehouse):
    """Four threads that only spend, on a ledger whose commits take 20 ms: each call is still counted before
    it is taken, but far fewer commits than group commit alone needs (one per round of the four threads);
    what was counted and not taken is given back at close."""
    if warehouse.dialect.engine.ledger_block > 1:
        pytest.skip("a batched engine counts in blocks already")
    threads_before = set(threading.enumerate())
    ledger = make_ledger(warehouse, thread_safe=True)
    ledger.connection = slow = SlowCommits(ledger.connection)
    taken, counted_behind, reads = [], [], []

    def spend():
        for _ in range(100):
            ledger.reserve_call(pace=math.inf)  # unpaced: the ledger is all that holds the threads back
            taken.append(1)

    def watch():  # the committed count is never behind the calls taken
        reader = warehouse.provider_connect()  # as the provider opens one (DuckDB: taking turns at the file)
        try:
            while len(taken) < 400:
                before = len(taken)  # taken before the count is read: the count must already cover them
                cursor = reader.cursor()
                cursor.execute("SELECT calls FROM greenapi_usage")
                rows = cursor.fetchall()
                cursor.close()
                reader.commit()
                if (rows[0][0] if rows else 0) < before:
                    counted_behind.append((rows, before))
                reads.append(1)
                threading.Event().wait(0.005)
        finally:
            reader.close()

    threads = [threading.Thread(target=spend) for _ in range(4)] + [threading.Thread(target=watch)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert reads and not counted_behind
    assert slow.commits < 400 / 4 / 2, slow.commits
    assert ledger.usage().calls == 400
    ledger.close()
    assert warehouse.fetch_all("SELECT calls FROM greenapi_usage") == [(400,)]
    assert not [t for t in set(threading.enumerate()) - threads_before if t.name.startswith("greenapi")]


def test_at_a_real_pace_nothing_is_counted_ahead(warehouse):
    """At 5 calls a second, even with 20 ms commits, each call is counted right before it is taken: the
    ledger holds no counted-unsent call, so a crash at any moment leaves it exact."""
    if warehouse.dialect.engine.ledger_block > 1:
        pytest.skip("a batched engine counts in blocks")
    ledger = make_ledger(warehouse, thread_safe=True)
    ledger.connection = SlowCommits(ledger.connection)
    for sent in range(1, 11):
        threading.Event().wait(0.2)
        ledger.reserve_call(pace=5)
        assert warehouse.fetch_all("SELECT calls FROM greenapi_usage") == [(sent,)]
    ledger.close()


@pytest.mark.parametrize(("pace", "sends", "commit_seconds", "ahead"), [
    (10, 10, 0.02, 0),  # a real instance on a SQLite file: count each call
    (10, 10, 0.09, 0),  # still each call: a commit shorter than a paced slot
    (10, 10, 0.1, 2),  # a commit as long as a slot: counting each call would hold the sends back
    (None, 1000, 0.02, 0),  # the pace not known: count each call
    (math.inf, 1000, 0.02, 40),  # unpaced: twice what one commit lasts
    (math.inf, 10, 0.02, 1),  # at least one
    (math.inf, 100_000, 0.5, 256),  # capped
    (10, 10, 2.0, 10),  # a commit of 2 s at a real pace: at most a second of sends (was 40)
    (100, 100, 0.5, 100),
])
def test_reserve_ahead_counts_twice_what_one_commit_lasts_when_it_would_hold_the_pace_back(
        pace, sends, commit_seconds, ahead):
    assert ReserveAhead().calls(pace, sends, commit_seconds) == ahead
    assert COUNT_EACH_CALL.calls(pace, sends, commit_seconds) == 0


class VerySlowCommits(SlowCommits):
    def commit(self):
        threading.Event().wait(1.0)
        self.connection.commit()


def test_slow_commits_never_hold_more_calls_counted_and_unsent_than_most_unsent(warehouse):
    """What a kill at any moment leaves above GREEN-API's count (the calls counted and not sent) stays within
    ``most_unsent``, however slow the commits: here 1 s at 10 calls a second from two threads (before the
    cap on counting ahead, a second of sends, the ledger held 28 after 12 s, and more the longer it ran)."""
    ledger = make_ledger(warehouse, thread_safe=True)
    ledger.connection = VerySlowCommits(ledger.connection)
    sent, held, lock, stop = [0], [0], threading.Lock(), threading.Event()

    def sender():
        while not stop.is_set():
            ledger.reserve_call(pace=10)
            with lock:
                sent[0] += 1
            stop.wait(0.2)  # two threads: 10 calls a second

    def watch():
        reader = warehouse.provider_connect()
        while not stop.wait(0.05):
            cursor = reader.cursor()
            cursor.execute("SELECT calls FROM greenapi_usage")
            calls = cursor.fetchall()
            cursor.close()
            reader.rollback()  # the next read sees the next commit
            with lock:
                held[0] = max(held[0], (calls[0][0] if calls else 0) - sent[0])
        reader.close()

    threads = [threading.Thread(target=t) for t in (sender, sender, watch)]
    for thread in threads:
        thread.start()
    threading.Event().wait(12)
    stop.set()
    for thread in threads:
        thread.join()
    bound = ledger.most_unsent(2, 10)
    assert bound == 2 + 2 * 10 + warehouse.dialect.engine.ledger_block - 1
    assert 0 < held[0] <= bound, (held[0], bound)


def test_a_quota_another_task_spent_mid_run_stops_the_run_quietly(emulator, warehouse, monkeypatch):
    """The ledger's refusal (QuotaBudgetExhausted, a stop of the provider, not a GREEN-API error) ends the run
    with the rest pending and the task successful, not with BulkCheckStopped."""
    from tests.harness import Harness

    numbers = [f"7915{i:07d}" for i in range(12)]
    reserve, spent, turn = UsageLedger.reserve_call, [], threading.Lock()

    def another_task_spends_first(self, *args, **kwargs):
        with turn:  # the run's budget is set (6 left); before its first send, another task spends 4
            if not spent:
                spent.append(1)
                other = make_ledger(warehouse, quota=6)
                for _ in range(4):
                    reserve(other)
                other.close()  # gives back what a block engine counted beyond the 4
        return reserve(self, *args, **kwargs)

    monkeypatch.setattr(UsageLedger, "reserve_call", another_task_spends_first)
    summary = Harness(emulator, warehouse, monthly_quota=6).run(numbers)
    assert (summary.exists + summary.not_exists, summary.pending) == (2, 10)
    assert summary.stopped_reason.startswith("checkWhatsapp: the monthly quota of instance 1101000001 is used up")
    assert emulator.counters("1101000001").count("checkWhatsapp") == 2
