"""The results table: schema, staging of a run's numbers, the check queue, and idempotent writes.

The table is the run's work queue. Staging writes every input number once (``staged_by`` = the run's
token), marks the ones without a fresh answer as queued (``queued_at``), and commits chunk by chunk; the
checker then drains the queue, oldest first, and each committed result clears ``queued_at``. A crash
therefore loses at most the results not yet committed, and the next run picks up what is still queued.

Works over any DB-API connection of a supported dialect (SQLite, PostgreSQL); table names are validated
identifiers, values always travel as query parameters.
"""

from __future__ import annotations

import enum
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_greenapi.numbers import NormalizedNumber
from airflow_provider_greenapi.results import CheckOutcome, CheckStatus

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_SQLITE_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"
_MAX_STORED_TEXT = 200


class Dialect(str, enum.Enum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"

    @property
    def placeholder(self) -> str:
        return "?" if self is Dialect.SQLITE else "%s"

    @property
    def timestamp_type(self) -> str:
        return "TEXT" if self is Dialect.SQLITE else "TIMESTAMPTZ"

    @property
    def boolean_type(self) -> str:
        return "INTEGER" if self is Dialect.SQLITE else "BOOLEAN"

    def to_db_time(self, value: datetime | None) -> Any:
        if value is None:
            return None
        value = value.astimezone(timezone.utc)
        return value.strftime(_SQLITE_TIME) if self is Dialect.SQLITE else value

    def from_db_time(self, value: Any) -> datetime | None:
        if value is None or isinstance(value, datetime):
            return value
        return datetime.fromisoformat(value.replace("Z", "+00:00"))  # _SQLITE_TIME; 5x faster than strptime


def quote_table_name(name: str) -> str:
    """``name`` (``table`` or ``schema.table``) quoted for SQL; ValueError unless plain identifiers."""
    parts = name.split(".") if isinstance(name, str) else []
    if not 1 <= len(parts) <= 2 or not all(_IDENTIFIER.fullmatch(p) for p in parts):
        raise ValueError(
            f"Table name {name!r} is not a plain identifier: use letters, digits and underscores "
            "(optionally schema.table), starting with a letter or underscore, at most 63 characters."
        )
    return ".".join(f'"{p}"' for p in parts)


def lock_schema_changes(cursor: Any, dialect: Dialect, table: str) -> None:
    """Serialise this transaction's CREATE ... IF NOT EXISTS of ``table`` with other tasks' (until commit).

    PostgreSQL's IF NOT EXISTS is no guard against a concurrent create: of several mapped tasks starting
    together, all but one may fail on a unique violation in the catalog. A transaction-scoped advisory lock
    keyed on the table name makes them take turns. SQLite already allows one writer at a time.
    """
    if dialect is Dialect.POSTGRES:
        key = zlib.crc32(f"airflow_provider_greenapi:{table}".encode())
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (key,))


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
    duplicates: int = 0
    invalid: int = 0


# name, type (None: timestamp, "bool": boolean), NOT NULL
_COLUMNS: tuple[tuple[str, str | None, bool], ...] = (
    ("phone_number", "TEXT", True),
    ("source_key", "TEXT", True),
    ("input_value", "TEXT", False),
    ("status", "TEXT", True),
    ("exists_whatsapp", "bool", False),
    ("chat_id", "TEXT", False),
    ("detail", "TEXT", False),
    ("checked_at", None, False),
    ("queued_at", None, False),
    ("updated_at", None, True),
    ("instance_id", "TEXT", False),
    ("dag_id", "TEXT", False),
    ("run_id", "TEXT", False),
    ("staged_by", "TEXT", False),
)
COLUMN_NAMES = tuple(c[0] for c in _COLUMNS)
_KEY = ("phone_number", "source_key")
_ROW_FIELDS = "phone_number, source_key, status, exists_whatsapp, chat_id, checked_at, queued_at, staged_by"


