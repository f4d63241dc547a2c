"""Counters: calls per method and status, checkWhatsapp requests, quota, numbers answered."""

from __future__ import annotations

from collections import Counter

import pytest
import requests

from airflow_provider_greenapi.emulator import FaultPlan
from tests.emulator.support import ID, Api


def test_counters_record_every_request_with_its_status(api: Api) -> None:
    api.check({"phoneNumber": 79001234567})
    api.check({"phoneNumber": 79001234568})
    api.check({"phoneNumber": 79001234567})
    api.check({"phoneNumber": 123})
    api.state()
    api.session.get(api.url("getSettings", token="wrong"))
    counters = api.emulator.counters(ID)
    assert counters.calls == {"checkWhatsapp": {200: 3, 400: 1}, "getStateInstance": {200: 1}, "getSettings": {401: 1}}
    assert counters.check_requests == 4
    assert counters.quota_used == 3
    assert counters.monthly_quota == 30_000
    assert counters.checked_numbers == Counter({"79001234567": 2, "79001234568": 1})
    assert counters.count("checkWhatsapp") == 4
    assert counters.count("checkWhatsapp", 200) == 3
    assert counters.count("sendMessage") == 0


def test_no_response_outcomes_are_counted_as_status_0(api: Api) -> None:
    api.emulator.inject_faults(ID, FaultPlan(script=["drop"]))
    with pytest.raises(requests.ConnectionError):
        api.check({"phoneNumber": 79001234567})
    assert api.emulator.counters(ID).calls == {"checkWhatsapp": {0: 1}}


def test_counters_are_a_snapshot(api: Api) -> None:
    before = api.emulator.counters(ID)
    api.check({"phoneNumber": 79001234567})
    assert before.calls == {}
    assert before.checked_numbers == Counter()


def test_reset_counters_keeps_the_quota(api: Api) -> None:
    api.check({"phoneNumber": 79001234567})
    api.emulator.reset_counters(ID)
    counters = api.emulator.counters(ID)
    assert counters.calls == {} and counters.check_requests == 0 and not counters.checked_numbers
    assert counters.quota_used == 1
    api.emulator.reset_counters()  # every instance


def test_to_dict_is_json_ready(api: Api) -> None:
    api.check({"phoneNumber": 79001234567})
    assert api.emulator.counters(ID).to_dict() == {
        "calls": {"checkWhatsapp": {"200": 1}},
        "check_requests": 1,
        "quota_used": 1,
        "monthly_quota": 30_000,
        "checked_numbers": {"79001234567": 1},
    }
