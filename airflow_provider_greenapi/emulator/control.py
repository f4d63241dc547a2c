"""The emulator's own control and inspection API, under ``/__emulator__/`` (JSON in, JSON out, no tokens).

GREEN-API paths all start with ``/waInstance``, so this prefix can never shadow one of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from airflow_provider_greenapi.emulator._keys import reject_unknown_keys
from airflow_provider_greenapi.emulator.config import EmulatedInstance, StateChange
from airflow_provider_greenapi.emulator.faults import FaultPlan
from airflow_provider_greenapi.emulator.greenapi import GreenApiService, Reply, json_reply
from airflow_provider_greenapi.emulator.instances import LiveInstance

CONTROL_PREFIX = "/__emulator__"

_InstanceAction = Callable[[LiveInstance, dict[str, Any]], Any]


def _problem(status: int, message: str) -> Reply:
    return json_reply(status, {"error": message})


def _set_state(instance: LiveInstance, body: dict[str, Any]) -> Any:
    reject_unknown_keys(body, {"state"}, "state request")
    instance.set_state(body.get("state", ""))
    return instance.to_public_dict()


def _schedule_state_change(instance: LiveInstance, body: dict[str, Any]) -> Any:
    change = StateChange.from_dict(body)
    instance.schedule_state_change(change.after_check_calls, change.state)
    return instance.to_public_dict()


def _set_quota_used(instance: LiveInstance, body: dict[str, Any]) -> Any:
    reject_unknown_keys(body, {"used"}, "quota request")
    used = body.get("used")
    if isinstance(used, bool) or not isinstance(used, int):
        raise ValueError("'used' must be an integer")
    instance.set_quota_used(used)
    return instance.to_public_dict()


def _reset_quota(instance: LiveInstance, body: dict[str, Any]) -> Any:
    instance.reset_quota()
    return instance.to_public_dict()


def _inject_faults(instance: LiveInstance, body: dict[str, Any]) -> Any:
    instance.inject_faults(FaultPlan.from_dict(body))
    return instance.to_public_dict()


def _clear_faults(instance: LiveInstance, body: dict[str, Any]) -> Any:
    instance.clear_faults()
    return instance.to_public_dict()


def _reset_counters(instance: LiveInstance, body: dict[str, Any]) -> Any:
    instance.reset_counters()
    return instance.counters().to_dict()


def _reset_journal(instance: LiveInstance, body: dict[str, Any]) -> Any:
    instance.journal.reset()
    return {"status": "ok"}


_INSTANCE_POSTS: dict[str, _InstanceAction] = {
    "state": _set_state,
    "state-changes": _schedule_state_change,
    "quota": _set_quota_used,
    "quota/reset": _reset_quota,
    "faults": _inject_faults,
    "faults/clear": _clear_faults,
    "counters/reset": _reset_counters,
    "journal/reset": _reset_journal,
}


class ControlApi:
    """Routes ``/__emulator__/...`` requests to the service.

    ``GET  health | contract | instances | instances/{id} | instances/{id}/counters | instances/{id}/journal``
    ``| counters``
    ``POST instances`` (add one) ``| contract | counters/reset`` and, per instance, ``POST instances/{id}/``
    ``state | state-changes | quota | quota/reset | faults | faults/clear | counters/reset | journal/reset``.
    """

    def __init__(self, service: GreenApiService) -> None:
        self.service = service

    def handle(self, verb: str, path: str, body: bytes) -> Reply:
        route = path.partition("?")[0].removeprefix(CONTROL_PREFIX).strip("/")
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            return _problem(400, "the body is not valid JSON")
        if not isinstance(payload, dict):
            return _problem(400, "the body must be a JSON object")
        try:
            return self._route(verb, route, payload)
        except KeyError as exc:
            return _problem(404, str(exc.args[0]) if exc.args else "not found")
        except (TypeError, ValueError) as exc:
            return _problem(400, str(exc))

    def _route(self, verb: str, route: str, payload: dict[str, Any]) -> Reply:
        service = self.service
        if verb == "GET":
            if route == "health":
                return json_reply(200, {"status": "ok"})
            if route == "contract":
                return json_reply(200, {"contract": service.contract.value})
            if route == "instances":
                return json_reply(200, [instance.to_public_dict() for instance in service.instances()])
            if route == "counters":
                return json_reply(200, {i.id_instance: i.counters().to_dict() for i in service.instances()})
            head, _, rest = route.partition("/")
            if head == "instances" and rest:
                id_instance, _, what = rest.partition("/")
                if what == "":
                    return json_reply(200, service.instance(id_instance).to_public_dict())
                if what == "counters":
                    return json_reply(200, service.instance(id_instance).counters().to_dict())
                if what == "journal":
                    return json_reply(200, service.instance(id_instance).journal.to_dict())
        elif verb == "POST":
            if route == "instances":
                live = service.add_instance(EmulatedInstance.from_dict(payload))
                return json_reply(201, live.to_public_dict())
            if route == "contract":
                reject_unknown_keys(payload, {"contract"}, "contract request")
                service.set_contract(payload.get("contract", ""))
                return json_reply(200, {"contract": service.contract.value})
            if route == "counters/reset":
                for instance in service.instances():
                    instance.reset_counters()
                return json_reply(200, {"status": "ok"})
            head, _, rest = route.partition("/")
            id_instance, _, what = rest.partition("/")
            action = _INSTANCE_POSTS.get(what)
            if head == "instances" and action is not None:
                return json_reply(200, action(service.instance(id_instance), payload))
        else:
            return _problem(405, f"the control API answers GET and POST, not {verb}")
        return _problem(404, f"no control route {verb} {CONTROL_PREFIX}/{route}")
