"""checkWhatsapp: accepted request forms, every 400 message, answer shapes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_greenapi.emulator import EmulatedInstance, GreenApiEmulator, NumbersRule
from tests.emulator.support import ID, TOKEN, Api

EXISTING = "79001234567"  # listed as existing in the fixture below, whatever the hash says


def bad_request(description: str) -> dict[str, object]:
    return {"code": 400, "description": description}


@pytest.mark.parametrize(
    "payload",
    [
        {"phoneNumber": 79001234567},
        {"phoneNumber": "79001234567"},
        {"chatId": "79001234567@c.us"},
        {"chatId": "79001234567"},
        {"phoneNumber": 79001234567, "force": True},
    ],
)
def test_accepted_forms_of_a_number(api: Api, payload: dict[str, object]) -> None:
    response = api.check(payload)
    assert response.status_code == 200
    assert response.json()["existsWhatsapp"] in (True, False)
    assert api.emulator.counters(ID).checked_numbers == {"79001234567": 1}


def test_a_lid_chat_id_is_answered_with_that_id(api: Api) -> None:
    api.emulator.instance(ID)  # the fixture's instance
    rule = api.emulator.service.numbers
    lid = next(f"{n}@lid" for n in range(100000000000000, 100000000000100) if rule.has_whatsapp(f"{n}@lid"))
    response = api.check({"chatId": lid})
    assert response.status_code == 200
    assert response.json() == {"existsWhatsapp": True, "chatId": lid}
    assert api.emulator.counters(ID).checked_numbers == {lid: 1}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "Validation failed. Details: 'value' must have at least 1 key"),
        ([79001234567], "Validation failed. Details: 'value' must be of type object"),
        ({"phone": 79001234567}, "Validation failed. Details: 'phone' is not allowed"),
        ({"force": True}, "Validation failed. Details: 'value' must contain at least one of [phoneNumber, chatId]"),
        ({"phoneNumber": 79001234567, "force": "yes"}, "Validation failed. Details: 'force' must be a boolean"),
        (
            {"phoneNumber": 79001234567, "chatId": "79001234567@c.us"},
            "Validation failed. Details: 'value' contains a conflict between exclusive peers [phoneNumber, chatId]",
        ),
        ({"phoneNumber": "+79001234567"}, "Validation failed. Details: 'phoneNumber' must contain only digits"),
        ({"phoneNumber": "7 900 123 45 67"}, "Validation failed. Details: 'phoneNumber' must contain only digits"),
        ({"phoneNumber": -79001234567}, "Validation failed. Details: 'phoneNumber' must contain only digits"),
        ({"phoneNumber": 79001234567.0}, "Validation failed. Details: 'phoneNumber' must be an integer"),
        ({"phoneNumber": 7.9e10}, "Validation failed. Details: 'phoneNumber' must be an integer"),
        ({"phoneNumber": True}, "Validation failed. Details: 'phoneNumber' must be a number"),
        ({"phoneNumber": None}, "Validation failed. Details: 'phoneNumber' must be a number"),
        ({"phoneNumber": ""}, "Validation failed. Details: 'phoneNumber' is not allowed to be empty"),
        ({"chatId": 79001234567}, "Validation failed. Details: 'chatId' must be a string"),
        ({"chatId": ""}, "Validation failed. Details: 'chatId' is not allowed to be empty"),
        (
            {"chatId": "120363043968066561@g.us"},
            "Validation failed. Details: 'chatId' must be one of the next formats: 'phone_number@c.us' or 'lid@lid'",
        ),
        ({"phoneNumber": 7900123456}, "bad phone number, valid from 11 to 16 digits"),
        ({"phoneNumber": 79001234567890123}, "bad phone number, valid from 11 to 16 digits"),
        ({"chatId": "7900123456@c.us"}, "bad phone number, valid from 11 to 16 digits"),
    ],
)
def test_validation_errors_are_400_with_the_api_message(api: Api, payload: object, message: str) -> None:
    response = api.check(payload)
    assert response.status_code == 400
    assert response.json() == bad_request(message)
    counters = api.emulator.counters(ID)
    assert counters.calls == {"checkWhatsapp": {400: 1}}
    assert counters.quota_used == 0


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"", "application/json"), (b'{"phoneNumber": 79001234567}', "text/plain"), (b"", None)],
)
def test_no_json_body_reads_as_an_empty_object(api: Api, body: bytes, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = api.check(data=body, headers=headers)
    assert response.status_code == 400
    assert response.json() == bad_request("Validation failed. Details: 'value' must have at least 1 key")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"phoneNumber": 7900x}', "Unexpected token x in JSON at position 20"),
        (b'{"phoneNumber": ', "Unexpected end of JSON input"),
    ],
)
def test_malformed_json_is_400_like_express(api: Api, body: bytes, message: str) -> None:
    response = api.check(data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json() == bad_request(message)


@pytest.mark.parametrize("digits", [11, 12, 13, 16])
def test_lengths_from_11_to_16_digits_are_accepted(api: Api, digits: int) -> None:
    assert api.check({"phoneNumber": int("7" + "1" * (digits - 1))}).status_code == 200


@pytest.fixture
def legacy() -> Iterator[Api]:
    instance = EmulatedInstance(ID, TOKEN, plan="business")
    with GreenApiEmulator([instance], rate_limits=None, legacy_digits=True) as emulator:
        yield Api(emulator)


@pytest.mark.parametrize(("digits", "status"), [(10, 400), (11, 200), (12, 200), (13, 400), (16, 400)])
def test_legacy_mode_accepts_11_or_12_digits_only(legacy: Api, digits: int, status: int) -> None:
    response = legacy.check({"phoneNumber": int("7" + "1" * (digits - 1))})
    assert response.status_code == status
    if status == 400:
        assert response.json() == bad_request("bad phone number, valid 11 or 12 digits")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(number=st.integers(min_value=0, max_value=10**20))
def test_any_integer_is_accepted_exactly_when_it_has_11_to_16_digits(api: Api, number: int) -> None:
    response = api.check({"phoneNumber": number})
    if 11 <= len(str(number)) <= 16:
        assert response.status_code == 200
        assert response.json()["existsWhatsapp"] is NumbersRule().has_whatsapp(str(number))
    else:
        assert response.json() == bad_request("bad phone number, valid from 11 to 16 digits")


@pytest.mark.parametrize(
    ("chat_id_style", "expected"),
    [
        ("c.us", {"existsWhatsapp": True, "chatId": "79001234567@c.us"}),
        ("lid", {"existsWhatsapp": True, "chatId": "636126994747719@lid"}),
        ("none", {"existsWhatsapp": True}),
    ],
)
def test_chat_id_in_the_answer_is_configurable(chat_id_style: str, expected: dict[str, object]) -> None:
    instance = EmulatedInstance(ID, TOKEN)
    rule = NumbersRule(exists=[EXISTING])
    with GreenApiEmulator([instance], numbers=rule, chat_id_style=chat_id_style) as emulator:
        response = Api(emulator).check({"phoneNumber": int(EXISTING)})
    assert response.json() == expected


def test_a_number_without_whatsapp_has_no_chat_id(api: Api) -> None:
    rule = api.emulator.service.numbers
    missing = next(n for n in range(79001234500, 79001234600) if not rule.has_whatsapp(str(n)))
    assert api.check({"phoneNumber": missing}).json() == {"existsWhatsapp": False}


def test_success_carries_rate_limit_headers() -> None:
    with GreenApiEmulator([EmulatedInstance(ID, TOKEN)]) as emulator:
        response = Api(emulator).check({"phoneNumber": 79001234567})
    assert response.headers["X-RateLimit-Replenish-Rate"] == "10"
    assert response.headers["X-RateLimit-Remaining"] == "9"


# --- the current and the legacy contract ---------------------------------------------------------------------


def test_the_current_contract_answers_the_lid_for_every_form_of_the_number(api: Api) -> None:
    rule = api.emulator.service.numbers
    existing = next(n for n in range(79001234500, 79001234600) if rule.has_whatsapp(str(n)))
    answers = [api.check(body).json() for body in
               ({"chatId": str(existing)}, {"chatId": f"{existing}@c.us"}, {"phoneNumber": existing})]
    assert answers[0] == answers[1] == answers[2]
    assert answers[0]["existsWhatsapp"] is True and answers[0]["chatId"].endswith("@lid")
    lid = answers[0]["chatId"]
    assert api.check({"chatId": lid}).json() == {"existsWhatsapp": True, "chatId": lid}  # stable


def test_the_legacy_contract_refuses_chat_id_as_an_older_host_did() -> None:
    with GreenApiEmulator([EmulatedInstance(ID, TOKEN)], numbers=NumbersRule(exists=[EXISTING]),
                          contract="legacy") as emulator:
        api = Api(emulator)
        refused = api.check({"chatId": EXISTING})
        answered = api.check({"phoneNumber": int(EXISTING)})
    assert refused.status_code == 400
    assert refused.json() == bad_request("Validation failed. Details: 'chatId' is not allowed")
    assert answered.json() == {"existsWhatsapp": True}  # no chatId in a legacy answer
    assert emulator.counters(ID).checked_numbers == {EXISTING: 1}  # the refusal spent nothing


def test_the_contract_is_switched_by_the_control_api(api: Api) -> None:
    assert api.control("GET", "contract").json() == {"contract": "current"}
    assert api.control("POST", "contract", {"contract": "legacy"}).json() == {"contract": "legacy"}
    assert api.check({"chatId": EXISTING}).status_code == 400
    assert api.control("POST", "contract", {"contract": "older"}).status_code == 400
    api.emulator.set_contract("current")
    assert api.check({"chatId": EXISTING}).status_code == 200
