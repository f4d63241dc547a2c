"""Reading digits as a phone number on top of ``phonenumbers.parse``, and choosing between readings.

Digits can often be read more than one way (``84951234567``: Moscow with trunk 8, or a Vietnamese mobile?).
:func:`resolve` builds the plausible readings in docs/numbers.md's order (step 3): ``phonenumbers.parse``
reads a national number in a region whose digits may hold a country code, and a national prefix is
stripped as parse strips it (with parse's own step for that, asked only when the country's national-prefix
pattern matches: parse is the costly part; see docs/numbers.md, "Speed"), GREEN-API's quirk rules
(:mod:`.quirks`) correct it, ``phonenumbers.is_possible_number_with_reason`` judges its length, and
``phonenumbers.number_type`` ranks readings that disagree. Range validity never rejects a number (ranges lag
reality); it only chooses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import cache
from typing import NamedTuple

import phonenumbers
from phonenumbers import (
    CountryCodeSource,
    NumberParseException,
    PhoneMetadata,
    PhoneNumber,
    ValidationResult,
    phonenumberutil,
)

from airflow_provider_greenapi.numbers.quirks import (
    ARGENTINA,
    BARE_DIGIT_RULES,
    MAX_DIGITS,
    MIN_DIGITS,
    NumberRule,
    apply_country_rules,
    fits_russia_kazakhstan,
    is_impossible_nanp,
    is_mexican_mobile_one,
)

# phonenumbers compiles its metadata's patterns through re.compile, whose cache holds 512 patterns; a table
# mixing many countries uses more, and recompiling them was most of what normalising such a table cost (the
# ranking by number_type above all). phonenumbers' own remedy is its pattern cache, which keeps every compiled
# metadata pattern (bounded by the metadata: 1,492 patterns, under 1 MiB, after a table of every region).
# Process-wide, and only faster for any other user of phonenumbers in the process; a phonenumbers release
# without it reads the same numbers, only slower.
if hasattr(phonenumbers, "enable_pattern_cache"):
    phonenumbers.enable_pattern_cache()

_CALLING_CODES = {str(code): code for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}
_IS_POSSIBLE = ValidationResult.IS_POSSIBLE
_NO_COUNTRY_HINT = " (a national number? write it with its country code or set default_region)"
_MAX_READ = MAX_DIGITS + 4  # digits beyond this are not read at all


class Reading(NamedTuple):
    """One interpretation of the digits: ``digits`` to send, or the ``reason`` this reading fails."""

    digits: str | None
    reason: str | None
    applied: tuple[str, ...]
    country_code: int | None
    nsn: str  # the national significant number after the quirk rules
    guessed: bool  # produced by a BARE_DIGITS rule; see pick()


class Region(NamedTuple):
    """A validated ``default_region``, the prefixes that shape how its users write numbers, and whether
    phonenumbers reads its national numbers as it reads ``+country_code`` ones."""

    code: str
    country_code: int
    trunk_prefix: str | None  # "8" in RU, "0" in most of Europe, "1" in NANP
    international_prefix: re.Pattern[str] | None  # "810" in RU, "011" in the US, "00" in most places
    national_prefix_for_parsing: re.Pattern[str] | None  # what parse may strip from a national number
    is_main: bool  # its code's main region (GB for +44, US for +1): its metadata is what reads +44 numbers


@cache
def region(code: str) -> Region:
    """``code`` must be one of ``phonenumbers.SUPPORTED_REGIONS``."""
    metadata = PhoneMetadata.metadata_for_region(code)
    idd = metadata.international_prefix if metadata is not None else None
    prefix = metadata.national_prefix_for_parsing if metadata is not None else None
    country_code = phonenumbers.country_code_for_region(code)
    return Region(code, country_code, phonenumbers.ndd_prefix_for_region(code, True) or None,
                  re.compile(idd) if idd else None, re.compile(prefix) if prefix else None,
                  phonenumbers.region_code_for_country_code(country_code) == code)


# --------------------------------------------------------------------------------------------------
# Asking phonenumbers
# --------------------------------------------------------------------------------------------------


def _number(country_code: int, nsn: str) -> PhoneNumber:
    """A PhoneNumber for a national significant number, keeping its leading zeros (Italy)."""
    number = PhoneNumber(country_code=country_code, national_number=int(nsn))
    if len(nsn) > 1 and nsn[0] == "0":
        number.italian_leading_zero = True
        zeros = min(len(nsn) - len(nsn.lstrip("0")), len(nsn) - 1)
        if zeros > 1:
            number.number_of_leading_zeros = zeros
    return number


@cache
def _length_status(country_code: int, length: int) -> int:
    """``phonenumbers.is_possible_number_with_reason`` for any national number of ``length`` digits.

    That check "only checks the length of phone numbers" (its documentation; it reads the country's possible
    and local-only lengths and nothing else of the number), so one answer per country code and length is its
    answer for every number of that length: asked once, it is remembered (a few thousand entries at most).
    """
    if length == 0:
        return ValidationResult.TOO_SHORT
    return phonenumbers.is_possible_number_with_reason(
        PhoneNumber(country_code=country_code, national_number=int("1" * length)))


@cache
def _possible_lengths(country_code: int) -> tuple[int, ...]:
    """The national lengths to name in a "wrong length" reason (local-only lengths excluded)."""
    main = phonenumbers.region_code_for_country_code(country_code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, main)
    desc = metadata.general_desc if metadata is not None else None
    if desc is None:
        return ()
    local = set(desc.possible_length_local_only or ())
    return tuple(sorted(n for n in desc.possible_length or () if n > 0 and n not in local))


@cache
def _label(country_code: int) -> str:
    """``+44 (GB)`` for reasons; ``+800`` for non-geographic codes."""
    main = phonenumbers.region_code_for_country_code(country_code)
    return f"+{country_code}" if main in ("001", "ZZ") else f"+{country_code} ({main})"


def _argentina_without_trunk_zero(nsn: str) -> str:
    """Argentina's trunk prefix is 0. ``phonenumbers.parse`` also turns a ``15`` after the area code into
    the ``9`` of mobiles; that is :data:`NumberRule.ARGENTINA_MOBILE_NINE`'s job, so that it can be switched
    off, and only the 0 is dropped here (when what remains has a possible length, as parse does)."""
    if nsn[:1] == "0" and _length_status(ARGENTINA, len(nsn) - 1) not in _SHORTER_THAN_POSSIBLE:
        return nsn[1:]
    return nsn


_SHORTER_THAN_POSSIBLE = (ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
                          ValidationResult.INVALID_LENGTH)


@cache
def _main_metadata(country_code: int) -> PhoneMetadata | None:
    """The metadata phonenumbers reads ``+country_code`` numbers with (the main region's, or the non-geographic
    entity's)."""
    main = phonenumbers.region_code_for_country_code(country_code)
    return PhoneMetadata.metadata_for_region_or_calling_code(country_code, main)


@cache
def _trunk_prefix_pattern(country_code: int) -> re.Pattern[str] | None:
    """phonenumbers' pattern of what may precede a national number (a trunk prefix, a carrier code)."""
    metadata = _main_metadata(country_code)
    pattern = metadata.national_prefix_for_parsing if metadata is not None else None
    return re.compile(pattern) if pattern else None


def _parse_keeps(country_code: int, nsn: str) -> str:
    """What ``phonenumbers.parse`` keeps of ``nsn`` written after ``+country_code``: the national number
    without a national (trunk) prefix or carrier code, or ``nsn`` as written where parse raises (too short or
    too long: the length check explains it)."""
    try:
        number = phonenumbers.parse(f"+{country_code}{nsn}")
    except NumberParseException:
        return nsn
    return phonenumbers.national_significant_number(number)


# parse's own step for the prefix; a phonenumbers release without it gets parse itself (the same, only slower)
_strip_national_prefix: Callable[[str, PhoneMetadata], tuple[str, str, bool]] | None = getattr(
    phonenumberutil, "_maybe_strip_national_prefix_carrier_code", None)
_MIN_NSN, _MAX_NSN = 2, 17  # parse's bounds on a national significant number (it raises outside them)


def _prefix_step_keeps(country_code: int, nsn: str) -> str:
    """:func:`_parse_keeps`'s answer from the one step of parse that strips the prefix, phonenumbers'
    ``_maybe_strip_national_prefix_carrier_code`` (about 1 us where a whole parse costs 10 us), kept only when
    the rest has a possible length, as parse keeps it (:func:`_length_status` is parse's length test with the main
    region's metadata)."""
    metadata = _main_metadata(country_code)
    if metadata is None or len(nsn) < _MIN_NSN:
        return nsn
    if _strip_national_prefix is None:  # pragma: no cover - see its definition
        return _parse_keeps(country_code, nsn)
    _, stripped, _ = _strip_national_prefix(nsn, metadata)
    if not _MIN_NSN <= len(stripped) <= _MAX_NSN:
        return nsn
    return nsn if _length_status(country_code, len(stripped)) in _SHORTER_THAN_POSSIBLE else stripped


def _without_trunk_prefix(country_code: int, nsn: str) -> str:
    """A trunk prefix written after the country code (``+44 (0)20…``, ``+7 8 912…``), or in a national number
    of the code's main region (``020…`` in GB), removed as ``phonenumbers.parse`` removes it.

    Nothing changes unless phonenumbers' national-prefix pattern matches at the start of the number, so most
    numbers are asked that question only; the others get :func:`_prefix_step_keeps` (a test holds it equal to
    :func:`_parse_keeps` for every region's numbers).
    """
    if country_code == ARGENTINA:
        return _argentina_without_trunk_zero(nsn)
    if not _national_prefix_may_start(_trunk_prefix_pattern(country_code), nsn):
        return nsn
    return _prefix_step_keeps(country_code, nsn)


def _national_prefix_may_start(pattern: re.Pattern[str] | None, digits: str) -> bool:
    """Whether phonenumbers' national-prefix ``pattern`` matches something at the start of ``digits``: only
    then may parse strip anything (the patterns may match the empty string)."""
    match = pattern.match(digits) if pattern is not None else None
    return match is not None and match.end() > 0


# --------------------------------------------------------------------------------------------------
# Readings
# --------------------------------------------------------------------------------------------------


def _lengths_text(lengths: Iterable[int]) -> str:
    items = [str(n) for n in lengths]
    if not items:
        return "none"
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _finish(country_code: int, nsn: str, rules: frozenset[NumberRule], applied: tuple[str, ...],
            hint: str, guessed: bool = False, national: bool = False) -> Reading:
    """Apply the country's quirk rules to one reading, then check it against GREEN-API's limits."""
    nsn, changed = apply_country_rules(country_code, nsn, rules)
    if changed:
        applied = (*applied, *changed)
    digits = f"{country_code}{nsn}"
    total = len(digits)
    status = _length_status(country_code, len(nsn))
    if status == _IS_POSSIBLE and MIN_DIGITS <= total <= MAX_DIGITS and not is_impossible_nanp(country_code, nsn):
        return Reading(digits, None, applied, country_code, nsn, guessed)  # most numbers: nothing to explain
    if not national and status == ValidationResult.TOO_LONG and is_mexican_mobile_one(country_code, nsn):
        status = ValidationResult.IS_POSSIBLE
    reason = None
    if total < MIN_DIGITS:
        if status == ValidationResult.IS_POSSIBLE and not hint:
            reason = (f"too short: {total} digits; a possible {_label(country_code)} number, but GREEN-API's "
                      f"checkWhatsapp needs {MIN_DIGITS} to {MAX_DIGITS} digits")
        else:
            reason = (f"too short: {total} digits after normalising, GREEN-API needs {MIN_DIGITS} to "
                      f"{MAX_DIGITS}{hint}")
    elif total > MAX_DIGITS:
        reason = f"too long: {total} digits after normalising, GREEN-API needs {MIN_DIGITS} to {MAX_DIGITS}"
    elif status == ValidationResult.IS_POSSIBLE_LOCAL_ONLY:
        reason = f"a local {_label(country_code)} number without its area code"
    elif status != ValidationResult.IS_POSSIBLE:
        reason = (f"wrong length for {_label(country_code)}: {len(nsn)} digits after the country code, "
                  f"expected {_lengths_text(_possible_lengths(country_code))}")
    elif is_impossible_nanp(country_code, nsn):
        reason = "not a North American number: +1 area codes never start with 0 or 1"
    if reason is not None:
        return Reading(None, reason, applied, country_code, nsn, guessed)
    return Reading(digits, None, applied, country_code, nsn, guessed)


def _too_long(digits: str, applied: tuple[str, ...] = (), guessed: bool = False) -> Reading:
    reason = f"too long: {len(digits)} digits, GREEN-API needs {MIN_DIGITS} to {MAX_DIGITS}"
    return Reading(None, reason, applied, None, digits, guessed)


def _international(digits: str, rules: frozenset[NumberRule], hint: str = "",
                   applied: tuple[str, ...] = (), guessed: bool = False) -> Reading:
    """Read ``digits`` as country code + national number (what GREEN-API itself does)."""
    if len(digits) > _MAX_READ:
        return _too_long(digits, applied, guessed)
    for size in (1, 2, 3):  # calling codes are prefix-free: at most one of these is one
        code = _CALLING_CODES.get(digits[:size])
        if code is not None:
            return _finish(code, _without_trunk_prefix(code, digits[size:]), rules, applied, hint, guessed)
    if digits[:1] == "0":
        reason = "no country code: international digits cannot start with 0" + hint
    elif len(digits) < MIN_DIGITS:
        reason = (f"too short: {len(digits)} digits after normalising, GREEN-API needs {MIN_DIGITS} to "
                  f"{MAX_DIGITS}{hint}")
    else:
        reason = "unknown country calling code" + hint
    return Reading(None, reason, applied, None, digits, guessed)


def _national(digits: str, home: Region, rules: frozenset[NumberRule]) -> Reading | None:
    """Read ``digits`` in ``home``'s national format, as ``phonenumbers.parse(digits, region)`` does
    (with the region's own trunk prefix rules: Kazakhstan's, Guernsey's, a Caribbean island's 7-digit
    local numbers). ``None`` when phonenumbers reads the digits as dialled abroad: the international
    readings cover that."""
    if len(digits) > _MAX_READ:
        return _too_long(digits)
    if home.country_code == ARGENTINA:
        return _finish(ARGENTINA, _argentina_without_trunk_zero(digits), rules, (), "", national=True)
    if not _may_be_dialled_abroad(home, digits):
        if home.is_main:  # read with the metadata of +country_code numbers, as after a '+' and the code
            return _finish(home.country_code, _without_trunk_prefix(home.country_code, digits), rules, (), "",
                           national=True)
        if not _national_prefix_may_start(home.national_prefix_for_parsing, digits):
            return _finish(home.country_code, digits, rules, (), "", national=True)
    try:
        number = phonenumbers.parse(digits, home.code, keep_raw_input=True)
    except NumberParseException as error:
        if error.error_type in _DIALLED_ABROAD:
            return None
        return _finish(home.country_code, digits, rules, (), "", national=True)  # too short or too long
    if number.country_code_source != CountryCodeSource.FROM_DEFAULT_COUNTRY:
        return None
    return _finish(home.country_code, phonenumbers.national_significant_number(number), rules, (), "",
                   national=True)


def _may_be_dialled_abroad(home: Region, digits: str) -> bool:
    """Whether ``phonenumbers.parse(digits, home)`` may read a country code in the digits: they start with an
    international prefix or with the region's own country code. Otherwise parse reads ``home``'s country code
    and the national number, from which it may only strip a national prefix."""
    if digits.startswith(str(home.country_code)):
        return True
    return home.international_prefix is not None and home.international_prefix.match(digits) is not None


_DIALLED_ABROAD = (NumberParseException.INVALID_COUNTRY_CODE, NumberParseException.TOO_SHORT_AFTER_IDD)

_MOBILE_RANK = 3
_MOBILE_TYPES = {
    phonenumbers.PhoneNumberType.MOBILE: _MOBILE_RANK,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE: 2,
}


def _range_rank(reading: Reading) -> int:
    """0 when phonenumbers' ranges call the reading invalid; else 3 mobile, 2 fixed-or-mobile, 1 other.

    Range data lags reality, so it never rejects a number here: it only ranks competing readings.
    """
    code, nsn = reading.country_code, reading.nsn
    if code is None or reading.digits is None:
        return 0
    if is_mexican_mobile_one(code, nsn):
        nsn = nsn[1:]
    try:
        number_type = phonenumbers.number_type(_number(code, nsn))
    except Exception:  # a metadata oddity must not break a bulk run
        return 0
    if number_type == phonenumbers.PhoneNumberType.UNKNOWN:
        return 0
    return _MOBILE_TYPES.get(number_type, 1)


def _fits_guessed_country(reading: Reading) -> bool:
    """A guess with no competition must at least fit its country's overall number pattern."""
    return reading.digits is not None and fits_russia_kazakhstan(reading.nsn)


def _pick(readings: list[Reading], prefer_mobile: bool = True, failed: Reading | None = None) -> Reading:
    """Choose among readings of the same digits, listed in order of preference.

    A guessed reading (from a BARE_DIGITS rule) must be a valid number when it competes with a possible
    as-written reading, and must at least fit its country's overall pattern when it does not. When the
    remaining readings disagree, the best ranked wins (valid before invalid, and with ``prefer_mobile``
    mobile before fixed-line, since WhatsApp accounts are mostly mobiles); ties go to the earlier reading.
    With no reading left, ``failed`` (default: the first reading) explains why.
    """
    possible = [reading for reading in readings if reading.digits is not None]
    if not possible:
        return failed or readings[0]
    if len(possible) == 1 and not possible[0].guessed:  # nothing to choose (most numbers)
        return possible[0]
    as_written_possible = any(not reading.guessed for reading in possible)
    ranks: dict[int, int] = {}
    usable: list[tuple[int, Reading]] = []
    for index, reading in enumerate(readings):
        if reading.digits is None:
            continue
        if reading.guessed:
            if as_written_possible:
                ranks[index] = _range_rank(reading)
                if not ranks[index]:
                    continue
            elif not _fits_guessed_country(reading):
                continue
        usable.append((index, reading))
    if not usable:
        return failed or readings[0]
    first = usable[0][1]
    if all(reading.digits == first.digits for _, reading in usable[1:]):
        return first
    best, best_key = first, (-1, 0)
    top = _MOBILE_RANK if prefer_mobile else 1
    for index, reading in usable:
        rank = ranks[index] if index in ranks else _range_rank(reading)
        key = (rank if prefer_mobile else min(rank, 1), -index)
        if key > best_key:
            best, best_key = reading, key
            if key[0] == top:  # no later reading can rank higher, and ties go to the earlier one
                break
    return best


def resolve(digits: str, plus: bool, home: Region | None, rules: frozenset[NumberRule]) -> Reading:
    """Turn bare or international digits into one reading; see docs/numbers.md, step 3, for the order."""
    if plus:
        return _international(digits, rules)
    if home is None:
        if digits.startswith("00"):
            return _international(digits[2:], rules)
        readings = [_international(digits, rules, hint=_NO_COUNTRY_HINT)]
        for spec in BARE_DIGIT_RULES:
            if spec.rule in rules:
                guess = spec.transform(digits)
                if guess is not None:
                    readings.append(_international(guess, rules, applied=(spec.rule.value,), guessed=True))
        return _pick(readings) if len(readings) > 1 else readings[0]
    dialled_out = []
    idd = home.international_prefix
    match = idd.match(digits) if idd is not None else None
    if match is not None and match.end() > 0 and digits[match.end() : match.end() + 1] not in ("", "0"):
        dialled_out.append(_international(digits[match.end() :], rules))
    if digits.startswith("00") and (match is None or match.end() != 2):
        dialled_out.append(_international(digits[2:], rules))
    national = _national(digits, home, rules)
    international = _international(digits, rules)
    if national is None:
        return _pick([*dialled_out, international], prefer_mobile=not dialled_out,
                     failed=dialled_out[0] if dialled_out else international)
    if home.trunk_prefix and digits.startswith(home.trunk_prefix):  # written in national format
        return _pick([*dialled_out, national, international], prefer_mobile=False)
    failed = dialled_out[0] if dialled_out else national
    return _pick([*dialled_out, international, national], prefer_mobile=not dialled_out, failed=failed)
