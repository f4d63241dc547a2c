"""Where the numbers come from: a list (literal or XCom) or the rows of a SQL query, read in chunks."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from airflow_provider_greenapi.numbers.values import safe_str

InputRow = tuple[object, str]  # (the raw phone number, the source key or "")


def numbers_from_value(value: object) -> Iterator[InputRow]:
    """Inputs from a list/tuple of numbers, or a mapping of source key -> number (to join results back)."""
    if isinstance(value, Mapping):
        for key, number in value.items():
            yield number, key_text(key)
        return
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(
            f"phone_numbers must be a list of phone numbers (or a dict of key -> number), got "
            f"{type(value).__name__}: wrap a single number in a list, or return a list from the upstream task."
        )
    for number in value:
        yield number, ""


def numbers_from_query(
    open_cursor: Callable[[], Any], sql: str, phone_column: str | None = None, key_column: str | None = None,
    chunk_size: int = 1000,
) -> Iterator[InputRow]:
    """Inputs from the rows of ``sql``, fetched ``chunk_size`` rows at a time. The query runs when the
    first input is asked for, and its cursor is closed when the rows are exhausted (an open read would hold
    a SQLite file's lock). The phone number is ``phone_column`` (default: the first column); the source key
    is ``key_column`` when given. Other columns are ignored; NULL numbers arrive as None (reported invalid)."""
    cursor = open_cursor()
    try:
        cursor.execute(sql)
        yield from _rows(cursor, phone_column, key_column, chunk_size)
    finally:
        cursor.close()


def _rows(cursor: Any, phone_column: str | None, key_column: str | None, chunk_size: int) -> Iterator[InputRow]:
    names = [str(d[0]).lower() for d in cursor.description or ()]

    def position(column: str, role: str) -> int:
        try:
            return names.index(column.lower())
        except ValueError:
            raise ValueError(
                f"The source query has no column {column!r} for the {role} (its columns: {', '.join(names)})."
            ) from None

    phone_at = position(phone_column, "phone number") if phone_column else 0
    key_at = position(key_column, "source key") if key_column else None
    while rows := cursor.fetchmany(chunk_size):
        for row in rows:
            yield row[phone_at], "" if key_at is None else key_text(row[key_at])


def key_text(value: object) -> str:
    """A source key as text: bytes are decoded (undecodable ones escaped, then reported by the store), NULL is
    the empty key."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "surrogateescape")
    return safe_str(value)
