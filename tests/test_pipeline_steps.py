"""The pipeline's steps on their own, through their narrow interfaces (docs/architecture.md): the budget from
the queue and the ledger's reading, the run's queue, the chunked writer, and the dispatcher (numbers in,
outcomes out) against the emulator over real HTTP, with no table at all."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from airflow_provider_greenapi.client import GreenApiClient
from airflow_provider_greenapi.errors import GreenApiQuotaExceededError
from airflow_provider_greenapi.numbers import PhoneNumberNormalizer
from airflow_provider_greenapi.pipeline.budget import plan_run_budget
from airflow_provider_greenapi.pipeline.dispatch import DispatchEnd, Dispatcher
from airflow_provider_greenapi.pipeline.run_queue import RunQueue
from airflow_provider_greenapi.pipeline.storing import OutcomeWriter
from airflow_provider_greenapi.results import CheckOutcome, CheckStatus, RunContext
from airflow_provider_greenapi.settings import ClientSettings
from airflow_provider_greenapi.warehouse import MonthlyUsage
from airflow_provider_greenapi.warehouse.engine import Dialect
from tests.conftest import ID_INSTANCE, TOKEN

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


def usage(calls: int, quota: int | None) -> MonthlyUsage:
    return MonthlyUsage(ID_INSTANCE, "2026-12", calls, quota)


@pytest.mark.parametrize(("queued", "reading", "max_checks", "numbers", "limit"), [
    (40, None, None, 40, "the queue"),
    (40, None, 10, 10, "run budget reached (max_checks=10)"),
    (40, usage(95, 100), None, 5, "monthly quota reached (95 of 100 calls used)"),
    (40, usage(95, 100), 3, 3, "run budget reached (max_checks=3)"),
    (4, usage(95, 100), None, 4, "the queue"),
    (40, usage(95, None), None, 40, "the queue"),  # no quota on the connection: the ledger only counts
])
def test_the_budget_is_the_tightest_limit(queued, reading, max_checks, numbers, limit):
    budget = plan_run_budget(queued, reading, max_checks)
    assert (budget.numbers, budget.limit) == (numbers, limit)
    assert budget.target == min(numbers, queued)
    assert budget.cuts_queue == (numbers < queued)


def test_auto_plans_from_the_quota_and_count_the_ledger_reads():
    from airflow_provider_greenapi.quota_plan import AutoBudget, RunsLeft

    usage = MonthlyUsage(ID_INSTANCE, "2026-12", calls=100, quota=1_000)
    budget = plan_run_budget(500, usage, AutoBudget(RunsLeft(3, "t")))
    assert budget.numbers == (1_000 - 100) // 3 and budget.limit == "run budget reached (max_checks=auto: 300)"
    assert budget.plan is not None and (budget.plan.monthly_quota, budget.plan.used) == (1_000, 100)


class PagedStore:
    """The store's queue as pages; a number may come again in a later page (its second source key)."""

    def __init__(self, *pages: list[str]) -> None:
        self.pages = pages

    def queued_numbers(self, token, by_priority=False):
        yield from self.pages


def test_the_run_queue_never_hands_out_a_number_on_its_way_twice():
    # "a" is still on its way when its second row comes: skipped; "b" is released (stored) before its third
    # row comes: handed out again (the store, not the queue, says whether it is still queued)
    queue_numbers = RunQueue(PagedStore(["a", "b"], ["a", "c"], ["b"]), "token", by_priority=False)
    taken = iter(queue_numbers)
    assert next(taken) == "a" and next(taken) == "b"
    queue_numbers.release(["b"])
    assert list(taken) == ["c", "b"]


class RecordingStore:
    def __init__(self) -> None:
        self.commits: list[list[str]] = []
        self.pending: list[str] = []

    def write_outcomes(self, outcomes, context, now):
        self.pending.extend(o.phone_number for o in outcomes)

    def commit(self):
        self.commits.append(self.pending)
        self.pending = []


def outcome(number: str) -> CheckOutcome:
    return CheckOutcome(number, CheckStatus.EXISTS, NOW)


def test_the_writer_commits_full_chunks_and_says_what_it_stored():
    store = RecordingStore()
    writer = OutcomeWriter(store, RunContext(token="t"), lambda: NOW, chunk_size=3, commit_interval=3600)
    assert writer.add([outcome("1"), outcome("2")]) == []
    assert writer.add([outcome("3")]) == ["1", "2", "3"]
    assert writer.add([outcome("4")]) == []
    assert writer.commit() == ["4"]
    assert store.commits == [["1", "2", "3"], ["4"]]


