"""The usage history: checkWhatsapp calls per run, instance and UTC day, for ``airflow greenapi usage`` and the
UI view (checks per day, the last runs, what ``auto`` planned).

The usage ledger (ledger.py) counts the month's calls before each is sent; this table says *who* spent them
and *when*, one row per run, instance and day. The ledger books each run's calls on its row in the same
commit that counts them (:meth:`UsageRecorder.book`), so the checks per day add up to the ledger's count,
after a crash too. A :class:`UsageRecorder` writes the row's state at the run's start and end and a
heartbeat (``updated_at``) every few seconds in between: a ``running`` row not heard from for
:data:`STALE_AFTER` belongs to a run that was killed, and reads as ``interrupted`` (a later run on the
instance writes it so). A heartbeat that fails is logged and the run goes on.

The table is also where the runs on one instance take turns (:meth:`UsageRecorder.take_turn`): a run's row
reads ``waiting`` until no other live run on the instance is ahead of it, then ``running`` while it sends, so that
two runs never check the same number twice nor together exceed the instance's pace. See :func:`runs_ahead`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_greenapi.results import RunContext
from airflow_provider_greenapi.warehouse.engine import Dialect, committed

log = logging.getLogger(__name__)

DEFAULT_HISTORY_TABLE = "greenapi_usage_runs"
_COLUMNS = ("instance_id", "run_token", "day", "month", "dag_id", "run_id", "started_at", "updated_at", "checks",
            "budget", "budget_rule", "state")
_KEY = ("instance_id", "run_token", "day")
HEARTBEAT_SECONDS = 15.0  # the longest time between two writes of a live run's row
STALE_AFTER = timedelta(seconds=4 * HEARTBEAT_SECONDS)  # a `running` row older than this: the run is gone
RUNNING = "running"  # sending
WAITING = "waiting"  # waiting for another run on the instance to finish sending
INTERRUPTED = "interrupted"
_LIVE = (RUNNING, WAITING)  # states of a run still going, when heard from within STALE_AFTER


@dataclass(frozen=True)
class RunDay:
    """One row: what one run spent on one instance on one UTC day."""

    instance_id: str
    run_token: str
    day: str
    dag_id: str | None
    run_id: str | None
    started_at: datetime | None
    updated_at: datetime | None
    checks: int
    budget: int | None
    budget_rule: str | None
    state: str


@dataclass
class RunUsage:
    """A run's days added up (most runs have one)."""

    instance_id: str
    dag_id: str | None
    run_id: str | None
    started_at: datetime | None
    updated_at: datetime | None
    checks: int = 0
    budget: int | None = None
    budget_rule: str | None = None
    state: str = "running"
    days: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"instance_id": self.instance_id, "dag_id": self.dag_id, "run_id": self.run_id,
                "started_at": _iso(self.started_at), "updated_at": _iso(self.updated_at), "checks": self.checks,
                "budget": self.budget, "budget_rule": self.budget_rule, "state": self.state}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


