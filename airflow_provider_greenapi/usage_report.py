"""The month's usage per instance, as ``airflow greenapi usage`` and the UI view show it: the ledger's calls
against the quota, what is left, checks per day and the last runs (the usage history), and what
``max_checks="auto"`` would allow the next scheduled run of the DAG that last ran on the instance.

Read-only: it runs fixed SELECTs on the ledger and history tables of one warehouse connection, and reads only
the instance id and the ``monthly_quota`` of GREEN-API connections, never their token.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow_provider_greenapi.quota_plan import QuotaReserve, month_bounds, month_key, plan_budget
from airflow_provider_greenapi.warehouse import DEFAULT_USAGE_TABLE, MonthlyUsage, check_table_name, open_warehouse
from airflow_provider_greenapi.warehouse.ledger import usage_in_month
from airflow_provider_greenapi.warehouse.usage_history import (
    DEFAULT_HISTORY_TABLE,
    RunUsage,
    UsageHistory,
    checks_per_day,
    runs,
)

log = logging.getLogger(__name__)


@dataclass
class InstanceUsage:
    """One instance's month."""

    instance_id: str
    month: str
    calls: int
    quota: int | None
    per_day: dict[str, int] = field(default_factory=dict)
    runs: list[RunUsage] = field(default_factory=list)
    next_auto: dict[str, Any] | None = None
    quota_conflict: dict[str, int] | None = None  # connection id -> the monthly_quota it sets, when they differ

    @property
    def left(self) -> int | None:
        return None if self.quota is None else max(0, self.quota - self.calls)

    @property
    def outside_runs(self) -> int:
        """The ledger's calls no run booked in the history (the checks per day add up to the rest): GREEN-API's
        count taken after a 466, runs without a usage history."""
        return self.calls - sum(self.per_day.values())

    def to_dict(self, last_runs: int = 10) -> dict[str, Any]:
        return {"instance_id": self.instance_id, "month": self.month, "calls": self.calls, "quota": self.quota,
                "left": self.left, "checks_per_day": dict(sorted(self.per_day.items())),
                "calls_outside_runs": self.outside_runs,
                "runs": [r.to_dict() for r in self.runs[:last_runs]], "next_auto": self.next_auto,
                "quota_conflict": self.quota_conflict}

    def conflict_text(self) -> str | None:
        """The quota conflict as one sentence, or None."""
        if not self.quota_conflict:
            return None
        said = ", ".join(f"{c!r} says {q}" for c, q in self.quota_conflict.items())
        return (f"its GREEN-API connections set different monthly_quota values ({said}): set the same value on "
                "each connection of the instance")


def parse_month(value: str | None) -> str:
    """``YYYY-MM`` (default: the current UTC month); ValueError saying the format otherwise."""
    if value is None or value == "":
        return month_key(datetime.now(timezone.utc))
    try:
        return datetime.strptime(value, "%Y-%m").strftime("%Y-%m")
    except ValueError:
        raise ValueError(f"--month must be a month as YYYY-MM (for example 2026-12), got {value!r}") from None


@dataclass
class ConnectionQuotas:
    """What GREEN-API connections say about each instance's ``monthly_quota``.

    The rule: an instance's quota is the one set on any of its connections (connections that do not set it
    say nothing); when its connections set different quotas, none is assumed and ``conflicts`` names each
    connection's value. A connection that cannot be read is one line in ``errors`` (its id and what is wrong,
    never a value it holds) and changes nothing else."""

    quotas: dict[str, int | None] = field(default_factory=dict)
    conflicts: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def greenapi_quotas(conn_ids: list[str]) -> ConnectionQuotas:
    """The instance id and ``monthly_quota`` of the given GREEN-API connections (the token is never read out)."""
    from airflow_provider_greenapi.hooks.greenapi import GreenApiHook

    found: dict[str, dict[str, int | None]] = {}
    result = ConnectionQuotas()
    for conn_id in conn_ids:
        hook = GreenApiHook(conn_id)
        try:
            instance_id, quota = hook.id_instance, hook.monthly_quota
        except Exception as error:
            result.errors.append(f"GREEN-API connection {conn_id!r} skipped: {_without_values(error, hook)}")
            continue
        found.setdefault(instance_id, {})[conn_id] = quota
    for instance_id, by_conn in sorted(found.items()):
        set_on = {c: q for c, q in by_conn.items() if q is not None}
        if len(set(set_on.values())) > 1:
            result.quotas[instance_id] = None
            result.conflicts[instance_id] = dict(sorted(set_on.items()))
        else:
            result.quotas[instance_id] = next(iter(set_on.values()), None)
    return result


