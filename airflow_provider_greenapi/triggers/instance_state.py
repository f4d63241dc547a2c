"""GreenApiInstanceStateTrigger: waits in the triggerer until a GREEN-API instance reaches a wanted state.

Used by :class:`~airflow_provider_greenapi.sensors.instance_state.GreenApiInstanceStateSensor` with
``deferrable=True``. The state rules (which states succeed, which fail at once) live here, so that the
sensor's ``poke()`` in the worker and this trigger in the triggerer decide exactly alike.

Safe across triggerer restarts: the only call made is getStateInstance, a GET that is free of quota and has
no side effect. A restarted trigger simply asks again; nothing is sent twice that costs quota or changes
the instance (unlike a trigger that would re-send a POST such as checkWhatsapp).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_greenapi._compat import AirflowNotFoundException
from airflow_provider_greenapi.client import GreenApiClient
from airflow_provider_greenapi.errors import (
    GreenApiError,
    GreenApiInstanceNotAuthorizedError,
    GreenApiTransientError,
)
from airflow_provider_greenapi.hooks.greenapi import GreenApiHook
from airflow_provider_greenapi.models import InstanceState

DEFAULT_TARGET_STATES: tuple[str, ...] = (InstanceState.AUTHORIZED.value,)
DEFAULT_FAIL_STATES: tuple[str, ...] = (InstanceState.BLOCKED.value,)
# getStateInstance allows 1 request/s per instance. The client already paces it (0.8/s per instance and
# process); the trigger never sleeps less than this between two calls either.
MIN_POLL_INTERVAL = 1.0

# Event statuses (payload["status"]).
SUCCESS = "success"  # a target state was reached
FAILURE = "failure"  # a fail state was reached (blocked by default)
ERROR = "error"  # an error that stops: credentials (401), unknown instance (403), bad connection...

_KNOWN_STATES = {state.value: state for state in InstanceState}


def normalize_states(states: str | InstanceState | Iterable[str | InstanceState] | None, name: str) -> tuple[str, ...]:
    """``states`` as a tuple of known state values (``authorized``, ``blocked``...); ValueError otherwise."""
    if states is None:
        return ()
    items = [states] if isinstance(states, (str, InstanceState)) else list(states)
    values: list[str] = []
    for item in items:
        value = item.value if isinstance(item, InstanceState) else str(item).strip()
        if value not in _KNOWN_STATES:
            raise ValueError(
                f"{name}: unknown GREEN-API instance state {item!r}; known states: {', '.join(_KNOWN_STATES)}."
            )
        if value not in values:
            values.append(value)
    return tuple(values)


def check_state_sets(target_states: tuple[str, ...], fail_states: tuple[str, ...]) -> None:
    if not target_states:
        raise ValueError("target_states must name at least one state (e.g. 'authorized').")
    both = sorted(set(target_states) & set(fail_states))
    if both:
        raise ValueError(
            f"The state(s) {', '.join(both)} cannot be both in target_states and fail_states; "
            "remove them from one of the two (fail_states defaults to ('blocked',))."
        )


@dataclass(frozen=True)
class StateVerdict:
    """What one getStateInstance answer means for the wait: ``status`` is SUCCESS, FAILURE or None (wait)."""

    status: str | None
    state: InstanceState
    message: str

    def payload(self, id_instance: str) -> dict[str, Any]:
        return {"status": self.status, "state": self.state.value, "id_instance": id_instance,
                "message": self.message}


def judge_state(
    state: InstanceState, id_instance: str, target_states: Iterable[str], fail_states: Iterable[str]
) -> StateVerdict:
    """Decide on one state: reached a target, reached a fail state, or keep waiting."""
    if state.value in target_states:
        return StateVerdict(SUCCESS, state, f"GREEN-API instance {id_instance} is {state.value!r}.")
    if state.value in fail_states:
        return StateVerdict(
            FAILURE, state, f"GREEN-API instance {id_instance} is {state.value!r}, a fail state: {state.advice}"
        )
    wanted = ", ".join(repr(s) for s in target_states)
    return StateVerdict(
        None, state, f"GREEN-API instance {id_instance} is {state.value!r}, waiting for {wanted}. {state.advice}"
    )


def error_payload(message: str, id_instance: str | None = None) -> dict[str, Any]:
    return {"status": ERROR, "state": None, "id_instance": id_instance, "message": message}


# Errors that waiting may cure: the transient ones (429, 499, 5xx, timeouts, "instance in starting process"),
# and the 400 "instance is starting or not authorized" in case getStateInstance ever answers it (documented for
# checkWhatsapp): a state poll is exactly how one waits for that to change.
WAIT_ERRORS: tuple[type[GreenApiError], ...] = (GreenApiTransientError, GreenApiInstanceNotAuthorizedError)


def build_client(greenapi_conn_id: str) -> GreenApiClient:
    """A client that makes exactly one request per call: the polling loop is the retry (a transient error
    costs one poll, not a burst of retries against a 1 request/s method)."""
    return GreenApiHook(greenapi_conn_id).get_client(max_retries=0)


class GreenApiInstanceStateTrigger(BaseTrigger):
    """Polls getStateInstance until the instance is in one of ``target_states`` or ``fail_states``.

    Yields one :class:`TriggerEvent` whose payload is a dict: ``status`` (``success``, ``failure`` or
    ``error``), ``state`` (the last state, or None), ``id_instance`` and ``message``. Transient errors (429,
    5xx, timeouts...) are logged and the polling goes on. Only the connection id travels in ``serialize()``:
    the token is read from the Airflow connection inside the triggerer.

    :param greenapi_conn_id: the GREEN-API Airflow connection.
    :param target_states: states that end the wait successfully.
    :param fail_states: states that end the wait with a failure.
    :param poke_interval: seconds between two calls (a float; at least 1 s is kept between calls).
    """

    def __init__(
        self,
        greenapi_conn_id: str = GreenApiHook.default_conn_name,
        target_states: Iterable[str] = DEFAULT_TARGET_STATES,
        fail_states: Iterable[str] = DEFAULT_FAIL_STATES,
        poke_interval: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.greenapi_conn_id = greenapi_conn_id
        self.target_states = normalize_states(target_states, "target_states")
        self.fail_states = normalize_states(fail_states, "fail_states")
        check_state_sets(self.target_states, self.fail_states)
        self.poke_interval = float(poke_interval)
        if self.poke_interval < 0:
            raise ValueError(f"poke_interval must not be negative (got {poke_interval!r}).")

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # Plain JSON only, and never the token: the triggerer reads it from the connection itself.
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "greenapi_conn_id": self.greenapi_conn_id,
                "target_states": list(self.target_states),
                "fail_states": list(self.fail_states),
                "poke_interval": self.poke_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # The hook reads the connection through the (synchronous) task SDK: from a worker thread the
        # triggerer bridges that to its event loop, so nothing blocks the loop.
        try:
            client = await asyncio.to_thread(build_client, self.greenapi_conn_id)
        except (ValueError, AirflowNotFoundException) as error:
            yield TriggerEvent(error_payload(
                f"Cannot use the GREEN-API connection {self.greenapi_conn_id!r}: {error}"))
            return
        try:
            id_instance = client.id_instance
            last_state: InstanceState | None = None
            while True:
                # Safe to repeat at any time, including after a triggerer restart: getStateInstance is a GET
                # with no side effect and no quota cost. No POST is ever sent from here.
                try:
                    state = await asyncio.to_thread(client.get_state_instance)
                except WAIT_ERRORS as error:
                    self.log.warning("GREEN-API instance %s: %s Polling again in %.1f s.",
                                     id_instance, error, self._sleep_seconds)
                except GreenApiError as error:
                    yield TriggerEvent(error_payload(
                        f"GREEN-API instance {id_instance}: {error}", id_instance))
                    return
                else:
                    verdict = judge_state(state, id_instance, self.target_states, self.fail_states)
                    if verdict.status is not None:
                        yield TriggerEvent(verdict.payload(id_instance))
                        return
                    if state is not last_state:
                        self.log.info("%s", verdict.message)
                    last_state = state
                await asyncio.sleep(self._sleep_seconds)
        finally:
            client.close()

    @property
    def _sleep_seconds(self) -> float:
        return max(self.poke_interval, MIN_POLL_INTERVAL)
