"""GreenApiInstanceStateSensor and its trigger, against the GREEN-API emulator over real HTTP.

getStateInstance allows 1 request/s, and the client keeps 1.25 s between two calls of one instance in a
process, so every test makes as few calls as it can.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import PokeReturnValue
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_greenapi._compat import AirflowException, AirflowFailException, AirflowSkipException, TaskDeferred
from airflow_provider_greenapi.emulator import FaultPlan, GreenApiEmulator
from airflow_provider_greenapi.models import InstanceState
from airflow_provider_greenapi.sensors import GreenApiInstanceStateError, GreenApiInstanceStateSensor
from airflow_provider_greenapi.triggers import GreenApiInstanceStateTrigger
from tests.conftest import ID_INSTANCE, TOKEN, greenapi_connection

pytestmark = pytest.mark.matrix  # the sensor and its trigger in the triggerer's loop: on every Airflow line

STATE = "getStateInstance"
BLOCKED_ADVICE = InstanceState.BLOCKED.advice


def sensor(**kwargs: Any) -> GreenApiInstanceStateSensor:
    kwargs = {"poke_interval": 0.01, "timeout": 30, **kwargs}
    return GreenApiInstanceStateSensor(task_id="wait_for_instance", **kwargs)


def logs(capsys, caplog) -> str:
    """What was logged: Airflow's structlog writes to stdout, the stdlib loggers reach caplog."""
    return capsys.readouterr().out + caplog.text


def calls(emulator: GreenApiEmulator, status: int | None = None) -> int:
    return emulator.counters(ID_INSTANCE).count(STATE, status)


def flip_after_calls(emulator: GreenApiEmulator, n_calls: int, state: str) -> threading.Thread:
    """Set the instance to ``state`` once it has answered ``n_calls`` getStateInstance calls."""
    def flip() -> None:
        deadline = time.monotonic() + 20
        while calls(emulator) < n_calls and time.monotonic() < deadline:
            time.sleep(0.01)
        emulator.set_state(ID_INSTANCE, state)

    thread = threading.Thread(target=flip, daemon=True)
    thread.start()
    return thread


async def first_event(trigger: BaseTrigger, timeout: float = 20) -> TriggerEvent:
    events = trigger.run()
    try:
        return await asyncio.wait_for(events.__anext__(), timeout)  # type: ignore[attr-defined]
    finally:
        await events.aclose()  # type: ignore[attr-defined]


def run_trigger(trigger: BaseTrigger) -> dict[str, Any]:
    event = asyncio.run(first_event(trigger))
    assert isinstance(event, TriggerEvent)
    json.dumps(event.payload)  # the payload travels through the metadata DB
    return event.payload


# --- construction ------------------------------------------------------------------------------------------


