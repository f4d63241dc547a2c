"""Tests of airflow_provider_greenapi.numbers: realistic inputs, every quirk rule, every rejection, a fuzz."""

from __future__ import annotations

import dataclasses
import random
from decimal import Decimal

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from airflow_provider_greenapi.numbers import (
    DEFAULT_RULES,
    MAX_DIGITS,
    MIN_DIGITS,
    NUMBER_RULES,
    NormalizedNumber,
    NumberRule,
    PhoneNumberNormalizer,
    RuleStage,
    mask_phone_number,
    normalize_phone_number,
)

R = NumberRule


def without(rule: NumberRule) -> frozenset[NumberRule]:
    return DEFAULT_RULES - {rule}


# --------------------------------------------------------------------------------------------------
# Realistic inputs
# --------------------------------------------------------------------------------------------------

VALID_CASES = [
    # value, default_region, expected digits, expected rules_applied
    # Russia
    ("+7 (912) 345-67-89", None, "79123456789", ()),
    ("+7 912 345 67 89", "US", "79123456789", ()),
    (79123456789, None, "79123456789", ()),
    ("79123456789", None, "79123456789", ()),
    ("8 (912) 345-67-89", "RU", "79123456789", ()),
    ("8 912 345-67-89", None, "79123456789", ("RU_TRUNK_EIGHT",)),
    ("89123456789", None, "79123456789", ("RU_TRUNK_EIGHT",)),
    (89123456789, None, "79123456789", ("RU_TRUNK_EIGHT",)),
    ("9123456789", None, "79123456789", ("RU_KZ_TEN_DIGITS",)),
    ("912 345-67-89", "RU", "79123456789", ()),
    ("8 495 123-45-67", "RU", "74951234567", ()),
    ("+7 8 912 345 67 89", None, "79123456789", ()),  # trunk 8 written after +7
    ("00 7 912 345 67 89", "RU", "79123456789", ()),
    ("810 49 30 1234567", "RU", "49301234567", ()),  # Russia's own international prefix
    ("+7 800 555 35 35", None, "78005553535", ()),
    ("79123456789@c.us", None, "79123456789", ()),
    ("tel:+7-912-345-67-89", None, "79123456789", ()),
    ("(+7) 912 345-67-89", None, "79123456789", ()),
    # Kazakhstan
    ("+7 701 234 5678", None, "77012345678", ()),
    ("7012345678", None, "77012345678", ("RU_KZ_TEN_DIGITS",)),
    ("7473456789", None, "77473456789", ("RU_KZ_TEN_DIGITS",)),  # GREEN-API's own example
    ("8 (7172) 12-34-56", "KZ", "77172123456", ()),
    ("8 (7172) 12-34-56", None, "77172123456", ("RU_TRUNK_EIGHT",)),
    # USA / Canada
    ("+1 (212) 555-1234", None, "12125551234", ()),
    ("(212) 555-1234", "US", "12125551234", ()),
    ("1-212-555-1234", "US", "12125551234", ()),
    ("212.555.1234", "US", "12125551234", ()),
    ("416/555/0199", "CA", "14165550199", ()),
    ("011 44 20 7946 0958", "US", "442079460958", ()),  # US international prefix
    ("+1 1 212 555 1234", None, "12125551234", ()),  # trunk 1 after +1
    ("1002123456789", None, "12123456789", ("US_CA_EXTRA_ZEROS",)),
    ("+1 00 212 555 1234", None, "12125551234", ("US_CA_EXTRA_ZEROS",)),
    # United Kingdom
    ("+44 7911 123456", None, "447911123456", ()),
    ("+44 (0) 7911 123456", None, "447911123456", ()),
    ("07911 123456", "GB", "447911123456", ()),
    ("020 7946 0958", "GB", "442079460958", ()),
    ("0044 20 7946 0958", None, "442079460958", ()),
    ("447911123456", "DE", "447911123456", ()),  # foreign mobile wins over a German fixed-line reading
    # Germany
    ("+49 151 12345678", None, "4915112345678", ()),
    ("+49 (0)30 1234567", None, "49301234567", ()),
    ("0151 12345678", "DE", "4915112345678", ()),
    ("030 1234567", "DE", "49301234567", ()),
    ("15112345678", "DE", "4915112345678", ()),
    ("4915112345678", "DE", "4915112345678", ()),
    ("0049 151 12345678", "DE", "4915112345678", ()),
    (79123456789, "DE", "79123456789", ()),  # a Russian mobile stays Russian for a German user
    (41212345678, "DE", "41212345678", ()),  # Swiss vs German fixed line, both valid: as written wins
    ("97122345678", "DE", "97122345678", ()),
    # India
    ("+91 98765 43210", None, "919876543210", ()),
    ("+91-98765-43210", None, "919876543210", ()),
    ("098765 43210", "IN", "919876543210", ()),
    ("98765 43210", "IN", "919876543210", ()),
    (919876543210, None, "919876543210", ()),
    # Brazil
    ("+55 (11) 98765-4321", None, "5511987654321", ()),
    ("(11) 98765-4321", "BR", "5511987654321", ()),
    ("0 (11) 98765-4321", "BR", "5511987654321", ()),
    ("+55 11 8765-4321", None, "5511987654321", ("BRAZIL_NINTH_DIGIT",)),
    ("+55 31 98765-4321", None, "553187654321", ("BRAZIL_NINTH_DIGIT",)),
    ("+55 31 8765-4321", None, "553187654321", ()),
    ("+55 21 3234-5678", None, "552132345678", ()),  # landline: no ninth digit anywhere
    ("005511987654321", "BR", "5511987654321", ()),
    # Mexico
    ("+52 55 1234 5678", None, "525512345678", ()),
    ("+52 1 55 1234 5678", None, "5215512345678", ()),  # kept as given: GREEN-API says some need the 1
    ("(55) 1234-5678", "MX", "525512345678", ()),
    ("525512345678", "MX", "525512345678", ()),
    # Argentina
    ("+54 9 11 1234-5678", None, "5491112345678", ()),
    ("+54 11 15 1234-5678", None, "5491112345678", ("ARGENTINA_MOBILE_NINE",)),
    ("+54 9 11 15 1234-5678", None, "5491112345678", ("ARGENTINA_MOBILE_NINE",)),
    ("011 15-1234-5678", "AR", "5491112345678", ("ARGENTINA_MOBILE_NINE",)),
    ("0351 15 123-4567", "AR", "5493511234567", ("ARGENTINA_MOBILE_NINE",)),
    ("+54 11 1234-5678", None, "541112345678", ()),  # landline or mobile without 9: left as given
    # Israel
    ("+972 50-123-4567", None, "972501234567", ()),
    ("050-123-4567", "IL", "972501234567", ()),
    ("03-123-4567", "IL", "97231234567", ()),
    ("\u200e+972\u00a050\u2011123\u20114567", None, "972501234567", ()),  # LRM, NBSP, non-breaking hyphens
    # Others
    ("+86 131 2345 6789", None, "8613123456789", ()),
    ("13123456789", "CN", "8613123456789", ()),  # a Chinese mobile, not +1 312...
    ("+33 6 12 34 56 78", None, "33612345678", ()),
    ("06 12 34 56 78", "FR", "33612345678", ()),
    ("+39 06 6988 4567", None, "390669884567", ()),  # Italian leading zero is kept
    ("0011 44 7911 123456", "AU", "447911123456", ()),  # Australia's 0011 international prefix
    ("84912345678", None, "84912345678", ()),  # a Vietnamese mobile, not RU trunk 8
    ("84912345678", "RU", "74912345678", ()),  # ...unless the user says the data is Russian
    # Unicode digits and punctuation
    ("\uff0b\uff17 \uff19\uff11\uff12 \uff13\uff14\uff15 \uff16\uff17 \uff18\uff19", None, "79123456789", ()),
    ("+\u0669\u0667\u0662 \u0665\u0660 \u0661\u0662\u0663 \u0664\u0665\u0666\u0667", None, "972501234567", ()),
    ("+\u06f9\u06f1 \u06f9\u06f8\u06f7\u06f6\u06f5 \u06f4\u06f3\u06f2\u06f1\u06f0", None, "919876543210", ()),
    # Integral values of other exact types
    (Decimal("79123456789"), None, "79123456789", ()),
    (Decimal("7.9123456789E+10"), None, "79123456789", ()),
]


