"""GREEN-API's number quirks as one table, and the few fixed facts about numbers it accepts.

:data:`NUMBER_RULES` holds one row per quirk GREEN-API documents in its FAQ ("Features of the
CheckWhatsapp method with numbers of some countries"); each is switched by a :class:`NumberRule`, named as
in docs/numbers.md, step 5. Below the table: the limits of checkWhatsapp (11 to 16 digits) and the facts
that are not switchable (Mexico's ``521`` form, NANP area codes, Argentina's ``15``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass

from phonenumbers import PhoneMetadata

MIN_DIGITS = 11
"""Fewest international digits checkWhatsapp accepts (``bad phone number, valid from 11 to 16 digits``)."""
MAX_DIGITS = 16
"""Most international digits checkWhatsapp accepts."""


class NumberRule(str, enum.Enum):
    """One switch per number quirk GREEN-API documents; the value equals the name."""

    US_CA_EXTRA_ZEROS = "US_CA_EXTRA_ZEROS"
    RU_KZ_TEN_DIGITS = "RU_KZ_TEN_DIGITS"
    RU_TRUNK_EIGHT = "RU_TRUNK_EIGHT"
    MEXICO_MOBILE_ONE = "MEXICO_MOBILE_ONE"
    BRAZIL_NINTH_DIGIT = "BRAZIL_NINTH_DIGIT"
    ARGENTINA_MOBILE_NINE = "ARGENTINA_MOBILE_NINE"

    def __str__(self) -> str:
        return self.value


class RuleStage(str, enum.Enum):
    """Where in the pipeline a rule acts, which also fixes what its ``transform`` receives."""

    BARE_DIGITS = "bare digits"
    """Digits written without ``+`` and normalised without ``default_region``. The transform maps them to
    international digits. The guess must fit the country's number pattern, and must be a valid number
    (phonenumbers' ranges) when the digits as written are also a possible international number."""
    COUNTRY = "country"
    """International numbers of one country calling code. The transform maps the national significant
    number (the digits after the country code) to a new one."""


@dataclass(frozen=True, slots=True)
class NumberRuleSpec:
    """One row of :data:`NUMBER_RULES`: a documented GREEN-API quirk and how it is corrected."""

    rule: NumberRule
    description: str
    example: tuple[str, str]
    default: bool
    stage: RuleStage
    transform: Callable[[str], str | None]
    """Returns the corrected digits, or ``None`` when the rule does not apply."""
    country_code: int | None = None
    """For :attr:`RuleStage.COUNTRY` rules: the calling code they apply to."""


def _us_ca_extra_zeros(nsn: str) -> str | None:
    if len(nsn) >= 11 and nsn[0] == "0":
        stripped = nsn.lstrip("0")
        if len(stripped) == 10:
            return stripped
    return None


def _ru_kz_ten_digits(digits: str) -> str | None:
    return "7" + digits if len(digits) == 10 else None


def _ru_trunk_eight(digits: str) -> str | None:
    return "7" + digits[1:] if len(digits) == 11 and digits[0] == "8" else None


def _mexico_mobile_one(nsn: str) -> str | None:
    return nsn[1:] if len(nsn) == 11 and nsn[0] == "1" else None


# Area codes (DDD) where WhatsApp keeps the ninth digit of mobile numbers, per GREEN-API's FAQ.
_BRAZIL_NINE_AREAS = frozenset(
    ["11", "12", "13", "14", "15", "16", "17", "18", "19", "21", "22", "24", "27", "28"]
)
_BRAZIL_MOBILE_FIRST = frozenset("6789")


def _brazil_ninth_digit(nsn: str) -> str | None:
    area = nsn[:2]
    if len(nsn) == 10 and area in _BRAZIL_NINE_AREAS and nsn[2] in _BRAZIL_MOBILE_FIRST:
        return area + "9" + nsn[2:]
    if (
        len(nsn) == 11
        and nsn[2] == "9"
        and nsn[3] in _BRAZIL_MOBILE_FIRST
        and area not in _BRAZIL_NINE_AREAS
        and "0" not in area
    ):
        return area + nsn[3:]
    return None


def _metadata_pattern(region: str, which: str) -> str:
    """A pattern of phonenumbers' metadata: the region's ``general`` number pattern, or its ``national
    prefix`` pattern for parsing."""
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None:  # pragma: no cover - RU and AR are in every phonenumbers release
        raise RuntimeError(f"phonenumbers has no metadata for {region}")
    if which == "general":
        desc = metadata.general_desc
        return (desc.national_number_pattern if desc is not None else None) or ""
    return metadata.national_prefix_for_parsing or ""


# phonenumbers' national-prefix pattern for AR captures the area code in group 1 when it is followed by the
# mobile prefix "15"; reusing it keeps the list of Argentine area codes out of this module.
_ARGENTINA_15 = re.compile(_metadata_pattern("AR", "national prefix"))


def _argentina_mobile_nine(nsn: str) -> str | None:
    has_nine = nsn[:1] == "9"
    body = nsn[1:] if has_nine else nsn
    match = _ARGENTINA_15.match(body)
    if match is None or match.group(1) is None:
        return None
    fixed = "9" + match.group(1) + body[match.end() :]
    return fixed if len(fixed) == 11 else None


NUMBER_RULES: tuple[NumberRuleSpec, ...] = (
    NumberRuleSpec(
        NumberRule.US_CA_EXTRA_ZEROS,
        "USA/Canada: drop the zeros GREEN-API would wrongly accept after the leading 1 (12+ digits)",
        ("1002123456789", "12123456789"),
        default=True,
        stage=RuleStage.COUNTRY,
        transform=_us_ca_extra_zeros,
        country_code=1,
    ),
    NumberRuleSpec(
        NumberRule.RU_KZ_TEN_DIGITS,
        "Russia/Kazakhstan: prepend 7 to a 10-digit number given without country code or region",
        ("7473456789", "77473456789"),
        default=True,
        stage=RuleStage.BARE_DIGITS,
        transform=_ru_kz_ten_digits,
    ),
    NumberRuleSpec(
        NumberRule.RU_TRUNK_EIGHT,
        "Russia/Kazakhstan: turn the trunk prefix 8 of an 11-digit number into the country code 7",
        ("89123456789", "79123456789"),
        default=True,
        stage=RuleStage.BARE_DIGITS,
        transform=_ru_trunk_eight,
    ),
    NumberRuleSpec(
        NumberRule.MEXICO_MOBILE_ONE,
        "Mexico: drop the 1 after 52 (off by default: GREEN-API says some mobiles need it, others not)",
        ("5215512345678", "525512345678"),
        default=False,
        stage=RuleStage.COUNTRY,
        transform=_mexico_mobile_one,
        country_code=52,
    ),
    NumberRuleSpec(
        NumberRule.BRAZIL_NINTH_DIGIT,
        "Brazil: mobile 9th digit present for area codes 11-19, 21, 22, 24, 27, 28, absent elsewhere",
        ("551187654321", "5511987654321"),
        default=True,
        stage=RuleStage.COUNTRY,
        transform=_brazil_ninth_digit,
        country_code=55,
    ),
    NumberRuleSpec(
        NumberRule.ARGENTINA_MOBILE_NINE,
        "Argentina: a mobile written with 15 after the area code becomes 549 + area + number",
        ("54111512345678", "5491112345678"),
        default=True,
        stage=RuleStage.COUNTRY,
        transform=_argentina_mobile_nine,
        country_code=54,
    ),
)

DEFAULT_RULES: frozenset[NumberRule] = frozenset(spec.rule for spec in NUMBER_RULES if spec.default)

BARE_DIGIT_RULES = tuple(spec for spec in NUMBER_RULES if spec.stage is RuleStage.BARE_DIGITS)
"""The rules that guess a country for digits written without ``+`` and read without ``default_region``."""

_COUNTRY_RULES: dict[int, tuple[NumberRuleSpec, ...]] = {}
for _spec in NUMBER_RULES:
    if _spec.country_code is not None:
        _COUNTRY_RULES[_spec.country_code] = (*_COUNTRY_RULES.get(_spec.country_code, ()), _spec)
del _spec


def apply_country_rules(country_code: int, nsn: str, rules: frozenset[NumberRule]) -> tuple[str, tuple[str, ...]]:
    """The national number after the enabled rules of its country, and the names of those that changed it."""
    applied: tuple[str, ...] = ()
    for spec in _COUNTRY_RULES.get(country_code, ()):
        if spec.rule in rules:
            fixed = spec.transform(nsn)
            if fixed is not None and fixed != nsn:
                nsn = fixed
                applied = (*applied, spec.rule.value)
    return nsn, applied


# --------------------------------------------------------------------------------------------------
# Facts that are not switchable
# --------------------------------------------------------------------------------------------------

MEXICO = 52
ARGENTINA = 54


def is_mexican_mobile_one(country_code: int, nsn: str) -> bool:
    """``52`` + ``1`` + 10 digits: phonenumbers calls it too long, GREEN-API documents it as the form some
    WhatsApp accounts have, so it is accepted as given (in international form only)."""
    return country_code == MEXICO and len(nsn) == 11 and nsn[0] == "1"


def is_impossible_nanp(country_code: int, nsn: str) -> bool:
    """+1 area codes never start with 0 or 1 (a rule of the North American numbering plan, not range data)."""
    return country_code == 1 and nsn[0] in "01"


_RU_KZ_PATTERN = re.compile(_metadata_pattern("RU", "general"))


def fits_russia_kazakhstan(nsn: str) -> bool:
    """A BARE_DIGITS guess (+7) must fit the overall Russia/Kazakhstan pattern (3, 4, 7, 8 or 9 + 9 digits)."""
    return _RU_KZ_PATTERN.fullmatch(nsn) is not None
