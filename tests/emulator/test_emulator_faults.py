"""Fault injection: every fault type, latency and jitter, shares with a seed, scripts."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from airflow_provider_greenapi.emulator import EmulatedInstance, Fault, FaultPlan, GreenApiEmulator
from airflow_provider_greenapi.emulator.faults import FaultSequencer
from tests.emulator.support import ID, TOKEN, Api


def statuses(api: Api, calls: int) -> list[int]:
    return [api.check({"phoneNumber": 79001234567}).status_code for _ in range(calls)]


@pytest.mark.parametrize(
    ("fault", "status", "body"),
    [
        ("timeout_limit", 400, b'{"code": 400, "description": "check phone number timeout limit exceeded"}'),
        ("starting", 400, b'{"code": 400, "description": "instance in starting process try later"}'),
        ("429", 429, b""),
        ("499", 499, b'{"code": 499, "description": "Client Closed Request"}'),
        ("500", 500, b'{"code": 500, "description": "Internal Server Error"}'),
    ],
)
def test_scripted_error_answers(api: Api, fault: str, status: int, body: bytes) -> None:
    api.emulator.inject_faults(ID, FaultPlan(script=[fault]))
    response = api.check({"phoneNumber": 79001234567})
    assert response.status_code == status
    assert response.content == body
    assert "Retry-After" not in response.headers
    assert api.check({"phoneNumber": 79001234567}).status_code == 200  # the script is used up
    counters = api.emulator.counters(ID)
    assert counters.calls == {"checkWhatsapp": {status: 1, 200: 1}}
    assert counters.quota_used == 1


@pytest.mark.parametrize(("fault", "status"), [("502", 502), ("503", 503)])
def test_gateway_errors_come_as_nginx_html(api: Api, fault: str, status: int) -> None:
    api.emulator.inject_faults(ID, FaultPlan(script=[fault]))
    response = api.check({"phoneNumber": 79001234567})
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("text/html")
    assert f"<title>{status} ".encode() in response.content


def test_429_with_retry_after(api: Api) -> None:
    api.emulator.inject_faults(ID, FaultPlan(script=["429_retry_after"], retry_after_s=7))
    response = api.check({"phoneNumber": 79001234567})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.content == b""


def test_drop_closes_the_connection_without_an_answer(api: Api) -> None:
    api.emulator.inject_faults(ID, FaultPlan(script=["drop"]))
    with pytest.raises(requests.ConnectionError):
        api.check({"phoneNumber": 79001234567})
    assert api.check({"phoneNumber": 79001234567}).status_code == 200  # a new connection works


def test_hang_outlasts_the_client_timeout_then_closes(api: Api) -> None:
    api.emulator.inject_faults(ID, FaultPlan(script=["hang"], hang_s=10))
    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):  # not a closed connection: the hang outlasted the timeout
        api.session.post(api.url("checkWhatsapp"), json={"phoneNumber": 79001234567}, timeout=0.2)
    assert time.monotonic() - started >= 0.2
    assert api.check({"phoneNumber": 79001234567}).status_code == 200


def test_hang_without_client_timeout_ends_with_a_closed_connection(api: Api) -> None:
    api.emulator.inject_faults(ID, FaultPlan(script=["hang"], hang_s=0.2))
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):  # not a ReadTimeout: closed before the client's 30 s
        api.session.post(api.url("checkWhatsapp"), json={"phoneNumber": 79001234567}, timeout=30)
    assert time.monotonic() - started >= 0.2


def test_stopping_the_emulator_ends_a_hang() -> None:
    plan = FaultPlan(script=["hang"], hang_s=30)
    emulator = GreenApiEmulator([EmulatedInstance(ID, TOKEN, faults=plan)]).start()
    api = Api(emulator)
    failures: list[Exception] = []

    def call() -> None:
        try:
            api.check({"phoneNumber": 79001234567})
        except requests.ConnectionError as exc:
            failures.append(exc)

    started = time.monotonic()
    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.2)
    emulator.stop()
    caller.join(5)
    assert not caller.is_alive()
    assert len(failures) == 1
    assert time.monotonic() - started < 20  # far less than the 30 s hang, however busy the machine


def test_latency_delays_every_answer(api: Api) -> None:
    api.emulator.inject_faults(ID, FaultPlan(latency_ms=1000))
    assert api.check({"phoneNumber": 79001234567}).status_code == 200
    assert api.state().status_code == 200  # faults apply to checkWhatsapp only by default
    check, state = api.emulator.journal(ID)  # as the server timed them
    assert check.answered - check.arrived >= 1.0 > state.answered - state.arrived  # a wide margin: load-proof


def test_jitter_stays_within_its_bound(api: Api) -> None:
    plan = FaultPlan(latency_ms=20, jitter_ms=60, seed=3)
    delays = [delay for _, delay in itertools.islice(_calls(plan), 30)]
    assert all(0.02 <= d <= 0.08 for d in delays)
    assert max(delays) - min(delays) > 0.005  # not a fixed delay
    api.emulator.inject_faults(ID, plan)
    for _ in range(3):  # and on the wire, each answer at least the latency late
        api.check({"phoneNumber": 79001234567})
    assert all(e.answered - e.arrived >= 0.02 for e in api.emulator.journal(ID))


def _calls(plan: FaultPlan) -> Iterator[tuple[Fault, float]]:
    sequencer = FaultSequencer(plan)
    while True:
        yield sequencer.next_call()


def test_an_error_rate_with_a_seed_is_reproducible() -> None:
    plan = FaultPlan(error_rate=0.3, errors=("500", "502", "timeout_limit"), seed=42)
    runs = []
    for _ in range(2):
        with GreenApiEmulator([EmulatedInstance(ID, TOKEN, plan="business", faults=plan)], rate_limits=None) as emu:
            runs.append(statuses(Api(emu), 60))
    assert runs[0] == runs[1]
    failures = sum(status != 200 for status in runs[0])
    assert 8 <= failures <= 30
    assert set(runs[0]) <= {200, 400, 500, 502}


def test_error_rate_one_fails_every_call(api: Api) -> None:
    api.emulator.inject_faults(ID, FaultPlan(error_rate=1.0, errors=["503"]))
    assert set(statuses(api, 5)) == {503}
    api.emulator.clear_faults(ID)
    assert set(statuses(api, 2)) == {200}


def test_a_script_runs_before_the_error_rate(api: Api) -> None:
    api.emulator.inject_faults(ID, FaultPlan(script=["timeout_limit", "ok", "500"], error_rate=1.0, errors=["502"]))
    assert statuses(api, 5) == [400, 200, 500, 502, 502]


def test_a_looping_script_repeats(api: Api) -> None:
    api.emulator.inject_faults(ID, FaultPlan(script=["500", "ok"], loop_script=True))
    assert statuses(api, 5) == [500, 200, 500, 200, 500]


def test_faults_can_target_other_methods(api: Api) -> None:
    api.emulator.inject_faults(ID, FaultPlan(methods=["getStateInstance"], script=["502"]))
    assert api.state().status_code == 502
    assert api.check({"phoneNumber": 79001234567}).status_code == 200


def test_faults_come_after_auth(api: Api) -> None:
    api.emulator.inject_faults(ID, FaultPlan(error_rate=1.0, errors=["500"]))
    response = api.session.post(api.url("checkWhatsapp", token="bad"), json={"phoneNumber": 79001234567})
    assert response.status_code == 401


def test_fault_names_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown fault 'boom'"):
        FaultPlan(script=["boom"])
    with pytest.raises(ValueError, match="error_rate"):
        FaultPlan(error_rate=1.5)
    assert {fault.value for fault in Fault} == {
        "ok", "timeout_limit", "starting", "429", "429_retry_after", "499", "500", "400_echo", "500_echo", "502", "503",
        "drop", "hang",
    }  # fmt: skip


def test_fault_plans_round_trip_through_json() -> None:
    plan = FaultPlan(methods=["CheckWhatsapp"], error_rate=0.1, errors=["500"], script=["hang"], seed=None)
    assert plan.methods == ("checkWhatsapp",)
    assert FaultPlan.from_dict(plan.to_dict()) == plan