@pytest.mark.parametrize(("value", "region", "digits", "applied"), VALID_CASES)
def test_realistic_inputs(value: object, region: str | None, digits: str, applied: tuple[str, ...]) -> None:
    result = normalize_phone_number(value, region)
    assert result == NormalizedNumber(raw=str(value), digits=digits, reason=None, rules_applied=applied)
    assert result.is_valid


@pytest.mark.parametrize(
    ("value", "region", "reason"),
    [
        ("00 55 78046", "ES", "too short: 7 digits"),  # 00 + a short +55 number, not +34 005 578 046
        ("81012345678", "RU", "too short: 8 digits"),  # Russia's 810 + a short +1 number, not +7 101 234 56 78
        (498424660, "DE", "a possible +49 (DE) number"),  # +49 842 4660, as phonenumbers.parse reads it
    ],
)
def test_digits_read_as_dialled_abroad_get_no_national_reading(value: object, region: str, reason: str) -> None:
    """With a region, the national reading is phonenumbers.parse's: none when it reads the digits as
    dialled abroad (docs/numbers.md, step 3)."""
    result = normalize_phone_number(value, region)
    assert result.digits is None
    assert reason in (result.reason or "")


def _example_numbers() -> list[tuple[str, int, str]]:
    examples = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for number_type in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE):
            example = phonenumbers.example_number_for_type(region, number_type)
            if example is None:
                continue
            e164 = phonenumbers.format_number(example, PhoneNumberFormat.E164)[1:]
            if MIN_DIGITS <= len(e164) <= MAX_DIGITS:
                examples.append((region, number_type, e164))
    return examples


