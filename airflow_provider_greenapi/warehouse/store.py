"""The results table: schema, staging of a run's numbers, the check queue, and idempotent writes.

The table is the run's work queue. Staging writes every input number once (``staged_by`` = the run's
token), marks the ones without a fresh answer as queued (``queued_at``), and commits chunk by chunk; the
checker then drains the queue, oldest first, and each committed result clears ``queued_at``. A crash
therefore loses at most the results not yet committed, and the next run picks up what is still queued.

Portable SQL over any DB-API connection of a supported engine (engine.py); what differs per engine (types,
upsert, locks, batching) is the engine's. Table names are validated identifiers, values always travel as
query parameters. On a batched (cloud) engine every write of a chunk is one statement per table.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_greenapi.numbers import NormalizedNumber
from airflow_provider_greenapi.results import CheckOutcome, CheckStatus
from airflow_provider_greenapi.warehouse.engine import Dialect, Engine
from airflow_provider_greenapi.warehouse.storable import key_problem, storable_key, storable_text, unstorable_key_reason

_MAX_STORED_TEXT = 200
_KEY_LENGTHS = {"phone_number": 200, "source_key": 255, "staged_by": 64}  # where an engine needs a length


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
)
COLUMN_NAMES = tuple(c[0] for c in _COLUMNS)
# Columns newer than the first tables: ensure_table adds them to a table that lacks them. ``whatsapp_lid``
# replaced ``chat_id`` (left in place, no longer written; its ``…@lid`` values are copied over).
_ADDED_COLUMNS = ("whatsapp_lid",)
_KEY = ("phone_number", "source_key")
_ROW_FIELDS = "phone_number, source_key, status, exists_whatsapp, whatsapp_lid, checked_at, queued_at, staged_by"
_QUEUE_INDEX = ("staged_by", "queued_at", "phone_number")


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
        engine = self.engine
        columns = []
        for name, kind, not_null in _COLUMNS:
            if kind == "TEXT" and name in _KEY_LENGTHS:
                sql_type = engine.key_text_type(_KEY_LENGTHS[name])
            else:
                types = {None: engine.timestamp_type, "bool": engine.boolean_type, "TEXT": engine.text_type}
                sql_type = types.get(kind, kind or "")
            default = " DEFAULT ''" if name == "source_key" else ""
            columns.append(f"{name} {sql_type}{' NOT NULL' if not_null else ''}{default}")
        columns.append(f"PRIMARY KEY ({', '.join(_KEY)})")
        engine.create_table(self.connection, self.table_name, ", ".join(columns), then=self._bring_up_to_date)

    def _bring_up_to_date(self, cursor: Any) -> None:
        """Refuse a table of another shape, add the columns it lacks, and create the queue index if missing."""
        engine = self.engine
        present = engine.present_columns(cursor, self.table_name)
        missing = [c for c in COLUMN_NAMES if c not in present and c not in _ADDED_COLUMNS]
        if missing:
            raise ValueError(
                f"Table {self.table_name!r} exists but lacks the columns {', '.join(missing)}: it was not "
                "created by this provider. Choose another destination_table, or drop or rename this one."
            )
        self._add_columns(cursor, present)
        index = engine.index_name(self.table_name, "queue_idx")
        if engine.has_indexes and engine.index_missing(cursor, self.table_name, index):
            cursor.execute(engine.create_index_sql(self.table_name, index, _QUEUE_INDEX))

    def _add_columns(self, cursor: Any, present: set[str]) -> None:
        """Bring a table made by an older version up to date (only columns that may be NULL are added)."""
        for name in _ADDED_COLUMNS:
            if name not in present:
                cursor.execute(f"ALTER TABLE {self._table} ADD COLUMN {name} {self.engine.text_type}")
        if "whatsapp_lid" not in present and "chat_id" in present:
            cursor.execute(f"UPDATE {self._table} SET whatsapp_lid = chat_id WHERE chat_id LIKE '%@lid'")

    # --- staging -----------------------------------------------------------------------------------------

    def stage(
        self, inputs: Sequence[StagedInput], context: RunContext, freshness: Freshness, now: datetime
    ) -> StageCounts:
        """Record one chunk of inputs (not committed): invalid ones as such, fresh ones as answered,
        the rest queued. An input whose number this run has already seen counts as a duplicate (checked
        once); under a new source key it still gets its own row, so the answer joins back to every key."""
        counts = StageCounts(inputs=len(inputs))
        inputs = [_with_storable_key(i) for i in inputs]
        numbers = sorted({i.number.digits for i in inputs if i.number.digits})
        existing = self._rows_for(numbers + [_invalid_key(i.number) for i in inputs if not i.number.digits])
        freshest = _freshest_answers(existing.values(), freshness.cutoffs(now), self.engine)
        rows: dict[tuple[str, str], tuple[Any, ...]] = {}
        db_now = self.engine.to_db_time(now)
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
            raw = storable_text(normalized.raw[: _MAX_STORED_TEXT * 2])[:_MAX_STORED_TEXT]
            if normalized.digits is None:
                counts.invalid += 1
                rows[key] = self._row(key, raw, CheckStatus.INVALID.value, None, None, normalized.reason,
                                      None, None, db_now, context)
                continue
            detail = ("rules applied: " + ", ".join(normalized.rules_applied)) if normalized.rules_applied else None
            fresh = freshest.get(normalized.digits)
            if fresh is not None:
                rows[key] = self._row(key, raw, fresh["status"], fresh["exists_whatsapp"], fresh["whatsapp_lid"],
                                      detail, fresh["checked_at"], None, db_now, context)
            elif old is not None:
                rows[key] = self._row(key, raw, old["status"], old["exists_whatsapp"], old["whatsapp_lid"], detail,
                                      old["checked_at"], old["queued_at"] or db_now, db_now, context)
            else:
                rows[key] = self._row(key, raw, CheckStatus.PENDING.value, None, None, detail, None, db_now,
                                      db_now, context)
        self._upsert(rows[k] for k in sorted(rows))  # in key order: concurrent writers lock rows alike
        return counts

    def _row(self, key: tuple[str, str], raw: str, status: str, exists: Any, lid: Any, detail: str | None,
             checked_at: Any, queued_at: Any, now: Any, context: RunContext) -> tuple[Any, ...]:
        return (key[0], key[1], raw, status, None if exists is None else bool(exists), lid, detail,
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

    def queued_numbers(self, token: str, page_size: int = 1000, by_priority: bool = False) -> Iterator[list[str]]:
        """Pages of distinct queued numbers of this run, oldest queued first; ``by_priority`` (a budget short of
        the queue): numbers never answered first, then the stalest stored answers, then the rest. Pages are
        read lazily, so a number whose result was committed meanwhile no longer shows up."""
        if by_priority:
            yield from self._queued_by_priority(token, page_size)
            return
        last: tuple[Any, str] | None = None
        while True:
            if last is None:
                records = self._page(
                    f"SELECT queued_at, phone_number FROM {self._table} WHERE staged_by = {self._p} "
                    f"AND queued_at IS NOT NULL ORDER BY queued_at, phone_number LIMIT {int(page_size)}",
                    (token,),
                )
            else:
                records = self._page(
                    f"SELECT queued_at, phone_number FROM {self._table} WHERE staged_by = {self._p} "
                    f"AND queued_at IS NOT NULL AND (queued_at > {self._p} OR "
                    f"(queued_at = {self._p} AND phone_number > {self._p})) "
                    f"ORDER BY queued_at, phone_number LIMIT {int(page_size)}",
                    (token, last[0], last[0], last[1]),
                )
            if not records:
                return
            last = (records[-1][0], records[-1][1])
            yield _distinct_numbers(records)

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


def _distinct_numbers(records: list[Any]) -> list[str]:
    """The numbers of a queue page (rows ``(key, phone_number)``), each once, in page order."""
    return list(dict.fromkeys(r[1] for r in records))


def _invalid_key(number: NormalizedNumber) -> str:
    """An invalid value's row key: its text, stripped, storable (storable.py) and cut to the column."""
    return storable_text(number.raw.strip()[: _MAX_STORED_TEXT * 2])[:_MAX_STORED_TEXT]


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

