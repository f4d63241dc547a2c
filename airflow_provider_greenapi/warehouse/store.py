"""The results table: its schema and the staging of a run's inputs (:class:`ResultsStore`).

The table is the durable record of the inputs and their answers, and the run's work queue. A run costs what
changed: an input stored exactly as it is now (same source key, same text, read by the same normaliser) is
neither read again nor rewritten (changes.py). Staging writes each new or changed input once (``staged_by`` =
the run's token) and marks the ones without a fresh answer as queued (``queued_at``); then the queue
(queue.py) takes for the run what the table still owes, whatever the run's input: numbers left pending or in
error by earlier runs and answers gone stale. The checker drains the queue in number order (a number under
many keys is taken once), and each committed result clears ``queued_at``. A crash therefore loses at most the
results not yet committed, and the next run picks up what is still queued.

:class:`ResultsStore` is those parts in one object: ``SourceChanges`` (changes.py), ``WorkQueue`` (queue.py),
both over ``ResultsTable`` (results_table.py: the connection, the stored rows, the sizes a row stores).
Portable SQL over any DB-API connection of a supported engine (engine.py); what differs per engine (types,
upsert, locks, batching) is the engine's. Table names are validated identifiers, values always travel as
query parameters. On a batched (cloud) engine every write of a chunk is one statement per table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_provider_greenapi.numbers import NormalizedNumber
from airflow_provider_greenapi.results import CheckStatus, Freshness, RunContext
from airflow_provider_greenapi.warehouse.changes import SourceChanges
from airflow_provider_greenapi.warehouse.queue import WorkQueue
from airflow_provider_greenapi.warehouse.results_table import KEY_LENGTHS, MAX_STORED_TEXT, freshest_answers
from airflow_provider_greenapi.warehouse.storable import key_problem, storable_key, storable_text, unstorable_key_reason


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
# (index name suffix, columns): a run's queue in number order; the stored inputs by source key
_INDEXES = (("work_idx", ("staged_by", "phone_number", "queued_at")), ("key_idx", ("source_key",)))


class ResultsStore(SourceChanges, WorkQueue):
    """The results table: its schema and staging here, what changed and the work queue from its bases, all over
    one connection (:class:`ResultsTable`)."""

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
        return {name: engine.key_text_type(KEY_LENGTHS[name]) if kind == "TEXT" and name in KEY_LENGTHS
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
        freshest = freshest_answers(existing.values(), freshness.cutoffs(now), self.engine)
        rows: dict[tuple[str, str], tuple[Any, ...]] = {}
        db_now = self.engine.to_db_time(now)
        seen = {row["phone_number"] for row in existing.values() if row["staged_by"] == context.token}
        kept: set[tuple[str, str]] = set()
        for item in inputs:
            normalized = item.number
            key = (normalized.digits or _invalid_key(normalized), item.source_key)
            old = existing.get(key)
            raw = storable_text(normalized.raw[: MAX_STORED_TEXT * 2])[:MAX_STORED_TEXT]
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

    def _upsert(self, rows: Iterable[tuple[Any, ...]]) -> None:
        cursor = self.connection.cursor()
        try:
            self.engine.upsert(cursor, self.table_name, COLUMN_NAMES, _KEY, list(rows))
        finally:
            cursor.close()


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


def _invalid_key(number: NormalizedNumber) -> str:
    """An invalid value's row key: its text, stripped, storable (storable.py) and cut to the column."""
    return storable_text(number.raw.strip()[: MAX_STORED_TEXT * 2])[:MAX_STORED_TEXT]


def _with_storable_key(item: StagedInput) -> StagedInput:
    """``item``, or, when its source key cannot be stored as it is, the input made invalid under the key
    escaped (storable.py)."""
    limit = KEY_LENGTHS["source_key"]
    problem = key_problem(item.source_key, limit)
    if problem is None:
        return item
    number = NormalizedNumber(item.number.raw, None, unstorable_key_reason(problem))
    return StagedInput(number, storable_key(item.source_key, limit))
