"""Normalise and validate phone numbers locally before they cost checkWhatsapp quota.

GREEN-API's checkWhatsapp wants international digits only, 11 to 16 of them, and answers misleadingly for
some national formats (see the "Number quirks" of the contract). This module turns whatever a table or an
upstream task holds (``"+7 (912) 345-67-89"``, ``"8 912 345 67 89"``, ``79123456789``, ``"…@c.us"``) into
those digits, or says in one short sentence why it cannot.

The country-specific quirks GREEN-API documents are kept as one table, :data:`NUMBER_RULES`; each can be
switched with :class:`NumberRule`. Everything else uses the metadata of the ``phonenumbers`` library, and a
number is rejected on its *length* (``is_possible_number``), never on its number range
(``is_valid_number``), because range metadata lags behind newly allocated ranges. Range validity is only
used to choose between two plausible readings of the same digits. docs/numbers.md explains every step.

Nothing here imports Airflow.
"""

from __future__ import annotations

import enum
import operator
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import NamedTuple

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumber
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE, SUPPORTED_REGIONS

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

MIN_DIGITS = 11
"""Fewest international digits checkWhatsapp accepts (``bad phone number, valid from 11 to 16 digits``)."""
MAX_DIGITS = 16
"""Most international digits checkWhatsapp accepts."""

_MAX_INPUT_CHARS = 100  # longer text is not a phone number; also bounds the work done per value


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# The GREEN-API quirks, as one table
# --------------------------------------------------------------------------------------------------


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


def _argentina_pattern() -> re.Pattern[str]:
    # phonenumbers' national-prefix pattern for AR captures the area code in group 1 when it is followed
    # by the mobile prefix "15"; reusing it keeps the list of Argentine area codes out of this module.
    meta = PhoneMetadata.metadata_for_region("AR")
    pattern = meta.national_prefix_for_parsing if meta is not None else None
    return re.compile(pattern or r"0?(?:(11|[23]\d{2,3})15)?")


_ARGENTINA_15 = _argentina_pattern()


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

_BARE_SPECS = tuple(spec for spec in NUMBER_RULES if spec.stage is RuleStage.BARE_DIGITS)
_COUNTRY_SPECS: dict[int, tuple[NumberRuleSpec, ...]] = {}
for _spec in NUMBER_RULES:
    if _spec.country_code is not None:
        _COUNTRY_SPECS[_spec.country_code] = (*_COUNTRY_SPECS.get(_spec.country_code, ()), _spec)
del _spec


# --------------------------------------------------------------------------------------------------
# Metadata from phonenumbers, compiled once per country / region on first use
# --------------------------------------------------------------------------------------------------

_IS_POSSIBLE, _TOO_SHORT, _TOO_LONG, _INVALID_LENGTH, _LOCAL_ONLY = range(5)


@dataclass(frozen=True, slots=True)
class _Meta:
    """What normalisation needs from one phonenumbers metadata record."""

    lengths: frozenset[int]  # possible lengths of the national significant number, minus local-only
    local_only: frozenset[int]
    minimum: int
    maximum: int
    national_prefix_re: re.Pattern[str] | None
    transform: str | None
    general_re: re.Pattern[str] | None
    is_argentina: bool

    def length_status(self, nsn: str) -> int:
        """Mirror of phonenumbers' ``_test_number_length`` for an unknown number type."""
        n = len(nsn)
        if n in self.local_only:
            return _LOCAL_ONLY
        if n in self.lengths:
            return _IS_POSSIBLE
        if n < self.minimum:
            return _TOO_SHORT
        if n > self.maximum:
            return _TOO_LONG
        return _INVALID_LENGTH


def _meta_from(metadata: PhoneMetadata, region: str) -> _Meta:
    desc = metadata.general_desc
    possible = tuple(n for n in (desc.possible_length if desc else ()) or () if n > 0)
    local = frozenset((desc.possible_length_local_only if desc else ()) or ())
    prefix = metadata.national_prefix_for_parsing
    general = desc.national_number_pattern if desc else None
    return _Meta(
        lengths=frozenset(possible) - local,
        local_only=local,
        minimum=min(possible, default=1),
        maximum=max(possible, default=0),
        national_prefix_re=re.compile(prefix) if prefix else None,
        transform=metadata.national_prefix_transform_rule or None,
        general_re=re.compile(general) if general else None,
        is_argentina=region == "AR",
    )


