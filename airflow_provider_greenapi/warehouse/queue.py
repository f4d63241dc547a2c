"""The results table as a run's work queue: what staging queued, what the table still owes whatever a run's
input named (:meth:`WorkQueue.carry_over`), the queue in number order or by priority, and the answers written
back (each committed answer clears its rows' ``queued_at``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from airflow_provider_greenapi.results import CheckOutcome, CheckStatus, Freshness, RunContext
from airflow_provider_greenapi.warehouse.results_table import MAX_STORED_TEXT, PAGE_ROWS, ResultsTable, freshest_answers


class WorkQueue(ResultsTable):
    """The queue of a run's numbers in the results table."""

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
                f"LIMIT {PAGE_ROWS}",
                (last, CheckStatus.INVALID.value, token, *params))]
            if not page:
                return
            last = page[-1]
            numbers = [n for n in page if owns is None or owns(n)]
            freshest = freshest_answers(self._rows_for(numbers).values(), freshness.cutoffs(now), self.engine)
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
            (o.status.value, (o.detail or "")[:MAX_STORED_TEXT], *run, o.phone_number)
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


def _distinct_numbers(records: list[Any]) -> list[str]:
    """The numbers of a queue page (rows ``(key, phone_number)``), each once, in page order."""
    return list(dict.fromkeys(r[1] for r in records))
