"""Normalise and validate phone numbers locally before they cost checkWhatsapp quota.

GREEN-API's checkWhatsapp wants international digits only, 11 to 16 of them, and answers misleadingly for
some national formats (see the "Number quirks" of the contract). This package turns whatever a table or an
upstream task holds (``"+7 (912) 345-67-89"``, ``"8 912 345 67 89"``, ``79123456789``, ``"…@c.us"``) into
those digits, or says in one short sentence why it cannot:

* :mod:`.values`: from a Python value or a text to digits, or the reason it is not a number;
* :mod:`.reading`: which country and national number those digits are, on top of ``phonenumbers.parse``
  and its possibility check (a number is rejected on its *length*, never on its number range);
* :mod:`.quirks`: GREEN-API's documented country quirks, one table of switchable :class:`NumberRule` s;
* :mod:`.masking`: numbers shortened for logs.

docs/numbers.md explains every step. Nothing here imports Airflow.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers

from airflow_provider_greenapi.numbers.masking import mask_phone_number
from airflow_provider_greenapi.numbers.quirks import (
    DEFAULT_RULES,
    MAX_DIGITS,
    MIN_DIGITS,
    NUMBER_RULES,
    NumberRule,
    NumberRuleSpec,
    RuleStage,
)
from airflow_provider_greenapi.numbers.reading import Region, region, resolve
from airflow_provider_greenapi.numbers.values import read_value

__all__ = [
    "DEFAULT_RULES",
    "MAX_DIGITS",
    "MIN_DIGITS",
    "NUMBER_RULES",
    "NormalizedNumber",
    "NumberRule",
    "NumberRuleSpec",
    "PhoneNumberNormalizer",
    "RuleStage",
    "mask_phone_number",
    "normalize_phone_number",
]


@dataclass(frozen=True, slots=True)
class NormalizedNumber:
    """The outcome of normalising one input value.

    ``digits`` holds the international digits (no ``+``) to send to GREEN-API, or ``None`` when the value
    cannot be a number GREEN-API accepts; ``reason`` then says why in one sentence that never repeats the
    number itself (reasons end up in logs).
    """

    raw: str
    digits: str | None
    reason: str | None
    rules_applied: tuple[str, ...] = ()

    @property
    def is_valid(self) -> bool:
        return self.digits is not None


_RULES_BY_NAME = {rule.value: rule for rule in NumberRule}


def _coerce_region(default_region: str | None) -> Region | None:
    if default_region is None or default_region == "":
        return None
    if not isinstance(default_region, str):
        raise ValueError(f"default_region must be a two-letter region code such as 'RU', "
                         f"not {type(default_region).__name__}")
    code = default_region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        hint = " (the United Kingdom is 'GB')" if code == "UK" else ""
        raise ValueError(f"unknown default_region {default_region!r}{hint}: give an ISO 3166-1 alpha-2 "
                         "region code that phonenumbers knows, such as 'RU', 'US' or 'BR'")
    return region(code)


def _coerce_rules(rules: Iterable[NumberRule | str] | None) -> frozenset[NumberRule]:
    if rules is None:
        return DEFAULT_RULES
    if isinstance(rules, str):  # also a NumberRule: one rule, not its characters
        rules = (rules,)
    chosen = set()
    try:
        items = list(rules)
    except TypeError:
        raise ValueError(f"rules must be an iterable of NumberRule, not {type(rules).__name__}") from None
    for item in items:
        if isinstance(item, NumberRule):
            chosen.add(item)
        elif isinstance(item, str) and item.strip().upper() in _RULES_BY_NAME:
            chosen.add(_RULES_BY_NAME[item.strip().upper()])
        else:
            known = ", ".join(_RULES_BY_NAME)
            raise ValueError(f"unknown number rule {item!r}; known rules: {known}")
    return frozenset(chosen)


def _normalize(value: object, home: Region | None, rules: frozenset[NumberRule]) -> NormalizedNumber:
    raw = ""
    try:
        raw, digits, plus, reason = read_value(value)
        if reason is not None:
            return NormalizedNumber(raw, None, reason)
        reading = resolve(digits, plus, home, rules)
        applied = reading.applied if reading.digits is not None else ()
        return NormalizedNumber(raw, reading.digits, reading.reason, applied)
    except Exception as error:  # the promise is: never raise for a value
        return NormalizedNumber(raw, None, f"could not be read (internal error {type(error).__name__})")


def normalize_phone_number(
    value: object,
    default_region: str | None = None,
    rules: Iterable[NumberRule | str] | None = None,
) -> NormalizedNumber:
    """Normalise one value to the international digits checkWhatsapp accepts.

    Never raises for ``value``; raises ``ValueError`` only for an unknown ``default_region`` or rule.
    ``rules=None`` means :data:`DEFAULT_RULES`; pass an empty set to switch every quirk rule off.
    For many values build a :class:`PhoneNumberNormalizer` once instead.
    """
    return _normalize(value, _coerce_region(default_region), _coerce_rules(rules))


class PhoneNumberNormalizer:
    """A reusable, validated configuration: ``normalizer = PhoneNumberNormalizer("RU"); normalizer(x)``."""

    __slots__ = ("_region", "default_region", "rules")

    def __init__(self, default_region: str | None = None,
                 rules: Iterable[NumberRule | str] | None = None) -> None:
        self._region = _coerce_region(default_region)
        self.default_region: str | None = self._region.code if self._region is not None else None
        self.rules: frozenset[NumberRule] = _coerce_rules(rules)

    def __call__(self, value: object) -> NormalizedNumber:
        return _normalize(value, self._region, self.rules)

    @property
    def settings(self) -> str:
        """A short fingerprint of the settings that decide how a value is read (the region, the rules): stored
        beside each result, so that a later run reads an input again when they change."""
        text = f"region={self.default_region or '-'};rules={','.join(sorted(r.value for r in self.rules))}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def __repr__(self) -> str:
        names = ", ".join(sorted(rule.value for rule in self.rules))
        return f"PhoneNumberNormalizer(default_region={self.default_region!r}, rules={{{names}}})"
