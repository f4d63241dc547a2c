"""The results table: schema, staging of a run's numbers, the check queue, and idempotent writes.

The table is the durable record of the inputs and their answers, and the run's work queue. A run costs what
changed: an input stored exactly as it is now (same source key, same text, read by the same normaliser) is
neither read again nor rewritten (:meth:`ResultsStore.unchanged_inputs`). Staging writes each new or changed
input once (``staged_by`` = the run's token) and marks the ones without a fresh answer as queued
(``queued_at``); then :meth:`ResultsStore.carry_over` queues for the run what the table still owes, whatever
the run's input: numbers left pending or in error by earlier runs and answers gone stale. The checker drains
the queue in number order (a number under many keys is taken once), and each committed result clears
``queued_at``. A crash therefore loses at most the results not yet committed, and the next run picks up what
is still queued.

Portable SQL over any DB-API connection of a supported engine (engine.py); what differs per engine (types,
upsert, locks, batching) is the engine's. Table names are validated identifiers, values always travel as
query parameters. On a batched (cloud) engine every write of a chunk is one statement per table.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_greenapi.numbers import NormalizedNumber
from airflow_provider_greenapi.results import CheckOutcome, CheckStatus
from airflow_provider_greenapi.warehouse.engine import Dialect, Engine
from airflow_provider_greenapi.warehouse.storable import key_problem, storable_key, storable_text, unstorable_key_reason

_MAX_STORED_TEXT = 200
_KEY_LENGTHS = {"phone_number": 200, "source_key": 255, "staged_by": 64}  # where an engine needs a length
_PAGE = 500  # rows per page of a keyset scan
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_FINGERPRINT = re.compile(r"[0-9a-f]{1,64}")


@dataclass(frozen=True)
class Freshness:
    """How long a stored answer stays good. None means answers never count as fresh."""

    exists_max_age: timedelta | None = timedelta(days=30)
    not_exists_max_age: timedelta | None = timedelta(days=7)

    def cutoffs(self, now: datetime) -> dict[str, datetime | None]:
        return {
            CheckStatus.EXISTS.value: None if self.exists_max_age is None else now - self.exists_max_age,
            CheckStatus.NOT_EXISTS.value: (
                None if self.not_exists_max_age is None else now - self.not_exists_max_age
            ),
        }


@dataclass(frozen=True)
class RunContext:
    """Who writes the rows: recorded in each row for lineage and debugging."""

    token: str
    instance_id: str | None = None
    dag_id: str | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class StagedInput:
    number: NormalizedNumber
    source_key: str = ""


@dataclass
class StageCounts:
    inputs: int = 0
    unchanged: int = 0
    duplicates: int = 0
    invalid: int = 0


# name, type (None: timestamp, "bool": boolean, "TEXT": the engine's text type), NOT NULL
_COLUMNS: tuple[tuple[str, str | None, bool], ...] = (
    ("phone_number", "TEXT", True),
    ("source_key", "TEXT", True),
    ("input_value", "TEXT", False),
    ("status", "TEXT", True),
    ("exists_whatsapp", "bool", False),
    ("whatsapp_lid", "TEXT", False),
    ("detail", "TEXT", False),
    ("checked_at", None, False),
    ("queued_at", None, False),
    ("updated_at", None, True),
    ("instance_id", "TEXT", False),
    ("dag_id", "TEXT", False),
    ("run_id", "TEXT", False),
    ("staged_by", "TEXT", False),
    ("normalized_by", "TEXT", False),
)
COLUMN_NAMES = tuple(c[0] for c in _COLUMNS)
# Columns newer than the first tables: ensure_table adds them to a table that lacks them. ``whatsapp_lid``
# replaced ``chat_id`` (left in place, no longer written; its ``…@lid`` values are copied over).
# ``normalized_by`` (the normaliser's settings) is NULL in an older table's rows: each is read again once.
_ADDED_COLUMNS = ("whatsapp_lid", "normalized_by")
_KEY = ("phone_number", "source_key")
# A source in another database, copied into a temporary table of the results' database to be cut there to
# its changed rows (Engine.copies_sources): the copy's name and columns.
COPY_TABLE = "greenapi_source_copy"
COPY_COLUMNS = ("source_key", "input_value")
# The stored row as staging reads it. ``is_queued`` is asked of the database: fakesnow's server reads a NULL
# timestamp back as 1970-01-01 (IS NULL is right there).
_ROW_FIELDS = ("phone_number, source_key, input_value, status, exists_whatsapp, whatsapp_lid, checked_at, queued_at, "
               "staged_by, normalized_by, CASE WHEN queued_at IS NULL THEN 0 ELSE 1 END")
_ROW_NAMES = (*(f.strip() for f in _ROW_FIELDS.split(",")[:-1]), "is_queued")
# (index name suffix, columns): a run's queue in number order; the stored inputs by source key
_INDEXES = (("work_idx", ("staged_by", "phone_number", "queued_at")), ("key_idx", ("source_key",)))


class ResultsStore:
    """The results table over one open DB-API connection (used from one thread). A ``temporary`` table lives
    only for the task (its results go to the XCom): it has no ``destination_table``."""

    def __init__(self, connection: Any, dialect: Dialect, table: str, *, temporary: bool = False) -> None:
        self.connection = connection
        self.destination_table = None if temporary else table
        self.dialect = dialect
        self.engine: Engine = dialect.engine
        self.table_name = table
        self._table = self.engine.table_name(table)
        self._p = self.engine.placeholder

    # --- schema ------------------------------------------------------------------------------------------

    def ensure_table(self) -> None:
        """Create the table and its queue index if missing; refuse a table of another shape."""
        types = self._column_types()
        columns = []
        for name, _, not_null in _COLUMNS:
            default = " DEFAULT ''" if name == "source_key" else ""
            columns.append(f"{name} {types[name]}{' NOT NULL' if not_null else ''}{default}")
        columns.append(f"PRIMARY KEY ({', '.join(_KEY)})")
        self.engine.create_table(self.connection, self.table_name, ", ".join(columns), then=self._bring_up_to_date)

    def _column_types(self) -> dict[str, str]:
        """Each column's SQL type on this engine."""
        engine = self.engine
        types = {None: engine.timestamp_type, "bool": engine.boolean_type, "TEXT": engine.text_type}
        return {name: engine.key_text_type(_KEY_LENGTHS[name]) if kind == "TEXT" and name in _KEY_LENGTHS
                else types.get(kind, kind or "") for name, kind, _ in _COLUMNS}

    def _bring_up_to_date(self, cursor: Any) -> None:
        """Refuse a table of another shape, add the columns it lacks, create the queue index if missing, and
        make what the engine loads this session's upserts through (Engine.prepare_upserts)."""
        engine = self.engine
        present = engine.present_columns(cursor, self.table_name)
        missing = [c for c in COLUMN_NAMES if c not in present and c not in _ADDED_COLUMNS]
        if missing:
            raise ValueError(
                f"Table {self.table_name!r} exists but lacks the columns {', '.join(missing)}: it was not "
                "created by this provider. Choose another destination_table, or drop or rename this one."
            )
        self._add_columns(cursor, present)
        for suffix, indexed in _INDEXES:
            index = engine.index_name(self.table_name, suffix)
            if engine.has_indexes and engine.index_missing(cursor, self.table_name, index):
                cursor.execute(engine.create_index_sql(self.table_name, index, indexed))
        engine.prepare_upserts(cursor, self.table_name, self._column_types())

    def _add_columns(self, cursor: Any, present: set[str]) -> None:
        """Bring a table made by an older version up to date (only columns that may be NULL are added)."""
        for name in _ADDED_COLUMNS:
            if name not in present:
                cursor.execute(f"ALTER TABLE {self._table} ADD COLUMN {name} {self.engine.text_type}")
        if "whatsapp_lid" not in present and "chat_id" in present:
            cursor.execute(f"UPDATE {self._table} SET whatsapp_lid = chat_id WHERE chat_id LIKE '%@lid'")

    # --- staging -----------------------------------------------------------------------------------------

    def has_rows(self) -> bool:
        """Whether the table holds any row."""
        return bool(self._page(f"SELECT 1 FROM {self._table} LIMIT 1", ()))

    def unchanged_inputs(self, chunk: Sequence[tuple[object, str]], normalized_by: str) -> dict[int, str | None]:
        """The inputs of ``chunk`` (value, source key) stored exactly as they are now: under the same source
        key, as the same text, read by the same normaliser (``normalized_by``). Position in ``chunk`` -> the
        stored number (None: stored invalid). Such an input needs neither reading nor writing; its number is
        still checked when its answer is due (:meth:`carry_over`). Only text and integers under a non-empty
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
                f"LIMIT {_PAGE}", (last,))]:
            last = page[-1]
            gone = [key for key in page if key not in seen_keys]
            if gone:
                deleted += self._delete(f"source_key IN ({', '.join([self._p] * len(gone))})", gone)
        return deleted

    def prune_missing_in_database(self, sql: str, key_column: str) -> int | None:
        """:meth:`prune_missing` as one statement, against ``sql``, a query of this database (None: it cannot be
        asked so, as in :meth:`changed_rows_sql`)."""
        if not self.engine.diffs_in_database or not _PLAIN_NAME.fullmatch(key_column):
            return None
        query = sql.strip().rstrip(";").strip()
        key = self.engine.as_text(f"src.{key_column}", self.connection)
        return self._delete(
            f"source_key <> '' AND source_key NOT IN (SELECT {key} FROM ({query}) src WHERE src.{key_column} IS NOT "
            "NULL)", [])

    def _delete(self, where: str, params: list[Any]) -> int:
        """Delete the rows matching ``where``; how many (counted first: not every driver's rowcount says)."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(f"SELECT COUNT(*) FROM {self._table} WHERE {where}", params)
            count = int(cursor.fetchone()[0])
            if count:
                cursor.execute(f"DELETE FROM {self._table} WHERE {where}", params)
            return count
        finally:
            cursor.close()

    def stage(
        self, inputs: Sequence[StagedInput], context: RunContext, freshness: Freshness, now: datetime,
        normalized_by: str | None = None,
    ) -> StageCounts:
        """Record one chunk of inputs (not committed): invalid ones as such, fresh ones as answered,
        the rest queued. An input whose number this run has already seen counts as a duplicate (checked
        once); under a new source key it still gets its own row, so the answer joins back to every key.
        ``normalized_by`` (the normaliser's settings) lets a later run know the input was read alike."""
        counts = StageCounts(inputs=len(inputs))
        inputs = [_with_storable_key(i) for i in inputs]
        numbers = sorted({i.number.digits for i in inputs if i.number.digits})
        existing = self._rows_for(numbers)
        existing.update(self._rows_at({(_invalid_key(i.number), i.source_key) for i in inputs if not i.number.digits}))
        freshest = _freshest_answers(existing.values(), freshness.cutoffs(now), self.engine)
        rows: dict[tuple[str, str], tuple[Any, ...]] = {}
        db_now = self.engine.to_db_time(now)
        seen = {row["phone_number"] for row in existing.values() if row["staged_by"] == context.token}
        kept: set[tuple[str, str]] = set()
        for item in inputs:
            normalized = item.number
            key = (normalized.digits or _invalid_key(normalized), item.source_key)
            old = existing.get(key)
            raw = storable_text(normalized.raw[: _MAX_STORED_TEXT * 2])[:_MAX_STORED_TEXT]
            if key not in rows and key not in kept and _stored_as_is(old, raw, normalized_by,
                                                                     freshest.get(normalized.digits or "")):
                counts.unchanged += 1  # (a list's input, without a source key to look it up by before reading)
                kept.add(key)
                continue
            if key in kept:  # a list's number written two ways: one row, kept as it is
                counts.duplicates += 1
                continue
            repeated_key = key in rows or (old is not None and old["staged_by"] == context.token)
            # a valid number this run has seen (under any key), or invalid text repeated under the same key
            if repeated_key if normalized.digits is None else normalized.digits in seen:
                counts.duplicates += 1
            if normalized.digits is not None:
                seen.add(normalized.digits)
            if repeated_key:
                continue
            if normalized.digits is None:
                counts.invalid += 1
                rows[key] = self._row(key, raw, CheckStatus.INVALID.value, None, None, normalized.reason,
                                      None, None, db_now, context, normalized_by)
                continue
            detail = ("rules applied: " + ", ".join(normalized.rules_applied)) if normalized.rules_applied else None
            fresh = freshest.get(normalized.digits)
            if fresh is not None:
                rows[key] = self._row(key, raw, fresh["status"], fresh["exists_whatsapp"], fresh["whatsapp_lid"],
                                      detail, fresh["checked_at"], None, db_now, context, normalized_by)
            elif old is not None:
                queued_at = old["queued_at"] if old["is_queued"] else db_now
                rows[key] = self._row(key, raw, old["status"], old["exists_whatsapp"], old["whatsapp_lid"], detail,
                                      old["checked_at"], queued_at, db_now, context, normalized_by)
            else:
                rows[key] = self._row(key, raw, CheckStatus.PENDING.value, None, None, detail, None, db_now,
                                      db_now, context, normalized_by)
        self._upsert(rows[k] for k in sorted(rows))  # in key order: concurrent writers lock rows alike
        return counts

    def _row(self, key: tuple[str, str], raw: str, status: str, exists: Any, lid: Any, detail: str | None,
             checked_at: Any, queued_at: Any, now: Any, context: RunContext,
             normalized_by: str | None) -> tuple[Any, ...]:
        return (key[0], key[1], raw, status, None if exists is None else bool(exists), lid, detail,
                checked_at, queued_at, now, context.instance_id, context.dag_id, context.run_id, context.token,
                normalized_by)

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
                cursor.execute(f"SELECT {_ROW_FIELDS} FROM {self._table} WHERE {where}", params)
                for record in cursor.fetchall():
                    row = dict(zip(_ROW_NAMES, record, strict=True))
                    found[(row["phone_number"], row["source_key"])] = row
        finally:
            cursor.close()
        return found

    def _batches(self, values: Sequence[Any]) -> list[list[Any]]:
        """``values`` in batches of the engine's look-up size (``Engine.lookup_keys``)."""
        size = self.engine.lookup_keys
        return [list(values[start : start + size]) for start in range(0, len(values), size)]

    def _upsert(self, rows: Iterable[tuple[Any, ...]]) -> None:
        cursor = self.connection.cursor()
        try:
            self.engine.upsert(cursor, self.table_name, COLUMN_NAMES, _KEY, list(rows))
        finally:
            cursor.close()

    # --- the queue ---------------------------------------------------------------------------------------

    def count_staged(self, token: str) -> tuple[int, int]:
        """(distinct valid numbers staged by this run, how many of them are queued)."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(
                f"SELECT COUNT(DISTINCT phone_number) FROM {self._table} "
                f"WHERE staged_by = {self._p} AND status <> {self._p}",
                (token, CheckStatus.INVALID.value),
            )
            distinct = int(cursor.fetchone()[0])
            cursor.execute(
                f"SELECT COUNT(DISTINCT phone_number) FROM {self._table} "
                f"WHERE staged_by = {self._p} AND queued_at IS NOT NULL",
                (token,),
            )
            queued = int(cursor.fetchone()[0])
        finally:
            cursor.close()
        self.engine.end_read(self.connection)
        return distinct, queued

    def carry_over(self, token: str, freshness: Freshness, now: datetime,
                   owns: Callable[[str], bool] | None = None) -> None:
        """Queue for this run (not committed) what the table still owes, whatever this run's input named: the
        numbers that earlier runs left queued or in error, and the answers gone stale, under any source key
        (the table is the record of the inputs: see docs/operator.md). A number with a fresh answer under
        another key gets that answer instead of a check. ``owns``: which numbers this run takes (a shard's)."""
        p = self._p
        owed, params = self._owed_condition(freshness.cutoffs(now))
        db_now = self.engine.to_db_time(now)
        last = ""
        while True:
            page = [r[0] for r in self._page(
                f"SELECT DISTINCT phone_number FROM {self._table} WHERE phone_number > {p} AND status <> {p} "
                f"AND (staged_by IS NULL OR staged_by <> {p}) AND ({owed}) ORDER BY phone_number "
                f"LIMIT {_PAGE}",
                (last, CheckStatus.INVALID.value, token, *params))]
            if not page:
                return
            last = page[-1]
            numbers = [n for n in page if owns is None or owns(n)]
            freshest = _freshest_answers(self._rows_for(numbers).values(), freshness.cutoffs(now), self.engine)
            cursor = self.connection.cursor()
            try:
                answered = [(f["status"], f["exists_whatsapp"], f["whatsapp_lid"], f["checked_at"], db_now, n,
                             f["checked_at"]) for n, f in sorted(freshest.items())]
                if answered:
                    cursor.executemany(
                        f"UPDATE {self._table} SET status = {p}, exists_whatsapp = {p}, whatsapp_lid = {p}, "
                        f"checked_at = {p}, queued_at = NULL, updated_at = {p} WHERE phone_number = {p} "
                        f"AND (checked_at IS NULL OR checked_at < {p})", answered)
                owed_numbers = [(token, db_now, db_now, n) for n in numbers if n not in freshest]
                if owed_numbers:
                    cursor.executemany(
                        f"UPDATE {self._table} SET staged_by = {p}, queued_at = COALESCE(queued_at, {p}), "
                        f"updated_at = {p} WHERE phone_number = {p}", owed_numbers)
            finally:
                cursor.close()

    def _owed_condition(self, cutoffs: dict[str, datetime | None]) -> tuple[str, list[Any]]:
        """SQL true for a row whose number is owed a check: queued, never answered, or its answer stale."""
        p = self._p
        answers = [CheckStatus.EXISTS.value, CheckStatus.NOT_EXISTS.value]
        parts = ["queued_at IS NOT NULL", "checked_at IS NULL", f"status NOT IN ({p}, {p})"]
        params: list[Any] = list(answers)
        for status, cutoff in cutoffs.items():
            if cutoff is None:
                parts.append(f"status = {p}")
                params.append(status)
            else:
                parts.append(f"(status = {p} AND checked_at < {p})")
                params += [status, self.engine.to_db_time(cutoff)]
        return " OR ".join(parts), params

    def queued_numbers(self, token: str, page_size: int = 1000, by_priority: bool = False) -> Iterator[list[str]]:
        """Pages of distinct queued numbers of this run, in number order (all the rows of a number are in one
        page: a number under many keys is taken once); ``by_priority`` (a budget short of the queue): numbers
        never answered first, then the stalest stored answers, then the rest. Pages are read lazily, so a
        number whose result was committed meanwhile no longer shows up."""
        if by_priority:
            yield from self._queued_by_priority(token, page_size)
            return
        last = ""
        while True:
            records = self._page(
                f"SELECT phone_number, phone_number FROM {self._table} WHERE staged_by = {self._p} "
                f"AND phone_number > {self._p} AND queued_at IS NOT NULL ORDER BY phone_number "
                f"LIMIT {int(page_size)}",
                (token, last),
            )
            if not records:
                return
            numbers = _distinct_numbers(records)
            last = numbers[-1]  # its rows on the next page, if any, are passed over with it
            yield numbers

    def _queued_by_priority(self, token: str, page_size: int) -> Iterator[list[str]]:
        """The queue by ``checked_at`` (the stored answer's age), never-answered rows (NULL) first: first the
        NULLs by number, then the answers oldest first, each page after the last row of the one before."""
        p, limit = self._p, int(page_size)
        base = f"SELECT checked_at, phone_number FROM {self._table} WHERE staged_by = {p} AND queued_at IS NOT NULL"
        last: tuple[Any, str] | None = None
        unanswered = True
        while True:
            if unanswered:
                after = "" if last is None else f" AND phone_number > {p}"
                records = self._page(f"{base} AND checked_at IS NULL{after} ORDER BY phone_number LIMIT {limit}",
                                     (token,) if last is None else (token, last[1]))
                if not records:
                    unanswered, last = False, None
                    continue
            else:
                after = "" if last is None else f" AND (checked_at > {p} OR (checked_at = {p} AND phone_number > {p}))"
                records = self._page(
                    f"{base} AND checked_at IS NOT NULL{after} ORDER BY checked_at, phone_number LIMIT {limit}",
                    (token,) if last is None else (token, last[0], last[0], last[1]))
                if not records:
                    return
            last = (records[-1][0], records[-1][1])
            yield _distinct_numbers(records)

    def _page(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        cursor = self.connection.cursor()  # one per page: the connection commits between pages
        try:
            cursor.execute(sql, params)
            records = cursor.fetchall()
        finally:
            cursor.close()
        self.engine.end_read(self.connection)
        return list(records)

    def write_outcomes(self, outcomes: Sequence[CheckOutcome], context: RunContext, now: datetime) -> None:
        """Store results for every queued row of each number (not committed). A batched engine writes the
        answers and the failures of a chunk in one statement."""
        ordered = sorted(outcomes, key=lambda o: o.phone_number)  # rows locked in one order by every writer
        db_now = self.engine.to_db_time(now)
        run = (db_now, context.instance_id, context.dag_id, context.run_id)
        common = ["updated_at", "instance_id", "dag_id", "run_id"]
        answered = [
            (o.status.value, o.exists_whatsapp, o.whatsapp_lid, self.engine.to_db_time(o.checked_at), *run,
             o.phone_number)
            for o in ordered if o.status.is_answer
        ]
        failed = [
            (o.status.value, (o.detail or "")[:_MAX_STORED_TEXT], *run, o.phone_number)
            for o in ordered if not o.status.is_answer
        ]
        cursor = self.connection.cursor()
        try:
            self.engine.update_matching(cursor, self.table_name, "phone_number", "queued_at", [
                (["status", "exists_whatsapp", "whatsapp_lid", "checked_at", *common],
                 ["detail = NULL", "queued_at = NULL"], answered),
                (["status", "detail", *common], ["queued_at = NULL"], failed),  # the last answer stays
            ])
        finally:
            cursor.close()

    def count_staged_rows(self, token: str) -> int:
        """Rows this run staged: one per distinct (number, source key), invalid ones included."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(f"SELECT COUNT(*) FROM {self._table} WHERE staged_by = {self._p}", (token,))
            count = int(cursor.fetchone()[0])
        finally:
            cursor.close()
        self.engine.end_read(self.connection)
        return count

    def staged_rows(self, token: str, limit: int) -> list[dict[str, Any]]:
        """The rows this run staged, as plain dicts (for an XCom), at most ``limit``."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(
                f"SELECT phone_number, source_key, input_value, status, exists_whatsapp, whatsapp_lid, detail, "
                f"checked_at FROM {self._table} WHERE staged_by = {self._p} "
                f"ORDER BY phone_number, source_key LIMIT {int(limit)}",
                (token,),
            )
            names = [str(d[0]).lower() for d in cursor.description]
            rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
        finally:
            cursor.close()
        self.engine.end_read(self.connection)
        for row in rows:
            row["exists_whatsapp"] = None if row["exists_whatsapp"] is None else bool(row["exists_whatsapp"])
            checked = self.engine.from_db_time(row["checked_at"])
            row["checked_at"] = checked.isoformat() if checked else None
        return rows

    def commit(self) -> None:
        self.connection.commit()

    def rollback(self) -> None:
        self.connection.rollback()


def _stored_as_is(old: dict[str, Any] | None, raw: str, normalized_by: str | None,
                  fresh: dict[str, Any] | None) -> bool:
    """Whether ``old`` (a stored row) already says all that staging would write: the same text, read alike,
    invalid or holding its number's fresh answer, and not queued."""
    if old is None or normalized_by is None or old["input_value"] != raw or old["normalized_by"] != normalized_by:
        return False
    if old["is_queued"]:
        return False
    if old["status"] == CheckStatus.INVALID.value:
        return True
    return fresh is not None and old["status"] == fresh["status"] and old["checked_at"] == fresh["checked_at"]


def _comparable_text(value: object) -> str | None:
    """The text an input of plain text or an integer is stored as (``input_value``), when it is stored whole
    and as it is; None otherwise (the input is then read again)."""
    if type(value) is str:
        if len(value) <= _MAX_STORED_TEXT and value.isascii() and "\x00" not in value:
            return value  # the common case: stored as it is
        text = value
    elif value is None:
        text = ""  # no number: stored with no text, read again only when one is given
    elif type(value) is int and value.bit_length() <= 64:  # longer: no phone number, and str() may refuse it
        text = str(value)
    else:
        return None
    if len(text) > _MAX_STORED_TEXT or storable_text(text) != text:
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
    limit = _KEY_LENGTHS["source_key"]
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
    limit, most = _KEY_LENGTHS["source_key"], _MAX_STORED_TEXT
    return [(key, value) if type(value) is str and len(value) <= most and value.isascii() and "\x00" not in value
            and 0 < len(key) <= limit and key.isascii() and "\x00" not in key else copied_input(value, key)
            for value, key in batch]


def _distinct_numbers(records: list[Any]) -> list[str]:
    """The numbers of a queue page (rows ``(key, phone_number)``), each once, in page order."""
    return list(dict.fromkeys(r[1] for r in records))


def _invalid_key(number: NormalizedNumber) -> str:
    """An invalid value's row key: its text, stripped, storable (storable.py) and cut to the column."""
    return storable_text(number.raw.strip()[: _MAX_STORED_TEXT * 2])[:_MAX_STORED_TEXT]


def stored_key(key: str) -> str:
    """A source key as the table stores it (escaped when it cannot be stored as it is, storable.py)."""
    limit = _KEY_LENGTHS["source_key"]
    if key.isascii() and "\x00" not in key and len(key) <= limit:
        return key
    return key if key_problem(key, limit) is None else storable_key(key, limit)


def _with_storable_key(item: StagedInput) -> StagedInput:
    """``item``, or, when its source key cannot be stored as it is, the input made invalid under the key
    escaped (storable.py)."""
    limit = _KEY_LENGTHS["source_key"]
    problem = key_problem(item.source_key, limit)
    if problem is None:
        return item
    number = NormalizedNumber(item.number.raw, None, unstorable_key_reason(problem))
    return StagedInput(number, storable_key(item.source_key, limit))


def _freshest_answers(
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