def test_every_region_example_number_in_every_format() -> None:
    """phonenumbers' example number of each region, formatted four ways, comes back as its E.164 digits."""
    failures: list[tuple[object, ...]] = []
    examples = _example_numbers()
    assert len(examples) > 300
    for region, number_type, e164 in examples:
        number = phonenumbers.parse("+" + e164)
        normalizer = PhoneNumberNormalizer(region)
        formats = (PhoneNumberFormat.E164, PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.NATIONAL,
                   PhoneNumberFormat.RFC3966)
        texts = [phonenumbers.format_number(number, fmt) for fmt in formats]
        texts.append("".join(c for c in phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
                             if c.isdigit()))
        for text in texts:
            result = normalizer(text)
            if result.digits != e164:
                failures.append((region, number_type, text, e164, result))
        bare = normalize_phone_number(int(e164))  # international digits as an integer, no region
        if bare.digits != e164:
            failures.append((region, number_type, int(e164), e164, bare))
    assert failures == []


# --------------------------------------------------------------------------------------------------
# The quirk rules, each on and off
# --------------------------------------------------------------------------------------------------

RULE_CASES = [
    # rule, value, region, digits with the rule on, digits with it off (None = invalid)
    (R.US_CA_EXTRA_ZEROS, "1002123456789", None, "12123456789", None),
    (R.US_CA_EXTRA_ZEROS, "+1 000 416 555 0199", None, "14165550199", None),
    (R.RU_KZ_TEN_DIGITS, "9123456789", None, "79123456789", None),
    (R.RU_KZ_TEN_DIGITS, "7473456789", None, "77473456789", None),
    (R.RU_TRUNK_EIGHT, "89123456789", None, "79123456789", None),
    (R.RU_TRUNK_EIGHT, "8 (7172) 12-34-56", None, "77172123456", None),
    (R.MEXICO_MOBILE_ONE, "+52 1 55 1234 5678", None, "525512345678", "5215512345678"),
    (R.BRAZIL_NINTH_DIGIT, "+55 11 8765-4321", None, "5511987654321", "551187654321"),
    (R.BRAZIL_NINTH_DIGIT, "+55 31 98765-4321", None, "553187654321", "5531987654321"),
    (R.BRAZIL_NINTH_DIGIT, "(28) 8765-4321", "BR", "5528987654321", "552887654321"),
    (R.ARGENTINA_MOBILE_NINE, "+54 11 15 1234 5678", None, "5491112345678", None),
    (R.ARGENTINA_MOBILE_NINE, "011 15 1234-5678", "AR", "5491112345678", None),
]


