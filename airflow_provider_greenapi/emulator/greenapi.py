"""GREEN-API's behaviour, free of HTTP plumbing: a request (verb, path, body) in, a :class:`Reply` out.

Order of checks, as the real API: unknown idInstance -> 403; wrong token -> 401 with an empty body;
unknown method or wrong HTTP verb -> 404; then, for a known method: rate limit -> 429 (empty body);
injected fault; and for checkWhatsapp: body validation -> 400, instance state -> 400, quota -> 466, answer.
Error bodies are JSON ``{"code": <status>, "description": "<message>"}`` (502/503 are nginx HTML pages).
"""

from __future__ import annotations

import enum
import json
import threading
from dataclasses import dataclass, replace
from typing import Any

from airflow_provider_greenapi.emulator.api_methods import (
    API_METHODS,
    CHECK_WHATSAPP,
    GET_SETTINGS,
    GET_STATE_INSTANCE,
    canonical_method,
)
from airflow_provider_greenapi.emulator.config import (
    ChatIdStyle,
    Contract,
    EmulatedInstance,
    EmulatorConfig,
    InstanceState,
    Plan,
)
from airflow_provider_greenapi.emulator.faults import Fault
from airflow_provider_greenapi.emulator.instances import NO_RESPONSE, Admission, LiveInstance
from airflow_provider_greenapi.emulator.numbers_rule import fake_lid

MSG_BAD_PHONE_CURRENT = "bad phone number, valid from 11 to 16 digits"
MSG_BAD_PHONE_LEGACY = "bad phone number, valid 11 or 12 digits"
MSG_NOT_AUTHORIZED = "instance is starting or not authorized"
MSG_TIMEOUT_LIMIT = "check phone number timeout limit exceeded"
MSG_STARTING = "instance in starting process try later"
MSG_QUOTA_EXCEEDED = (
    "Monthly quota has been exceeded. Please go to your personal account and change the tariff to business "
    "https://console.green-api.com"
)
_CHECK_FIELDS = ("phoneNumber", "chatId", "force")
_LEGACY_CHECK_FIELDS = ("phoneNumber", "force")


