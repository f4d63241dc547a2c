"""What the emulator serves: instances, plans, states, rate limits, and the whole configuration.

The emulator plays GREEN-API's side of the wire, so it deliberately shares no types with the provider's
client: a fake that reuses the code under test would agree with its bugs.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_greenapi.emulator._keys import reject_unknown_keys
from airflow_provider_greenapi.emulator.api_methods import CHECK_WHATSAPP, GET_SETTINGS, GET_STATE_INSTANCE
from airflow_provider_greenapi.emulator.faults import FaultPlan
from airflow_provider_greenapi.emulator.numbers_rule import NumbersRule

DEFAULT_ID_INSTANCE = "1101000001"
DEFAULT_API_TOKEN = "emulator-token-0001"  # noqa: S105  (the emulator's own fake token)
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def _parse_enum(enum_class: type[enum.Enum], value: object, what: str) -> Any:
    if isinstance(value, enum_class):
        return value
    for member in enum_class:
        if member.value == value:
            return member
    choices = ", ".join(str(member.value) for member in enum_class)
    raise ValueError(f"unknown {what} {value!r}; choose one of: {choices}")


class Plan(str, enum.Enum):
    """A GREEN-API tariff, which sets the monthly checkWhatsapp quota."""

    DEVELOPER = "developer"
    BUSINESS = "business"

    @classmethod
    def parse(cls, value: object) -> Plan:
        return _parse_enum(cls, value, "plan")

    @property
    def monthly_checks(self) -> int:
        return 100 if self is Plan.DEVELOPER else 30_000


class InstanceState(str, enum.Enum):
    """``stateInstance`` as getStateInstance reports it; ``creating`` is answered as JSON ``null``."""

    AUTHORIZED = "authorized"
    NOT_AUTHORIZED = "notAuthorized"
    BLOCKED = "blocked"
    SLEEP_MODE = "sleepMode"
    STARTING = "starting"
    YELLOW_CARD = "yellowCard"
    CREATING = "creating"

    @classmethod
    def parse(cls, value: object) -> InstanceState:
        return _parse_enum(cls, value, "instance state")

    @property
    def answers_checks(self) -> bool:
        """The real API still answers checkWhatsapp in yellowCard; every other non-authorized state fails."""
        return self in (InstanceState.AUTHORIZED, InstanceState.YELLOW_CARD)


class Contract(str, enum.Enum):
    """Which checkWhatsapp contract the emulator serves.

    ``current``: the body names the number as ``chatId`` (bare digits, ``…@c.us`` or ``…@lid``) or as the
    deprecated ``phoneNumber``, and an existing number's answer carries its LID in ``chatId``.
    ``legacy``: an older host's contract: only ``phoneNumber``; a ``chatId`` is a 400 ``Validation failed``
    and answers carry no ``chatId``.
    """

    CURRENT = "current"
    LEGACY = "legacy"

    @classmethod
    def parse(cls, value: object) -> Contract:
        return _parse_enum(cls, value, "contract")


class ChatIdStyle(str, enum.Enum):
    """Which ``chatId`` a 200 answer of checkWhatsapp carries when the number exists (current contract)."""

    C_US = "c.us"  # "<digits>@c.us"
    LID = "lid"  # a deterministic fake "<15 digits>@lid", like the newest API
    NONE = "none"  # only {"existsWhatsapp": ...}, like the older API

    @classmethod
    def parse(cls, value: object) -> ChatIdStyle:
        return _parse_enum(cls, value, "chat id style")


@dataclass(frozen=True)
class StateChange:
    """Scripted state change: after ``after_check_calls`` more checkWhatsapp calls, become ``state``."""

    after_check_calls: int
    state: InstanceState | str

    def __post_init__(self) -> None:
        if isinstance(self.after_check_calls, bool) or not isinstance(self.after_check_calls, int):
            raise ValueError("after_check_calls must be an integer")
        if self.after_check_calls < 0:
            raise ValueError("after_check_calls must not be negative")
        object.__setattr__(self, "state", InstanceState.parse(self.state))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StateChange:
        reject_unknown_keys(data, {"after_check_calls", "state"}, "state change")
        return cls(after_check_calls=data.get("after_check_calls", 0), state=data.get("state", ""))


@dataclass
class EmulatedInstance:
    """One GREEN-API instance as configured. ``monthly_quota`` overrides the plan's quota when set."""

    id_instance: str
    api_token: str = field(repr=False)
    plan: Plan | str = Plan.DEVELOPER
    state: InstanceState | str = InstanceState.AUTHORIZED
    monthly_quota: int | None = None
    phone: str | None = None  # the instance's own number, shown as getSettings' wid; derived when None
    faults: FaultPlan | None = None
    state_changes: Sequence[StateChange] = ()

    def __post_init__(self) -> None:
        self.id_instance = str(self.id_instance).strip()
        if not self.id_instance.isascii() or not self.id_instance.isdigit():
            raise ValueError(f"id_instance must be digits only (got {self.id_instance!r})")
        token = self.api_token
        if not isinstance(token, str) or not token or not token.isprintable() or any(c in token for c in "/?# "):
            raise ValueError(f"instance {self.id_instance}: api_token must be a non-empty URL path segment")
        self.plan = Plan.parse(self.plan)
        self.state = InstanceState.parse(self.state)
        if self.monthly_quota is not None and (
            isinstance(self.monthly_quota, bool) or not isinstance(self.monthly_quota, int) or self.monthly_quota < 0
        ):
            raise ValueError(f"instance {self.id_instance}: monthly_quota must be a non-negative integer")
        if self.phone is None:
            self.phone = "1100" + self.id_instance[-7:].rjust(7, "0")
        self.state_changes = tuple(self.state_changes)

    @property
    def total_quota(self) -> int:
        return self.monthly_quota if self.monthly_quota is not None else Plan.parse(self.plan).monthly_checks

    @classmethod
    def from_spec(cls, spec: str) -> EmulatedInstance:
        """Parse the CLI form ``ID:TOKEN[:PLAN[:STATE]]``; PLAN may also be a monthly quota number."""
        parts = spec.split(":")
        if not 2 <= len(parts) <= 4 or not parts[0] or not parts[1]:
            raise ValueError(f"instance spec {spec!r} is not ID:TOKEN[:PLAN[:STATE]]")
        id_instance, api_token, *rest = parts
        plan: str = rest[0] if rest and rest[0] else Plan.DEVELOPER.value
        quota: int | None = None
        if plan.isdigit():
            plan, quota = Plan.DEVELOPER.value, int(plan)
        state = rest[1] if len(rest) > 1 and rest[1] else InstanceState.AUTHORIZED.value
        return cls(id_instance, api_token, plan=plan, state=state, monthly_quota=quota)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EmulatedInstance:
        """Build from the JSON shape of the config file and the control API (snake_case keys)."""
        reject_unknown_keys(
            data,
            {
                "id_instance",
                "api_token",
                "plan",
                "state",
                "monthly_quota",
                "phone",
                "faults",
                "state_changes",
            },
            "instance",
        )
        faults = data.get("faults")
        return cls(
            id_instance=str(data.get("id_instance", "")),
            api_token=data.get("api_token", ""),
            plan=data.get("plan", Plan.DEVELOPER),
            state=data.get("state", InstanceState.AUTHORIZED),
            monthly_quota=data.get("monthly_quota"),
            phone=data.get("phone"),
            faults=FaultPlan.from_dict(faults) if faults is not None else None,
            state_changes=tuple(StateChange.from_dict(item) for item in data.get("state_changes", ())),
        )