class UsageHistory:
    """The history table over one DB-API connection (thread-safe: one statement sequence at a time)."""

    def __init__(self, connection: Any, dialect: Dialect, table: str = DEFAULT_HISTORY_TABLE,
                 lock: threading.Lock | None = None) -> None:
        self.connection = connection
        self.dialect = dialect
        self.engine = dialect.engine
        self.table_name = table
        self._table = self.engine.table_name(table)
        self._lock = lock or threading.Lock()

    def sharing(self, connection: Any, lock: threading.Lock) -> UsageHistory:
        """This table over another connection and its lock (the usage ledger's, which books the calls: one
        writer per row, as DuckDB's optimistic transactions need)."""
        return UsageHistory(connection, self.dialect, self.table_name, lock)

    def ensure_table(self) -> None:
        engine = self.engine
        key, ts, text = engine.key_text_type(64), engine.timestamp_type, engine.text_type
        with self._transaction():
            engine.create_table(
                self.connection, self.table_name,
                f"instance_id {key} NOT NULL, run_token {key} NOT NULL, day {engine.key_text_type(10)} NOT NULL, "
                f"month {text} NOT NULL, dag_id {text}, run_id {text}, started_at {ts}, updated_at {ts}, "
                f"checks INTEGER NOT NULL, budget INTEGER, budget_rule {text}, state {text} NOT NULL, "
                "PRIMARY KEY (instance_id, run_token, day)",
            )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A cursor under the lock, committed, or rolled back when a statement fails (still under the lock:
        the connection may be the usage ledger's, in the middle of nothing else)."""
        with self._lock, committed(self.connection) as cursor:
            yield cursor

    def write(self, row: RunDay) -> None:
        """Write one run's day (its state, times and budget) and commit; its ``checks`` are the ledger's to
        book (:meth:`UsageRecorder.book`): a new row starts with ``row.checks``, an existing one keeps its own."""
        engine, p = self.engine, self.engine.placeholder
        with self._transaction() as cursor:
            self._insert_missing(cursor, row)
            cursor.execute(
                f"UPDATE {self._table} SET dag_id = {p}, run_id = {p}, updated_at = {p}, budget = {p}, "
                f"budget_rule = {p}, state = {p} WHERE instance_id = {p} AND run_token = {p} AND day = {p}",
                (row.dag_id, row.run_id, engine.to_db_time(row.updated_at), row.budget, row.budget_rule,
                 row.state, row.instance_id, row.run_token, row.day))

    def _insert_missing(self, cursor: Any, row: RunDay) -> None:
        engine = self.engine
        engine.insert_missing(cursor, self.table_name, _COLUMNS, _KEY, (
            row.instance_id, row.run_token, row.day, row.day[:7], row.dag_id, row.run_id,
            engine.to_db_time(row.started_at), engine.to_db_time(row.updated_at), row.checks, row.budget,
            row.budget_rule, row.state))

    def add_checks(self, cursor: Any, row: RunDay, calls: int) -> None:
        """``checks = checks + calls`` on ``row``'s key (created if missing), in the caller's transaction."""
        p = self.engine.placeholder
        self._insert_missing(cursor, replace(row, checks=0))
        cursor.execute(
            f"UPDATE {self._table} SET checks = checks + {p}, updated_at = {p} "
            f"WHERE instance_id = {p} AND run_token = {p} AND day = {p}",
            (calls, self.engine.to_db_time(row.updated_at), row.instance_id, row.run_token, row.day))

    def mark_interrupted(self, instance_id: str, now: datetime) -> None:
        """Write ``interrupted`` on the instance's ``running`` or ``waiting`` rows not heard from for
        :data:`STALE_AFTER`."""
        p = self.engine.placeholder
        with self._transaction() as cursor:
            cursor.execute(
                f"UPDATE {self._table} SET state = {p} WHERE instance_id = {p} AND state IN ({p}, {p}) "
                f"AND updated_at < {p}",
                (INTERRUPTED, instance_id, *_LIVE, self.engine.to_db_time(now - STALE_AFTER)))

    def month_rows(self, month: str, now: datetime | None = None) -> list[RunDay]:
        """Every row of ``month`` (``YYYY-MM``); read-only. A ``running`` or ``waiting`` row not heard from for
        :data:`STALE_AFTER` before ``now`` (default: the time of the call) reads as ``interrupted``."""
        sql = (f"SELECT {', '.join(_COLUMNS)} FROM {self._table} WHERE month = {self.engine.placeholder} "
               "ORDER BY day, started_at")
        return self._read(sql, (month,), now or datetime.now(timezone.utc))

    def live_runs(self, instance_id: str, now: datetime) -> list[RunDay]:
        """The instance's runs still going at ``now``: ``running`` or ``waiting``, heard from within
        :data:`STALE_AFTER`; one row per run (its latest day). Read-only."""
        p = self.engine.placeholder
        sql = (f"SELECT {', '.join(_COLUMNS)} FROM {self._table} WHERE instance_id = {p} AND state IN ({p}, {p}) "
               f"AND updated_at >= {p}")
        rows = self._read(sql, (instance_id, *_LIVE, self.engine.to_db_time(now - STALE_AFTER)), now)
        latest = {row.run_token: row for row in sorted(rows, key=lambda r: r.day)}
        return [row for row in latest.values() if row.state in _LIVE]

    def _read(self, sql: str, parameters: tuple[Any, ...], now: datetime) -> list[RunDay]:
        stale = now - STALE_AFTER
        with self._lock:
            cursor = self.connection.cursor()
            try:
                cursor.execute(sql, parameters)
                records = cursor.fetchall()
            finally:
                cursor.close()
            self.engine.end_read(self.connection)
            with contextlib.suppress(Exception):
                self.connection.rollback()  # end the read transaction
        rows = []
        for r in records:
            updated_at, state = self.engine.from_db_time(r[7]), str(r[11])
            if state in _LIVE and (updated_at is None or updated_at < stale):
                state = INTERRUPTED
            rows.append(RunDay(str(r[0]), str(r[1]), str(r[2]), r[4], r[5], self.engine.from_db_time(r[6]),
                               updated_at, int(r[8]), None if r[9] is None else int(r[9]), r[10], state))
        return rows


def runs_ahead(me: RunDay, live: Sequence[RunDay]) -> list[RunDay]:
    """The runs among ``live`` (:meth:`UsageHistory.live_runs`) that go before ``me`` on the instance: every
    other run sending (``running``, whenever it started), and every other run ``waiting`` that started before
    ``me`` (ties broken by run token, so that of two runs started at the same instant exactly one goes first).

    Runs take their turns first come, first served. The start times only order the waiting runs; they never
    let a run send beside another: a run goes ``running`` only once none is ahead, then looks again
    (:meth:`UsageRecorder.take_turn`)."""
    oldest = datetime.min.replace(tzinfo=timezone.utc)

    def place(row: RunDay) -> tuple[datetime, str]:
        return row.started_at or oldest, row.run_token

    return [row for row in live if row.run_token != me.run_token
            and (row.state == RUNNING or (row.state == WAITING and place(row) < place(me)))]


def checks_per_day(rows: Sequence[RunDay]) -> dict[str, dict[str, int]]:
    """instance -> day -> checks, from a month's rows."""
    days: dict[str, dict[str, int]] = {}
    for row in rows:
        per_day = days.setdefault(row.instance_id, {})
        per_day[row.day] = per_day.get(row.day, 0) + row.checks
    return days


def runs(rows: Sequence[RunDay]) -> list[RunUsage]:
    """The runs of a month's rows, newest first."""
    by_run: dict[tuple[str, str], RunUsage] = {}
    for row in rows:
        run = by_run.get((row.instance_id, row.run_token))
        if run is None:
            run = by_run[(row.instance_id, row.run_token)] = RunUsage(
                row.instance_id, row.dag_id, row.run_id, row.started_at, row.updated_at)
        run.checks += row.checks
        run.days.append(row.day)
        if row.budget is not None:
            run.budget, run.budget_rule = row.budget, row.budget_rule
        if run.updated_at is None or (row.updated_at is not None and row.updated_at >= run.updated_at):
            run.updated_at, run.state = row.updated_at, row.state
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(by_run.values(), key=lambda r: r.started_at or oldest, reverse=True)


class UsageRecorder:
    """One run's rows in the usage history, one per UTC day it spends on.

    The usage ledger books the run's calls (:meth:`book`) in the commit that counts them, so a run's row holds
    what the ledger counted for it, after a crash too. The recorder writes the row's state at the start and
    the end and, from a background thread, a heartbeat every ``interval`` seconds (at most
    :data:`HEARTBEAT_SECONDS`) by which readers tell a live run from a killed one.
    """

    def __init__(self, history: UsageHistory, instance_id: str, run_token: str, dag_id: str | None,
                 run_id: str | None, clock: Callable[[], datetime], interval: float = 5.0) -> None:
        self.history, self.clock, self.interval = history, clock, min(interval, HEARTBEAT_SECONDS)
        self._ids = (instance_id, run_token, dag_id, run_id)
        self._budget: tuple[int | None, str | None] = (None, None)
        self._started = clock()
        self._state = RUNNING
        self._writing = threading.Lock()  # one state write at a time: the heartbeat never writes an old state
        self._booked: dict[str, int] = {}  # day -> calls booked on it
        self._stopped = threading.Event()
        self._paused = False  # the heartbeat is the caller's meanwhile (beating_from)
        self._thread = threading.Thread(target=self._loop, name="greenapi-usage-history", daemon=True)

    @staticmethod
    def _day_of(moment: datetime) -> str:
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%d")

    @property
    def state(self) -> str:
        return self._state

    def start(self, budget: int | None = None, rule: str | None = None, state: str = RUNNING) -> None:
        """The run's first write (``running``, or ``waiting`` for a run that takes turns: :meth:`take_turn`),
        then the heartbeat."""
        self._budget = (budget, rule)
        self._write(state)
        self._thread.start()

    def note_budget(self, budget: int | None, rule: str | None) -> None:
        """What ``auto`` planned, once the run knows it (after staging): on the run's rows from now on."""
        self._budget = (budget, rule)
        self._write(None)

    def take_turn(self) -> list[RunDay]:
        """One try at sending on the instance: the live runs that go first (:func:`runs_ahead`), or an empty list
        once this run's row reads ``running`` and it may send.

        Race-free because each step writes (commits) before it reads: of two runs, the one that reads later sees
        the other's row. A run that sees none ahead writes ``running`` and then reads again: should another run
        be ``running`` by then (the two read before either wrote), it goes back to ``waiting`` and tries at the
        next call (so do both, at worst, and then the one ahead goes first). A history that cannot be read
        holds no run back: the run sends, as it would without the table (logged)."""
        try:
            instance_id, token = self._ids[0], self._ids[1]
            live = self.history.live_runs(instance_id, self.clock())
            me = next((row for row in live if row.run_token == token), None)  # its start time as stored
            ahead = runs_ahead(me or self._row(self._day_of(self.clock()), self.clock(), self._state), live)
            if ahead:
                if self._state != WAITING:
                    self._write(WAITING)
                return ahead
            self._write(RUNNING)
            sending = [row for row in self.history.live_runs(instance_id, self.clock())
                       if row.run_token != token and row.state == RUNNING]
        except Exception as error:
            log.warning("Could not read the usage history table %s (%s): this run sends without waiting for "
                        "other runs on the instance.", self.history.table_name, error)
            self._write(RUNNING)
            return []
        if sending:
            self._write(WAITING)
        return sending

    def stop(self, state: str) -> None:
        """The final write (``done`` or ``stopped``); waits for the thread."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(self.interval + 30)
        self._write(state)

    def book(self, cursor: Any, calls: int) -> None:
        """Add ``calls`` counted (or, negative, given back) to the run's checks, on ``cursor`` in the usage
        ledger's transaction (the ledger holds the history's lock). Calls given back come off the latest days
        first."""
        now = self.clock()
        if calls >= 0:
            days = [(self._day_of(now), calls)]
        else:
            days, left = [], -calls
            for day in sorted(self._booked, reverse=True):
                take = min(left, self._booked[day])
                if take:
                    days.append((day, -take))
                left -= take
        for day, delta in days:
            self.history.add_checks(cursor, self._row(day, now, self._state), delta)
            self._booked[day] = self._booked.get(day, 0) + delta

    def _row(self, day: str, now: datetime, state: str) -> RunDay:
        instance_id, token, dag_id, run_id = self._ids
        return RunDay(instance_id, token, day, dag_id, run_id, self._started, now, 0, *self._budget, state)

    def _loop(self) -> None:
        while not self._stopped.wait(self.interval):
            if not self._paused:
                self._write(None)

    @contextlib.contextmanager
    def beating_from(self, connection: Any) -> Iterator[Callable[[], None]]:
        """While the run stages through ``connection``: the heartbeat is written on that connection, by the
        caller (the beat yielded, called between chunks; it writes when one is due), not from the thread. A SQLite
        file read by a source cursor of the results' connection cannot be written by another connection (each
        waits for the other's lock: "database is locked"); one connection never waits for itself. The beat
        commits what the connection wrote so far (staging is committed in steps anyway)."""
        own = self.history
        with self._writing:
            self._paused = True
            self.history = own.sharing(connection, threading.Lock())
        last = time.monotonic()

        def beat() -> None:
            nonlocal last
            if time.monotonic() - last >= self.interval:
                self._write(None)
                last = time.monotonic()

        try:
            yield beat
        finally:
            with self._writing:
                self.history = own
                self._paused = False

    def _write(self, state: str | None) -> None:
        """The state (None: the current one) and the heartbeat on each day's row the run has (today's at least)."""
        with self._writing:
            self._write_locked(self._state if state is None else state)

    def _write_locked(self, state: str) -> None:
        now = self.clock()
        self._state = state
        try:
            for day in sorted({self._day_of(now), *self._booked}):
                self.history.write(self._row(day, now, state))
        except Exception as error:  # the history informs; the ledger enforces: never stop a run for it
            log.warning("Could not update the usage history table %s: %s", self.history.table_name, error)


def start_recording(history: UsageHistory, instance_id: str, context: RunContext, clock: Callable[[], datetime],
                    interval: float, state: str = RUNNING) -> UsageRecorder | None:
    """A started recorder of one run (``state``: its first state; what ``auto`` plans comes later, after
    staging: :meth:`UsageRecorder.note_budget`), or None
    when the history table cannot be made: the run goes on without it. The instance's runs killed earlier are
    marked ``interrupted`` first."""
    try:
        history.ensure_table()
        history.mark_interrupted(instance_id, clock())
    except Exception as error:  # rolled back by the history
        log.warning("No usage history for this run: the table %s cannot be created (%s).", history.table_name, error)
        return None
    recorder = UsageRecorder(history, instance_id, context.token, context.dag_id, context.run_id, clock, interval)
    recorder.start(state=state)
    return recorder