@pytest.mark.parametrize(("rule", "value", "region", "on", "off"), RULE_CASES)
def test_rule_on_and_off(rule: NumberRule, value: str, region: str | None, on: str, off: str | None) -> None:
    enabled = normalize_phone_number(value, region, rules=DEFAULT_RULES | {rule})
    assert enabled.digits == on
    assert enabled.rules_applied == (rule.value,)
    disabled = normalize_phone_number(value, region, rules=DEFAULT_RULES - {rule})
    assert disabled.digits == off
    assert disabled.rules_applied == ()
    if off is None:
        assert disabled.reason


UNTOUCHED_BY_RULES = [
    "+12125551234",  # US number without zeros
    "+79123456789",
    "+525512345678",  # Mexico without the 1
    "+5511987654321",  # Brazil, area 11, already with 9
    "+553187654321",  # Brazil, area 31, already without 9
    "+552132345678",  # Brazil landline in a ninth-digit area
    "+553132345678",  # Brazil landline elsewhere
    "+5491112345678",  # Argentina mobile, already 549
    "+541112345678",  # Argentina: landline or mobile without 9, ambiguous: left alone
    "+541115123456",  # Argentina: a Buenos Aires landline whose number starts with 15
]


@pytest.mark.parametrize("value", UNTOUCHED_BY_RULES)
def test_rules_leave_canonical_numbers_alone(value: str) -> None:
    every_rule = normalize_phone_number(value, rules=set(NumberRule))
    no_rule = normalize_phone_number(value, rules=())
    assert every_rule.digits == no_rule.digits == value[1:]
    assert every_rule.rules_applied == ()


def test_russian_rules_only_act_without_a_region() -> None:
    # With default_region RU/KZ a national number is read as one anyway; with another region the
    # digits are that region's, so the Russian guesses must not fire.
    assert normalize_phone_number("9123456789", "RU", rules=()).digits == "79123456789"
    assert normalize_phone_number("89123456789", "KZ", rules=()).digits == "79123456789"
    assert normalize_phone_number("2125551234", "US").digits == "12125551234"
    assert normalize_phone_number("0612345678", "NL").digits == "31612345678"


def test_russian_guess_needs_a_plausible_russian_number() -> None:
    # 10 digits starting with 2 cannot be a Russian/Kazakh national number: not guessed.
    result = normalize_phone_number("2125551234")
    assert result.digits is None
    assert "too short" in (result.reason or "")
    assert "default_region" in (result.reason or "")
    # A range that phonenumbers does not know yet is still accepted when nothing competes with it.
    assert normalize_phone_number("8 930 008 60 40").digits == "79300086040"


def test_rule_table_is_complete_and_examples_hold() -> None:
    assert sorted(spec.rule for spec in NUMBER_RULES) == sorted(NumberRule)
    assert {spec.rule for spec in NUMBER_RULES if spec.default} == DEFAULT_RULES
    assert R.MEXICO_MOBILE_ONE not in DEFAULT_RULES
    for spec in NUMBER_RULES:
        assert spec.description and spec.rule.value == spec.rule.name
        assert (spec.stage is RuleStage.COUNTRY) == (spec.country_code is not None)
        before, after = spec.example
        result = normalize_phone_number(before, rules={spec.rule})
        assert (result.digits, result.rules_applied) == (after, (spec.rule.value,))
        assert normalize_phone_number(before, rules=()).digits != after


