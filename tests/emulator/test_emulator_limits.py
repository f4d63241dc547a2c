"""Rate limits (429, empty body) and the monthly quota (466, documented body)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from airflow_provider_greenapi.emulator import EmulatedInstance, GreenApiEmulator, Plan, RateLimits
from tests.emulator.support import ID, TOKEN, Api


def burst(api: Api, calls: int) -> list[int]:
    return [api.check({"phoneNumber": 79001234567}).status_code for _ in range(calls)]


def test_bursting_past_10_checks_a_second_gets_429_with_an_empty_body() -> None:
    with GreenApiEmulator([EmulatedInstance(ID, TOKEN)]) as emulator:
        api = Api(emulator)
        statuses = burst(api, 14)
        response = api.check({"phoneNumber": 79001234567})
    assert statuses[:10] == [200] * 10
    assert 429 in statuses[10:]
    assert response.status_code == 429
    assert response.content == b""
    assert "Retry-After" not in response.headers
    counters = emulator.counters(ID)
    assert counters.count("checkWhatsapp") == 15
    assert counters.quota_used == counters.count("checkWhatsapp", 200)


def test_the_limit_replenishes() -> None:
    limits = RateLimits(check_whatsapp=20)
    with GreenApiEmulator([EmulatedInstance(ID, TOKEN)], rate_limits=limits) as emulator:
        api = Api(emulator)
        while api.check({"phoneNumber": 79001234567}).status_code == 200:
            pass
        time.sleep(0.12)
        assert api.check({"phoneNumber": 79001234567}).status_code == 200


def test_retry_after_is_sent_when_configured() -> None:
    limits = RateLimits(retry_after_s=2)
    with GreenApiEmulator([EmulatedInstance(ID, TOKEN)], rate_limits=limits) as emulator:
        api = Api(emulator)
        statuses = burst(api, 12)
        response = api.check({"phoneNumber": 79001234567})
    assert 429 in statuses
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert response.content == b""


def test_get_state_instance_is_limited_to_1_a_second() -> None:
    with GreenApiEmulator([EmulatedInstance(ID, TOKEN)]) as emulator:
        api = Api(emulator)
        assert [api.state().status_code for _ in range(2)] == [200, 429]
        assert api.session.get(api.url("getSettings")).status_code == 200  # a limit per method


def test_limits_are_per_instance() -> None:
    instances = [EmulatedInstance(ID, TOKEN), EmulatedInstance("1101000002", "other")]
    with GreenApiEmulator(instances) as emulator:
        first, second = Api(emulator), Api(emulator, "1101000002", "other")
        assert first.state().status_code == 200
        assert second.state().status_code == 200


def test_a_zero_ceiling_turns_one_limit_off() -> None:
    limits = RateLimits(get_state_instance=0)
    with GreenApiEmulator([EmulatedInstance(ID, TOKEN)], rate_limits=limits) as emulator:
        api = Api(emulator)
        assert {api.state().status_code for _ in range(5)} == {200}


def test_no_rate_limits_at_all(api: Api) -> None:
    assert set(burst(api, 30)) == {200}
    assert "X-RateLimit-Remaining" not in api.check({"phoneNumber": 79001234567}).headers


QUOTA_BODY = {
    "invokeStatus": {
        "method": "checkwhatsapp",
        "used": 3,
        "total": 3,
        "status": "QUOTE_EXCEEDED",
        "description": "Monthly quota has been exceeded. Please go to your personal account and change the "
        "tariff to business https://console.green-api.com",
    }
}


@pytest.fixture
def small_quota() -> Iterator[Api]:
    emulator = GreenApiEmulator([EmulatedInstance(ID, TOKEN, monthly_quota=3)], rate_limits=None).start()
    yield Api(emulator)
    emulator.stop()


def test_quota_exhausted_is_466_with_the_documented_body(small_quota: Api) -> None:
    statuses = [small_quota.check({"phoneNumber": 79001234560 + i}).status_code for i in range(3)]
    response = small_quota.check({"phoneNumber": 79001234569})
    assert statuses == [200, 200, 200]
    assert response.status_code == 466
    assert response.json() == QUOTA_BODY
    counters = small_quota.emulator.counters(ID)
    assert counters.calls == {"checkWhatsapp": {200: 3, 466: 1}}
    assert counters.quota_used == 3
    assert len(counters.checked_numbers) == 3


def test_only_answered_checks_spend_quota(small_quota: Api) -> None:
    small_quota.check({"phoneNumber": 123})  # 400 bad phone number
    small_quota.check({})  # 400 validation
    small_quota.emulator.set_state(ID, "notAuthorized")
    small_quota.check({"phoneNumber": 79001234567})  # 400 not authorized
    small_quota.emulator.set_state(ID, "authorized")
    small_quota.session.post(small_quota.url("checkWhatsapp", token="bad"), json={"phoneNumber": 79001234567})
    assert small_quota.emulator.instance(ID).quota_used == 0
    assert small_quota.check({"phoneNumber": 79001234567}).status_code == 200
    assert small_quota.emulator.instance(ID).quota_used == 1


def test_quota_can_be_set_and_reset(small_quota: Api) -> None:
    emulator = small_quota.emulator
    emulator.set_quota_used(ID, 3)
    assert small_quota.check({"phoneNumber": 79001234567}).status_code == 466
    emulator.reset_quota(ID)
    assert small_quota.check({"phoneNumber": 79001234567}).status_code == 200
    emulator.set_quota_used(ID, 10)
    assert small_quota.check({"phoneNumber": 79001234567}).json()["invokeStatus"]["used"] == 10


def test_get_state_instance_spends_no_quota(small_quota: Api) -> None:
    small_quota.emulator.set_quota_used(ID, 3)
    assert small_quota.state().status_code == 200


@pytest.mark.parametrize(("plan", "quota"), [("developer", 100), ("business", 30_000)])
def test_plans_set_the_monthly_quota(plan: str, quota: int) -> None:
    assert Plan(plan).monthly_checks == quota
    with GreenApiEmulator([EmulatedInstance(ID, TOKEN, plan=plan)]) as emulator:
        assert emulator.instance(ID).monthly_quota == quota
        assert emulator.counters(ID).monthly_quota == quota


def test_developer_plan_stops_after_100_checks() -> None:
    with GreenApiEmulator([EmulatedInstance(ID, TOKEN, plan="developer")], rate_limits=None) as emulator:
        api = Api(emulator)
        statuses = [api.check({"phoneNumber": 79001234567 + i}).status_code for i in range(101)]
    assert statuses.count(200) == 100
    assert statuses[-1] == 466