def _without_values(error: Exception, hook: Any) -> str:
    """The error's message with every value of the connection's password, login and extras blanked, also where
    the message shortened it (a prefix of 8 characters or more): a message about a setting must not repeat a
    value that may be a secret (a token pasted into the wrong field)."""
    message = str(error) or type(error).__name__
    try:
        conn = hook._connection
        values = [conn.password, conn.login, *(str(v) for v in (conn.extra_dejson or {}).values())]
    except Exception:
        values = []
    for value in sorted((v for v in values if v and len(v) >= 4), key=len, reverse=True):
        for end in range(len(value), min(len(value), 8) - 1, -1):
            message = message.replace(value[:end], "***")
    return message


def month_usage(warehouse_conn_id: str, month: str, connections: ConnectionQuotas | None = None,
                only_configured: bool = False, usage_table: str = DEFAULT_USAGE_TABLE,
                history_table: str = DEFAULT_HISTORY_TABLE) -> list[InstanceUsage]:
    """Every instance with a ledger row or history in ``month``; ``only_configured``: just those of the
    GREEN-API ``connections``. An instance whose connections disagree on the quota shows no quota."""
    check_table_name(usage_table)
    check_table_name(history_table)
    connections = connections or ConnectionQuotas()
    quotas = connections.quotas
    warehouse = open_warehouse(warehouse_conn_id, "warehouse")
    connection = warehouse.connect()
    try:
        known = {k: v for k, v in quotas.items() if v is not None}
        ledger = _read_or_empty(lambda: usage_in_month(connection, warehouse.dialect, month, usage_table, known),
                                connection, usage_table)
        history = _read_or_empty(lambda: UsageHistory(connection, warehouse.dialect, history_table).month_rows(month),
                                 connection, history_table)
    finally:
        connection.close()
    by_instance: dict[str, InstanceUsage] = {}
    for usage in ledger:
        by_instance[usage.instance_id] = InstanceUsage(usage.instance_id, month, usage.calls, usage.quota)
    for instance_id, days in checks_per_day(history).items():
        report = by_instance.setdefault(instance_id, InstanceUsage(instance_id, month, 0, known.get(instance_id)))
        report.per_day = days
    for run in runs(history):
        by_instance[run.instance_id].runs.append(run)
    for instance_id, quota in quotas.items():
        by_instance.setdefault(instance_id, InstanceUsage(instance_id, month, 0, quota))
    for instance_id, conflict in connections.conflicts.items():
        if instance_id in by_instance:  # not GREEN-API's reported total either: the conflict is the answer
            by_instance[instance_id].quota, by_instance[instance_id].quota_conflict = None, conflict
    reports = sorted(by_instance.values(), key=lambda r: r.instance_id)
    if only_configured:
        reports = [r for r in reports if r.instance_id in quotas]
    now = datetime.now(timezone.utc)
    for report in reports:
        report.next_auto = _next_auto(report, now)
    return reports


def _read_or_empty(read: Any, connection: Any, table: str) -> list[Any]:
    """A table no run has created yet reads as empty."""
    try:
        result: list[Any] = read()
        return result
    except Exception as error:
        with contextlib.suppress(Exception):
            connection.rollback()
        log.info("No usable table %s (%s): nothing recorded there yet.", table, str(error).splitlines()[0][:200])
        return []


