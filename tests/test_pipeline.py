"""The bulk checker end to end through the emulator (real HTTP) into real SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from airflow_provider_greenapi.emulator import FaultPlan
from airflow_provider_greenapi.errors import BulkCheckStopped
from airflow_provider_greenapi.results import CheckStatus, Freshness
from tests.conftest import ID_INSTANCE
from tests.harness import Harness, assert_invariants

NUMBERS = [f"7900{i:07d}" for i in range(12)]


@pytest.fixture
def harness(emulator, warehouse):
    return Harness(emulator, warehouse)


def test_a_messy_list_is_checked_once_per_number(harness):
    values = [*NUMBERS[:6], "+7 (900) 000-00-01", "8 900 000 00 02", NUMBERS[0], "not a number", None, "123"]
    summary = harness.run(values)
    assert summary.inputs == 12
    assert summary.invalid == 3
    assert summary.duplicates == 3  # "+7 (900)..." and NUMBERS[0] again and the trunk-8 form
    assert summary.distinct_numbers == 6
    assert summary.exists + summary.not_exists == 6
    assert summary.quota_spent == 6 and summary.pending == 0 and summary.stopped_reason is None
    counters = harness.emulator.counters(ID_INSTANCE)
    assert set(counters.checked_numbers.values()) == {1}
    assert len(counters.checked_numbers) == 6
    table = harness.table()
    assert table["not a number"][1] == "invalid"
    assert all(table[n][3] is None for n in NUMBERS[:6])
    assert_invariants(harness, summary)


def test_a_second_run_spends_nothing(harness):
    harness.run(NUMBERS)
    again = harness.run(NUMBERS)
    assert again.unchanged == len(NUMBERS)  # stored as they are, with fresh answers: nothing rewritten
    assert again.quota_spent == 0
    assert harness.emulator.counters(ID_INSTANCE).count("checkWhatsapp") == len(NUMBERS)
    assert_invariants(harness, again)


def test_a_budget_splits_the_list_across_runs(harness):
    first = harness.run(NUMBERS, max_checks=5)
    assert (first.exists + first.not_exists, first.pending) == (5, 7)
    assert "budget" in first.stopped_reason
    second = harness.run(NUMBERS, max_checks=5)  # the 5 answered are stored as they are: unchanged
    assert (second.unchanged, second.exists + second.not_exists, second.pending) == (5, 5, 2)
    third = harness.run(NUMBERS, max_checks=5)
    assert (third.unchanged, third.exists + third.not_exists, third.pending) == (10, 2, 0)
    counters = harness.emulator.counters(ID_INSTANCE)
    assert sorted(counters.checked_numbers) == sorted(NUMBERS)
    assert set(counters.checked_numbers.values()) == {1}
    assert_invariants(harness, third)


def test_pending_numbers_are_taken_first_next_run(harness):
    harness.run(NUMBERS[:6], max_checks=2)
    pending_before = {n for n, row in harness.table().items() if row[3] is not None}
    harness.run(NUMBERS, max_checks=4)
    checked = set(harness.emulator.counters(ID_INSTANCE).checked_numbers)
    assert pending_before <= checked


def test_transient_faults_never_become_not_exists(emulator, warehouse):
    """Half the calls fail transiently and one retry is allowed, so some numbers exhaust their retries:
    each of those is stored as error, never as an answer; each number answered once is stored as such."""
    emulator.inject_faults(ID_INSTANCE, FaultPlan(error_rate=0.5, errors=("500", "502", "timeout_limit", "499",
                                                                          "drop"), seed=7))
    harness = Harness(emulator, warehouse, max_retries=1, max_in_flight=1)  # one at a time: a reproducible run
    summary = harness.run(NUMBERS)
    assert summary.retries > 0 and summary.error > 0 and summary.exists + summary.not_exists > 0, summary
    assert summary.exists + summary.not_exists + summary.error == len(NUMBERS)
    answered = {e.number for e in emulator.journal(ID_INSTANCE, "checkWhatsapp") if e.status == 200}
    for number, (_, status, exists, _) in harness.table().items():
        if number in answered:
            assert status in ("exists", "not_exists"), (number, status)
        else:  # every request of this number failed: the retries were exhausted
            assert emulator.requested_numbers(ID_INSTANCE)[number] == 2, number
            assert (status, exists) == ("error", None), (number, status)
    assert_invariants(harness, summary)


def test_errors_after_retries_are_stored_as_error_and_rechecked(emulator, warehouse):
    harness = Harness(emulator, warehouse, max_retries=1)
    emulator.inject_faults(ID_INSTANCE, FaultPlan(error_rate=1.0, errors=("502",)))
    summary = harness.run(NUMBERS[:3])
    assert summary.error == 3 and summary.not_exists == 0
    assert {row[1] for row in harness.table().values()} == {"error"}
    emulator.clear_faults(ID_INSTANCE)
    again = harness.run(NUMBERS[:3])
    assert again.exists + again.not_exists == 3
    assert_invariants(harness, again)


def test_quota_466_mid_run_keeps_what_was_checked(emulator, warehouse):
    harness = Harness(emulator, warehouse)
    emulator.set_quota_used(ID_INSTANCE, 30000 - 5)
    with pytest.raises(BulkCheckStopped, match="5 numbers were checked") as stopped:
        harness.run(NUMBERS)
    assert not stopped.value.retry_can_fix  # the month's quota is spent: a retry cannot help
    summary = stopped.value.summary
    assert summary.exists + summary.not_exists == 5
    assert summary.pending == len(NUMBERS) - 5
    assert "quota" in summary.stopped_reason
    table = harness.table()
    assert sum(1 for row in table.values() if row[1] in ("exists", "not_exists")) == 5
    assert sum(1 for row in table.values() if row[3] is not None) == len(NUMBERS) - 5
    connection = warehouse.connect()
    cursor = connection.cursor()
    cursor.execute("SELECT reported_used, reported_total FROM greenapi_usage")
    assert cursor.fetchone() == (30000, 30000)
    connection.close()
    # The 466 lifts the ledger to what GREEN-API reports used, spending from outside this ledger included.
    assert_invariants(harness, summary, ledger_calls=emulator.counters(ID_INSTANCE).quota_used)


@pytest.mark.parametrize("state", ["notAuthorized", "blocked"])
def test_instance_lost_mid_run_stops_and_keeps_results(emulator, warehouse, state):
    harness = Harness(emulator, warehouse, max_in_flight=1)
    emulator.state_changes_after(ID_INSTANCE, 4, state)
    with pytest.raises(BulkCheckStopped) as stopped:
        harness.run(NUMBERS)
    assert not stopped.value.retry_can_fix
    summary = stopped.value.summary
    assert summary.exists + summary.not_exists == 4
    assert summary.pending == len(NUMBERS) - 4
    assert summary.not_exists + summary.exists + summary.pending == len(NUMBERS)
    assert_invariants(harness, summary)


def test_yellow_card_mid_run_stops_bulk_checks(emulator, warehouse):
    harness = Harness(emulator, warehouse, requests_per_second=5, max_in_flight=1)
    emulator.state_changes_after(ID_INSTANCE, 2, "yellowCard")
    with pytest.raises(BulkCheckStopped, match="yellowCard") as stopped:
        harness.run(NUMBERS)
    assert not stopped.value.retry_can_fix
    assert harness.emulator.counters(ID_INSTANCE).count("checkWhatsapp") < len(NUMBERS)


def test_health_gate_spends_nothing_on_an_unusable_instance(emulator, warehouse):
    emulator.set_state(ID_INSTANCE, "notAuthorized")
    with pytest.raises(BulkCheckStopped, match="scan the QR code") as stopped:
        Harness(emulator, warehouse).run(NUMBERS)
    assert not stopped.value.retry_can_fix
    assert emulator.counters(ID_INSTANCE).count("checkWhatsapp") == 0


@pytest.mark.parametrize(("state", "retry_can_fix"), [
    ("starting", True), ("sleepMode", False), ("blocked", False), ("yellowCard", False),
])
def test_the_health_gate_says_whether_a_retry_may_find_the_instance_ready(emulator, warehouse, state,
                                                                          retry_can_fix):
    emulator.set_state(ID_INSTANCE, state)
    with pytest.raises(BulkCheckStopped) as stopped:
        Harness(emulator, warehouse).run(NUMBERS)
    assert stopped.value.retry_can_fix is retry_can_fix


def test_the_monthly_quota_on_the_connection_caps_the_run(emulator, warehouse):
    harness = Harness(emulator, warehouse, monthly_quota=4)
    summary = harness.run(NUMBERS)
    assert summary.exists + summary.not_exists == 4
    assert summary.pending == len(NUMBERS) - 4
    assert (summary.monthly_used, summary.monthly_left) == (4, 0)
    assert summary.stopped_reason.startswith("monthly quota reached (0 of 4 calls used)"), summary.stopped_reason
    again = harness.run(NUMBERS)
    assert again.quota_spent == 0 and again.pending == len(NUMBERS) - 4
    assert_invariants(harness, again)


def test_dry_run_spends_and_stores_nothing(harness):
    summary = harness.run([*NUMBERS, NUMBERS[0], "bad"], dry_run=True, max_checks=10)
    assert summary.dry_run is True
    assert (summary.distinct_numbers, summary.duplicates, summary.invalid, summary.pending) == (12, 1, 1, 12)
    assert harness.emulator.counters(ID_INSTANCE).count("checkWhatsapp") == 0
    assert harness.table() == {}


def test_xcom_results_limit_refuses_before_spending(emulator, warehouse):
    with pytest.raises(ValueError, match="destination_conn_id"):
        Harness(emulator, warehouse).run(NUMBERS, results_limit=5)
    assert emulator.counters(ID_INSTANCE).count("checkWhatsapp") == 0


def test_freshness_windows_are_respected(harness):
    harness.run(NUMBERS)
    summary = harness.run(NUMBERS, freshness=Freshness(None, None))
    assert summary.quota_spent == len(NUMBERS)
    assert summary.fresh == 0


def test_outcome_statuses_cover_the_table(harness):
    harness.run(NUMBERS[:4])
    assert {row[1] for row in harness.table().values()} <= {s.value for s in CheckStatus}
