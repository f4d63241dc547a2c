"""What changed since a source was last read: the inputs the results table holds exactly as they are now
(same source key, same text, read by the same normaliser), which need neither reading nor writing, and the
SQL that cuts a source, or its copy, to the rest in the results' database (:class:`SourceChanges`). Also the
rule for the rows of source keys a source no longer returns (``prune_missing``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence

from airflow_provider_greenapi.results import CheckStatus
from airflow_provider_greenapi.sources import QueryParameters, execute
from airflow_provider_greenapi.warehouse.results_table import KEY_LENGTHS, MAX_STORED_TEXT, PAGE_ROWS, ResultsTable
from airflow_provider_greenapi.warehouse.storable import key_problem, storable_text

_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_FINGERPRINT = re.compile(r"[0-9a-f]{1,64}")
# A source in another database, copied into a temporary table of the results' database to be cut there to
# its changed rows (Engine.copies_sources): the copy's name and columns.
COPY_TABLE = "greenapi_source_copy"
COPY_COLUMNS = ("source_key", "input_value")


class SourceChanges(ResultsTable):
    """The results table as the record of a source's inputs: which of them changed since it was read."""

    def unchanged_inputs(self, chunk: Sequence[tuple[object, str]], normalized_by: str) -> dict[int, str | None]:
        """The inputs of ``chunk`` (value, source key) stored exactly as they are now: under the same source
        key, as the same text, read by the same normaliser (``normalized_by``). Position in ``chunk`` -> the
        stored number (None: stored invalid). Such an input needs neither reading nor writing; its number is
        still checked when its answer is due (:meth:`WorkQueue.carry_over`). Only text and integers under a non-empty
        key are compared (None as no text): anything else is read again."""
        wanted: dict[str, list[tuple[int, str]]] = {}
        for position, (value, key) in enumerate(chunk):
            comparable = comparable_input(value, key)
            if comparable is not None:
                wanted.setdefault(key, []).append((position, comparable[1]))
        found: dict[int, str | None] = {}
        if not wanted:
            return found
        keys = list(wanted)
        invalid = CheckStatus.INVALID.value
        batch_size = self.engine.lookup_keys
        cursor = self.connection.cursor()
        try:
            for start in range(0, len(keys), batch_size):
                matching, params = self.engine.one_of("source_key", keys[start : start + batch_size])
                cursor.execute(
                    f"SELECT source_key, input_value, phone_number, status FROM {self._table} "
                    f"WHERE normalized_by = {self._p} AND {matching}", [normalized_by, *params])
                for key, text, phone, status in cursor.fetchall():
                    for position, wanted_text in wanted.get(key, ()):
                        if wanted_text == text:
                            found[position] = None if status == invalid else phone
        finally:
            cursor.close()
        self.engine.end_read(self.connection)
        return found

    def holds_inputs_read_by(self, normalized_by: str) -> bool:
        """Whether the table exists and holds an input read with ``normalized_by`` (what a source's database can
        leave out, :meth:`changed_rows_sql`): False for a table not made yet or made by an older version."""
        if not _FINGERPRINT.fullmatch(normalized_by):
            return False
        try:
            return bool(self._page(
                f"SELECT 1 FROM {self._table} WHERE normalized_by = {self._p} LIMIT 1", (normalized_by,)))
        except Exception:
            with contextlib.suppress(Exception):  # a failed statement leaves PostgreSQL's transaction aborted
                self.connection.rollback()
            return False

    def changed_rows_sql(self, sql: str, phone_column: str, key_column: str, normalized_by: str) -> str | None:
        """``sql``, a query of this table's database, cut in the database to its rows that are not stored as
        they are (:meth:`unchanged_inputs`, as one anti-join on the source key), as ``(phone, key)`` rows;
        None when that cannot be asked safely (the engine compares in batches instead, a column is not a plain
        name). It may keep a row that is stored as it is (a float's text, say): staging compares those again."""
        names_ok = all(_PLAIN_NAME.fullmatch(c) for c in (phone_column, key_column))
        if not self.engine.diffs_in_database or not names_ok or not _FINGERPRINT.fullmatch(normalized_by):
            return None
        query = sql.strip().rstrip(";").strip()
        def text(expression: str) -> str:
            return self.engine.as_text(expression, self.connection)

        return (
            f"SELECT src.{phone_column}, src.{key_column} FROM ({query}) src WHERE NOT EXISTS (SELECT 1 FROM "
            f"{self._table} r WHERE r.source_key = {text(f'src.{key_column}')} AND r.input_value = "
            f"COALESCE({text(f'src.{phone_column}')}, '') AND r.normalized_by = '{normalized_by}')"
        )

    def changed_copy_rows_sql(self, normalized_by: str) -> str | None:
        """:meth:`changed_rows_sql` of a source's copy in this database (``COPY_TABLE``, made on the session
        that reads it by :meth:`Engine.create_copy_table`)."""
        if not self.engine.copies_sources:
            return None
        query = f"SELECT {', '.join(COPY_COLUMNS)} FROM {COPY_TABLE}"
        return self.changed_rows_sql(query, "input_value", "source_key", normalized_by)

    def prune_missing(self, seen_keys: set[str]) -> int:
        """Delete (not committed) the rows under a source key not in ``seen_keys``, the keys of a whole source;
        rows without a key (a list's) are kept. How many were deleted."""
        deleted, last = 0, ""
        while page := [r[0] for r in self._page(
                f"SELECT DISTINCT source_key FROM {self._table} WHERE source_key > {self._p} ORDER BY source_key "
                f"LIMIT {PAGE_ROWS}", (last,))]:
            last = page[-1]
            gone = [key for key in page if key not in seen_keys]
            if gone:
                deleted += self._delete(f"source_key IN ({', '.join([self._p] * len(gone))})", gone)
        return deleted

    def prune_missing_in_database(self, sql: str, key_column: str, parameters: QueryParameters = None) -> int | None:
        """:meth:`prune_missing` as one statement, against ``sql``, a query of this database (None: it cannot be
        asked so, as in :meth:`changed_rows_sql`); ``parameters``: ``sql``'s."""
        if not self.engine.diffs_in_database or not _PLAIN_NAME.fullmatch(key_column):
            return None
        query = sql.strip().rstrip(";").strip()
        key = self.engine.as_text(f"src.{key_column}", self.connection)
        return self._delete(
            f"source_key <> '' AND source_key NOT IN (SELECT {key} FROM ({query}) src WHERE src.{key_column} IS NOT "
            "NULL)", parameters)

    def _delete(self, where: str, params: QueryParameters) -> int:
        """Delete the rows matching ``where``; how many (counted first: not every driver's rowcount says)."""
        cursor = self.connection.cursor()
        try:
            execute(cursor, f"SELECT COUNT(*) FROM {self._table} WHERE {where}", params)
            count = int(cursor.fetchone()[0])
            if count:
                execute(cursor, f"DELETE FROM {self._table} WHERE {where}", params)
            return count
        finally:
            cursor.close()


