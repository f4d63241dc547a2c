"""The emulator's own logs never show a token."""

from __future__ import annotations

import logging
import socket

import pytest

from airflow_provider_greenapi.emulator import EmulatedInstance, FaultPlan, GreenApiEmulator, redact_path
from tests.emulator.support import ID, TOKEN, Api


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("/waInstance1101000001/checkWhatsapp/abc123", "/waInstance1101000001/checkWhatsapp/***"),
        ("/waInstance1101000001/getStateInstance/abc123?x=1", "/waInstance1101000001/getStateInstance/***?x=1"),
        ('"GET /waInstance1/getSettings/tok HTTP/1.1" 200', '"GET /waInstance1/getSettings/*** HTTP/1.1" 200'),
        ("/__emulator__/instances", "/__emulator__/instances"),
    ],
)
def test_redact_path(text: str, redacted: str) -> None:
    assert redact_path(text) == redacted


def test_request_log_lines_mask_the_token(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="airflow_provider_greenapi.emulator")
    plan = FaultPlan(script=["ok", "500", "drop"])
    with GreenApiEmulator([EmulatedInstance(ID, TOKEN, faults=plan)], log_requests=True) as emulator:
        api = Api(emulator)
        api.check({"phoneNumber": 79001234567})
        api.check({"phoneNumber": 79001234567})
        with pytest.raises(Exception):  # noqa: B017  (dropped connection)
            api.check({"phoneNumber": 79001234567})
        api.session.get(api.url("getStateInstance", token="wrong-" + TOKEN))
        with socket.create_connection(("127.0.0.1", emulator.port), timeout=5) as raw:
            raw.sendall(f"GET /waInstance{ID}/getSettings/{TOKEN} HTTP/9\r\n\r\n".encode())
            raw.recv(4096)
    messages = [record.getMessage() for record in caplog.records]
    assert any(f"POST /waInstance{ID}/checkWhatsapp/*** -> 200" in m for m in messages)
    assert any("-> 500" in m for m in messages)
    assert any("-> dropped" in m for m in messages)
    assert any(f"/waInstance{ID}/getStateInstance/*** -> 401" in m for m in messages)
    assert any("malformed" in m and "getSettings/***" in m for m in messages)
    assert not [m for m in messages if TOKEN in m]
    assert TOKEN not in caplog.text


def test_requests_are_logged_at_debug_only_by_default(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="airflow_provider_greenapi.emulator")
    with GreenApiEmulator([EmulatedInstance(ID, TOKEN)]) as emulator:
        Api(emulator).check({"phoneNumber": 79001234567})
    assert not caplog.records
