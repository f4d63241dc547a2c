"""The monthly usage ledger on real SQLite and PostgreSQL, including concurrent writers."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest

from airflow_provider_greenapi.errors import QuotaBudgetExhausted
from airflow_provider_greenapi.warehouse import UsageLedger


@pytest.fixture
def warehouse(any_warehouse):
    """Every test here runs on all five engines (conftest.any_warehouse)."""
    return any_warehouse



def make_ledger(warehouse, quota=None, clock=None, thread_safe=False):
    connection = warehouse.provider_connect()
    kwargs = {"clock": clock} if clock else {}
    ledger = UsageLedger(connection, warehouse.dialect, "1101000001", quota, **kwargs)
    ledger.ensure_table()
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


def granted(ledger, attempts):
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
        assert (granted(first, 2), granted(second, 2)) == (2, 0)
        first.close()  # gives back the unsent call
        assert granted(second, 5) == 1
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
    assert granted(ledger, block + 10) == block + 4
    ledger.close()
    assert warehouse.fetch_all("SELECT calls FROM greenapi_usage") == [(block + 5,)]


def test_concurrent_reservations_are_exact(warehouse):
    ledgers = [make_ledger(warehouse, quota=150, thread_safe=True) for _ in range(3)]
    granted = []
    refused = []

    def spend(ledger):
        for _ in range(60):
            try:
                ledger.reserve_call()
                granted.append(1)
            except QuotaBudgetExhausted:
                refused.append(1)

    threads = [threading.Thread(target=spend, args=(ledger,)) for ledger in ledgers for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if warehouse.dialect.engine.ledger_block == 1:
        assert len(granted) == 150 and len(refused) == 6 * 60 - 150
        assert ledgers[0].usage().calls == 150
    else:  # a block another ledger holds is not lent: fewer grants now, and never more than the quota
        assert len(granted) <= 150 and len(granted) + len(refused) == 6 * 60
    for ledger in ledgers:
        ledger.close()
    assert warehouse.fetch_all("SELECT calls FROM greenapi_usage") == [(len(granted),)]  # blocks given back


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