def test_defaults_and_no_network_at_construction(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_GREENAPI_DEFAULT", raising=False)
    s = GreenApiInstanceStateSensor(task_id="t")
    assert s.greenapi_conn_id == "greenapi_default"
    assert s.target_states == ("authorized",) and s.fail_states == ("blocked",)
    assert s.poke_interval == 30 and s.deferrable is False


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"target_states": "ready"}, "unknown GREEN-API instance state 'ready'"),
        ({"fail_states": ["blocked", "banned"]}, "unknown GREEN-API instance state 'banned'"),
        ({"target_states": ["authorized", "blocked"]}, "cannot be both"),
        ({"target_states": []}, "at least one state"),
    ],
)
def test_bad_states_fail_at_parse_time(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        sensor(**kwargs)


def test_states_accept_a_string_the_enum_and_none():
    s = sensor(target_states="sleepMode", fail_states=None)
    assert s.target_states == ("sleepMode",) and s.fail_states == ()
    s = sensor(target_states=[InstanceState.AUTHORIZED, "yellowCard"], fail_states=InstanceState.BLOCKED)
    assert s.target_states == ("authorized", "yellowCard") and s.fail_states == ("blocked",)


# --- poke mode ---------------------------------------------------------------------------------------------


def test_poke_is_false_until_the_instance_is_authorized(emulator, greenapi_conn):
    s = sensor()
    emulator.set_state(ID_INSTANCE, "starting")
    assert s.poke({}) is False
    emulator.set_state(ID_INSTANCE, "notAuthorized")
    assert s.poke({}) is False
    emulator.set_state(ID_INSTANCE, "authorized")
    done = s.poke({})
    assert isinstance(done, PokeReturnValue) and done.is_done and done.xcom_value == "authorized"
    assert calls(emulator) == 3


def test_execute_waits_for_the_state_to_flip_and_returns_it(emulator, greenapi_conn):
    emulator.set_state(ID_INSTANCE, "starting")
    flip_after_calls(emulator, 2, "authorized")
    started = time.monotonic()
    assert sensor().execute({}) == "authorized"
    assert calls(emulator) == 3
    # Within the 1 request/s limit of getStateInstance, whatever the poke_interval.
    assert time.monotonic() - started >= 2.0
    assert calls(emulator, 429) == 0


def test_blocked_fails_fast_with_the_advice(emulator, greenapi_conn):
    emulator.set_state(ID_INSTANCE, "blocked")
    with pytest.raises(GreenApiInstanceStateError) as raised:
        sensor().execute({})
    assert isinstance(raised.value, AirflowFailException)  # no retries: waiting cannot cure a ban
    assert raised.value.state == "blocked"
    assert "'blocked'" in str(raised.value) and BLOCKED_ADVICE in str(raised.value)
    assert calls(emulator) == 1


def test_fail_states_are_configurable(emulator, greenapi_conn):
    emulator.set_state(ID_INSTANCE, "yellowCard")
    with pytest.raises(GreenApiInstanceStateError, match="yellowCard"):
        sensor(fail_states=("blocked", "yellowCard")).execute({})
    # With the defaults, yellowCard is only waited on.
    assert sensor().poke({}) is False


def test_blocked_with_soft_fail_skips(emulator, greenapi_conn):
    emulator.set_state(ID_INSTANCE, "blocked")
    with pytest.raises(AirflowSkipException):
        sensor(soft_fail=True).execute({})


def test_wrong_token_fails_at_once_without_leaking_it(emulator, monkeypatch, capsys, caplog):
    monkeypatch.setenv("AIRFLOW_CONN_GREENAPI_DEFAULT", greenapi_connection(emulator, token="wrong-token-0123456789"))
    with pytest.raises(GreenApiInstanceStateError, match="HTTP 401") as raised:
        sensor().execute({})
    assert "API token" in str(raised.value)
    assert "wrong-token-0123456789" not in str(raised.value) + logs(capsys, caplog)
    assert calls(emulator, 401) == 1


def test_unknown_instance_fails_at_once(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_GREENAPI_DEFAULT", greenapi_connection(emulator, id_instance="1101999999"))
    with pytest.raises(GreenApiInstanceStateError, match="HTTP 403"):
        sensor().execute({})


def test_broken_connection_fails_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_GREENAPI_DEFAULT", json.dumps(
        {"conn_type": "greenapi", "host": "http://127.0.0.1:9", "login": "not-digits", "password": "x" * 10}))
    with pytest.raises(GreenApiInstanceStateError, match="idInstance"):
        sensor().execute({})


def test_a_transient_error_does_not_fail_the_sensor(emulator, greenapi_conn, capsys, caplog):
    emulator.inject_faults(ID_INSTANCE, FaultPlan(methods=(STATE,), script=("500",)))
    s = sensor()
    assert s.poke({}) is False  # one call per poke: the 500 is logged, not retried in a burst
    logged = logs(capsys, caplog)
    assert "HTTP 500" in logged and TOKEN not in logged
    assert s.execute({}) == "authorized"
    assert calls(emulator, 500) == 1 and calls(emulator, 200) == 1


def test_target_states_may_list_several(emulator, greenapi_conn):
    emulator.set_state(ID_INSTANCE, "sleepMode")
    assert sensor(target_states=["notAuthorized", "sleepMode"]).execute({}) == "sleepMode"
    emulator.set_state(ID_INSTANCE, "authorized")
    assert sensor(target_states="notAuthorized").poke({}) is False


# --- deferrable mode ---------------------------------------------------------------------------------------


