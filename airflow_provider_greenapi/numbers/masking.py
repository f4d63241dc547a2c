"""Phone numbers shortened for logs: only the last 4 digits show (docs/numbers.md, step 7)."""

from __future__ import annotations

import re

from airflow_provider_greenapi.numbers.quirks import MAX_DIGITS
from airflow_provider_greenapi.numbers.values import MAX_INPUT_CHARS, safe_str

_MASK_ALLOWED = re.compile(r"(?:tel:)?\s*\+?[0-9\s\-.()/]*(?:@(?:c\.us|s\.whatsapp\.net))?", re.IGNORECASE)
_MASK_MIN_DIGITS = 8
_MASK_KEEP = 4


def mask_phone_number(digits_or_raw: str) -> str:
    """Hide a phone number for logs, keeping only its last 4 digits: ``"79001234567"`` → ``"*******4567"``.

    Formatting is dropped (only the digits are counted). Inputs with fewer than 8 digits, or with anything
    that is not phone punctuation (letters, e-mail addresses, names), are masked completely. Never raises.
    """
    try:
        text = digits_or_raw if isinstance(digits_or_raw, str) else safe_str(digits_or_raw)
        text = text.strip()
        if not text:
            return ""
        if len(text) > MAX_INPUT_CHARS or not text.isascii() or not _MASK_ALLOWED.fullmatch(text):
            return "*" * min(len(text), MAX_DIGITS)
        digits = "".join(char for char in text if char.isdigit())
        if len(digits) < _MASK_MIN_DIGITS:
            return "*" * max(len(digits), 1)
        return "*" * (len(digits) - _MASK_KEEP) + digits[-_MASK_KEEP:]
    except Exception:
        return "****"
