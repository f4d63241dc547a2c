"""Every row of the contract's error tables maps to the right exception and retry decision."""

from __future__ import annotations

import json

import pytest

from airflow_provider_greenapi import errors as e

QUOTA_BODY = json.dumps({"invokeStatus": {
    "method": "checkwhatsapp", "used": 100, "total": 100, "status": "QUOTE_EXCEEDED",
    "description": "Monthly quota has been exceeded. Please go to your personal account and change the "
                   "tariff to business https://console.green-api.com"}})

# (status, body, exception class, retried?, stops the run?)
CONTRACT_ROWS = [
    (400, '{"message": "bad phone number, valid 11 or 12 digits"}', e.GreenApiInvalidNumberError, False, False),
    (400, "bad phone number, valid from 11 to 16 digits", e.GreenApiInvalidNumberError, False, False),
    (400, "Validation failed. Details: 'value' must have at least 1 key", e.GreenApiInvalidNumberError, False, False),
    (400, "Validation failed. Details: 'phoneNumber' must contain only digits", e.GreenApiInvalidNumberError,
     False, False),
    (400, '{"message": "check phone number timeout limit exceeded"}', e.GreenApiTransientError, True, False),
    (400, "instance is starting or not authorized", e.GreenApiInstanceNotAuthorizedError, False, True),
    (400, "instance in starting process try later", e.GreenApiTransientError, True, False),
    (400, "Instance account is expired. Renew it", e.GreenApiAccountExpiredError, False, True),
    (400, "Instance is deleted", e.GreenApiAccountExpiredError, False, True),
    (401, "", e.GreenApiCredentialsError, False, True),
    (403, "Forbidden", e.GreenApiInstanceNotFoundError, False, True),
    (404, "Not Found", e.GreenApiMethodError, False, True),
    (429, "", e.GreenApiRateLimitedError, True, False),
    (466, QUOTA_BODY, e.GreenApiQuotaExceededError, False, True),
    (499, "", e.GreenApiTransientError, True, False),
    (500, "Internal Server Error", e.GreenApiTransientError, True, False),
    (502, "Bad Gateway", e.GreenApiTransientError, True, False),
    (503, "", e.GreenApiTransientError, True, False),
    (504, "", e.GreenApiTransientError, True, False),
    (507, "Insufficient Storage", e.GreenApiTransientError, True, False),  # any 5xx: transient
    (520, "", e.GreenApiTransientError, True, False),
]


@pytest.mark.parametrize(("status", "body", "error_class", "retryable", "stops_run"), CONTRACT_ROWS)
def test_contract_row_maps_to_exception(status, body, error_class, retryable, stops_run):
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    error = e.error_from_response("checkWhatsapp", status, body, parsed, None)
    assert type(error) is error_class
    assert error.retryable is retryable
    assert error.stops_run is stops_run
    assert error.status_code == status
    assert "checkWhatsapp" in str(error)


def test_quota_error_reads_used_and_total_as_numbers_or_strings():
    error = e.error_from_response("checkWhatsapp", 466, QUOTA_BODY, json.loads(QUOTA_BODY), None)
    assert isinstance(error, e.GreenApiQuotaExceededError)
    assert (error.used, error.total) == (100, 100)
    as_strings = {"invokeStatus": {"used": "42", "total": "100"}}
    error = e.error_from_response("checkWhatsapp", 466, json.dumps(as_strings), as_strings, None)
    assert (error.used, error.total) == (42, 100)
    assert "42 of 100" in str(error)


def test_rate_limited_keeps_retry_after():
    error = e.error_from_response("checkWhatsapp", 429, "", None, 3.0)
    assert isinstance(error, e.GreenApiRateLimitedError)
    assert error.retry_after == 3.0


def test_unknown_answers_are_errors_not_answers():
    unknown_400 = e.error_from_response("checkWhatsapp", 400, "something new", None, None)
    assert type(unknown_400) is e.GreenApiResponseError
    assert not unknown_400.retryable and not unknown_400.stops_run
    teapot = e.error_from_response("checkWhatsapp", 418, "", None, None)
    assert type(teapot) is e.GreenApiResponseError
    assert "empty body" in str(teapot)


def test_messages_tell_the_user_what_to_do():
    assert "apiTokenInstance" in str(e.error_from_response("getStateInstance", 401, "", None, None))
    assert "idInstance" in str(e.error_from_response("getStateInstance", 403, "", None, None))
    assert "QR code" in str(e.error_from_response("checkWhatsapp", 400, "instance is starting or not authorized",
                                                   None, None))