def test_deferrable_defers_to_the_trigger(emulator, greenapi_conn):
    emulator.set_state(ID_INSTANCE, "starting")
    s = sensor(deferrable=True, target_states=["authorized", "yellowCard"], timeout=600)
    with pytest.raises(TaskDeferred) as deferred:
        s.execute({})
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout == timedelta(seconds=600)
    trigger = deferred.value.trigger
    assert isinstance(trigger, GreenApiInstanceStateTrigger)
    assert calls(emulator) == 1  # the worker checked once before deferring

    classpath, kwargs = trigger.serialize()
    assert kwargs == {"greenapi_conn_id": "greenapi_default", "target_states": ["authorized", "yellowCard"],
                      "fail_states": ["blocked"], "poke_interval": 0.01}
    text = json.dumps([classpath, kwargs])  # plain JSON ...
    assert TOKEN not in text and TOKEN not in repr(trigger)  # ... and never the token
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


def test_deferrable_does_not_defer_when_already_authorized(emulator, greenapi_conn):
    assert sensor(deferrable=True).execute({}) == "authorized"


def test_deferrable_fails_in_the_worker_when_blocked(emulator, greenapi_conn):
    emulator.set_state(ID_INSTANCE, "blocked")
    with pytest.raises(GreenApiInstanceStateError, match="blocked"):
        sensor(deferrable=True).execute({})


def test_trigger_fires_success_once_the_state_flips(emulator, greenapi_conn):
    emulator.set_state(ID_INSTANCE, "notAuthorized")
    flip_after_calls(emulator, 1, "authorized")
    payload = run_trigger(GreenApiInstanceStateTrigger(poke_interval=0.01))
    assert payload["status"] == "success" and payload["state"] == "authorized"
    assert payload["id_instance"] == ID_INSTANCE
    assert calls(emulator) == 2
    assert sensor(deferrable=True).execute_complete({}, payload) == "authorized"


def test_trigger_fires_failure_on_blocked(emulator, greenapi_conn):
    emulator.set_state(ID_INSTANCE, "starting")
    flip_after_calls(emulator, 1, "blocked")
    payload = run_trigger(GreenApiInstanceStateTrigger(poke_interval=0.01))
    assert payload["status"] == "failure" and payload["state"] == "blocked"
    assert BLOCKED_ADVICE in payload["message"]
    with pytest.raises(GreenApiInstanceStateError) as raised:
        sensor(deferrable=True).execute_complete({}, payload)
    assert BLOCKED_ADVICE in str(raised.value) and raised.value.state == "blocked"


@pytest.mark.parametrize(("fault", "status"), [("500", 500), ("429", 429), ("starting", 400)])
def test_trigger_keeps_polling_through_a_transient_error(emulator, greenapi_conn, fault, status):
    emulator.inject_faults(ID_INSTANCE, FaultPlan(methods=(STATE,), script=(fault,)))
    payload = run_trigger(GreenApiInstanceStateTrigger(poke_interval=0.01))
    assert payload["status"] == "success"
    assert calls(emulator, status) == 1 and calls(emulator, 200) == 1


def test_trigger_reports_a_wrong_token_at_once(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_GREENAPI_DEFAULT", greenapi_connection(emulator, token="wrong-token-0123456789"))
    payload = run_trigger(GreenApiInstanceStateTrigger(poke_interval=0.01))
    assert payload["status"] == "error" and "HTTP 401" in payload["message"]
    assert "wrong-token-0123456789" not in json.dumps(payload)
    with pytest.raises(GreenApiInstanceStateError, match="HTTP 401"):
        sensor(deferrable=True).execute_complete({}, payload)


def test_trigger_reports_a_missing_connection(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_NOWHERE", raising=False)
    payload = run_trigger(GreenApiInstanceStateTrigger(greenapi_conn_id="nowhere"))
    assert payload["status"] == "error" and "nowhere" in payload["message"]


def test_execute_complete_maps_events():
    s = sensor(deferrable=True)
    assert s.execute_complete({}, {"status": "success", "state": "authorized", "message": "ok"}) == "authorized"
    with pytest.raises(GreenApiInstanceStateError, match="gone"):
        s.execute_complete({}, {"status": "error", "state": None, "message": "gone"})
    with pytest.raises(AirflowException, match="unexpected event"):
        s.execute_complete({}, None)


def test_a_failure_event_with_soft_fail_skips():
    event = {"status": "failure", "state": "blocked", "message": "blocked"}
    with pytest.raises(AirflowSkipException):
        sensor(deferrable=True, soft_fail=True).resume_execution("execute_complete", {"event": event}, {})
