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
                "runs": [r.to_dict() for r in self.runs[:last_runs]], "next_auto": self.next_auto}


def parse_month(value: str | None) -> str:
    """``YYYY-MM`` (default: the current UTC month); ValueError saying the format otherwise."""
    if value is None or value == "":
        return month_key(datetime.now(timezone.utc))
    try:
        return datetime.strptime(value, "%Y-%m").strftime("%Y-%m")
    except ValueError:
        raise ValueError(f"--month must be a month as YYYY-MM (for example 2026-12), got {value!r}") from None


def greenapi_quotas(conn_ids: list[str]) -> dict[str, int | None]:
    """instance id -> monthly_quota of the given GREEN-API connections (the token is never read out)."""
    from airflow_provider_greenapi.hooks.greenapi import GreenApiHook

    quotas: dict[str, int | None] = {}
    for conn_id in conn_ids:
        hook = GreenApiHook(conn_id)
        quotas[hook.id_instance] = hook.monthly_quota
    return quotas


def month_usage(warehouse_conn_id: str, month: str, quotas: dict[str, int | None] | None = None,
                only_configured: bool = False, usage_table: str = DEFAULT_USAGE_TABLE,
                history_table: str = DEFAULT_HISTORY_TABLE) -> list[InstanceUsage]:
    """Every instance with a ledger row or history in ``month``; ``only_configured``: just those in ``quotas``."""
    check_table_name(usage_table)
    check_table_name(history_table)
    quotas = quotas or {}
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


def describe(reports: list[InstanceUsage], month: str, last_runs: int = 5) -> str:
    """The report as plain text (``--output table``)."""
    if not reports:
        return f"No GREEN-API usage recorded for {month}."
    lines = []
    for r in reports:
        quota = "not set" if r.quota is None else str(r.quota)
        left = "" if r.left is None else f", {r.left} left"
        lines.append(f"Instance {r.instance_id}, {month}: {r.calls} checkWhatsapp calls of quota {quota}{left}")
        if r.per_day:
            lines.append("  checks per day: " + ", ".join(f"{d[8:]}: {n}" for d, n in sorted(r.per_day.items())))
        if r.outside_runs:
            lines.append(f"  {r.outside_runs} calls booked by no run (GREEN-API's count after a 466, or runs "
                         "without a usage history)")
        if r.next_auto:
            lines.append(f"  next run of {r.next_auto['dag_id']} ({r.next_auto['run_after']}) on auto: "
                         f"{r.next_auto['budget']} checks ({r.next_auto['rule']})")
        if r.runs:
            lines.append(f"  {'started (UTC)':<20} {'dag_id':<24} {'run_id':<36} {'checks':>7} {'budget':>7}  state")
            for run in r.runs[:last_runs]:
                started = run.started_at.strftime("%Y-%m-%d %H:%M") if run.started_at else "?"
                budget = "" if run.budget is None else str(run.budget)
                lines.append(f"  {started:<20} {(run.dag_id or '')[:24]:<24} {(run.run_id or '')[:36]:<36} "
                             f"{run.checks:>7} {budget:>7}  {run.state}")
    return "\n".join(lines)


__all__ = ["InstanceUsage", "MonthlyUsage", "describe", "greenapi_quotas", "month_usage", "parse_month"]