def _next_auto(report: InstanceUsage, now: datetime) -> dict[str, Any] | None:
    """What ``auto`` would allow the next scheduled run of the DAG that last ran on the instance (before any
    ``quota_reserve``), or None when that cannot be known (no quota, no run, the DAG not in Airflow)."""
    if (report.quota is None or not report.runs or report.runs[0].dag_id is None
            or report.month != month_key(now)):  # the next run plans on this month's count only
        return None
    dag_id = report.runs[0].dag_id
    schedule = _next_scheduled_run(dag_id)
    if schedule is None:
        return None
    timetable, run_after = schedule
    from airflow_provider_greenapi.operators.runs_left import runs_left

    moment = max(run_after, now)
    left = runs_left(timetable, "scheduled", run_after, moment)
    start, _ = month_bounds(moment)
    used = report.calls if start.strftime("%Y-%m") == report.month else 0  # the next run in a new month
    plan = plan_budget(report.quota, used, left, QuotaReserve(), start.strftime("%Y-%m"))
    return {"dag_id": dag_id, "run_after": run_after.isoformat(), **plan.to_dict()}


def _next_scheduled_run(dag_id: str) -> tuple[Any, datetime] | None:
    """(core timetable, next run_after) of a DAG from Airflow's metadata database; None if unknown."""
    try:
        from airflow.models.dag import DagModel
        from airflow.models.serialized_dag import SerializedDagModel
        from airflow.utils.session import create_session

        with create_session() as session:
            model = session.get(DagModel, dag_id)
            next_run = getattr(model, "next_dagrun_create_after", None)
            dag = SerializedDagModel.get_dag(dag_id, session=session) if next_run is not None else None
        if dag is None or next_run is None:
            return None
        return dag.timetable, next_run.astimezone(timezone.utc)
    except Exception as error:  # a report must not fail because one DAG cannot be read
        log.info("Cannot plan the next run of %s: %s", dag_id, error)
        return None


def describe(reports: list[InstanceUsage], month: str, last_runs: int = 5, errors: list[str] | None = None) -> str:
    """The report as plain text (``--output table``): ``errors`` (connections that could not be read) first,
    then each instance; DAG and run ids whole, however long (the columns widen to the longest)."""
    lines = [f"! {error}" for error in errors or []]
    if not reports:
        return "\n".join([*lines, f"No GREEN-API usage recorded for {month}."])
    for r in reports:
        quota = "not set" if r.quota is None else str(r.quota)
        left = "" if r.left is None else f", {r.left} left"
        lines.append(f"Instance {r.instance_id}, {month}: {r.calls} checkWhatsapp calls of quota {quota}{left}")
        if r.quota_conflict:
            lines.append(f"  ! quota conflict: {r.conflict_text()}")
        if r.per_day:
            lines.append("  checks per day: " + ", ".join(f"{d[8:]}: {n}" for d, n in sorted(r.per_day.items())))
        if r.outside_runs:
            lines.append(f"  {r.outside_runs} calls booked by no run (GREEN-API's count after a 466, or runs "
                         "without a usage history)")
        if r.next_auto:
            lines.append(f"  next run of {r.next_auto['dag_id']} ({r.next_auto['run_after']}) on auto: "
                         f"{r.next_auto['budget']} checks ({r.next_auto['rule']})")
        if r.runs:
            shown = r.runs[:last_runs]
            dag_w = max(24, *(len(run.dag_id or "") for run in shown))
            run_w = max(36, *(len(run.run_id or "") for run in shown))
            lines.append(f"  {'started (UTC)':<20} {'dag_id':<{dag_w}} {'run_id':<{run_w}} {'checks':>7} "
                         f"{'budget':>7}  state")
            for run in shown:
                started = run.started_at.strftime("%Y-%m-%d %H:%M") if run.started_at else "?"
                budget = "" if run.budget is None else str(run.budget)
                lines.append(f"  {started:<20} {run.dag_id or '':<{dag_w}} {run.run_id or '':<{run_w}} "
                             f"{run.checks:>7} {budget:>7}  {run.state}")
    return "\n".join(lines)


__all__ = ["ConnectionQuotas", "InstanceUsage", "MonthlyUsage", "describe", "greenapi_quotas", "month_usage",
           "parse_month"]