def test_rules_accept_names_and_single_values() -> None:
    assert PhoneNumberNormalizer(rules=["mexico_mobile_one", R.BRAZIL_NINTH_DIGIT]).rules == {
        R.MEXICO_MOBILE_ONE, R.BRAZIL_NINTH_DIGIT}
    assert PhoneNumberNormalizer(rules="US_CA_EXTRA_ZEROS").rules == {R.US_CA_EXTRA_ZEROS}
    assert PhoneNumberNormalizer(rules=R.RU_TRUNK_EIGHT).rules == {R.RU_TRUNK_EIGHT}
    assert PhoneNumberNormalizer().rules == DEFAULT_RULES
    assert PhoneNumberNormalizer(rules=()).rules == frozenset()
    assert str(R.RU_TRUNK_EIGHT) == "RU_TRUNK_EIGHT"


# --------------------------------------------------------------------------------------------------
# Rejections
# --------------------------------------------------------------------------------------------------

INVALID_CASES = [
    # value, region, expected raw, a fragment of the reason
    (None, None, "", "None"),
    ("", None, "", "empty"),
    ("   ", None, "   ", "empty"),
    ("\t\n", "RU", "\t\n", "empty"),
    (True, None, "True", "boolean"),
    (False, None, "False", "boolean"),
    (7.9001234567e10, None, "79001234567.0", "float"),
    (79001234567.0, None, "79001234567.0", "as text or integers"),
    (float("nan"), None, "nan", "float"),
    ("7.9001234567E+10", None, "7.9001234567E+10", "scientific notation"),
    ("7,9001234567E+10", None, "7,9001234567E+10", "scientific notation"),
    ("79001234567.0", None, "79001234567.0", "float written as text"),
    (Decimal("7900123456.5"), None, "7900123456.5", "non-integer Decimal"),
    (Decimal("NaN"), None, "NaN", "non-integer Decimal"),
    (-79001234567, None, "-79001234567", "negative"),
    (Decimal("-79001234567"), None, "-79001234567", "negative"),
    (b"79001234567", None, "b'79001234567'", "bytes"),
    (bytearray(b"79001234567"), None, "bytearray(b'79001234567')", "bytes"),
    (memoryview(b"79001234567"), None, "b'79001234567'", "bytes"),  # its bytes, not its address: the same each run
    ("79001234567\x00", None, "79001234567\x00", "a NUL character"),
    ("790012\udcff34567", None, "790012\udcff34567", "not valid UTF-8"),
    ([79001234567], None, "[79001234567]", "unsupported type list"),
    ({"phone": 1}, None, "{'phone': 1}", "unsupported type dict"),
    (object, None, "<class 'object'>", "unsupported type"),
    ("abc", None, "abc", "letters"),
    ("+7 912 CALL-NOW", None, "+7 912 CALL-NOW", "letters"),
    ("1-800-FLOWERS", "US", "1-800-FLOWERS", "letters"),
    ("+7 912 345 67 89 Иван", None, "+7 912 345 67 89 Иван", "letters"),
    ("📞 +7 912 345 67 89", None, "📞 +7 912 345 67 89", "'📞'"),
    ("7️⃣9123456789", None, "7️⃣9123456789", "cannot be part of a phone number"),
    ("+7 912 345 67 89, +7 912 345 67 88", None, "+7 912 345 67 89, +7 912 345 67 88", "','"),
    ("²79123456789", None, "²79123456789", "cannot be part of a phone number"),
    ("+1 212 555 1234 ext. 12", None, "+1 212 555 1234 ext. 12", "extension"),
    ("+1 212 555 1234 x12", None, "+1 212 555 1234 x12", "extension"),
    ("+1 212 555 1234 #12", None, "+1 212 555 1234 #12", "extension"),
    ("tel:+1-212-555-1234;ext=12", None, "tel:+1-212-555-1234;ext=12", "extension"),
    ("+7 495 123-45-67 доб. 123", None, "+7 495 123-45-67 доб. 123", "extension"),
    ("123456789@lid", None, "123456789@lid", "LID"),
    ("120363025246125486@g.us", None, "120363025246125486@g.us", "group"),
    ("someone@example.com", None, "someone@example.com", "@c.us"),
    ("7 912 + 345", None, "7 912 + 345", "'+'"),
    ("++79123456789", None, "++79123456789", "'+'"),
    ("+", None, "+", "no digits"),
    ("() - .", None, "() - .", "no digits"),
    ("12345", None, "12345", "too short: 5 digits"),
    ("+7 912 345", None, "+7 912 345", "too short"),
    ("+4512345678", None, "+4512345678", "possible +45 (DK) number"),  # real, but GREEN-API needs 11+
    ("+7 912 345 67 89 12", None, "+7 912 345 67 89 12", "wrong length for +7 (RU)"),
    ("+44 7911 1234567", None, "+44 7911 1234567", "wrong length for +44 (GB)"),
    ("12345678901234567", None, "12345678901234567", "too long: 17 digits"),
    (10**40, None, str(10**40), "too long"),
    ("9" * 200, None, "9" * 200, "too long"),
    ("+7 " + "9 " * 60, None, "+7 " + "9 " * 60, "too long to be a phone number (122 characters)"),
    ("+979 1234 5678", None, "+979 1234 5678", "local +979 number"),
    ("+0 912 345 67 89", None, "+0 912 345 67 89", "cannot start with 0"),
    ("07911 123456", None, "07911 123456", "default_region"),
    ("+999 1234 5678 90", None, "+999 1234 5678 90", "unknown country calling code"),
    ("+1 012 345 6789", None, "+1 012 345 6789", "never start with 0 or 1"),
    ("10212345678", None, "10212345678", "never start with 0 or 1"),
    ("+49 30 12", None, "+49 30 12", "too short"),
]


