"""The connection's settings, each defined once: type, bounds, default, unit and help. Free of Airflow.

Each setting is a field of the dataclass it feeds: :class:`ClientSettings` (how :class:`GreenApiClient` talks to
GREEN-API) or :class:`QuotaSettings` (what the usage ledger enforces). From those fields come

- the checks of a value, whoever sets it (a connection, a task's argument, code building the dataclass);
- :func:`from_extras`: a Connection's extras (JSON values or form text) read, converted and checked;
- :func:`conn_fields`: the connection form's ``conn-fields``, with the same bounds as JSON schema.

So the form and the code accept the same values (tests/test_settings.py runs every bound through both), and
docs/connection.md's table of extras is compared with these definitions by the same test.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar, get_args, get_type_hints

CHAT_ID, PHONE_NUMBER = "chatId", "phoneNumber"
"""checkWhatsapp's request body: GREEN-API's current contract takes the number as ``chatId`` (a string; it also
takes ``…@c.us`` and ``…@lid``); the older one takes ``phoneNumber`` (an integer), now deprecated but kept."""

_SETTING = "greenapi_setting"
_SHOWN_DIGITS = 15  # a longer number is described, not shown: it may be a pasted secret, and it is no setting


def value_shape(value: Any) -> str:
    """What a value looked like, without repeating it unless it is a short number: for messages about a
    setting's value, which may be a secret pasted in the wrong field (``a text of 50 characters``)."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, (int, float)):
        text = format(value, "g") if isinstance(value, float) else str(value)
        return text if len(text) <= _SHOWN_DIGITS else f"a number of {len(text)} characters"
    if isinstance(value, str):
        return f"a text of {len(value)} character{'' if len(value) == 1 else 's'}"
    kinds = {list: "a list", tuple: "a list", dict: "an object"}
    return next((words for kind, words in kinds.items() if isinstance(value, kind)), f"a {type(value).__name__}")


