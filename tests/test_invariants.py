"""Invariants asserted on what the emulator saw (its request journal), not on the provider's own counters:
each number requested at most once, tokens scrubbed from echoed error bodies, the pace of the requests, and
no provider thread outliving its run. Real HTTP (the emulator), real SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import logging
import traceback
from datetime import datetime, timedelta, timezone
from functools import partialmethod

import pytest

from airflow_provider_greenapi.client import ClientSettings, GreenApiClient
from airflow_provider_greenapi.emulator import FaultPlan
from airflow_provider_greenapi.errors import BulkCheckStopped, GreenApiError
from airflow_provider_greenapi.warehouse.store import ResultsStore
from tests.conftest import ID_INSTANCE, TOKEN, make_warehouse
from tests.harness import Harness, assert_invariants
from tests.wire import assert_paced, pace_excess, provider_threads


def _ticking_clock():
    """A clock one second further on each call: every staging chunk gets its own queued_at."""
    start = datetime.now(timezone.utc)
    ticks = itertools.count()
    return lambda: start + timedelta(seconds=next(ticks))


# --- a number is requested at most once --------------------------------------------------------------------

def test_a_number_staged_in_two_chunks_is_requested_once_though_results_were_committed_between(
    emulator, warehouse
):
    """The same number under two source keys, in the first and the last staging chunk: its first answer is
    committed long before the queue reaches its second row, so only the de-duplication of the queue page
    stops a second request."""
    twice = "79170000000"
    others = [f"791700000{i:02d}" for i in range(1, 7)]
    values = [twice, *others, twice]
    keys = [f"k{i}" for i in range(len(values))]
    harness = Harness(emulator, warehouse, max_in_flight=1)
    summary = harness.run(values, keys=keys, clock=_ticking_clock(), chunk_size=2, commit_interval=0.0)
    assert emulator.requested_numbers(ID_INSTANCE) == {number: 1 for number in [twice, *others]}
    assert summary.pending == 0 and summary.distinct_numbers == 7
    assert {row[1] for row in harness.rows() if row[0] == twice} <= {"exists", "not_exists"}
    assert_invariants(harness, summary)


def test_a_number_in_flight_is_not_taken_again_from_the_next_queue_page(emulator, warehouse, monkeypatch):
    """Queue pages of 2: the number's second row comes in the next page, read while its first request is
    still uncommitted (slow answers, no commit yet); the checker must skip it there."""
    monkeypatch.setattr(ResultsStore, "queued_numbers", partialmethod(ResultsStore.queued_numbers, page_size=2))
    emulator.inject_faults(ID_INSTANCE, FaultPlan(latency_ms=300))
    twice, first, second = "79170000000", "79170000001", "79170000002"
    harness = Harness(emulator, warehouse, max_in_flight=3)  # page 2 is read while page 1 is in flight
    summary = harness.run([twice, first, second, twice], keys=["a", "b", "c", "d"], clock=_ticking_clock(),
                          chunk_size=2, commit_interval=60.0)
    assert emulator.requested_numbers(ID_INSTANCE) == {twice: 1, first: 1, second: 1}
    assert summary.pending == 0
    assert_invariants(harness, summary)


def test_a_number_in_flight_is_not_taken_again_from_a_later_page_of_a_budgeted_queue(emulator, warehouse,
                                                                                     monkeypatch):
    """A budget short of the queue takes the numbers never answered first, then the stalest answers: a number
    with a new key (never answered) and a stale answer under its old key comes in both parts of the queue, the
    second read while its first request is still uncommitted (slow answers, no commit yet); the checker must
    skip it there and spend the budget on the next stalest number."""
    from airflow_provider_greenapi.results import Freshness

    twice, stale = "79170000000", ["79170000001", "79170000002"]
    harness = Harness(emulator, warehouse, max_in_flight=3)
    for day, number in enumerate([twice, *stale], start=1):  # answered on 1, 2 and 3 October
        answered = datetime(2026, 10, day, tzinfo=timezone.utc)
        harness.run([number], keys=[f"old-{number}"], clock=lambda answered=answered: answered)
    before = emulator.requested_numbers(ID_INSTANCE)
    monkeypatch.setattr(ResultsStore, "queued_numbers", partialmethod(ResultsStore.queued_numbers, page_size=1))
    emulator.inject_faults(ID_INSTANCE, FaultPlan(latency_ms=300))
    week = Freshness(timedelta(days=7), timedelta(days=7))  # every stored answer is stale on 1 December
    summary = harness.run([twice, twice, *stale], keys=[f"old-{twice}", "new", *(f"old-{n}" for n in stale)],
                          clock=lambda: datetime(2026, 12, 1, tzinfo=timezone.utc), freshness=week, max_checks=2,
                          commit_interval=60.0)
    sent = emulator.requested_numbers(ID_INSTANCE) - before
    assert sent == {twice: 1, stale[0]: 1}  # the stalest after it, not it again
    assert summary.pending == 1


# --- the token in an error body ----------------------------------------------------------------------------

def _stored_details(warehouse):
    connection = warehouse.connect()
    cursor = connection.cursor()
    cursor.execute("SELECT phone_number, status, detail FROM whatsapp_checks")
    rows = cursor.fetchall()
    connection.close()
    return rows


@pytest.mark.parametrize("fault", ["400_echo", "500_echo"])
def test_a_token_echoed_in_an_error_body_reaches_no_exception_log_or_stored_detail(
    emulator, warehouse, caplog, fault
):
    caplog.set_level(logging.DEBUG)
    emulator.inject_faults(ID_INSTANCE, FaultPlan(error_rate=1.0, errors=(fault,)))
    numbers = ["79180000001", "79180000002"]
    summary = Harness(emulator, warehouse, max_retries=1).run(numbers)
    assert summary.error == 2 and summary.exists + summary.not_exists == 0
    details = _stored_details(warehouse)
    assert {status for _, status, _ in details} == {"error"}
    client = GreenApiClient(emulator.base_url, ID_INSTANCE, TOKEN, ClientSettings(max_retries=0))
    with client, pytest.raises(GreenApiError) as raised:
        client.check_whatsapp(numbers[0])
    error = raised.value
    exception_texts = [str(error), repr(error), error.detail, *map(str, error.args),
                       "".join(traceback.format_exception(error))]
    # The echo did reach the client (the emulator saw and answered each request with the fault) ...
    assert {e.status for e in emulator.journal(ID_INSTANCE, "checkWhatsapp")} == {int(fault[:3])}
    if fault == "400_echo":  # ... and a 400 of no known kind keeps its body, scrubbed.
        assert all("/checkWhatsapp/***" in detail for _, _, detail in details)
        assert "/checkWhatsapp/***" in str(error)
    for text in [caplog.text, *exception_texts, *(detail for _, _, detail in details)]:
        assert TOKEN not in text


# --- the pace ----------------------------------------------------------------------------------------------

def test_the_pace_check_fails_a_client_at_twice_the_rate_and_passes_a_late_one():
    rate, n = 10.0, 40
    assert pace_excess([k / (2 * rate) for k in range(n)], rate) > 0
    late = [k / rate + (0.9 if k % 3 == 0 else 0.0) for k in range(n)]  # every third request 0.9 s late
    assert pace_excess(late, rate) <= 0
    assert pace_excess([k / rate for k in range(n)], rate, tolerance_s=0.0) <= 0


def test_requests_reach_greenapi_no_faster_than_the_configured_pace(emulator, tmp_path, request, monkeypatch):
    warehouse = make_warehouse("sqlite", tmp_path, request, monkeypatch)
    numbers = [f"7919{i:07d}" for i in range(40)]
    summary = Harness(emulator, warehouse, requests_per_second=10, max_in_flight=4).run(numbers)
    assert summary.exists + summary.not_exists == 40
    arrivals = [e.arrived for e in emulator.journal(ID_INSTANCE, "checkWhatsapp")]
    assert len(arrivals) >= 40
    assert_paced(arrivals, rate=10)


# --- threads -----------------------------------------------------------------------------------------------

def _hang_state_polls(emulator):
    """The health gate's getStateInstance is answered; every later poll hangs past the client's timeout, so
    the state watch is in the middle of a poll when the run ends."""
    emulator.inject_faults(ID_INSTANCE, FaultPlan(methods=("getStateInstance",), script=("ok",), error_rate=1.0,
                                                  errors=("hang",), hang_s=3.0))


def test_no_provider_thread_outlives_a_successful_run(emulator, warehouse):
    _hang_state_polls(emulator)
    assert provider_threads() == []
    summary = Harness(emulator, warehouse, timeout=2).run([f"7920{i:07d}" for i in range(4)],
                                                         state_poll_interval=0.05)
    assert summary.exists + summary.not_exists == 4
    assert provider_threads() == []


def test_no_provider_thread_outlives_a_failing_run(emulator, warehouse):
    _hang_state_polls(emulator)
    emulator.set_quota_used(ID_INSTANCE, 30_000 - 2)
    with pytest.raises(BulkCheckStopped, match="quota"):
        Harness(emulator, warehouse, timeout=2).run([f"7921{i:07d}" for i in range(6)], state_poll_interval=0.05)
    assert provider_threads() == []
