"""Instance states: getStateInstance, their effect on checkWhatsapp, scripted changes, getSettings."""

from __future__ import annotations

import pytest

from airflow_provider_greenapi.emulator import EmulatedInstance, GreenApiEmulator, InstanceState, StateChange
from tests.emulator.support import ID, TOKEN, Api

NOT_AUTHORIZED = {"code": 400, "description": "instance is starting or not authorized"}


@pytest.mark.parametrize("state", [s.value for s in InstanceState if s is not InstanceState.CREATING])
def test_get_state_instance_reports_the_state(api: Api, state: str) -> None:
    api.emulator.set_state(ID, state)
    response = api.state()
    assert response.status_code == 200
    assert response.json() == {"stateInstance": state}


def test_an_instance_being_created_answers_json_null(api: Api) -> None:
    api.emulator.set_state(ID, "creating")
    response = api.state()
    assert response.status_code == 200
    assert response.content == b"null"


@pytest.mark.parametrize("state", ["notAuthorized", "blocked", "sleepMode", "starting", "creating"])
def test_check_whatsapp_fails_when_the_instance_cannot_answer(api: Api, state: str) -> None:
    api.emulator.set_state(ID, state)
    response = api.check({"phoneNumber": 79001234567})
    assert response.status_code == 400
    assert response.json() == NOT_AUTHORIZED
    assert api.emulator.counters(ID).quota_used == 0


def test_yellow_card_still_answers_like_the_real_api(api: Api) -> None:
    api.emulator.set_state(ID, InstanceState.YELLOW_CARD)
    assert api.check({"phoneNumber": 79001234567}).status_code == 200


def test_an_unknown_state_is_refused(api: Api) -> None:
    with pytest.raises(ValueError, match="unknown instance state 'banned'"):
        api.emulator.set_state(ID, "banned")


@pytest.mark.parametrize("new_state", ["yellowCard", "notAuthorized", "blocked"])
def test_state_changes_after_the_nth_check(api: Api, new_state: str) -> None:
    api.emulator.state_changes_after(ID, 3, new_state)
    statuses = [api.check({"phoneNumber": 79001234560 + i}).status_code for i in range(3)]
    assert statuses == [200, 200, 200]
    assert api.state().json() == {"stateInstance": new_state}
    expected = 200 if new_state == "yellowCard" else 400
    assert api.check({"phoneNumber": 79001234569}).status_code == expected


def test_state_changes_count_from_when_they_are_scheduled(api: Api) -> None:
    for i in range(5):
        api.check({"phoneNumber": 79001234560 + i})
    api.emulator.state_changes_after(ID, 2, "blocked")
    assert [api.check({"phoneNumber": 79001234567}).status_code for _ in range(3)] == [200, 200, 400]


def test_several_scripted_changes_apply_in_turn(api: Api) -> None:
    api.emulator.state_changes_after(ID, 1, "yellowCard")
    api.emulator.state_changes_after(ID, 2, "blocked")
    assert api.check({"phoneNumber": 79001234567}).status_code == 200
    assert api.state().json() == {"stateInstance": "yellowCard"}
    assert api.check({"phoneNumber": 79001234567}).status_code == 200
    assert api.state().json() == {"stateInstance": "blocked"}


def test_zero_calls_means_now(api: Api) -> None:
    api.emulator.state_changes_after(ID, 0, "sleepMode")
    assert api.state().json() == {"stateInstance": "sleepMode"}


def test_state_changes_can_be_configured_up_front() -> None:
    instance = EmulatedInstance(ID, TOKEN, state_changes=(StateChange(1, "notAuthorized"),))
    with GreenApiEmulator([instance], rate_limits=None) as emulator:
        api = Api(emulator)
        assert [api.check({"phoneNumber": 79001234567}).status_code for _ in range(2)] == [200, 400]


def test_get_settings_is_realistic(api: Api) -> None:
    response = api.session.get(api.url("getSettings"))
    assert response.status_code == 200
    settings = response.json()
    assert settings["wid"] == "11001000001@c.us"
    assert settings["typeAccount"] == "business"
    for field in ("countryInstance", "webhookUrl", "webhookUrlToken", "outgoingWebhook", "incomingWebhook",
                  "stateWebhook", "delaySendMessagesMilliseconds", "markIncomingMessagesReaded"):  # fmt: skip
        assert field in settings
    assert TOKEN not in response.text


def test_get_settings_shows_the_configured_phone() -> None:
    instance = EmulatedInstance("7103000002", "t", phone="79990001122")
    with GreenApiEmulator([instance]) as emulator:
        api = Api(emulator, "7103000002", "t")
        response = api.session.get(api.url("getSettings"))
    assert response.json()["wid"] == "79990001122@c.us"
    assert response.json()["typeAccount"] == "trial"
