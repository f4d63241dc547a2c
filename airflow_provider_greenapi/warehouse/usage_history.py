"""The usage history: checkWhatsapp calls per run, instance and UTC day, for ``airflow greenapi usage`` and the
UI view (checks per day, the last runs, what ``auto`` planned).

The usage ledger (ledger.py) counts the month's calls exactly, before each is sent; this table says *who*
spent them and *when*, and costs little: one row per run, instance and day, upserted by a
:class:`UsageRecorder` at the run's start, every few seconds while the count moves (from its own thread, on its
own connection, so the dispatch loop never waits for it) and at the end. A crash loses at most the last
interval of the history, never of the ledger. A write that fails is logged and the run goes on: nothing
here enforces anything.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_provider_greenapi.warehouse.engine import Dialect
from airflow_provider_greenapi.warehouse.store import RunContext

log = logging.getLogger(__name__)

DEFAULT_HISTORY_TABLE = "greenapi_usage_runs"
_COLUMNS = ("instance_id", "run_token", "day", "month", "dag_id", "run_id", "started_at", "updated_at", "checks",
            "budget", "budget_rule", "state")
_KEY = ("instance_id", "run_token", "day")


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

    def __init__(self, connection: Any, dialect: Dialect, table: str = DEFAULT_HISTORY_TABLE) -> None:
        self.connection = connection
        self.engine = dialect.engine
        self.table_name = table
        self._table = self.engine.table_name(table)
        self._lock = threading.Lock()

    def ensure_table(self) -> None:
        engine = self.engine
        key, ts, text = engine.key_text_type(64), engine.timestamp_type, engine.text_type
        with self._lock:
            engine.create_table(
                self.connection, self.table_name,
                f"instance_id {key} NOT NULL, run_token {key} NOT NULL, day {engine.key_text_type(10)} NOT NULL, "
                f"month {text} NOT NULL, dag_id {text}, run_id {text}, started_at {ts}, updated_at {ts}, "
                f"checks INTEGER NOT NULL, budget INTEGER, budget_rule {text}, state {text} NOT NULL, "
                "PRIMARY KEY (instance_id, run_token, day)",
            )

    def write(self, row: RunDay) -> None:
        """Upsert one run's day and commit."""
        engine = self.engine
        values = (row.instance_id, row.run_token, row.day, row.day[:7], row.dag_id, row.run_id,
                  engine.to_db_time(row.started_at), engine.to_db_time(row.updated_at), row.checks, row.budget,
                  row.budget_rule, row.state)
        with self._lock:
            cursor = self.connection.cursor()
            try:
                engine.upsert(cursor, self.table_name, _COLUMNS, _KEY, [values])
            finally:
                cursor.close()
            self.connection.commit()

    def month_rows(self, month: str) -> list[RunDay]:
        """Every row of ``month`` (``YYYY-MM``); read-only."""
        sql = (f"SELECT {', '.join(_COLUMNS)} FROM {self._table} WHERE month = {self.engine.placeholder} "
               "ORDER BY day, started_at")
        with self._lock:
            cursor = self.connection.cursor()
            try:
                cursor.execute(sql, (month,))
                records = cursor.fetchall()
            finally:
                cursor.close()
            self.engine.end_read(self.connection)
            with contextlib.suppress(Exception):
                self.connection.rollback()  # end the read transaction
        rows = []
        for r in records:
            rows.append(RunDay(str(r[0]), str(r[1]), str(r[2]), r[4], r[5], self.engine.from_db_time(r[6]),
                               self.engine.from_db_time(r[7]), int(r[8]), None if r[9] is None else int(r[9]),
                               r[10], str(r[11])))
        return rows


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
    """Keeps one run's rows up to date from a background thread while the run sends checks.

    ``count`` returns the checkWhatsapp calls the run has sent so far (the client's counter); the calls are
    booked on the UTC day of the write that sees them, so a run across midnight gets a row per day.
    """

    def __init__(self, history: UsageHistory, instance_id: str, run_token: str, dag_id: str | None,
                 run_id: str | None, count: Callable[[], int], clock: Callable[[], datetime],
                 interval: float = 5.0) -> None:
        self.history, self.count, self.clock, self.interval = history, count, clock, interval
        self._ids = (instance_id, run_token, dag_id, run_id)
        self._budget: tuple[int | None, str | None] = (None, None)
        self._started = clock()
        self._day = self._day_of(self._started)
        self._day_base = 0  # calls counted before the current day began
        self._written: tuple[str, int, str] | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="greenapi-usage-history", daemon=True)

    @staticmethod
    def _day_of(moment: datetime) -> str:
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%d")

    def start(self, budget: int | None = None, rule: str | None = None) -> None:
        self._budget = (budget, rule)
        self._write("running")
        self._thread.start()

    def stop(self, state: str) -> None:
        """The final write (``done`` or ``stopped``); waits for the thread."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(self.interval + 30)
        self._write(state)

    def _loop(self) -> None:
        while not self._stopped.wait(self.interval):
            self._write("running")

    def _write(self, state: str) -> None:
        now, sent = self.clock(), self.count()
        day = self._day_of(now)
        if day != self._day:
            self._day_base = self._written[1] + self._day_base if self._written else self._day_base
            self._day, self._written = day, None
        checks = sent - self._day_base
        if self._written == (day, checks, state):
            return
        instance_id, token, dag_id, run_id = self._ids
        row = RunDay(instance_id, token, day, dag_id, run_id, self._started, now, checks, *self._budget, state)
        try:
            self.history.write(row)
        except Exception as error:  # the history informs; the ledger enforces: never stop a run for it
            with contextlib.suppress(Exception):
                self.history.connection.rollback()
            log.warning("Could not update the usage history table %s: %s", self.history.table_name, error)
            return
        self._written = (day, checks, state)


def start_recording(history: UsageHistory, instance_id: str, context: RunContext, clock: Callable[[], datetime],
                    count: Callable[[], int], interval: float, budget: dict[str, Any] | None) -> UsageRecorder | None:
    """A started recorder of one run (``budget``: what ``auto`` planned), or None when the history table
    cannot be made: the run goes on without it."""
    try:
        history.ensure_table()
    except Exception as error:
        with contextlib.suppress(Exception):
            history.connection.rollback()
        log.warning("No usage history for this run: the table %s cannot be created (%s).", history.table_name, error)
        return None
    recorder = UsageRecorder(history, instance_id, context.token, context.dag_id, context.run_id, count, clock,
                             interval)
    plan = budget or {}
    recorder.start(plan.get("budget"), plan.get("explanation"))
    return recorder