@dataclass(frozen=True)
class Setting:
    """One setting as the form shows it and the code checks it. ``name``, ``kind`` and ``owner`` (the dataclass
    it feeds) come from its field."""

    label: str
    help: str
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""
    choices: tuple[tuple[str, str], ...] = ()  # (value, what it means)
    bounds: str = ""  # why the bounds are where they are
    name: str = ""
    kind: type = str
    owner: type | None = None

    @property
    def allowed(self) -> str:
        """The values accepted, in words: ``at least 0.1 and at most 180 s``."""
        if self.choices:
            return " or ".join(f"{value!r} ({meaning})" for value, meaning in self.choices)
        words = f"at least {self.minimum:g}"  # every number has a lower bound (tests/test_settings.py)
        if self.maximum is not None:
            words += f" and at most {self.maximum:g}"
        return f"{words} {self.unit}".rstrip()

    @property
    def shown_default(self) -> str:
        """The default as the form and the docs show it: ``60``, ``chatId``."""
        return self.default if isinstance(self.default, str) else format(self.default, "g")

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` (as :meth:`parse` read it), or None. The message shows a number, never
        a text (see :func:`value_shape`)."""
        got = f"(got {value_shape(value)})"
        if value is None and self.default is None:
            return None
        if self.kind is str:
            if isinstance(value, str) and (not self.choices or value in dict(self.choices)):
                return None
            return f"{self.name} must be {self.allowed} {got}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{self.name} must be a number {got}"
        if self.kind is int and not float(value).is_integer():
            return f"{self.name} must be a whole number {got}"
        low = -math.inf if self.minimum is None else self.minimum
        high = math.inf if self.maximum is None else self.maximum
        if not low <= value <= high:  # NaN is refused too
            why = f"; {self.bounds}" if self.bounds else ""
            return f"{self.name} must be {self.allowed}{why} {got}"
        return None

    def parse(self, value: Any) -> Any:
        """A connection's value (JSON, or the text of a form field) as the setting's type; ValueError if not."""
        if self.kind is str:
            return str(value).strip()
        try:
            if isinstance(value, bool):  # JSON true is no number, even if Python counts it as 1
                raise TypeError
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name} must be a number (got {value_shape(value)})") from None
        if self.kind is int:
            if not number.is_integer():
                raise ValueError(f"{self.name} must be a whole number (got {value_shape(number)})")
            return int(number)
        return number

    def conn_field(self) -> dict[str, Any]:
        """This setting as a field of the connection form (Airflow's ``conn-fields``).

        Optional (its type admits null) and without a schema default, which Airflow's form would save into
        every connection's extra, where a later change of the default never reaches: the description tells
        the default, and :func:`from_extras` applies it when the key is absent, empty or null."""
        json_type = {int: "integer", float: "number"}.get(self.kind, "string")
        schema: dict[str, Any] = {"type": [json_type, "null"]}
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.choices:  # a pattern, not an enum: with an enum Airflow's form stores a value in every connection
            schema["pattern"] = r"^\s*(" + "|".join(value for value, _ in self.choices) + r")\s*$"
        description = f"{self.help} Allowed: {self.allowed}."
        if self.default is not None:
            description += f" Default: {self.shown_default}."
        return {"label": self.label, "description": description, "schema": schema}


def setting(default: Any, label: str, help: str, **bounds: Any) -> Any:
    """A dataclass field holding its :class:`Setting` (see :class:`ClientSettings`)."""
    return field(default=default, metadata={_SETTING: Setting(label, help, default, **bounds)})


def settings_of(owner: type) -> tuple[Setting, ...]:
    """The settings of a dataclass defined with :func:`setting`, with their names and types filled in."""
    if owner not in _FOUND:
        hints = get_type_hints(owner)
        _FOUND[owner] = tuple(
            replace(item.metadata[_SETTING], name=item.name, owner=owner,
                    kind=next((k for k in get_args(hints[item.name]) if k is not type(None)), hints[item.name]))
            for item in fields(owner))
    return _FOUND[owner]


_FOUND: dict[type, tuple[Setting, ...]] = {}


class _Checked:
    """Refuses, on construction, any field value its :class:`Setting` does not allow (all problems at once)."""

    def __post_init__(self) -> None:
        problems = [p for s in settings_of(type(self)) if (p := s.problem(getattr(self, s.name))) is not None]
        if problems:
            raise ValueError("Invalid GREEN-API settings: " + "; ".join(problems) + ".")


@dataclass(frozen=True)
class ClientSettings(_Checked):
    """How the client talks to GREEN-API; every field has a safe default (docs/connection.md says why)."""

    timeout: float = setting(
        60.0, "Timeout (seconds)",
        "Seconds to wait for each GREEN-API answer before the try counts as failed and is retried (slow answers "
        "are normal: GREEN-API asks WhatsApp first).",
        minimum=0.1, maximum=180, unit="s",
        bounds="180: what GREEN-API's own SDK waits per try")
    requests_per_second: float = setting(
        5.0, "checkWhatsapp requests per second",
        "Pace of checkWhatsapp calls for this instance. GREEN-API allows 10; staying well under it lowers the "
        "risk of a WhatsApp ban.",
        minimum=0.1, maximum=10, unit="a second", bounds="10: GREEN-API's limit per instance")
    max_in_flight: int = setting(
        64, "Concurrent requests (cap)",
        "Most checkWhatsapp requests waiting for an answer at once. A run keeps as many in flight as the pace "
        "needs at the answer time it observes, up to this cap (64: 5 s answers at 10/s).",
        minimum=1, maximum=256,
        bounds="256: 10/s with 25 s answers; each request in flight holds an HTTP connection")
    max_retries: int = setting(
        5, "Retries",
        "Retries of a transient failure (429, 499, 5xx, timeouts) before the number is marked error.",
        minimum=0, maximum=20, bounds="20: at 30 s a retry, a number already waits 10 minutes")
    retry_backoff: float = setting(
        2.0, "Retry backoff (seconds)",
        "First wait before a retry; it doubles on each retry, up to the longest retry wait.",
        minimum=0, maximum=60, unit="s", bounds="a first wait over a minute is an outage, for the next run")
    retry_backoff_max: float = setting(
        30.0, "Longest retry wait (seconds)",
        "The longest wait before a retry, also for a 429's Retry-After.",
        minimum=0, maximum=300, unit="s",
        bounds="20 retries five minutes apart hold a number for over an hour")
    check_whatsapp_body: str = setting(
        CHAT_ID, "checkWhatsapp request body",
        "How a checkWhatsapp request names the number. A host that refuses chatId is detected and asked with "
        "phoneNumber.",
        choices=((CHAT_ID, "GREEN-API's current contract"), (PHONE_NUMBER, "older hosts")))


@dataclass(frozen=True)
class QuotaSettings(_Checked):
    """What the usage ledger (warehouse/ledger.py) enforces for the instance."""

    monthly_quota: int | None = setting(
        None, "Monthly checks quota",
        "checkWhatsapp calls the plan allows a month (Developer: 100, Business: 30000). With a warehouse usage "
        "ledger, runs stop before crossing it. Empty: not enforced.",
        minimum=0)


CONNECTION_SETTINGS: tuple[Setting, ...] = settings_of(ClientSettings) + settings_of(QuotaSettings)
"""Every setting a GREEN-API connection's extras may hold, in the form's order."""

_Owner = TypeVar("_Owner", ClientSettings, QuotaSettings)


def from_extras(owner: type[_Owner], extras: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> _Owner:
    """``owner`` from a connection's ``extras``, then ``overrides`` (a task's arguments; None ignored).

    A value absent, null or empty takes the default. Raises ValueError naming every bad value and what is
    allowed (the caller adds which connection)."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for item in settings_of(owner):
        source, value = "the task's", (overrides or {}).get(item.name)
        if value is None:
            source, value = "extra", extras.get(item.name)
        if value is None or value == "":
            continue
        try:
            parsed = item.parse(value)
            problem = item.problem(parsed)
        except ValueError as error:
            problem = str(error)
        if problem is None:
            values[item.name] = parsed
        else:
            problems.append(f"{source} {problem}")
    if problems:
        raise ValueError("; ".join(problems) + ".")
    return owner(**values)


def check_extra_names(extras: Mapping[str, Any]) -> None:
    """Refuse an extra that is no setting (ValueError naming it, the close match and the settings): a typo such
    as ``request_per_second`` would otherwise be ignored and the default used. Not refused: an empty or null
    value (a form field left empty), Airflow's own ``__…`` keys and other connection types' ``extra__<type>__…``
    keys (Airflow 2's forms wrote them; a connection whose type was changed keeps them)."""
    names = [item.name for item in CONNECTION_SETTINGS]
    unknown = sorted(key for key, value in extras.items() if key not in names and value is not None and value != ""
                     and not key.startswith(("__", "extra__")))
    if not unknown:
        return
    named = []
    for key in unknown:
        close = difflib.get_close_matches(key, names, n=1, cutoff=0.6) or [
            name for name in names if len(key) >= 4 and (key in name or name in key)]
        named.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise ValueError(
        f"unknown extra {', '.join(named)}: correct or remove it (the extras of a GREEN-API connection are "
        f"{', '.join(names)}).")


def conn_fields() -> dict[str, dict[str, Any]]:
    """The connection form's extra fields (``conn-fields`` of get_provider_info()), one per setting."""
    return {item.name: item.conn_field() for item in CONNECTION_SETTINGS}