class ResultsStore:
    """The results table over one open DB-API connection (used from one thread)."""

    def __init__(self, connection: Any, dialect: Dialect, table: str) -> None:
        self.connection = connection
        self.dialect = dialect
        self.table_name = table
        self._table = quote_table_name(table)
        self._p = dialect.placeholder

    # --- schema ------------------------------------------------------------------------------------------

    def ensure_table(self) -> None:
        """Create the table and its queue index if missing; refuse a table of another shape."""
        columns = []
        for name, kind, not_null in _COLUMNS:
            sql_type = {None: self.dialect.timestamp_type, "bool": self.dialect.boolean_type}.get(kind, kind)
            default = " DEFAULT ''" if name == "source_key" else ""
            columns.append(f"{name} {sql_type}{' NOT NULL' if not_null else ''}{default}")
        columns.append(f"PRIMARY KEY ({', '.join(_KEY)})")
        schema, _, base = self.table_name.rpartition(".")
        index_columns = "(staged_by, queued_at, phone_number)"
        if schema and self.dialect is Dialect.SQLITE:  # SQLite qualifies the index, not the table
            create_index = f'CREATE INDEX IF NOT EXISTS "{schema}"."{base}_queue_idx" ON "{base}" {index_columns}'
        else:
            create_index = f'CREATE INDEX IF NOT EXISTS "{base}_queue_idx" ON {self._table} {index_columns}'
        cursor = self.connection.cursor()
        try:
            lock_schema_changes(cursor, self.dialect, self.table_name)
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {self._table} ({', '.join(columns)})")
            cursor.execute(f"SELECT * FROM {self._table} WHERE 1 = 0")
            present = {d[0].lower() for d in cursor.description or ()}
            missing = [c for c in COLUMN_NAMES if c not in present]
            if missing:
                raise ValueError(
                    f"Table {self.table_name!r} exists but lacks the columns {', '.join(missing)}: it was not "
                    "created by this provider. Choose another destination_table, or drop or rename this one."
                )
            if self._index_missing(cursor, schema, base):
                cursor.execute(create_index)
        finally:
            cursor.close()
        self.connection.commit()

    def _index_missing(self, cursor: Any, schema: str, base: str) -> bool:
        """PostgreSQL's CREATE INDEX IF NOT EXISTS locks the table first, so it would wait for every task
        writing it: look the index up instead, and create it only when it is missing."""
        if self.dialect is not Dialect.POSTGRES:
            return True
        index = f'"{schema}"."{base}_queue_idx"' if schema else f'"{base}_queue_idx"'
        cursor.execute("SELECT to_regclass(%s)", (index,))
        return cursor.fetchone()[0] is None

    # --- staging -----------------------------------------------------------------------------------------

    def stage(
        self, inputs: Sequence[StagedInput], context: RunContext, freshness: Freshness, now: datetime
    ) -> StageCounts:
        """Record one chunk of inputs (not committed): invalid ones as such, fresh ones as answered,
        the rest queued. An input whose number this run has already seen counts as a duplicate (checked
        once); under a new source key it still gets its own row, so the answer joins back to every key."""
        counts = StageCounts(inputs=len(inputs))
        numbers = sorted({i.number.digits for i in inputs if i.number.digits})
        existing = self._rows_for(numbers + [_invalid_key(i.number) for i in inputs if not i.number.digits])
        freshest = _freshest_answers(existing.values(), freshness.cutoffs(now), self.dialect)
        rows: dict[tuple[str, str], tuple[Any, ...]] = {}
        db_now = self.dialect.to_db_time(now)
        seen = {row["phone_number"] for row in existing.values() if row["staged_by"] == context.token}
        for item in inputs:
            normalized = item.number
            key = (normalized.digits or _invalid_key(normalized), item.source_key)
            old = existing.get(key)
            repeated_key = key in rows or (old is not None and old["staged_by"] == context.token)
            # a valid number this run has seen (under any key), or invalid text repeated under the same key
            if repeated_key if normalized.digits is None else normalized.digits in seen:
                counts.duplicates += 1
            if normalized.digits is not None:
                seen.add(normalized.digits)
            if repeated_key:
                continue
            raw = normalized.raw[:_MAX_STORED_TEXT]
            if normalized.digits is None:
                counts.invalid += 1
                rows[key] = self._row(key, raw, CheckStatus.INVALID.value, None, None, normalized.reason,
                                      None, None, db_now, context)
                continue
            detail = ("rules applied: " + ", ".join(normalized.rules_applied)) if normalized.rules_applied else None
            fresh = freshest.get(normalized.digits)
            if fresh is not None:
                rows[key] = self._row(key, raw, fresh["status"], fresh["exists_whatsapp"], fresh["chat_id"],
                                      detail, fresh["checked_at"], None, db_now, context)
            elif old is not None:
                rows[key] = self._row(key, raw, old["status"], old["exists_whatsapp"], old["chat_id"], detail,
                                      old["checked_at"], old["queued_at"] or db_now, db_now, context)
            else:
                rows[key] = self._row(key, raw, CheckStatus.PENDING.value, None, None, detail, None, db_now,
                                      db_now, context)
        self._upsert(rows[k] for k in sorted(rows))  # in key order: concurrent writers lock rows alike
        return counts

    def _row(self, key: tuple[str, str], raw: str, status: str, exists: Any, chat_id: Any, detail: str | None,
             checked_at: Any, queued_at: Any, now: Any, context: RunContext) -> tuple[Any, ...]:
        return (key[0], key[1], raw, status, None if exists is None else bool(exists), chat_id, detail,
                checked_at, queued_at, now, context.instance_id, context.dag_id, context.run_id, context.token)

    def _rows_for(self, phone_numbers: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        names = [f.strip() for f in _ROW_FIELDS.split(",")]
        cursor = self.connection.cursor()
        try:
            for start in range(0, len(phone_numbers), 500):
                batch = phone_numbers[start : start + 500]
                marks = ", ".join([self._p] * len(batch))
                cursor.execute(
                    f"SELECT {_ROW_FIELDS} FROM {self._table} WHERE phone_number IN ({marks})", batch
                )
                for record in cursor.fetchall():
                    row = dict(zip(names, record, strict=True))
                    found[(row["phone_number"], row["source_key"])] = row
        finally:
            cursor.close()
        return found

    def _upsert(self, rows: Iterable[tuple[Any, ...]]) -> None:
        rows = list(rows)
        if not rows:
            return
        marks = ", ".join([self._p] * len(COLUMN_NAMES))
        updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMN_NAMES if c not in _KEY)
        sql = (
            f"INSERT INTO {self._table} ({', '.join(COLUMN_NAMES)}) VALUES ({marks}) "
            f"ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET {updates}"
        )
        self._executemany(sql, rows)

    def _executemany(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        cursor = self.connection.cursor()
        try:
            if self.dialect is Dialect.POSTGRES and _has_execute_batch(cursor):
                from psycopg2.extras import execute_batch

                execute_batch(cursor, sql, rows, page_size=500)
            else:
                cursor.executemany(sql, rows)
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
        return distinct, queued

    def queued_numbers(self, token: str, page_size: int = 1000) -> Iterator[list[str]]:
        """Pages of distinct queued numbers of this run, oldest queued first. Pages are read lazily, so a
        number whose result was committed meanwhile no longer shows up."""
        last: tuple[Any, str] | None = None
        cursor = self.connection.cursor()
        try:
            while True:
                if last is None:
                    cursor.execute(
                        f"SELECT queued_at, phone_number FROM {self._table} WHERE staged_by = {self._p} "
                        f"AND queued_at IS NOT NULL ORDER BY queued_at, phone_number LIMIT {int(page_size)}",
                        (token,),
                    )
                else:
                    cursor.execute(
                        f"SELECT queued_at, phone_number FROM {self._table} WHERE staged_by = {self._p} "
                        f"AND queued_at IS NOT NULL AND (queued_at > {self._p} OR "
                        f"(queued_at = {self._p} AND phone_number > {self._p})) "
                        f"ORDER BY queued_at, phone_number LIMIT {int(page_size)}",
                        (token, last[0], last[0], last[1]),
                    )
                records = cursor.fetchall()
                if not records:
                    return
                last = (records[-1][0], records[-1][1])
                page = list(dict.fromkeys(r[1] for r in records))
                yield page
        finally:
            cursor.close()

    def write_outcomes(self, outcomes: Sequence[CheckOutcome], context: RunContext, now: datetime) -> None:
        """Store results for every queued row of each number (not committed)."""
        ordered = sorted(outcomes, key=lambda o: o.phone_number)  # rows locked in one order by every writer
        answered = [o for o in ordered if o.status.is_answer]
        failed = [o for o in ordered if not o.status.is_answer]
        db_now = self.dialect.to_db_time(now)
        p = self._p
        common = f"updated_at = {p}, instance_id = {p}, dag_id = {p}, run_id = {p}, queued_at = NULL"
        where = f"WHERE phone_number = {p} AND queued_at IS NOT NULL"
        if answered:
            self._executemany(
                f"UPDATE {self._table} SET status = {p}, exists_whatsapp = {p}, chat_id = {p}, "
                f"detail = NULL, checked_at = {p}, {common} {where}",
                [
                    (o.status.value, o.exists_whatsapp, o.chat_id, self.dialect.to_db_time(o.checked_at),
                     db_now, context.instance_id, context.dag_id, context.run_id, o.phone_number)
                    for o in answered
                ],
            )
        if failed:
            self._executemany(
                f"UPDATE {self._table} SET status = {p}, detail = {p}, {common} {where}",
                [
                    (o.status.value, (o.detail or "")[:_MAX_STORED_TEXT], db_now, context.instance_id,
                     context.dag_id, context.run_id, o.phone_number)
                    for o in failed
                ],
            )

    def count_staged_rows(self, token: str) -> int:
        """Rows this run staged: one per distinct (number, source key), invalid ones included."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(f"SELECT COUNT(*) FROM {self._table} WHERE staged_by = {self._p}", (token,))
            return int(cursor.fetchone()[0])
        finally:
            cursor.close()

    def staged_rows(self, token: str, limit: int) -> list[dict[str, Any]]:
        """The rows this run staged, as plain dicts (for an XCom), at most ``limit``."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(
                f"SELECT phone_number, source_key, input_value, status, exists_whatsapp, chat_id, detail, "
                f"checked_at FROM {self._table} WHERE staged_by = {self._p} "
                f"ORDER BY phone_number, source_key LIMIT {int(limit)}",
                (token,),
            )
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
        finally:
            cursor.close()
        for row in rows:
            row["exists_whatsapp"] = None if row["exists_whatsapp"] is None else bool(row["exists_whatsapp"])
            checked = self.dialect.from_db_time(row["checked_at"])
            row["checked_at"] = checked.isoformat() if checked else None
        return rows

    def commit(self) -> None:
        self.connection.commit()

    def rollback(self) -> None:
        self.connection.rollback()


def _invalid_key(number: NormalizedNumber) -> str:
    return number.raw.strip()[:_MAX_STORED_TEXT]


def _freshest_answers(
    rows: Iterable[dict[str, Any]], cutoffs: dict[str, datetime | None], dialect: Dialect
) -> dict[str, dict[str, Any]]:
    """For each number, its newest stored answer that is still fresh."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        cutoff = cutoffs.get(row["status"])
        checked = dialect.from_db_time(row["checked_at"])
        if cutoff is None or checked is None or checked < cutoff:
            continue
        current = best.get(row["phone_number"])
        if current is None or dialect.from_db_time(current["checked_at"]) < checked:  # type: ignore[operator]
            best[row["phone_number"]] = row
    return best


def _has_execute_batch(cursor: Any) -> bool:
    return type(cursor).__module__.startswith("psycopg2")
