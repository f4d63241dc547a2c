"""The monthly usage ledger: checkWhatsapp calls per instance and calendar month (UTC), in the warehouse.

GREEN-API offers no call that tells the quota left, so the provider counts its own calls. Each call is
counted and committed *before* it is sent, by an atomic UPDATE that also enforces the monthly quota, so a
crash never forgets spending, and parallel tasks (several processes or workers) cannot overshoot. Threads
of one task share commits (group commit), which keeps the ledger cheap at high request rates.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_provider_greenapi.errors import QuotaBudgetExhausted
from airflow_provider_greenapi.store import Dialect, lock_schema_changes, quote_table_name

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
        self._table = quote_table_name(table)
        self._p = dialect.placeholder
        self._clock = clock
        self._lock = threading.Lock()  # the connection: one statement sequence at a time
        self._group = threading.Condition()  # reservations waiting for the next group commit
        self._waiting: list[_Reservation] = []
        self._committing = False
        self._months_with_row: set[str] = set()

    def ensure_table(self) -> None:
        ts = self.dialect.timestamp_type
        with self._lock:
            cursor = self.connection.cursor()
            try:
                lock_schema_changes(cursor, self.dialect, self.table_name)
                cursor.execute(
                    f"CREATE TABLE IF NOT EXISTS {self._table} (instance_id TEXT NOT NULL, month TEXT NOT NULL, "
                    f"calls INTEGER NOT NULL DEFAULT 0, reported_used INTEGER, reported_total INTEGER, "
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
            usage = self.usage()
            raise QuotaBudgetExhausted(
                f"the monthly quota of instance {self.instance_id} is used up for {usage.month} "
                f"({usage.calls} of {usage.quota} checkWhatsapp calls counted in the usage ledger)",
                method=method,
            )

    def _count(self, batch: list[_Reservation]) -> None:
        """One capped ``calls + 1`` per reservation, one commit for all; the outcome goes to each."""
        p = self._p
        try:
            with self._lock:
                month = self._ensure_row()
                cap = f" AND calls < {p}" if self.monthly_quota is not None else (
                    " AND (reported_total IS NULL OR calls < reported_total)"
                )
                params: list[Any] = [self.dialect.to_db_time(self._clock()), self.instance_id, month]
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
        """Store what a 466 answer said; the count never goes below what GREEN-API reports as used."""
        p = self._p
        with self._lock:
            month = self._ensure_row()
            self._execute(
                f"UPDATE {self._table} SET reported_used = {p}, reported_total = {p}, updated_at = {p}, "
                f"calls = CASE WHEN calls < {p} THEN {p} ELSE calls END WHERE instance_id = {p} AND month = {p}",
                (used, total, self.dialect.to_db_time(self._clock()), used or 0, used or 0,
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
        calls, used, total = row if row else (0, None, None)
        quota = self.monthly_quota if self.monthly_quota is not None else total
        return MonthlyUsage(self.instance_id, month, int(calls), quota, used, total)

    def close(self) -> None:
        self.connection.close()

    def _ensure_row(self) -> str:
        month = self.month()
        if month not in self._months_with_row:
            p = self._p
            self._execute(
                f"INSERT INTO {self._table} (instance_id, month, calls, updated_at) VALUES ({p}, {p}, 0, {p}) "
                "ON CONFLICT (instance_id, month) DO NOTHING",
                (self.instance_id, month, self.dialect.to_db_time(self._clock())),
            )
            self.connection.commit()
            self._months_with_row.add(month)
        return month

    def _execute(self, sql: str, params: Any = ()) -> None:
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, params)
        finally:
            cursor.close()