@pytest.mark.parametrize(("value", "region", "raw", "reason"), INVALID_CASES)
def test_invalid_inputs(value: object, region: str | None, raw: str, reason: str) -> None:
    result = normalize_phone_number(value, region)
    assert result.digits is None
    assert not result.is_valid
    assert result.raw == raw
    assert result.reason is not None and reason in result.reason
    assert result.rules_applied == ()


def test_reasons_do_not_repeat_the_number() -> None:
    for value in ("+7 912 345 67 89 12", "12345678901", "+1 212 555 1234 x12", "79123456789.0"):
        reason = normalize_phone_number(value).reason or ""
        assert "912345" not in reason and "2125551234" not in reason and "345" not in reason


def test_unprintable_values_do_not_raise() -> None:
    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no")

    result = normalize_phone_number(Hostile())
    assert result.digits is None and result.raw == "<unprintable Hostile>"
    huge = normalize_phone_number(10**5000)  # str() of it raises in Python >= 3.11
    assert huge.digits is None and "too long" in (huge.reason or "")


def test_integer_like_types() -> None:
    class Index:
        def __index__(self) -> int:
            return 79123456789

        def __str__(self) -> str:
            return "79123456789"

    assert normalize_phone_number(Index()).digits == "79123456789"


def test_result_is_an_immutable_value() -> None:
    result = normalize_phone_number("+79123456789")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.digits = "1"  # type: ignore[misc]
    assert result == NormalizedNumber("+79123456789", "79123456789", None)
    assert hash(result) == hash(NormalizedNumber("+79123456789", "79123456789", None))
    assert dataclasses.replace(normalize_phone_number(79123456789, "RU"), raw="+79123456789") == result


