"""The request journal: each request as the emulator saw it, and the checkWhatsapp in-flight high-water mark."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
import requests

from airflow_provider_greenapi.emulator import FaultPlan, JournalEntry, RequestJournal
from tests.emulator.support import ID, TOKEN, Api


def test_journal_records_method_number_status_and_times(api: Api) -> None:
    api.check({"phoneNumber": 79001234567})
    api.check({"chatId": "79001234568@c.us"})
    api.check({"phoneNumber": 123})
    api.state()
    checks = api.emulator.journal(ID, "checkWhatsapp")
    assert [(e.number, e.status) for e in checks] == [("79001234567", 200), ("79001234568", 200), ("123", 400)]
    assert [e.method for e in api.emulator.journal(ID)] == ["checkWhatsapp"] * 3 + ["getStateInstance"]
    entries = api.emulator.journal(ID)
    assert all(e.arrived <= e.answered for e in entries)
    assert [e.arrived for e in entries] == sorted(e.arrived for e in entries)
    assert api.emulator.requested_numbers(ID) == Counter({"79001234567": 1, "79001234568": 1, "123": 1})


def test_journal_records_faults_and_dropped_connections(api: Api) -> None:
    api.emulator.inject_faults(ID, FaultPlan(script=["500", "drop"]))
    assert api.check({"phoneNumber": 79001234567}).status_code == 500
    with pytest.raises(requests.ConnectionError):
        api.check({"phoneNumber": 79001234567})
    assert [e.status for e in api.emulator.journal(ID)] == [500, 0]
    assert api.emulator.requested_numbers(ID) == Counter({"79001234567": 2})


def test_max_in_flight_is_the_high_water_mark_of_concurrent_checks(emu) -> None:  # type: ignore[no-untyped-def]
    emu.inject_faults(ID, FaultPlan(latency_ms=2000))  # long enough for all four to overlap on a busy machine
    barrier = threading.Barrier(4)

    def one_check(n: int) -> None:
        helper = Api(emu)
        barrier.wait()
        helper.check({"phoneNumber": 79001234560 + n})
        helper.session.close()

    threads = [threading.Thread(target=one_check, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert emu.max_in_flight(ID) == 4
    emu.reset_journal(ID)
    assert emu.max_in_flight(ID) == 0 and emu.journal(ID) == []
    Api(emu).check({"phoneNumber": 79001234567})
    assert emu.max_in_flight(ID) == 1


def test_reset_counters_resets_the_journal(api: Api) -> None:
    api.check({"phoneNumber": 79001234567})
    api.emulator.reset_counters(ID)
    assert api.emulator.journal(ID) == [] and api.emulator.max_in_flight(ID) == 0


def test_journal_memory_is_bounded() -> None:
    journal = RequestJournal(limit=3)
    for n in range(5):
        journal.request_started("checkWhatsapp")
        journal.request_finished("checkWhatsapp", b'{"phoneNumber": %d}' % n, 200, float(n), float(n))
    assert [e.number for e in journal.entries()] == ["2", "3", "4"]
    assert journal.dropped == 2 and journal.max_in_flight == 1


def test_unreadable_bodies_have_no_number() -> None:
    journal = RequestJournal()
    for body in (b"", b"not json", b"[1]", b'{"phoneNumber": true}', b'{"force": false}'):
        journal.request_started("checkWhatsapp")
        journal.request_finished("checkWhatsapp", body, 400, 0.0, 0.0)
    assert {e.number for e in journal.entries()} == {None}
    assert journal.entries()[0] == JournalEntry("checkWhatsapp", None, 400, 0.0, 0.0)


def test_control_api_serves_and_resets_the_journal(api: Api) -> None:
    api.check({"phoneNumber": 79001234567})
    payload = api.control("GET", f"instances/{ID}/journal").json()
    assert payload["max_in_flight"] == 1 and payload["dropped"] == 0
    assert [(e["method"], e["number"], e["status"]) for e in payload["entries"]] == [
        ("checkWhatsapp", "79001234567", 200)
    ]
    assert api.control("POST", f"instances/{ID}/journal/reset").status_code == 200
    assert api.control("GET", f"instances/{ID}/journal").json()["entries"] == []


@pytest.mark.parametrize(("fault", "status"), [("400_echo", 400), ("500_echo", 500)])
def test_echo_faults_put_the_request_path_token_included_in_the_body(api: Api, fault: str, status: int) -> None:
    api.emulator.inject_faults(ID, FaultPlan(script=[fault]))
    response = api.check({"phoneNumber": 79001234567})
    assert response.status_code == status
    assert f"/waInstance{ID}/checkWhatsapp/{TOKEN}" in response.json()["description"]