def test_the_writer_commits_when_the_interval_has_passed():
    store = RecordingStore()
    writer = OutcomeWriter(store, RunContext(token="t"), lambda: NOW, chunk_size=1000, commit_interval=0.0)
    assert writer.add([outcome("1")]) == ["1"]
    assert store.commits == [["1"]]


def dispatch_all(dispatcher: Dispatcher, numbers: list[str], limit: int):
    outcomes, unsent = [], []
    for step in dispatcher.dispatch(iter(numbers), limit):
        outcomes += step.outcomes
        unsent += step.unsent
    return outcomes, unsent


def test_the_dispatcher_takes_numbers_and_gives_outcomes(emulator):
    client = GreenApiClient(emulator.base_url, ID_INSTANCE, TOKEN, ClientSettings(requests_per_second=10))
    numbers = [f"7916{i:07d}" for i in range(6)]
    dispatcher = Dispatcher(client, clock=lambda: NOW, state_poll_interval=0.2, max_consecutive_errors=50)
    outcomes, unsent = dispatch_all(dispatcher, numbers, limit=4)
    client.close()
    assert sorted(o.phone_number for o in outcomes) == numbers[:4] and unsent == []
    assert all(o.status in (CheckStatus.EXISTS, CheckStatus.NOT_EXISTS) for o in outcomes)
    assert (dispatcher.sent, dispatcher.failure, client.calls_spent) == (4, None, 4)
    assert emulator.requested_numbers(ID_INSTANCE) == {n: 1 for n in numbers[:4]}
    # why it ended: by itself; with its limit set below the queue, by what set it (the summary's stopped_reason)
    assert dispatcher.end() == DispatchEnd(None, None)
    assert dispatcher.end("run budget reached") == DispatchEnd(None, "run budget reached")


def test_the_dispatcher_stops_at_an_error_that_stops_the_run_and_gives_the_rest_back(emulator):
    emulator.set_quota_used(ID_INSTANCE, 30000 - 2)
    client = GreenApiClient(emulator.base_url, ID_INSTANCE, TOKEN,
                            ClientSettings(requests_per_second=10, max_in_flight=1))
    numbers = [f"7916{i:07d}" for i in range(6)]
    dispatcher = Dispatcher(client, clock=lambda: NOW, state_poll_interval=0.2, max_consecutive_errors=50)
    outcomes, unsent = dispatch_all(dispatcher, numbers, limit=6)
    client.close()
    assert isinstance(dispatcher.failure, GreenApiQuotaExceededError)
    assert dispatcher.end("run budget reached") == DispatchEnd(dispatcher.failure, str(dispatcher.failure))
    assert len(outcomes) == 2  # answered before the 466
    assert numbers[2] in unsent  # the number the 466 answered: never checked, still queued
    assert len(outcomes) + len(unsent) == dispatcher.sent == 3  # one in flight at a time: nothing after the 466


@pytest.mark.parametrize("dialect", list(Dialect))
def test_a_run_without_chunk_size_stages_the_engines_chunk_and_keeps_one_given(dialect, mocker):
    from airflow_provider_greenapi.pipeline.bulk_check import BulkChecker
    from airflow_provider_greenapi.pipeline.options import CheckOptions
    from airflow_provider_greenapi.warehouse import ResultsStore

    client = mocker.Mock(ledger=None, id_instance="1101")
    store = ResultsStore(None, dialect, "whatsapp_checks")
    assert BulkChecker(client, store, PhoneNumberNormalizer()).chunk_size == dialect.engine.staging_rows
    assert BulkChecker(client, store, PhoneNumberNormalizer(), options=CheckOptions(chunk_size=3)).chunk_size == 3
    with pytest.raises(ValueError, match="chunk_size must be at least 1"):
        CheckOptions(chunk_size=0)
    with pytest.raises(ValueError, match="max_checks must be 0 or more"):
        CheckOptions(max_checks=-1)
    with pytest.raises(ValueError, match=r"must be a count \(int\), an AutoBudget or None, got 'auto'"):
        CheckOptions(max_checks="auto")  # the operator's text is parsed once, into an AutoBudget


def test_a_checker_refuses_a_client_that_counts_its_calls_in_another_ledger(mocker):
    """The run reads the month from the ledger it is given; a client counting elsewhere would spend unseen."""
    from airflow_provider_greenapi.pipeline.bulk_check import BulkChecker
    from airflow_provider_greenapi.warehouse import ResultsStore

    client = mocker.Mock(ledger=mocker.sentinel.other_ledger, id_instance="1101")
    with pytest.raises(ValueError, match="the client must count its calls in the ledger the run reads"):
        BulkChecker(client, ResultsStore(None, Dialect.SQLITE, "whatsapp_checks"), PhoneNumberNormalizer())
