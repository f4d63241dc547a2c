"""The monthly usage ledger: checkWhatsapp calls per instance and calendar month (UTC), in the warehouse.

GREEN-API offers no call that tells the quota left, so the provider counts its own calls. Each call is
counted and committed *before* it is sent, by UPDATEs capped at the monthly quota, so a crash never forgets
spending and parallel tasks (several processes or workers) cannot overshoot together.

The ledger hands calls out of a pool of calls it has counted and not yet sent, and refills it with one
commit for many calls. A thread that finds the pool empty refills it for itself and every thread waiting
(group commit). When counting each call would hold the sender back (a commit lasts longer than the time
between two paced sends, as on a SQLite file at hundreds of checks a second), it also counts ahead: twice
the calls sent during one commit, refilled in the background before the pool runs dry (:class:`ReserveAhead`).
On a batched (cloud) engine, where each statement is slow and billed, a refill counts at least the engine's
``ledger_block``. Whatever
is left unsent is given back at :meth:`UsageLedger.close`. A crash leaves counted what was counted and not
sent (never under-counted): at most :meth:`UsageLedger.most_unsent`, one call per request about to leave
and, where it counts ahead, at most two seconds of sends at the pace (or a block).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_provider_greenapi.errors import QuotaBudgetExhausted
from airflow_provider_greenapi.warehouse.engine import Dialect, committed

DEFAULT_USAGE_TABLE = "greenapi_usage"

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class ReserveAhead:
    """How many calls the ledger counts ahead of the sends.

    Nothing while counting each call keeps up with the sender's pace, that is while a commit is shorter
    than ``threshold`` times the time between two paced sends (a real instance's 10/s: a commit under 100 ms):
    then every call is counted right before it is sent. Otherwise the ledger is what would slow the run down,
    and it counts ahead twice the calls sent during its slowest recent commit (at least one, at most
    ``max_seconds`` of sends at the pace and ``max_calls``), so that the next refill commits while those are
    sent. The cap bounds what a crash leaves counted and unsent (:meth:`UsageLedger.most_unsent`).
    """

    threshold: float = 1.0
    headroom: float = 2.0  # jitter: the next commit may take longer, the sends may come faster
    max_calls: int = 256
    max_seconds: float = 1.0  # and at most this long of sends at the pace

    def calls(self, pace: float | None, sends_per_second: float, slowest_commit_seconds: float) -> int:
        """``pace``: the most calls a second the sender may make (None: not known, count each call);
        ``sends_per_second``: how fast calls were taken lately."""
        if pace is None or slowest_commit_seconds <= 0 or pace * slowest_commit_seconds < self.threshold:
            return 0
        during_one_commit = sends_per_second * slowest_commit_seconds
        return min(self.most(pace), max(1, math.ceil(self.headroom * during_one_commit)))

    def most(self, pace: float | None) -> int:
        """The most calls counted ahead at ``pace``: ``max_seconds`` of sends, at most ``max_calls``."""
        if pace is None:
            return 0
        return self.max_calls if math.isinf(pace) else min(self.max_calls, max(1, math.ceil(pace * self.max_seconds)))


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
        reserve_ahead: ReserveAhead = ReserveAhead(),
    ) -> None:
        self.connection = connection
        self.dialect = dialect
        self.instance_id = instance_id
        self.monthly_quota = monthly_quota
        self.table_name = table
        self.engine = dialect.engine
        self.reserve_ahead = reserve_ahead
        self._table = self.engine.table_name(table)
        self._p = self.engine.placeholder
        self._clock = clock
        self._lock = threading.Lock()  # the connection: one statement sequence at a time
        self._months_with_row: set[str] = set()
        # The pool: calls counted in the ledger for ``_pool_month`` and not sent yet. Guarded by ``_pool_changed``.
        self._pool_changed = threading.Condition()
        self._pool = 0
        self._pool_month: str | None = None
        self._refilling = False
        self._wanting = 0  # threads waiting for a call
        self._ahead = 0  # calls counted ahead of the sends (ReserveAhead), refilled before the pool runs dry
        self._taken_since_refill = 0
        self._last_refill = time.monotonic()
        self._slowest_commit_seconds = 0.0
        self._pace: float | None = None
        self._prefetcher: threading.Thread | None = None
        self._closed = False
        self._booking: Callable[[Any, int], None] | None = None

    @property
    def lock(self) -> threading.Lock:
        """Held while a statement sequence runs on :attr:`connection`."""
        return self._lock

    def book_on(self, booking: Callable[[Any, int], None] | None) -> None:
        """From now on, also call ``booking(cursor, calls)`` in each commit that counts calls (``calls`` > 0) or
        gives them back (< 0): the usage history books the run's calls in the same transaction as the ledger.
        A booking that fails is dropped (logged), never the count."""
        self._booking = booking

    def ensure_table(self) -> None:
        ts, key = self.engine.timestamp_type, self.engine.key_text_type(64)
        with self._lock:
            self.engine.create_table(
                self.connection, self.table_name,
                f"instance_id {key} NOT NULL, month {key} NOT NULL, calls INTEGER NOT NULL DEFAULT 0, "
                f"reported_used INTEGER, reported_total INTEGER, updated_at {ts}, PRIMARY KEY (instance_id, month)",
            )

    def month(self) -> str:
        return self._clock().astimezone(timezone.utc).strftime("%Y-%m")

    def reserve_call(self, method: str = "checkWhatsapp", pace: float | None = None) -> None:
        """Take one call about to be sent out of the pool of counted calls; QuotaBudgetExhausted when the
        monthly quota is reached. Each call taken was committed in the ledger before this returns.
        ``pace``: the most calls a second the sender may make (the client's pacer), which tells whether
        counting each call holds it back (:class:`ReserveAhead`); None: count each call."""
        month = self.month()
        with self._pool_changed:
            self._pace = pace
            self._wanting += 1
            try:
                while self._pool == 0 or self._pool_month != month:
                    if self._refilling:
                        self._pool_changed.wait()
                    elif self._refill(month) == 0 and self._pool == 0:
                        break
                else:
                    self._pool -= 1
                    self._taken_since_refill += 1
                    if self._pool <= self._ahead and not self._refilling:
                        self._start_prefetcher()
                    return
            finally:
                self._wanting -= 1
        self._refuse(method)

    def _refill(self, month: str) -> int:
        """Count calls into the pool with one commit: one for each waiting thread plus twice what is counted
        ahead, at least the engine's block. Called and returns with ``_pool_changed`` held; releases it while
        the database works. The calls counted (0: the quota is reached)."""
        self._refilling = True
        stale = (self._pool_month, self._pool) if self._pool_month != month else None
        if stale is not None:
            self._pool, self._pool_month = 0, month
        wanted = max(self.engine.ledger_block, self._wanting + 2 * self._ahead - self._pool)
        taken, since = self._taken_since_refill, self._last_refill
        self._taken_since_refill, self._last_refill = 0, time.monotonic()
        counted = 0
        self._pool_changed.release()
        try:
            with self._lock:
                if stale is not None and stale[0] is not None:
                    self._give_back(stale[0], stale[1])
                started = time.monotonic()
                counted = self._count_calls(month, wanted)
                elapsed = time.monotonic() - started
        finally:
            self._pool_changed.acquire()
            self._refilling = False
            self._pool += counted
            self._pool_changed.notify_all()
        # The slowest recent commit (decaying) decides: a commit's time varies (fsync, another's lock).
        rate = taken / max(self._last_refill - since, 1e-6)
        self._slowest_commit_seconds = max(elapsed, 0.8 * self._slowest_commit_seconds)
        # Near the quota (fewer counted than asked) each call is counted as it goes: what is left stays open
        # to the other tasks sharing the ledger.
        self._ahead = (self.reserve_ahead.calls(self._pace, rate, self._slowest_commit_seconds)
                       if counted == wanted else 0)
        return counted

    def _start_prefetcher(self) -> None:
        """Refill in the background while the pool's last calls are sent (only when counting ahead)."""
        if self._ahead == 0 or self._closed:
            return
        if self._prefetcher is None:
            self._prefetcher = threading.Thread(target=self._prefetch, name="greenapi-ledger", daemon=True)
            self._prefetcher.start()
        self._pool_changed.notify_all()

    def _prefetch(self) -> None:
        """The background refills; the thread ends at close or after a second with nothing to do (a ledger
        nobody closes keeps no thread)."""
        with self._pool_changed:
            while not self._closed:
                if self._ahead and self._pool <= self._ahead and not self._refilling:
                    try:
                        self._refill(self.month())
                    except Exception as error:  # the next reserve_call meets the error itself
                        log.warning("The usage ledger could not count calls ahead (%s); counting each call.",
                                    error)
                        self._ahead = 0
                    continue
                if not self._pool_changed.wait(timeout=1.0):
                    break
            self._prefetcher = None

    def _refuse(self, method: str) -> None:
        usage = self.usage()
        raise QuotaBudgetExhausted(
            f"the monthly quota of instance {self.instance_id} is used up for {usage.month} "
            f"({usage.calls} of {usage.quota} checkWhatsapp calls counted in the usage ledger)",
            method=method,
        )

    def _count_calls(self, month: str, wanted: int) -> int:
        """Count up to ``wanted`` calls in the ledger, as many as the quota leaves, in one commit; the number
        counted. A batched engine does it in one compare-and-set statement; the others by one UPDATE of
        ``calls + wanted`` capped at the quota, or, when fewer are left, capped ``calls + 1`` UPDATEs until
        one is refused, all inside one transaction (never past the quota whoever else counts meanwhile)."""
        self._ensure_row(month)
        return self._booked(self._count_block if self.engine.ledger_block > 1 else self._count_capped,
                            month, wanted)

    def _booked(self, action: Callable[[str, int], int], month: str, calls: int) -> int:
        """``action`` (which books its calls in its transaction); if it fails with a booking, again without."""
        try:
            return action(month, calls)
        except Exception as error:  # the history's table, most likely: the count must not fail for it
            if self._booking is None:
                raise
            log.warning("The usage ledger stops booking this run's calls in the usage history: %s", error)
            self._booking = None
            return action(month, calls)

    def _book(self, cursor: Any, calls: int) -> None:
        if self._booking is not None and calls:
            self._booking(cursor, calls)

    def _count_capped(self, month: str, wanted: int) -> int:
        counted = 0
        with committed(self.connection) as cursor:
            if wanted > 1 and self._add_capped(cursor, month, wanted):
                counted = wanted
            else:
                while counted < wanted and self._add_capped(cursor, month, 1):
                    counted += 1
            self._book(cursor, counted)
        return counted

    def _add_capped(self, cursor: Any, month: str, calls: int) -> bool:
        """``calls = calls + <calls>`` unless that crosses the quota in force; whether it was counted."""
        p = self._p
        params: list[Any] = [calls, self.engine.to_db_time(self._clock()), self.instance_id, month, calls]
        if self.monthly_quota is not None:
            cap = f" AND calls + {p} <= {p}"
            params.append(self.monthly_quota)
        else:
            cap = f" AND (reported_total IS NULL OR calls + {p} <= reported_total)"
        cursor.execute(
            f"UPDATE {self._table} SET calls = calls + {p}, updated_at = {p} "
            f"WHERE instance_id = {p} AND month = {p}{cap}",
            params,
        )
        return bool(cursor.rowcount == 1)

    def _count_block(self, month: str, wanted: int) -> int:
        """Count up to ``wanted`` calls with one compare-and-set UPDATE on the count read, retried when
        another task counted meanwhile, so concurrent tasks never count past the quota together."""
        p = self._p
        while True:
            with committed(self.connection) as cursor:
                cursor.execute(
                    f"SELECT calls, reported_total FROM {self._table} WHERE instance_id = {p} AND month = {p}",
                    (self.instance_id, month),
                )
                calls, total = cursor.fetchone()
                cap = self.monthly_quota if self.monthly_quota is not None else total
                size = wanted if cap is None else max(0, min(wanted, int(cap) - int(calls)))
                if size == 0:
                    return 0
                cursor.execute(
                    f"UPDATE {self._table} SET calls = calls + {p}, updated_at = {p} "
                    f"WHERE instance_id = {p} AND month = {p} AND calls = {p}",
                    (size, self.engine.to_db_time(self._clock()), self.instance_id, month, calls),
                )
                counted = cursor.rowcount == 1
                if counted:
                    self._book(cursor, size)
            if counted:
                return size

    def _give_back(self, month: str, calls: int) -> None:
        """Uncount calls that were counted and never sent (at close, or when the month turns)."""
        if calls:
            self._booked(self._uncount, month, calls)

    def _uncount(self, month: str, calls: int) -> int:
        p = self._p
        with committed(self.connection) as cursor:
            cursor.execute(f"UPDATE {self._table} SET calls = calls - {p} "
                           f"WHERE instance_id = {p} AND month = {p} AND calls >= {p}",
                           (calls, self.instance_id, month, calls))
            self._book(cursor, -calls)
        return calls

    def record_reported(self, used: int | None, total: int | None) -> None:
        """Store what a 466 answer said; the count never goes below what GREEN-API reports as used. The pool
        is dropped (still counted): GREEN-API's figure is the truth now."""
        p = self._p
        with self._pool_changed:
            self._pool, self._ahead = 0, 0
        with self._lock:
            month = self._ensure_row(self.month())
            self._execute(
                f"UPDATE {self._table} SET reported_used = {p}, reported_total = {p}, updated_at = {p}, "
                f"calls = CASE WHEN calls < {p} THEN {p} ELSE calls END WHERE instance_id = {p} AND month = {p}",
                (used, total, self.engine.to_db_time(self._clock()), used or 0, used or 0,
                 self.instance_id, month),
            )
            self.connection.commit()

    def usage(self) -> MonthlyUsage:
        """This month's calls as spent: the ledger's count less this ledger's calls counted and not sent."""
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
        with self._pool_changed:
            unsent = self._pool if self._pool_month == month else 0
        calls, used, total = row if row else (0, None, None)
        quota = self.monthly_quota if self.monthly_quota is not None else total
        return MonthlyUsage(self.instance_id, month, int(calls) - unsent, quota, used, total)

    def most_unsent(self, in_flight: int, pace: float | None) -> int:
        """The most calls this ledger holds counted and not sent at any moment, for a sender with ``in_flight``
        requests at once at ``pace`` calls a second: one per request about to leave, twice what it counts
        ahead (a refill while the previous one's calls are sent), and what is left of a batched engine's block.
        It is what a task killed at any point can leave in the ledger above GREEN-API's count."""
        return in_flight + 2 * self.reserve_ahead.most(pace) + self.engine.ledger_block - 1

    def close(self) -> None:
        """Stop counting ahead, give back the calls counted and not sent, close the connection."""
        with self._pool_changed:
            self._closed = True
            self._pool_changed.notify_all()
            while self._refilling:
                self._pool_changed.wait()
            unsent, self._pool = self._pool, 0
            month = self._pool_month
            prefetcher = self._prefetcher
        try:
            if prefetcher is not None:
                prefetcher.join()
            if month is not None and unsent:
                with self._lock:
                    self._give_back(month, unsent)
        finally:
            self.connection.close()

    def _ensure_row(self, month: str) -> str:
        if month not in self._months_with_row:
            with committed(self.connection) as cursor:
                self.engine.insert_missing(cursor, self.table_name, ("instance_id", "month", "calls", "updated_at"),
                                           ("instance_id", "month"),
                                           (self.instance_id, month, 0, self.engine.to_db_time(self._clock())))
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
