"""From a Python value or a text to digit strings, or one sentence saying why that value is not a number.

The first half of normalising (docs/numbers.md, steps 1 and 2): the type of the value, Unicode digits and
punctuation, ``tel:``, chat ids, extensions, floats in disguise and the allowed characters. What the digits
mean (country code, national number) is :mod:`.reading`'s business.
"""

from __future__ import annotations

import operator
import re
import unicodedata
from decimal import Decimal
from typing import NamedTuple

from airflow_provider_greenapi.numbers.quirks import MAX_DIGITS

MAX_INPUT_CHARS = 100
"""Longer text is not a phone number; this also bounds the work done per value."""


class Digits(NamedTuple):
    """A value read as digits: ``digits`` (ASCII, no separators) and whether a ``+`` (or a chat id) made them
    international, or the ``reason`` the value cannot be a number."""

    raw: str
    digits: str
    plus: bool
    reason: str | None


_ASCII_DIGITS = re.compile(r"[0-9]+")
_FORMATTED = re.compile(r"[0-9 \t\n\r\f\v\-.()/+]+")
_SEPARATOR_BYTES = b" \t\n\r\f\v-.()/"
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
    if "\x00" in text:
        return "contains a NUL character (binary data, not text)"
    if any("\ud800" <= char <= "\udfff" for char in text):
        return "contains bytes that are not valid UTF-8 text (a lone surrogate): fix the text's encoding in the source"
    for char in text:
        if char.isalpha():
            return "contains letters"
    for char in text:
        if not (char in "0123456789+-.()/" or char.isspace()):
            return f"contains {char!r}, which cannot be part of a phone number"
    return "contains characters that cannot be part of a phone number"


def _read_text(text: str) -> tuple[str, bool, str | None]:
    """Return (digits, plus, reason); the reason is set when the text cannot be a phone number."""
    text = text.strip()
    if _ASCII_DIGITS.fullmatch(text):
        return text, False, None
    if not text:
        return "", False, "empty"
    if len(text) > MAX_INPUT_CHARS:
        return "", False, f"too long to be a phone number ({len(text)} characters)"
    if _FORMATTED.fullmatch(text):  # most numbers: digits, separators, a '+'; none of the checks below applies
        if "." in text and _FLOAT_TEXT.fullmatch(text):
            return "", False, _FLOAT_REASON
        return _without_separators(text, False)
    return _read_unusual_text(text)


_FLOAT_REASON = "looks like a float written as text (ends in '.0'): export the column as text or integers"


def _read_unusual_text(text: str) -> tuple[str, bool, str | None]:
    """:func:`_read_text` for text with something besides digits, separators and '+': non-ASCII characters,
    ``tel:``, a chat id, an exponent, an extension, letters."""
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
        return "", False, _FLOAT_REASON
    if _SCIENTIFIC.fullmatch(text):
        return "", False, ("looks like a float in scientific notation, which may have lost digits: "
                           "export the column as text or integers")
    if _EXTENSION.search(text):
        return "", False, ("has an extension (ext./x/#/;ext=): WhatsApp cannot check an extension; "
                           "remove it if the main number is meant")
    if not _FORMATTED.fullmatch(text):
        return "", False, _bad_character_reason(text)
    return _without_separators(text, plus)


def _without_separators(text: str, plus: bool) -> tuple[str, bool, str | None]:
    """The digits of ``text`` (only digits, separators and '+' by now), and whether a '+' led them."""
    if "+" in text:
        position = text.index("+")
        if text.count("+") > 1 or text[:position].strip(" (\t"):
            return "", False, "'+' may appear only once, before the digits"
        text = text[:position] + text[position + 1 :]
        plus = True
    digits = text.encode("ascii").translate(None, _SEPARATOR_BYTES).decode("ascii")  # ASCII by now; bytes are faster
    if not digits:
        return "", False, "no digits"
    return digits, plus, None


def safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:  # int too large to print, broken __str__, ...
        return f"<unprintable {type(value).__name__}>"


def read_value(value: object) -> Digits:
    """Read any Python value as digits, or say why it cannot be a phone number. Never raises."""
    if value is None:
        return Digits("", "", False, "no number given (None)")
    if isinstance(value, str):
        return Digits(value, *_read_text(value))
    raw = safe_str(value)
    if isinstance(value, bool) or type(value).__name__ in ("bool_", "bool"):
        return Digits(raw, "", False, "a boolean is not a phone number")
    if isinstance(value, int):
        if value < 0:
            return Digits(raw, "", False, "a negative number is not a phone number")
        if value.bit_length() > 64:
            return Digits(raw, "", False, f"too long: more than {MAX_DIGITS} digits")
        return Digits(raw, str(int(value)), False, None)
    if isinstance(value, float):
        return Digits(raw, "", False, "a float is not accepted (floats lose digits): send numbers as text or integers")
    if isinstance(value, (bytes, bytearray, memoryview)):  # a memoryview's str is an address: show its bytes
        shown = repr(bytes(value)[:MAX_INPUT_CHARS]) if isinstance(value, memoryview) else raw
        return Digits(shown, "", False, "bytes are not accepted: decode them to text first")
    if isinstance(value, Decimal):
        if not value.is_finite() or value != value.to_integral_value():
            return Digits(raw, "", False, "a non-integer Decimal is not a phone number")
        if value < 0:
            return Digits(raw, "", False, "a negative number is not a phone number")
        if value.adjusted() > MAX_DIGITS + 4:
            return Digits(raw, "", False, f"too long: more than {MAX_DIGITS} digits")
        return Digits(raw, str(int(value)), False, None)
    if hasattr(type(value), "__index__"):  # numpy integers and the like
        try:
            as_int = operator.index(value)  # type: ignore[arg-type]
        except Exception:
            as_int = None
        if as_int is not None:
            return read_value(as_int)._replace(raw=raw)
    if hasattr(value, "__float__"):
        return Digits(raw, "", False, (
            f"a {type(value).__name__} is not accepted (non-integer numbers lose digits): send numbers "
            "as text or integers"))
    return Digits(raw, "", False, f"unsupported type {type(value).__name__}: give a str or an int")
