"""The monthly usage ledger: checkWhatsapp calls per instance and calendar month (UTC), in the warehouse.

GREEN-API offers no call that tells the quota left, so the provider counts its own calls. Each call is
counted and committed *before* it is sent, by an atomic UPDATE that also enforces the monthly quota, so a
crash never forgets spending, and parallel tasks (several processes or workers) cannot overshoot. Threads
of one task share commits (group commit), which keeps the ledger cheap at high request rates.

On a batched (cloud) engine, where each statement is slow and billed, calls are reserved in blocks of the
engine's ``ledger_block``: one compare-and-set UPDATE counts a whole block before any of its calls is sent,
never above the quota; the calls left unsent are given back at ``close()``. A crash may therefore over-count
by at most one block, never under-count.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_provider_greenapi.errors import QuotaBudgetExhausted
from airflow_provider_greenapi.warehouse.engine import Dialect

DEFAULT_USAGE_TABLE = "greenapi_usage"


@dataclass(frozen=True)
class MonthlyUsage:
    instance_id: str
    month: str
    calls: int
    quota: int | None
    reported_used: int | None = None
    reported_total: int | None = None

    @property
    def left(self) -> int | None:
        return None if self.quota is None else max(0, self.quota - self.calls)


@dataclass
class _Reservation:
    """One thread's request to count a call: granted (True/False) or failed, once its commit is done."""

    granted: bool | None = None
    error: BaseException | None = None


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class UsageLedger:
    """Counts one instance's checkWhatsapp calls. Thread-safe; owns its DB-API connection.

    ``monthly_quota`` is the plan's allowance as set on the connection; when it is None the quota GREEN-API
    reported in its last 466 answer this month applies, and otherwise nothing is enforced.
    """

    def __init__(
        self,
        connection: Any,
        dialect: Dialect,
        instance_id: str,
        monthly_quota: int | None = None,
        table: str = DEFAULT_USAGE_TABLE,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.connection = connection
        self.dialect = dialect
        self.instance_id = instance_id
        self.monthly_quota = monthly_quota
        self.table_name = table
        self.engine = dialect.engine
        self._table = self.engine.table_name(table)
        self._p = self.engine.placeholder
        self._clock = clock
        self._lock = threading.Lock()  # the connection: one statement sequence at a time
        self._group = threading.Condition()  # reservations waiting for the next group commit
        self._waiting: list[_Reservation] = []
        self._committing = False
        self._months_with_row: set[str] = set()
        self._block = self.engine.ledger_block
        self._held: tuple[str, int] | None = None  # (month, calls) counted in the ledger, not yet sent

    def ensure_table(self) -> None:
        engine = self.engine
        ts, key = engine.timestamp_type, engine.key_text_type(64)
        with self._lock:
            cursor = self.connection.cursor()
            try:
                with engine.schema_lock(cursor, self.table_name):
                    cursor.execute(
                        f"CREATE TABLE IF NOT EXISTS {self._table} (instance_id {key} NOT NULL, month {key} NOT "
                        f"NULL, calls INTEGER NOT NULL DEFAULT 0, reported_used INTEGER, reported_total INTEGER, "
                        f"updated_at {ts}, PRIMARY KEY (instance_id, month))"
                    )
            finally:
                cursor.close()
            self.connection.commit()

    def month(self) -> str:
        return self._clock().astimezone(timezone.utc).strftime("%Y-%m")

    def reserve_call(self, method: str = "checkWhatsapp") -> None:
        """Count one call about to be sent, committed before this returns; QuotaBudgetExhausted when the
        monthly quota is reached.

        Group commit: calls from other threads that arrive while a commit is running are counted together
        in the next one, each by its own capped UPDATE, under a single commit. A commit (an fsync) costs far
        more than an UPDATE, so concurrent senders share it, and still no call is sent before its count is
        stored.
        """
        if self._block > 1:
            self._reserve_from_block(method)
            return
        request = _Reservation()
        with self._group:
            self._waiting.append(request)
            while request.granted is None and request.error is None:
                if self._committing:
                    self._group.wait()
                    continue
                batch, self._waiting = self._waiting, []
                self._committing = True
                self._group.release()
                try:
                    self._count(batch)
                finally:
                    self._group.acquire()
                    self._committing = False
                    self._group.notify_all()
        if request.error is not None:
            raise request.error
        if not request.granted:
            self._refuse(method)

    def _refuse(self, method: str) -> None:
        usage = self.usage()
        raise QuotaBudgetExhausted(
            f"the monthly quota of instance {self.instance_id} is used up for {usage.month} "
            f"({usage.calls} of {usage.quota} checkWhatsapp calls counted in the usage ledger)",
            method=method,
        )

    def _reserve_from_block(self, method: str) -> None:
        """Take one call from the block this ledger holds, counting a new block when it is spent."""
        with self._lock:
            month = self.month()
            if self._held is not None and (self._held[0] != month or self._held[1] == 0):
                self._give_back()
            if self._held is None:
                self._held = (month, self._count_block(month))
            granted = self._held[1] > 0
            if granted:
                self._held = (month, self._held[1] - 1)
        if not granted:
            self._refuse(method)

    def _count_block(self, month: str) -> int:
        """Count up to one block in the ledger, as much as the quota leaves; the size counted (0: none).
        Compare-and-set on the count read, so concurrent tasks never count past the quota together."""
        p = self._p
        self._ensure_row()
        while True:
            cursor = self.connection.cursor()
            try:
                cursor.execute(
                    f"SELECT calls, reported_total FROM {self._table} WHERE instance_id = {p} AND month = {p}",
                    (self.instance_id, month),
                )
                calls, total = cursor.fetchone()
                cap = self.monthly_quota if self.monthly_quota is not None else total
                size = self._block if cap is None else max(0, min(self._block, int(cap) - int(calls)))
                if size == 0:
                    self.connection.commit()
                    return 0
                cursor.execute(
                    f"UPDATE {self._table} SET calls = calls + {p}, updated_at = {p} "
                    f"WHERE instance_id = {p} AND month = {p} AND calls = {p}",
                    (size, self.engine.to_db_time(self._clock()), self.instance_id, month, calls),
                )
                counted = cursor.rowcount == 1
            finally:
                cursor.close()
            self.connection.commit()
            if counted:
                return size

    def _give_back(self) -> None:
        """Uncount the calls of the held block that were never sent (at close, or when the month turns)."""
        held, self._held = self._held, None
        if held is None or held[1] == 0:
            return
        p = self._p
        self._execute(
            f"UPDATE {self._table} SET calls = calls - {p} WHERE instance_id = {p} AND month = {p} AND calls >= {p}",
            (held[1], self.instance_id, held[0], held[1]),
        )
        self.connection.commit()

    def _count(self, batch: list[_Reservation]) -> None:
        """One capped ``calls + 1`` per reservation, one commit for all; the outcome goes to each."""
        p = self._p
        try:
            with self._lock:
                month = self._ensure_row()
                cap = f" AND calls < {p}" if self.monthly_quota is not None else (
                    " AND (reported_total IS NULL OR calls < reported_total)"
                )
                params: list[Any] = [self.engine.to_db_time(self._clock()), self.instance_id, month]
                if self.monthly_quota is not None:
                    params.append(self.monthly_quota)
                cursor = self.connection.cursor()
                try:
                    granted = []
                    for _ in batch:
                        cursor.execute(
                            f"UPDATE {self._table} SET calls = calls + 1, updated_at = {p} "
                            f"WHERE instance_id = {p} AND month = {p}{cap}",
                            params,
                        )
                        granted.append(cursor.rowcount == 1)
                finally:
                    cursor.close()
                self.connection.commit()
        except BaseException as error:  # every waiter of the batch learns the outcome, or it would wait forever
            with contextlib.suppress(Exception):
                self.connection.rollback()
            for request in batch:
                request.error = error
            if not isinstance(error, Exception):
                raise
            return
        for request, ok in zip(batch, granted, strict=True):
            request.granted = ok

    def record_reported(self, used: int | None, total: int | None) -> None:
        """Store what a 466 answer said; the count never goes below what GREEN-API reports as used. A block
        this ledger holds is dropped (still counted): GREEN-API's figure is the truth now."""
        p = self._p
        with self._lock:
            self._held = None
            month = self._ensure_row()
            self._execute(
                f"UPDATE {self._table} SET reported_used = {p}, reported_total = {p}, updated_at = {p}, "
                f"calls = CASE WHEN calls < {p} THEN {p} ELSE calls END WHERE instance_id = {p} AND month = {p}",
                (used, total, self.engine.to_db_time(self._clock()), used or 0, used or 0,
                 self.instance_id, month),
            )
            self.connection.commit()

    def usage(self) -> MonthlyUsage:
        p = self._p
        month = self.month()
        with self._lock:
            cursor = self.connection.cursor()
            try:
                cursor.execute(
                    f"SELECT calls, reported_used, reported_total FROM {self._table} "
                    f"WHERE instance_id = {p} AND month = {p}",
                    (self.instance_id, month),
                )
                row = cursor.fetchone()
            finally:
                cursor.close()
            self.connection.commit()  # end the read transaction: never hold a lock between calls
            held = self._held[1] if self._held is not None and self._held[0] == month else 0
        calls, used, total = row if row else (0, None, None)
        calls = int(calls) - held  # this ledger's unsent block is not spent
        quota = self.monthly_quota if self.monthly_quota is not None else total
        return MonthlyUsage(self.instance_id, month, int(calls), quota, used, total)

    def close(self) -> None:
        try:
            with self._lock:
                self._give_back()
        finally:
            self.connection.close()

    def _ensure_row(self) -> str:
        month = self.month()
        if month not in self._months_with_row:
            cursor = self.connection.cursor()
            try:
                self.engine.insert_missing(cursor, self.table_name, ("instance_id", "month", "calls", "updated_at"),
                                           ("instance_id", "month"),
                                           (self.instance_id, month, 0, self.engine.to_db_time(self._clock())))
            finally:
                cursor.close()
            self.connection.commit()
            self._months_with_row.add(month)
        return month

    def _execute(self, sql: str, params: Any = ()) -> None:
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, params)
        finally:
            cursor.close()


def usage_in_month(connection: Any, dialect: Dialect, month: str, table: str = DEFAULT_USAGE_TABLE,
                   quotas: dict[str, int] | None = None) -> list[MonthlyUsage]:
    """Every instance's count for ``month`` (``YYYY-MM``), read-only, for reports (CLI, UI). ``quotas``: the
    monthly quota per instance id from its GREEN-API connection; without one, GREEN-API's reported total."""
    engine = dialect.engine
    cursor = connection.cursor()
    try:
        cursor.execute(
            f"SELECT instance_id, calls, reported_used, reported_total FROM {engine.table_name(table)} "
            f"WHERE month = {engine.placeholder} ORDER BY instance_id",
            (month,),
        )
        records = cursor.fetchall()
    finally:
        cursor.close()
    engine.end_read(connection)
    with contextlib.suppress(Exception):
        connection.rollback()  # end the read transaction
    quotas = quotas or {}
    return [MonthlyUsage(str(i), month, int(calls), quotas.get(str(i), total), used, total)
            for i, calls, used, total in records]