def default_instance() -> EmulatedInstance:
    return EmulatedInstance(DEFAULT_ID_INSTANCE, DEFAULT_API_TOKEN)


@dataclass(frozen=True)
class RateLimits:
    """Per-instance, per-method ceilings in requests per second (GREEN-API's documented values by default).

    A ceiling of 0 disables the limit of that method. ``retry_after_s`` adds a ``Retry-After`` header to
    the 429 answers (the real API usually sends none).
    """

    check_whatsapp: float = 10.0
    get_state_instance: float = 1.0
    get_settings: float = 1.0
    retry_after_s: int | None = None

    def per_second(self, method: str) -> float:
        return {
            CHECK_WHATSAPP: self.check_whatsapp,
            GET_STATE_INSTANCE: self.get_state_instance,
            GET_SETTINGS: self.get_settings,
        }.get(method, 0.0)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RateLimits:
        reject_unknown_keys(
            data, {"check_whatsapp", "get_state_instance", "get_settings", "retry_after_s"}, "rate_limits"
        )
        return cls(**data)


@dataclass
class EmulatorConfig:
    """Everything a running emulator needs; built by the CLI from flags and an optional JSON file."""

    instances: list[EmulatedInstance] = field(default_factory=lambda: [default_instance()])
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    rate_limits: RateLimits | None = field(default_factory=RateLimits)
    legacy_digits: bool = False
    numbers: NumbersRule = field(default_factory=NumbersRule)
    chat_id_style: ChatIdStyle | str = ChatIdStyle.LID
    contract: Contract | str = Contract.CURRENT
    log_requests: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Normalise the fields set after construction and check that they fit together."""
        self.chat_id_style = ChatIdStyle.parse(self.chat_id_style)
        self.contract = Contract.parse(self.contract)
        seen: set[str] = set()
        for instance in self.instances:
            if instance.id_instance in seen:
                raise ValueError(f"instance {instance.id_instance} is configured twice")
            seen.add(instance.id_instance)

    @classmethod
    def from_file(cls, path: str | Path) -> EmulatorConfig:
        """Load the JSON config file; relative ``numbers.file`` paths are relative to it."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read emulator config {path}: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"emulator config {path} must hold a JSON object")
        return cls.from_dict(data, base_dir=path.parent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base_dir: Path | None = None) -> EmulatorConfig:
        """The config file's JSON object (request logging is not in it: the CLI's ``--quiet`` sets it)."""
        allowed = {"instances", "host", "port", "rate_limits", "legacy_digits", "numbers", "chat_id_style",
                   "contract"}
        reject_unknown_keys(data, allowed, "emulator config")
        config = cls()
        if "instances" in data:
            config.instances = [EmulatedInstance.from_dict(item) for item in data["instances"]]
        if "host" in data:
            config.host = str(data["host"])
        if "port" in data:
            config.port = int(data["port"])
        if "rate_limits" in data:
            limits = data["rate_limits"]
            config.rate_limits = None if limits is None else RateLimits.from_dict(limits)
        if "numbers" in data:
            config.numbers = NumbersRule.from_dict(data["numbers"], base_dir=base_dir)
        config.legacy_digits = bool(data.get("legacy_digits", False))
        config.chat_id_style = data.get("chat_id_style", ChatIdStyle.LID)
        config.contract = data.get("contract", Contract.CURRENT)
        config.validate()
        return config