def _comparable_text(value: object) -> str | None:
    """The text an input of plain text or an integer is stored as (``input_value``), when it is stored whole
    and as it is; None otherwise (the input is then read again)."""
    if type(value) is str:
        if len(value) <= MAX_STORED_TEXT and value.isascii() and "\x00" not in value:
            return value  # the common case: stored as it is
        text = value
    elif value is None:
        text = ""  # no number: stored with no text, read again only when one is given
    elif type(value) is int and value.bit_length() <= 64:  # longer: no phone number, and str() may refuse it
        text = str(value)
    else:
        return None
    if len(text) > MAX_STORED_TEXT or storable_text(text) != text:
        return None
    return text


def comparable_input(value: object, key: str) -> tuple[str, str] | None:
    """(source key, text) of an input whose stored row can say it is unchanged, compared by both with
    ``source_key`` and ``input_value``; None when it must be read again (no key, a key or a value not stored
    as it is: the store escapes or cuts those)."""
    if not key:
        return None
    text = _comparable_text(value)
    if text is None:
        return None
    limit = KEY_LENGTHS["source_key"]
    plain_key = key.isascii() and "\x00" not in key and len(key) <= limit  # the common case, at once
    return (key, text) if plain_key or key_problem(key, limit) is None else None


def copied_input(value: object, key: str) -> tuple[str, str | None] | None:
    """The row of a source's copy (:attr:`Engine.copies_sources`) for an input: (source key, its text, None for
    no number), when reading that text back gives what reading the value gives; None: the input is staged as
    it is (a negative integer reads as invalid, its text as a number with a dash)."""
    if type(value) is int and value < 0:
        return None
    comparable = comparable_input(value, key)
    if comparable is None:
        return None
    return comparable[0], None if value is None else comparable[1]


def copied_inputs(batch: Sequence[tuple[object, str]]) -> list[tuple[str, str | None] | None]:
    """:func:`copied_input` of each input of ``batch``, the common case (plain text under a plain key) at once:
    a call per input would cost a third of the copy."""
    limit, most = KEY_LENGTHS["source_key"], MAX_STORED_TEXT
    return [(key, value) if type(value) is str and len(value) <= most and value.isascii() and "\x00" not in value
            and 0 < len(key) <= limit and key.isascii() and "\x00" not in key else copied_input(value, key)
            for value, key in batch]
