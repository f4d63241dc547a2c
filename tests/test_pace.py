"""Through the emulator: the chatId body and its phoneNumber fallback, the LID stored, and the adaptive in-flight
window, asserted on what the emulator saw (request bodies, requests in flight at once), never on wall-clock time."""

from __future__ import annotations

import itertools
import json
import logging

import pytest

from airflow_provider_greenapi.emulator import FaultPlan, JournalEntry
from airflow_provider_greenapi.emulator.numbers_rule import fake_lid
from tests.conftest import ID_INSTANCE, make_warehouse
from tests.harness import Harness

NUMBERS = [f"7900{i:07d}" for i in range(12)]
CHECK = "checkWhatsapp"


@pytest.fixture
def sqlite_warehouse(request, tmp_path, monkeypatch):
    return make_warehouse("sqlite", tmp_path, request, monkeypatch)


def bodies(emulator) -> list[dict[str, object]]:
    return [json.loads(entry.body) for entry in emulator.journal(ID_INSTANCE, CHECK)]


def lids(harness: Harness) -> dict[str, str | None]:
    connection = harness.warehouse.connect()
    cursor = connection.cursor()
    cursor.execute("SELECT phone_number, whatsapp_lid FROM whatsapp_checks")
    found = dict(cursor.fetchall())
    connection.close()
    return found


def test_numbers_are_sent_as_chat_id_and_the_lid_is_stored_and_returned(emulator, warehouse):
    harness = Harness(emulator, warehouse)
    summary = harness.run(NUMBERS, results_limit=100)
    assert sorted(bodies(emulator), key=str) == sorted(({"chatId": n} for n in NUMBERS), key=str)
    rule = emulator.service.numbers
    expected = {n: fake_lid(n) if rule.has_whatsapp(n) else None for n in NUMBERS}
    assert any(expected.values()) and not all(expected.values())  # both kinds of answer are covered
    assert lids(harness) == expected
    assert summary.results is not None
    assert {row["phone_number"]: row["whatsapp_lid"] for row in summary.results} == expected  # the XCom rows


def test_a_legacy_host_is_detected_once_and_asked_with_phone_number(emulator, sqlite_warehouse, caplog):
    emulator.set_contract("legacy")
    harness = Harness(emulator, sqlite_warehouse, max_in_flight=1)  # one at a time: exactly one probe
    with caplog.at_level(logging.WARNING, logger="airflow_provider_greenapi.client"):
        summary = harness.run(NUMBERS)
    seen = bodies(emulator)
    assert seen[0] == {"chatId": NUMBERS[0]}
    assert seen[1:] == [{"phoneNumber": int(n)} for n in NUMBERS]  # that number again, then every number
    assert summary.rejected == 0 and summary.exists + summary.not_exists == len(NUMBERS)
    assert {status for _, status, _, _ in harness.table().values()} <= {"exists", "not_exists"}
    assert set(lids(harness).values()) == {None}  # a legacy answer carries no LID
    assert len([r for r in caplog.records if "older contract" in r.getMessage()]) == 1


def test_a_legacy_host_costs_at_most_the_first_window_of_probes(emulator, sqlite_warehouse):
    emulator.set_contract("legacy")
    harness = Harness(emulator, sqlite_warehouse, max_in_flight=64)
    summary = harness.run([f"7901{i:07d}" for i in range(40)])
    assert summary.rejected == 0 and summary.error == 0 and summary.exists + summary.not_exists == 40
    probes = [b for b in bodies(emulator) if "chatId" in b]
    assert 1 <= len(probes) <= 16  # the window before the first answer: 10/s x 1 s x 1.5 + 1
    assert emulator.requested_numbers(ID_INSTANCE).most_common(1)[0][1] <= 2


def in_flight_after(entries: list[JournalEntry], start: float) -> int:
    """The most requests the emulator held at once among those that arrived after ``start``."""
    late = [e for e in entries if e.arrived >= start]
    return max((sum(1 for o in entries if o.arrived <= e.arrived < o.answered) for e in late), default=0)


def test_the_window_grows_to_what_slow_answers_need(emulator, sqlite_warehouse):
    """1 s answers at 10/s need about 10 requests in flight (Little's law); the old fixed 4 gave 4/s."""
    emulator.inject_faults(ID_INSTANCE, FaultPlan(latency_ms=1000))
    summary = Harness(emulator, sqlite_warehouse, max_in_flight=64).run([f"7902{i:07d}" for i in range(50)])
    assert summary.exists + summary.not_exists == 50 and summary.rate_limited == 0
    assert emulator.counters(ID_INSTANCE).count(CHECK, 429) == 0
    assert 8 <= emulator.max_in_flight(ID_INSTANCE) <= 16


def test_the_cap_bounds_the_window(emulator, sqlite_warehouse):
    emulator.inject_faults(ID_INSTANCE, FaultPlan(latency_ms=500))
    Harness(emulator, sqlite_warehouse, max_in_flight=3).run([f"7903{i:07d}" for i in range(15)])
    assert emulator.max_in_flight(ID_INSTANCE) == 3


def test_the_window_shrinks_when_the_server_pushes_back(emulator, sqlite_warehouse):
    """The same slow answers, but a third of the calls refused with 429: after the first refusals, the window
    halves (once per window of answers) and the emulator sees far fewer requests at once. The requests in
    flight at the first refusal keep their slot through their own retries, so the drop shows a second later."""
    numbers = [f"7904{i:07d}" for i in range(30)]
    emulator.inject_faults(ID_INSTANCE, FaultPlan(latency_ms=1000, error_rate=0.35, errors=("429",), seed=3))
    summary = Harness(emulator, sqlite_warehouse, max_in_flight=64).run(numbers)
    assert summary.rate_limited > 0 and summary.error == 0
    entries = emulator.journal(ID_INSTANCE, CHECK)
    first_refusal = min(e.answered for e in entries if e.status == 429)
    assert emulator.max_in_flight(ID_INSTANCE) >= 8  # before any refusal, as wide as 1 s answers need
    assert in_flight_after(entries, first_refusal + 2.0) <= 5


def test_slow_answers_get_the_full_pace_from_the_first_second(emulator, sqlite_warehouse):
    """2 s answers (+-50%) at 10/s need about 20 in flight from the first second: the window before the first
    answer assumes 1 s answers, and the first answers back are the fast ones, so a window sized from them alone
    held a short run near 9.4 checks/s. The pace is read from the emulator's journal: requests received per
    second, first to last."""
    emulator.inject_faults(ID_INSTANCE, FaultPlan(latency_ms=1000, jitter_ms=2000, seed=5))
    numbers = [f"7905{i:07d}" for i in range(150)]
    summary = Harness(emulator, sqlite_warehouse, max_in_flight=64, timeout=10).run(numbers)
    assert summary.exists + summary.not_exists == 150 and summary.rate_limited == 0
    arrivals = sorted(e.arrived for e in emulator.journal(ID_INSTANCE, CHECK))
    assert len(arrivals) == 150
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert max(gaps) < 0.25  # never a stall while the window catches up (it was 0.37 s at about 1.8 s)
    assert (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) >= 9.9  # 9.82 when the window lagged