# --------------------------------------------------------------------------------------------------
# Configuration errors
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"default_region": "ZZ"}, "unknown default_region 'ZZ'"),
        ({"default_region": "UK"}, "'GB'"),
        ({"default_region": "001"}, "ISO 3166-1 alpha-2"),
        ({"default_region": "Russia"}, "unknown default_region"),
        ({"default_region": 7}, "two-letter region code"),
        ({"rules": ["NO_SUCH_RULE"]}, "unknown number rule 'NO_SUCH_RULE'"),
        ({"rules": [1]}, "known rules: US_CA_EXTRA_ZEROS"),
        ({"rules": 5}, "iterable of NumberRule"),
    ],
)
def test_normalizer_rejects_bad_configuration(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        PhoneNumberNormalizer(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        normalize_phone_number("+79123456789", **kwargs)  # type: ignore[arg-type]


def test_normalizer_accepts_lowercase_and_empty_region() -> None:
    assert PhoneNumberNormalizer("ru").default_region == "RU"
    assert PhoneNumberNormalizer(" kz ").default_region == "KZ"
    assert PhoneNumberNormalizer("").default_region is None
    assert PhoneNumberNormalizer("ru")("8 912 345 67 89").digits == "79123456789"
    assert "RU" in repr(PhoneNumberNormalizer("ru"))


# --------------------------------------------------------------------------------------------------
# Masking
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("79001234567", "*******4567"),
        ("+7 900 123-45-67", "*******4567"),
        ("79001234567@c.us", "*******4567"),
        ("tel:+1-212-555-1234", "*******1234"),
        ("5491112345678", "*********5678"),
        ("1234567", "*******"),  # too short to show anything
        ("12", "**"),
        ("", ""),
        ("Ivan 79001234567", "****************"),  # odd input: fully masked, capped length
        ("ivan@example.com", "****************"),
        ("\u0667\u0669\u0660\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667", "***********"),
    ],
)
def test_mask_phone_number(value: str, masked: str) -> None:
    assert mask_phone_number(value) == masked


def test_mask_never_raises_and_never_leaks() -> None:
    for value in (None, 79001234567, b"79001234567", ["x"], object()):
        masked = mask_phone_number(value)  # type: ignore[arg-type]
        assert isinstance(masked, str) and "1234567" not in masked
    assert mask_phone_number(79001234567) == "*******4567"  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------------

ARABIC_INDIC_DIGITS = "".join(chr(0x0660 + i) for i in range(10))
PHONE_ALPHABET = ("0123456789" * 4 + " +-().#/x@:tel;ext=c.us8\u00a0\u2011\u200e\uff10\uff11\uff12"
                  + ARABIC_INDIC_DIGITS)
phone_like = st.text(alphabet=PHONE_ALPHABET, max_size=30)
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**9, max_value=10**16),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(),
    phone_like,
    st.binary(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.tuples(st.text(max_size=3)),
)
regions = st.sampled_from([None, "RU", "KZ", "US", "DE", "GB", "BR", "AR", "MX", "CN", "AU", "IN", "IL", "TD"])
rule_sets = st.one_of(st.none(), st.frozensets(st.sampled_from(list(NumberRule))))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=anything, region=regions, rules=rule_sets)
def test_fuzz_never_raises_and_output_is_consistent(value: object, region: str | None,
                                                    rules: frozenset[NumberRule] | None) -> None:
    result = normalize_phone_number(value, region, rules)
    assert isinstance(result, NormalizedNumber)
    assert isinstance(result.raw, str)
    if isinstance(value, str):
        assert result.raw == value
    if result.is_valid:
        digits = result.digits
        assert isinstance(digits, str) and digits.isascii() and digits.isdigit()
        assert MIN_DIGITS <= len(digits) <= MAX_DIGITS
        assert result.reason is None
        enabled = DEFAULT_RULES if rules is None else rules
        assert set(result.rules_applied) <= {rule.value for rule in enabled}
    else:
        assert result.digits is None
        assert isinstance(result.reason, str) and result.reason.strip()
        assert "internal error" not in result.reason
        assert result.rules_applied == ()
    masked = mask_phone_number(result.raw)
    assert isinstance(masked, str)


@settings(max_examples=800, deadline=None)
@given(value=phone_like, region=regions, rules=rule_sets)
def test_normalised_digits_are_stable(value: str, region: str | None, rules: frozenset[NumberRule] | None) -> None:
    """Feeding the output back in, with '+', gives the same digits (no rule fires twice)."""
    first = normalize_phone_number(value, region, rules)
    if first.digits is not None:
        again = normalize_phone_number("+" + first.digits, region, rules)
        assert again.digits == first.digits
        assert again.rules_applied == ()


# Argentina is left out: phonenumbers applies the 15 -> 9 change itself, which here is a switchable rule.
_CALLING_CODES = sorted(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE if code != 54)


@settings(max_examples=1500, deadline=None)
@given(code=st.sampled_from(_CALLING_CODES), zero=st.booleans(),
       rest=st.text(alphabet="0123456789", min_size=4, max_size=15))