class Action(enum.Enum):
    """How the HTTP layer delivers a reply."""

    RESPOND = "respond"
    DROP = "drop"  # close the connection, send nothing
    HANG = "hang"  # send nothing for ``Reply.hang_s`` seconds, then close


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer: status, body, extra headers, and how to deliver it (after ``delay_s``)."""

    status: int
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    action: Action = Action.RESPOND
    delay_s: float = 0.0
    hang_s: float = 0.0


def error_body(status: int, message: str) -> bytes:
    return json.dumps({"code": status, "description": message}).encode()


def json_reply(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, json.dumps(payload).encode(), headers=headers)


def _nginx_page(status: int, reason: str) -> Reply:
    page = (
        f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}"
        "</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
    return Reply(status, page.encode(), content_type="text/html")


UNAUTHORIZED = Reply(401, content_type=None)
FORBIDDEN = Reply(403, error_body(403, "Forbidden"))
NOT_FOUND = Reply(404, error_body(404, "Not Found"))
NO_CONTENT = Reply(204, content_type=None)
RATE_LIMITED = Reply(429, content_type=None)
_FAULT_REPLIES: dict[Fault, Reply] = {
    Fault.TIMEOUT_LIMIT: Reply(400, error_body(400, MSG_TIMEOUT_LIMIT)),
    Fault.STARTING: Reply(400, error_body(400, MSG_STARTING)),
    Fault.RATE_LIMITED: RATE_LIMITED,
    Fault.CLIENT_CLOSED: Reply(499, error_body(499, "Client Closed Request")),
    Fault.SERVER_ERROR: Reply(500, error_body(500, "Internal Server Error")),
    Fault.BAD_GATEWAY: _nginx_page(502, "Bad Gateway"),
    Fault.UNAVAILABLE: _nginx_page(503, "Service Temporarily Unavailable"),
    Fault.DROP: Reply(NO_RESPONSE, content_type=None, action=Action.DROP),
}
_NOT_AUTHORIZED = Reply(400, error_body(400, MSG_NOT_AUTHORIZED))


class BadCheckRequest(Exception):
    """A checkWhatsapp body GREEN-API rejects with a 400; ``str()`` is the message of the answer."""


@dataclass(frozen=True, slots=True)
class CheckTarget:
    """The number a checkWhatsapp request asks about: phone digits, or a whole ``<digits>@lid`` id."""

    number: str
    is_lid: bool = False


def parse_check_body(
    body: bytes, content_type: str, *, legacy_digits: bool = False, contract: Contract = Contract.CURRENT
) -> CheckTarget:
    """Validate a checkWhatsapp body like GREEN-API does; raise :class:`BadCheckRequest` with its message.

    As with the real server's Node.js body parser, a body not sent as JSON is read as ``{}``. Under the
    legacy contract, ``chatId`` is an unknown key, as it was on older hosts.
    """
    payload: Any = {}
    if "json" in content_type.lower() and body.strip():
        try:
            payload = json.loads(body)
        except UnicodeDecodeError:
            raise BadCheckRequest("Unexpected token in JSON at position 0") from None
        except json.JSONDecodeError as exc:
            if exc.pos >= len(exc.doc):
                raise BadCheckRequest("Unexpected end of JSON input") from None
            raise BadCheckRequest(f"Unexpected token {exc.doc[exc.pos]} in JSON at position {exc.pos}") from None
    if not isinstance(payload, dict):
        raise _validation_failed("'value' must be of type object")
    if not payload:
        raise _validation_failed("'value' must have at least 1 key")
    allowed = _LEGACY_CHECK_FIELDS if contract is Contract.LEGACY else _CHECK_FIELDS
    for key in payload:
        if key not in allowed:
            raise _validation_failed(f"'{key}' is not allowed")
    if "force" in payload and not isinstance(payload["force"], bool):
        raise _validation_failed("'force' must be a boolean")
    has_phone, has_chat = "phoneNumber" in payload, "chatId" in payload
    if has_phone and has_chat:
        raise _validation_failed("'value' contains a conflict between exclusive peers [phoneNumber, chatId]")
    if has_phone:
        return CheckTarget(_checked_length(_phone_number_digits(payload["phoneNumber"]), legacy_digits))
    if has_chat:
        return _chat_id_target(payload["chatId"], legacy_digits)
    raise _validation_failed("'value' must contain at least one of [phoneNumber, chatId]")


def _validation_failed(detail: str) -> BadCheckRequest:
    return BadCheckRequest(f"Validation failed. Details: {detail}")


def _phone_number_digits(value: object) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, list | dict):
        raise _validation_failed("'phoneNumber' must be a number")
    if isinstance(value, float):
        raise _validation_failed("'phoneNumber' must be an integer")
    text = str(value)
    if text == "":
        raise _validation_failed("'phoneNumber' is not allowed to be empty")
    if not text.isascii() or not text.isdigit():
        raise _validation_failed("'phoneNumber' must contain only digits")
    return text


def _chat_id_target(value: object, legacy_digits: bool) -> CheckTarget:
    if not isinstance(value, str):
        raise _validation_failed("'chatId' must be a string")
    if value == "":
        raise _validation_failed("'chatId' is not allowed to be empty")
    head, _, suffix = value.partition("@")
    if not head.isascii() or not head.isdigit() or suffix not in ("", "c.us", "lid"):
        raise _validation_failed("'chatId' must be one of the next formats: 'phone_number@c.us' or 'lid@lid'")
    if suffix == "lid":
        return CheckTarget(value, is_lid=True)
    return CheckTarget(_checked_length(head, legacy_digits))


def _checked_length(digits: str, legacy_digits: bool) -> str:
    if legacy_digits:
        if len(digits) not in (11, 12):
            raise BadCheckRequest(MSG_BAD_PHONE_LEGACY)
    elif not 11 <= len(digits) <= 16:
        raise BadCheckRequest(MSG_BAD_PHONE_CURRENT)
    return digits


def quota_exceeded_body(used: int, total: int) -> bytes:
    status = {
        "method": "checkwhatsapp",
        "used": used,
        "total": total,
        "status": "QUOTE_EXCEEDED",
        "description": MSG_QUOTA_EXCEEDED,
    }
    return json.dumps({"invokeStatus": status}).encode()


def settings_of(instance: LiveInstance) -> dict[str, Any]:
    """A realistic getSettings answer for the instance."""
    return {
        "wid": f"{instance.phone}@c.us",
        "countryInstance": "ru",
        "typeAccount": "trial" if instance.plan is Plan.DEVELOPER else "business",
        "webhookUrl": "",
        "webhookUrlToken": "",
        "delaySendMessagesMilliseconds": 5000,
        "markIncomingMessagesReaded": "no",
        "markIncomingMessagesReadedOnReply": "no",
        "sharedSession": "no",
        "outgoingWebhook": "yes",
        "outgoingMessageWebhook": "yes",
        "outgoingAPIMessageWebhook": "yes",
        "incomingWebhook": "yes",
        "deviceWebhook": "no",
        "statusInstanceWebhook": "no",
        "stateWebhook": "no",
        "enableMessagesHistory": "no",
        "keepOnlineStatus": "no",
        "pollMessageWebhook": "no",
        "incomingBlockWebhook": "yes",
        "incomingCallWebhook": "yes",
        "editedMessageWebhook": "no",
        "deletedMessageWebhook": "no",
    }


class GreenApiService:
    """The emulated API: its instances and the answer to each request. Thread-safe."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.rate_limits = config.rate_limits
        self.legacy_digits = config.legacy_digits
        self.numbers = config.numbers
        self.chat_id_style = ChatIdStyle.parse(config.chat_id_style)
        self.contract = Contract.parse(config.contract)  # the control API may switch it while serving
        self._instances: dict[str, LiveInstance] = {}
        self._lock = threading.Lock()
        for spec in config.instances:
            self.add_instance(spec)

    def set_contract(self, contract: Contract | str) -> None:
        """Serve the ``current`` or the ``legacy`` checkWhatsapp contract from the next request on."""
        self.contract = Contract.parse(contract)

    # --- instances -----------------------------------------------------------------------------------------

    def add_instance(self, spec: EmulatedInstance) -> LiveInstance:
        live = LiveInstance(spec, self.rate_limits)
        with self._lock:
            if spec.id_instance in self._instances:
                raise ValueError(f"instance {spec.id_instance} already exists")
            self._instances = {**self._instances, spec.id_instance: live}
        return live

    def instance(self, id_instance: str | int) -> LiveInstance:
        try:
            return self._instances[str(id_instance)]
        except KeyError:
            raise KeyError(f"the emulator has no instance {id_instance}") from None

    def instances(self) -> list[LiveInstance]:
        return list(self._instances.values())

    # --- requests ------------------------------------------------------------------------------------------

    @staticmethod
    def _path_parts(path: str) -> list[str] | None:
        """``["", "waInstance{id}", method(, token)]`` of a GREEN-API path, or None for any other path."""
        parts = path.partition("?")[0].split("/")
        if len(parts) == 5 and parts[4] == "":
            parts.pop()
        if len(parts) not in (3, 4) or parts[0] != "" or not parts[1].startswith("waInstance"):
            return None
        return parts

    def addressee(self, path: str) -> tuple[LiveInstance, str] | None:
        """The instance and canonical method a request path is for, or None when it names no instance."""
        parts = self._path_parts(path)
        instance = self._instances.get(parts[1][len("waInstance") :]) if parts is not None else None
        return (instance, canonical_method(parts[2])) if instance is not None and parts is not None else None

    def handle(self, verb: str, path: str, content_type: str, body: bytes) -> Reply:
        """Answer one request to ``/waInstance{idInstance}/{method}/{apiTokenInstance}``."""
        parts = self._path_parts(path)
        if parts is None:
            return NOT_FOUND
        instance = self._instances.get(parts[1][len("waInstance") :])
        if instance is None:
            return FORBIDDEN
        method = canonical_method(parts[2])
        token = parts[3] if len(parts) == 4 else ""
        if token != instance.api_token:
            instance.record(method, 401)
            return UNAUTHORIZED
        expected_verb = API_METHODS.get(method)
        if expected_verb is None or (verb != expected_verb and verb != "OPTIONS"):
            instance.record(method, 404)
            return NOT_FOUND
        if verb == "OPTIONS":
            instance.record(method, 204)
            return NO_CONTENT
        admission = instance.admit(method)
        reply = self._answer(instance, method, admission, content_type, body, path)
        if admission.delay_s:
            reply = replace(reply, delay_s=admission.delay_s)
        return reply

    def _answer(
        self,
        instance: LiveInstance,
        method: str,
        admission: Admission,
        content_type: str,
        body: bytes,
        path: str,
    ) -> Reply:
        if not admission.allowed:
            instance.record(method, 429)
            if instance.retry_after_s is not None:
                return Reply(429, content_type=None, headers=(("Retry-After", str(instance.retry_after_s)),))
            return RATE_LIMITED
        if admission.fault is not Fault.OK:
            reply = self._fault_reply(instance, admission.fault, path)
            instance.record(method, reply.status)
            return reply
        rate_headers: tuple[tuple[str, str], ...] = ()
        if admission.limit:
            rate_headers = (
                ("X-RateLimit-Remaining", str(admission.remaining)),
                ("X-RateLimit-Replenish-Rate", f"{admission.limit:g}"),
            )
        if method == CHECK_WHATSAPP:
            return self._check_whatsapp(instance, admission.state, content_type, body, rate_headers)
        instance.record(method, 200)
        if method == GET_STATE_INSTANCE:
            if admission.state is InstanceState.CREATING:
                return Reply(200, b"null", headers=rate_headers)
            return json_reply(200, {"stateInstance": admission.state.value}, rate_headers)
        assert method == GET_SETTINGS
        return json_reply(200, settings_of(instance), rate_headers)

    def _check_whatsapp(
        self,
        instance: LiveInstance,
        state: InstanceState,
        content_type: str,
        body: bytes,
        rate_headers: tuple[tuple[str, str], ...],
    ) -> Reply:
        try:
            target = parse_check_body(body, content_type, legacy_digits=self.legacy_digits, contract=self.contract)
        except BadCheckRequest as exc:
            instance.record(CHECK_WHATSAPP, 400)
            return Reply(400, error_body(400, str(exc)), headers=rate_headers)
        if not state.answers_checks:
            instance.record(CHECK_WHATSAPP, 400)
            return _NOT_AUTHORIZED
        if not instance.spend_check(target.number):
            instance.record(CHECK_WHATSAPP, 466)
            return Reply(466, quota_exceeded_body(instance.quota_used, instance.monthly_quota))
        exists = self.numbers.has_whatsapp(target.number)
        if not exists or self.contract is Contract.LEGACY or self.chat_id_style is ChatIdStyle.NONE:
            answer: dict[str, Any] = {"existsWhatsapp": exists}
        elif target.is_lid:
            answer = {"existsWhatsapp": True, "chatId": target.number}
        elif self.chat_id_style is ChatIdStyle.LID:
            answer = {"existsWhatsapp": True, "chatId": fake_lid(target.number)}
        else:
            answer = {"existsWhatsapp": True, "chatId": f"{target.number}@c.us"}
        return json_reply(200, answer, rate_headers)

    @staticmethod
    def _fault_reply(instance: LiveInstance, fault: Fault, path: str) -> Reply:
        plan = instance.faults
        if fault is Fault.ECHO_400:
            return Reply(400, error_body(400, f"unexpected request {path}"))
        if fault is Fault.ECHO_500:
            return Reply(500, error_body(500, f"Internal Server Error while serving {path}"))
        if fault is Fault.RATE_LIMITED_RETRY_AFTER:
            retry_after = plan.retry_after_s if plan is not None else 1
            return Reply(429, content_type=None, headers=(("Retry-After", str(retry_after)),))
        if fault is Fault.HANG:
            hang_s = plan.hang_s if plan is not None else 5.0
            return Reply(NO_RESPONSE, content_type=None, action=Action.HANG, hang_s=hang_s)
        return _FAULT_REPLIES[fault]
