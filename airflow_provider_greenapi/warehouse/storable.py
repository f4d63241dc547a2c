"""Text every warehouse engine stores as it is, and what becomes of a value or a source key that is not.

Two characters no engine takes in a text column: NUL (PostgreSQL refuses it, DuckDB and Snowflake cut or
refuse) and a lone surrogate (no driver can encode it as UTF-8; a source's undecodable bytes arrive as such,
see sqlite.py). Stored text has each of them written as its escape (``\\x00``, ``\\udcff``), so the value
keeps its row and the run goes on.

A source key is the row's identity, so it must be stored exactly: a key with such a character, or longer than
the key column holds, is not checked. Its input is stored ``invalid`` under the key escaped (and shortened
with a digest that keeps distinct keys apart), with the reason: the number's answer could not join back.
"""

from __future__ import annotations

import hashlib
import re

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_DIGEST_CHARS = 16


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return "\\x00" if char == "\x00" else f"\\u{ord(char):04x}"


def storable_text(text: str) -> str:
    """``text`` with each NUL and lone surrogate written as its escape."""
    if text.isascii() and "\x00" not in text:  # nearly every value: no regular expression
        return text
    return text if _UNSTORABLE.search(text) is None else _UNSTORABLE.sub(_escape, text)


def key_problem(key: str, max_chars: int) -> str | None:
    """Why ``key`` cannot be stored as it is in a key column of ``max_chars``, or None."""
    found = None if key.isascii() and "\x00" not in key else _UNSTORABLE.search(key)
    if found is not None:
        return ("contains a NUL character" if found.group() == "\x00"
                else "contains text that is not valid UTF-8 (a lone surrogate)")
    if len(key) > max_chars:
        return f"is longer than {max_chars} characters ({len(key)})"
    return None


def storable_key(key: str, max_chars: int) -> str:
    """``key`` escaped, and if then too long, cut and ended by ``…#`` and a digest of the whole key."""
    escaped = storable_text(key)
    if len(escaped) <= max_chars:
        return escaped
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:_DIGEST_CHARS]
    return f"{escaped[: max_chars - _DIGEST_CHARS - 2]}…#{digest}"


def unstorable_key_reason(problem: str) -> str:
    return (f"the source key {problem}: stored escaped, and the number is not checked (its answer could not "
            "join back to the source row); fix the key in the source")