def test_international_fast_path_matches_phonenumbers(code: str, zero: bool, rest: str) -> None:
    """Without quirk rules, '+' digits give exactly what phonenumbers.parse + is_possible_number give."""
    text = "+" + code + ("0" if zero else "") + rest
    ours = normalize_phone_number(text, rules=()).digits
    try:
        number = phonenumbers.parse(text)
    except phonenumbers.NumberParseException:
        expected = None
    else:
        national = phonenumbers.national_significant_number(number)
        expected = str(number.country_code) + national
        possible = phonenumbers.is_possible_number_with_reason(number) == phonenumbers.ValidationResult.IS_POSSIBLE
        if number.country_code == 52 and len(national) == 11 and national[0] == "1":
            possible = True  # GREEN-API's 521 form
        if number.country_code == 1 and national[0] in "01":
            possible = False
        if not (possible and MIN_DIGITS <= len(expected) <= MAX_DIGITS):
            expected = None
    assert ours == expected


def _national_numbers_to_strip() -> list[tuple[str, str]]:
    """(main region, digits) that phonenumbers' national-prefix pattern of the region may strip: each example
    number's national format, the trunk prefix before its national number, and seeded digits after every
    leading digit."""
    rnd = random.Random(17)
    cases = []
    for region_code in sorted(phonenumbers.SUPPORTED_REGIONS):
        country_code = phonenumbers.country_code_for_region(region_code)
        if phonenumbers.region_code_for_country_code(country_code) != region_code:
            continue
        trunk = phonenumbers.ndd_prefix_for_region(region_code, True) or ""
        for number_type in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE):
            example = phonenumbers.example_number_for_type(region_code, number_type)
            if example is not None:
                nsn = phonenumbers.national_significant_number(example)
                national = phonenumbers.format_number(example, PhoneNumberFormat.NATIONAL)
                cases += [(region_code, "".join(c for c in national if c.isdigit())), (region_code, trunk + nsn)]
        for first in "0123456789":
            for size in (2, 5, 9, 12, 17):
                cases.append((region_code, first + "".join(rnd.choice("0123456789") for _ in range(size))))
    return cases


def test_trunk_prefix_shortcut_strips_what_phonenumbers_parse_strips() -> None:
    """The reading strips a national prefix with phonenumbers' own step for it instead of a whole parse; for
    every main region, after a '+' and the code and in the region's national format, what is left is parse's
    national significant number (or the digits as written where parse raises)."""
    from airflow_provider_greenapi.numbers import reading

    assert reading._strip_national_prefix is not None, "phonenumbers renamed its helper: see numbers/reading.py"
    cases = _national_numbers_to_strip()
    assert len(cases) > 10_000
    differences = []
    stripped = 0
    for region_code, digits in cases:
        country_code = phonenumbers.country_code_for_region(region_code)
        try:
            expected = phonenumbers.national_significant_number(phonenumbers.parse(f"+{country_code}{digits}"))
        except phonenumbers.NumberParseException:
            expected = digits
        if country_code != 54 and expected != reading._without_trunk_prefix(country_code, digits):
            differences.append(("+", region_code, digits, expected))
        if expected != reading._prefix_step_keeps(country_code, digits):
            differences.append(("step", region_code, digits, expected))
        stripped += expected != digits
        national = reading._national(digits, reading.region(region_code), frozenset())
        try:
            number = phonenumbers.parse(digits, region_code, keep_raw_input=True)
        except phonenumbers.NumberParseException as error:
            dialled_abroad = error.error_type in (phonenumbers.NumberParseException.INVALID_COUNTRY_CODE,
                                                  phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD)
            expected_national = None if dialled_abroad else digits
        else:
            from_region = number.country_code_source == phonenumbers.CountryCodeSource.FROM_DEFAULT_COUNTRY
            expected_national = phonenumbers.national_significant_number(number) if from_region else None
        if country_code != 54 and len(digits) <= 20 and (national.nsn if national else None) != expected_national:
            differences.append(("national", region_code, digits, expected_national))
    assert differences == []
    assert stripped > 500  # the cases do reach the stripping