@dataclass(frozen=True, slots=True)
class _Country:
    code: int
    code_str: str
    label: str  # "+44 (GB)" for reasons
    meta: _Meta


@dataclass(frozen=True, slots=True)
class _Region:
    code: str
    country: _Country
    meta: _Meta  # the region's own record (KZ, CA and GG differ a little from RU, US and GB)
    national_prefix: str | None
    international_prefix_re: re.Pattern[str] | None


_CALLING_CODES = frozenset(str(code) for code in COUNTRY_CODE_TO_REGION_CODE)
_COUNTRIES: dict[str, _Country | None] = {}


def _country(code_str: str) -> _Country | None:
    try:
        return _COUNTRIES[code_str]
    except KeyError:
        pass
    code = int(code_str)
    region = phonenumbers.region_code_for_country_code(code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
    country = None
    if metadata is not None:
        label = f"+{code_str}" if region in ("001", "ZZ") else f"+{code_str} ({region})"
        country = _Country(code, code_str, label, _meta_from(metadata, region))
    _COUNTRIES[code_str] = country
    return country


def _split_calling_code(digits: str) -> tuple[_Country | None, str]:
    """Country calling codes are prefix-free, so at most one of the 1-3 digit prefixes matches."""
    for size in (1, 2, 3):
        if len(digits) >= size and digits[:size] in _CALLING_CODES:
            return _country(digits[:size]), digits[size:]
    return None, digits


@cache
def _region(code: str) -> _Region:
    metadata = PhoneMetadata.metadata_for_region(code)
    country = _country(str(metadata.country_code)) if metadata is not None else None
    if metadata is None or country is None:
        raise ValueError(f"phonenumbers has no metadata for region {code!r}")
    idd = metadata.international_prefix
    return _Region(
        code=code,
        country=country,
        meta=_meta_from(metadata, code),
        national_prefix=metadata.national_prefix or None,
        international_prefix_re=re.compile(idd) if idd else None,
    )


def _strip_trunk_prefix(meta: _Meta, nsn: str) -> str:
    """Remove a national (trunk) prefix the way ``phonenumbers.parse`` does.

    Handles "+44 (0)20…", "+7 8 912…" and national input such as "0 20…". Argentina's "15" transform is
    left to :data:`NumberRule.ARGENTINA_MOBILE_NINE` so that it can be switched off.
    """
    pattern = meta.national_prefix_re
    if pattern is None:
        return nsn
    match = pattern.match(nsn)
    if match is None or match.end() == 0:
        return nsn
    groups = match.groups()
    if meta.transform and groups and groups[-1] is not None:
        if meta.is_argentina:
            candidate = nsn[1:] if nsn[0] == "0" else nsn
        else:
            candidate = match.expand(meta.transform) + nsn[match.end() :]
    else:
        candidate = nsn[match.end() :]
    if candidate == nsn:
        return nsn
    general = meta.general_re
    if general is not None and general.fullmatch(nsn) and not general.fullmatch(candidate):
        return nsn
    if meta.length_status(candidate) in (_TOO_SHORT, _LOCAL_ONLY, _INVALID_LENGTH):
        return nsn
    return candidate


# --------------------------------------------------------------------------------------------------
# Readings: candidate interpretations of the digits, and the choice between them
# --------------------------------------------------------------------------------------------------


class _Reading(NamedTuple):
    digits: str | None
    reason: str | None
    applied: tuple[str, ...]
    country: _Country | None
    nsn: str
    guessed: bool  # produced by a BARE_DIGITS rule; see _pick


def _lengths_text(lengths: Iterable[int]) -> str:
    items = [str(n) for n in sorted(lengths)]
    if not items:
        return "none"
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


_NO_COUNTRY_HINT = " (a national number? write it with its country code or set default_region)"


def _finish(country: _Country, nsn: str, rules: frozenset[NumberRule], applied: tuple[str, ...],
            hint: str, guessed: bool = False, national: bool = False) -> _Reading:
    """Apply the country's quirk rules to one reading, then validate it."""
    for spec in _COUNTRY_SPECS.get(country.code, ()):
        if spec.rule in rules:
            fixed = spec.transform(nsn)
            if fixed is not None and fixed != nsn:
                nsn = fixed
                applied = (*applied, spec.rule.value)
    digits = country.code_str + nsn
    total = len(digits)
    meta = country.meta
    status = meta.length_status(nsn)
    if country.code == 52 and not national and status == _TOO_LONG and len(nsn) == 11 and nsn[0] == "1":
        status = _IS_POSSIBLE  # GREEN-API documents 521 + 10 digits as a real WhatsApp form
    if total < MIN_DIGITS:
        if status == _IS_POSSIBLE and not hint:
            reason = (f"too short: {total} digits; a possible {country.label} number, but GREEN-API's "
                      f"checkWhatsapp needs {MIN_DIGITS} to {MAX_DIGITS} digits")
        else:
            reason = (f"too short: {total} digits after normalising, GREEN-API needs {MIN_DIGITS} to "
                      f"{MAX_DIGITS}{hint}")
        return _Reading(None, reason, applied, country, nsn, guessed)
    if total > MAX_DIGITS:
        reason = f"too long: {total} digits after normalising, GREEN-API needs {MIN_DIGITS} to {MAX_DIGITS}"
        return _Reading(None, reason, applied, country, nsn, guessed)
    if status == _LOCAL_ONLY:
        reason = f"a local {country.label} number without its area code"
        return _Reading(None, reason, applied, country, nsn, guessed)
    if status != _IS_POSSIBLE:
        reason = (f"wrong length for {country.label}: {len(nsn)} digits after the country code, "
                  f"expected {_lengths_text(meta.lengths)}")
        return _Reading(None, reason, applied, country, nsn, guessed)
    if country.code == 1 and nsn[0] in "01":
        reason = "not a North American number: +1 area codes never start with 0 or 1"
        return _Reading(None, reason, applied, country, nsn, guessed)
    return _Reading(digits, None, applied, country, nsn, guessed)


def _international(digits: str, rules: frozenset[NumberRule], hint: str = "",
                   applied: tuple[str, ...] = (), guessed: bool = False) -> _Reading:
    """Read ``digits`` as country code + national number (what GREEN-API itself does)."""
    if len(digits) > MAX_DIGITS + 4:
        reason = f"too long: {len(digits)} digits, GREEN-API needs {MIN_DIGITS} to {MAX_DIGITS}"
        return _Reading(None, reason, applied, None, digits, guessed)
    country, nsn = _split_calling_code(digits)
    if country is None:
        if digits[:1] == "0":
            reason = "no country code: international digits cannot start with 0" + hint
        elif len(digits) < MIN_DIGITS:
            reason = (f"too short: {len(digits)} digits after normalising, GREEN-API needs {MIN_DIGITS} "
                      f"to {MAX_DIGITS}{hint}")
        else:
            reason = "unknown country calling code" + hint
        return _Reading(None, reason, applied, None, digits, guessed)
    return _finish(country, _strip_trunk_prefix(country.meta, nsn), rules, applied, hint, guessed)


def _national(digits: str, region: _Region, rules: frozenset[NumberRule]) -> _Reading:
    """Read ``digits`` as a number in ``region``'s national format (trunk prefix optional)."""
    if len(digits) > MAX_DIGITS + 4:
        reason = f"too long: {len(digits)} digits, GREEN-API needs {MIN_DIGITS} to {MAX_DIGITS}"
        return _Reading(None, reason, (), None, digits, False)
    return _finish(region.country, _strip_trunk_prefix(region.meta, digits), rules, (), "", national=True)


_MOBILE_TYPES = {
    phonenumbers.PhoneNumberType.MOBILE: 3,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE: 2,
}


def _range_rank(reading: _Reading) -> int:
    """0 when phonenumbers' ranges call the reading invalid; else 3 mobile, 2 fixed-or-mobile, 1 other.

    Range data lags reality, so it never rejects a number here: it only ranks competing readings.
    """
    country, nsn = reading.country, reading.nsn
    if country is None or reading.digits is None:
        return 0
    if country.code == 52 and len(nsn) == 11 and nsn[0] == "1":
        nsn = nsn[1:]
    number = PhoneNumber(country_code=country.code, national_number=int(nsn))
    if len(nsn) > 1 and nsn[0] == "0":
        number.italian_leading_zero = True
        zeros = min(len(nsn) - len(nsn.lstrip("0")), len(nsn) - 1)
        if zeros > 1:
            number.number_of_leading_zeros = zeros
    try:
        number_type = phonenumbers.number_type(number)
    except Exception:  # a metadata oddity must not break a bulk run
        return 0
    if number_type == phonenumbers.PhoneNumberType.UNKNOWN:
        return 0
    return _MOBILE_TYPES.get(number_type, 1)


def _is_viable(reading: _Reading) -> bool:
    """The digits fit the country's overall number pattern (a structural check, e.g. RU: [347-9] + 9)."""
    country = reading.country
    if country is None or reading.digits is None:
        return False
    general = country.meta.general_re
    return general is None or general.fullmatch(reading.nsn) is not None


def _pick(readings: list[_Reading], prefer_mobile: bool = True, failed: _Reading | None = None) -> _Reading:
    """Choose among readings of the same digits, listed in order of preference.

    A guessed reading (from a BARE_DIGITS rule) must be a valid number when it competes with a possible
    as-written reading, and must at least fit its country's overall pattern when it does not. When the
    remaining readings disagree, the best ranked wins (valid before invalid, and with ``prefer_mobile``
    mobile before fixed-line, since WhatsApp accounts are mostly mobiles); ties go to the earlier reading.
    With no reading left, ``failed`` (default: the first reading) explains why.
    """
    as_written_possible = any(r.digits is not None and not r.guessed for r in readings)
    ranks: dict[int, int] = {}
    usable: list[tuple[int, _Reading]] = []
    for index, reading in enumerate(readings):
        if reading.digits is None:
            continue
        if reading.guessed:
            if as_written_possible:
                ranks[index] = _range_rank(reading)
                if not ranks[index]:
                    continue
            elif not _is_viable(reading):
                continue
        usable.append((index, reading))
    if not usable:
        return failed or readings[0]
    first = usable[0][1]
    if all(reading.digits == first.digits for _, reading in usable[1:]):
        return first
    best, best_key = first, (-1, 0)
    for index, reading in usable:
        rank = ranks[index] if index in ranks else _range_rank(reading)
        key = (rank if prefer_mobile else min(rank, 1), -index)
        if key > best_key:
            best, best_key = reading, key
    return best


def _resolve(digits: str, plus: bool, region: _Region | None, rules: frozenset[NumberRule]) -> _Reading:
    """Turn bare or international digits into one reading; see docs/numbers.md for the order."""
    if plus:
        return _international(digits, rules)
    if region is None:
        if digits.startswith("00"):
            return _international(digits[2:], rules)
        readings = [_international(digits, rules, hint=_NO_COUNTRY_HINT)]
        for spec in _BARE_SPECS:
            if spec.rule in rules:
                guess = spec.transform(digits)
                if guess is not None:
                    readings.append(_international(guess, rules, applied=(spec.rule.value,), guessed=True))
        return _pick(readings) if len(readings) > 1 else readings[0]
    dialled_out = []
    idd = region.international_prefix_re
    match = idd.match(digits) if idd is not None else None
    if match is not None and match.end() > 0 and digits[match.end() : match.end() + 1] not in ("", "0"):
        dialled_out.append(_international(digits[match.end() :], rules))
    if digits.startswith("00") and (match is None or match.end() != 2):
        dialled_out.append(_international(digits[2:], rules))
    national = _national(digits, region, rules)
    international = _international(digits, rules)
    prefix = region.national_prefix
    if prefix and digits.startswith(prefix):  # a trunk prefix: written in national format
        return _pick([*dialled_out, national, international], prefer_mobile=False)
    failed = dialled_out[0] if dialled_out else national
    return _pick([*dialled_out, international, national], prefer_mobile=not dialled_out, failed=failed)


# --------------------------------------------------------------------------------------------------
# From an arbitrary value to (plus, digits)
# --------------------------------------------------------------------------------------------------

_ASCII_DIGITS = re.compile(r"[0-9]+")
_FORMATTED = re.compile(r"[0-9 \t\n\r\f\v\-.()/+]+")
_DELETE_SEPARATORS = str.maketrans("", "", " \t\n\r\f\v-.()/")
_FLOAT_TEXT = re.compile(r"\+?[0-9]{6,}\.0+")
_SCIENTIFIC = re.compile(r"[0-9]+(?:[.,][0-9]+)?[eE][+]?[0-9]+")
_EXTENSION = re.compile(
    r"(?:;\s*ext\s*=|ext(?:ension)?\.?|x\.?|#|доб(?:авочный)?\.?)\s*[:.]?\s*[0-9]{1,8}\s*$",
    re.IGNORECASE,
)
_CHAT_SUFFIXES = ("c.us", "s.whatsapp.net")
_UNICODE_PUNCTUATION = {
    "\uff0b": "+", "\ufe62": "+", "\u2795": "+",
    "\u2212": "-", "\u30fc": "-", "\u2053": "-", "\u223c": "-", "\uff5e": "-",
    "\uff08": "(", "\uff09": ")", "\uff0e": ".", "\uff0f": "/", "\uff03": "#",
}


def _to_ascii(text: str) -> str:
    """Map Unicode decimal digits and phone punctuation to ASCII; drop invisible format characters."""
    out = []
    for char in text:
        if char.isascii():
            out.append(char)
        elif char.isdecimal():
            out.append(chr(48 + unicodedata.decimal(char, 0)))
        elif char in _UNICODE_PUNCTUATION:
            out.append(_UNICODE_PUNCTUATION[char])
        else:
            category = unicodedata.category(char)
            if category == "Zs":
                out.append(" ")
            elif category == "Pd":
                out.append("-")
            elif category != "Cf":  # LRM/RLM, zero-width spaces, soft hyphen: copy-paste debris
                out.append(char)
    return "".join(out)


def _bad_character_reason(text: str) -> str:
    for char in text:
        if char.isalpha():
            return "contains letters"
    for char in text:
        if not (char in "0123456789+-.()/" or char.isspace()):
            return f"contains {char!r}, which cannot be part of a phone number"
    return "contains characters that cannot be part of a phone number"


def _parse_text(text: str) -> tuple[str, bool, str | None]:
    """Return (digits, plus, reason); the reason is set when the text cannot be a phone number."""
    text = text.strip()
    if _ASCII_DIGITS.fullmatch(text):
        return text, False, None
    if not text:
        return "", False, "empty"
    if len(text) > _MAX_INPUT_CHARS:
        return "", False, f"too long to be a phone number ({len(text)} characters)"
    if not text.isascii():
        text = _to_ascii(text).strip()
    plus = False
    if text[:4].lower() == "tel:":
        text = text[4:].strip()
    at = text.find("@")
    if at >= 0:
        suffix = text[at + 1 :].strip().lower()
        if suffix == "lid":
            return "", False, "a WhatsApp LID (…@lid) is not a phone number"
        if suffix == "g.us":
            return "", False, "a group chat id (…@g.us) is not a phone number"
        if suffix not in _CHAT_SUFFIXES:
            return "", False, "contains '@' but is not a chatId ending in @c.us"
        text = text[:at].strip()
        plus = True  # a chatId is international by definition
    if not text:
        return "", False, "empty"
    if _FLOAT_TEXT.fullmatch(text):
        return "", False, ("looks like a float written as text (ends in '.0'): export the column as text "
                           "or integers")
    if _SCIENTIFIC.fullmatch(text):
        return "", False, ("looks like a float in scientific notation, which may have lost digits: "
                           "export the column as text or integers")
    if _EXTENSION.search(text):
        return "", False, ("has an extension (ext./x/#/;ext=): WhatsApp cannot check an extension; "
                           "remove it if the main number is meant")
    if not _FORMATTED.fullmatch(text):
        return "", False, _bad_character_reason(text)
    if "+" in text:
        position = text.index("+")
        if text.count("+") > 1 or text[:position].strip(" (\t"):
            return "", False, "'+' may appear only once, before the digits"
        text = text[:position] + text[position + 1 :]
        plus = True
    digits = text.translate(_DELETE_SEPARATORS)
    if not digits:
        return "", False, "no digits"
    return digits, plus, None


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:  # int too large to print, broken __str__, ...
        return f"<unprintable {type(value).__name__}>"


def _parse_value(value: object) -> tuple[str, str, bool, str | None]:
    """Return (raw, digits, plus, reason) for any Python value."""
    if value is None:
        return "", "", False, "no number given (None)"
    if isinstance(value, str):
        return (value, *_parse_text(value))
    if isinstance(value, bool) or type(value).__name__ in ("bool_", "bool"):
        return _safe_str(value), "", False, "a boolean is not a phone number"
    if isinstance(value, int):
        raw = _safe_str(value)
        if value < 0:
            return raw, "", False, "a negative number is not a phone number"
        if value.bit_length() > 64:
            return raw, "", False, f"too long: more than {MAX_DIGITS} digits"
        return raw, str(int(value)), False, None
    if isinstance(value, float):
        return _safe_str(value), "", False, (
            "a float is not accepted (floats lose digits): send numbers as text or integers")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _safe_str(value), "", False, "bytes are not accepted: decode them to text first"
    if isinstance(value, Decimal):
        raw = _safe_str(value)
        if not value.is_finite() or value != value.to_integral_value():
            return raw, "", False, "a non-integer Decimal is not a phone number"
        if value < 0:
            return raw, "", False, "a negative number is not a phone number"
        if value.adjusted() > MAX_DIGITS + 4:
            return raw, "", False, f"too long: more than {MAX_DIGITS} digits"
        return raw, str(int(value)), False, None
    raw = _safe_str(value)
    as_int = None
    if hasattr(type(value), "__index__"):  # numpy integers and the like
        try:
            as_int = operator.index(value)  # type: ignore[arg-type]
        except Exception:
            as_int = None
    if as_int is not None:
        _, digits, plus, reason = _parse_value(as_int)
        return raw, digits, plus, reason
    if hasattr(value, "__float__"):
        return raw, "", False, (
            f"a {type(value).__name__} is not accepted (non-integer numbers lose digits): send numbers "
            "as text or integers")
    return raw, "", False, f"unsupported type {type(value).__name__}: give a str or an int"


# --------------------------------------------------------------------------------------------------
# Configuration and public entry points
# --------------------------------------------------------------------------------------------------

_RULES_BY_NAME = {rule.value: rule for rule in NumberRule}


def _coerce_region(default_region: str | None) -> _Region | None:
    if default_region is None or default_region == "":
        return None
    if not isinstance(default_region, str):
        raise ValueError(f"default_region must be a two-letter region code such as 'RU', "
                         f"not {type(default_region).__name__}")
    code = default_region.strip().upper()
    if code not in SUPPORTED_REGIONS:
        hint = " (the United Kingdom is 'GB')" if code == "UK" else ""
        raise ValueError(f"unknown default_region {default_region!r}{hint}: give an ISO 3166-1 alpha-2 "
                         "region code that phonenumbers knows, such as 'RU', 'US' or 'BR'")
    return _region(code)


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


def _normalize(value: object, region: _Region | None, rules: frozenset[NumberRule]) -> NormalizedNumber:
    raw = ""
    try:
        raw, digits, plus, reason = _parse_value(value)
        if reason is not None:
            return NormalizedNumber(raw, None, reason)
        reading = _resolve(digits, plus, region, rules)
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

    def __repr__(self) -> str:
        names = ", ".join(sorted(rule.value for rule in self.rules))
        return f"PhoneNumberNormalizer(default_region={self.default_region!r}, rules={{{names}}})"


_MASK_ALLOWED = re.compile(r"(?:tel:)?\s*\+?[0-9\s\-.()/]*(?:@(?:c\.us|s\.whatsapp\.net))?", re.IGNORECASE)
_MASK_MIN_DIGITS = 8
_MASK_KEEP = 4


def mask_phone_number(digits_or_raw: str) -> str:
    """Hide a phone number for logs, keeping only its last 4 digits: ``"79001234567"`` → ``"*******4567"``.

    Formatting is dropped (only the digits are counted). Inputs with fewer than 8 digits, or with anything
    that is not phone punctuation (letters, e-mail addresses, names), are masked completely. Never raises.
    """
    try:
        text = digits_or_raw if isinstance(digits_or_raw, str) else _safe_str(digits_or_raw)
        text = text.strip()
        if not text:
            return ""
        if len(text) > _MAX_INPUT_CHARS or not text.isascii() or not _MASK_ALLOWED.fullmatch(text):
            return "*" * min(len(text), MAX_DIGITS)
        digits = "".join(char for char in text if char.isdigit())
        if len(digits) < _MASK_MIN_DIGITS:
            return "*" * max(len(digits), 1)
        return "*" * (len(digits) - _MASK_KEEP) + digits[-_MASK_KEEP:]
    except Exception:
        return "****"
