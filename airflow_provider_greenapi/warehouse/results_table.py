"""The results table's rows as every part of the store reads them: the table's name and connection, its
stored rows by number or by key, pages of a query, and the sizes of what a row stores.

:class:`ResultsTable` is the base of the store's parts: what changed since a source was read (changes.py), the
work queue (queue.py) and staging and the schema (store.py), each a class of its own over this one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from airflow_provider_greenapi.warehouse.engine import Dialect, Engine
from airflow_provider_greenapi.warehouse.storable import key_problem, storable_key

MAX_STORED_TEXT = 200  # characters of an input or a failure's detail the table stores
KEY_LENGTHS = {"phone_number": 200, "source_key": 255, "staged_by": 64}  # where an engine needs a length
PAGE_ROWS = 500  # rows per page of a keyset scan
# The stored row as staging reads it. ``is_queued`` is asked of the database: fakesnow's server reads a NULL
# timestamp back as 1970-01-01 (IS NULL is right there).
ROW_FIELDS = ("phone_number, source_key, input_value, status, exists_whatsapp, whatsapp_lid, checked_at, queued_at, "
              "staged_by, normalized_by, CASE WHEN queued_at IS NULL THEN 0 ELSE 1 END")
ROW_NAMES = (*(f.strip() for f in ROW_FIELDS.split(",")[:-1]), "is_queued")


class ResultsTable:
    """The results table over one open DB-API connection (used from one thread), what each part of the store
    reads it through. A ``temporary`` table lives only for the task (its results go to the XCom): it has no
    ``destination_table``."""

    def __init__(self, connection: Any, dialect: Dialect, table: str, *, temporary: bool = False) -> None:
        self.connection = connection
        self.destination_table = None if temporary else table
        self.dialect = dialect
        self.engine: Engine = dialect.engine
        self.table_name = table
        self._table = self.engine.table_name(table)
        self._p = self.engine.placeholder

    def has_rows(self) -> bool:
        """Whether the table holds any row."""
        return bool(self._page(f"SELECT 1 FROM {self._table} LIMIT 1", ()))

    def _rows_for(self, phone_numbers: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
        """Every stored row of these numbers, by key."""
        return self._select_rows([self.engine.one_of("phone_number", batch) for batch in self._batches(phone_numbers)])

    def _rows_at(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """The stored rows at these keys (number, source key): as many as the keys, however many rows share
        a value (an invalid text such as "n/a" under thousands of source keys)."""
        conditions = []
        for batch in self._batches(sorted(keys)):
            numbers, number_params = self.engine.one_of("phone_number", [k[0] for k in batch])
            sources, source_params = self.engine.one_of("source_key", [k[1] for k in batch])
            conditions.append((f"{numbers} AND {sources}", [*number_params, *source_params]))
        return {k: row for k, row in self._select_rows(conditions).items() if k in keys}

    def _select_rows(self, conditions: list[tuple[str, list[Any]]]) -> dict[tuple[str, str], dict[str, Any]]:
        """The rows matching each ``(where, params)`` of ``conditions``, by key."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        cursor = self.connection.cursor()
        try:
            for where, params in conditions:
                cursor.execute(f"SELECT {ROW_FIELDS} FROM {self._table} WHERE {where}", params)
                for record in cursor.fetchall():
                    row = dict(zip(ROW_NAMES, record, strict=True))
                    found[(row["phone_number"], row["source_key"])] = row
        finally:
            cursor.close()
        return found

    def _batches(self, values: Sequence[Any]) -> list[list[Any]]:
        """``values`` in batches of the engine's look-up size (``Engine.lookup_keys``)."""
        size = self.engine.lookup_keys
        return [list(values[start : start + size]) for start in range(0, len(values), size)]

    def _page(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        cursor = self.connection.cursor()  # one per page: the connection commits between pages
        try:
            cursor.execute(sql, params)
            records = cursor.fetchall()
        finally:
            cursor.close()
        self.engine.end_read(self.connection)
        return list(records)

    def commit(self) -> None:
        self.connection.commit()

    def rollback(self) -> None:
        self.connection.rollback()


def stored_key(key: str) -> str:
    """A source key as the table stores it (escaped when it cannot be stored as it is, storable.py)."""
    limit = KEY_LENGTHS["source_key"]
    if key.isascii() and "\x00" not in key and len(key) <= limit:
        return key
    return key if key_problem(key, limit) is None else storable_key(key, limit)


def freshest_answers(
    rows: Iterable[dict[str, Any]], cutoffs: dict[str, datetime | None], engine: Engine
) -> dict[str, dict[str, Any]]:
    """For each number, its newest stored answer that is still fresh."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        cutoff = cutoffs.get(row["status"])
        checked = engine.from_db_time(row["checked_at"])
        if cutoff is None or checked is None or checked < cutoff:
            continue
        current = best.get(row["phone_number"])
        if current is None or engine.from_db_time(current["checked_at"]) < checked:  # type: ignore[operator]
            best[row["phone_number"]] = row
    return best
