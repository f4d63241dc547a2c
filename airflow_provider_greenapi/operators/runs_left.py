"""How many runs of a DAG share what is left of the month: ``max_checks="auto"``'s divisor, from Airflow's own
timetable (``Timetable.next_dagrun_info``, the scheduler's API), so any schedule a DAG can have is counted as
the scheduler would run it.

The rules (docs/quota.md):

- a **scheduled** run: this run and the timetable's runs after it whose ``run_after`` falls in the same UTC
  month (a ``@daily`` DAG's run for 21 December: 11);
- a **manual, asset-triggered or backfill** run, or a scheduled run executing after its month: one extra run,
  plus the scheduled runs still to come this month (the scheduled ones plan again from the ledger, so they
  take less);
- a DAG **without a time schedule** (``schedule=None``, assets only, ``@once``, ``@continuous``): the days left
  in the month, today counted, as if it ran once a day.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow_provider_greenapi._compat import core_timetable, dag_run_after
from airflow_provider_greenapi.quota_plan import RunsLeft, days_left, month_bounds

_MAX_RUNS_COUNTED = 50_000  # a month of runs every minute is 44,640; beyond it the timetable is not a schedule
_NOT_A_SCHEDULE = {"ContinuousTimetable", "OnceTimetable", "NullTimetable"}


def scheduled_runs_after(timetable: Any, after: datetime, until: datetime) -> int | None:
    """Runs of ``timetable`` whose ``run_after`` is in ``(after, until)``; None when it has no time schedule."""
    import pendulum
    from airflow.timetables.base import TimeRestriction

    timetable = core_timetable(timetable)
    if (timetable is None or type(timetable).__name__ in _NOT_A_SCHEDULE
            or not getattr(timetable, "periodic", True) or not getattr(timetable, "can_be_scheduled", True)):
        return None
    after, until = pendulum.instance(after), pendulum.instance(until)  # timetables compute in pendulum
    restriction = TimeRestriction(earliest=after, latest=until - timedelta(microseconds=1), catchup=True)
    info = _with_the_run_due_inside(
        timetable, timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction), after,
        until)
    count, last = 0, None
    while info is not None and count <= _MAX_RUNS_COUNTED:
        run_after = info.run_after
        if last is not None and run_after <= last:
            return None  # not advancing: not a schedule this can count
        if run_after >= until:
            break
        if run_after > after:
            count += 1
        last = run_after
        info = timetable.next_dagrun_info(last_automated_data_interval=info.data_interval, restriction=restriction)
    return None if count > _MAX_RUNS_COUNTED else count


def _with_the_run_due_inside(timetable: Any, first: Any, after: Any, until: Any) -> Any:
    """The first run due after ``after`` (pendulum times, as timetables compute). A data-interval timetable (a
    cron schedule's default on Airflow 2.11, ``CronDataIntervalTimetable`` on 3.x) starts its first interval at
    ``after`` or later, yet the run of the interval that holds ``after`` is due at that interval's end, after
    ``after``: one interval back finds it."""
    if first is None or first.data_interval is None:
        return first
    length = first.data_interval.end - first.data_interval.start
    if length <= timedelta(0):
        return first
    from airflow.timetables.base import TimeRestriction

    restriction = TimeRestriction(earliest=after - length, latest=until - timedelta(microseconds=1), catchup=True)
    earlier = timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    if earlier is not None and after < earlier.run_after < first.run_after:
        return earlier
    return first


def runs_left(timetable: Any, run_type: str | None, run_after: datetime | None, now: datetime) -> RunsLeft:
    """The runs sharing the rest of ``now``'s UTC month, this one counted (rules: this module's docstring)."""
    start, end = month_bounds(now)
    scheduled = str(getattr(run_type, "value", run_type) or "") == "scheduled"
    own_month = run_after is not None and start <= run_after < end
    reference = run_after if scheduled and own_month and run_after is not None else now
    later = scheduled_runs_after(timetable, reference, end)
    if later is None:
        return days_left(now)
    month = start.strftime("%Y-%m")
    if scheduled and own_month:
        return RunsLeft(1 + later, f"scheduled run: this one and {later} more scheduled in {month}")
    kind = (str(getattr(run_type, "value", run_type)) if run_type else "unscheduled") + " run"
    return RunsLeft(1 + later, f"{kind}: counted as one extra run beside the {later} still scheduled in {month}")


def runs_left_for(context: Any, now: datetime) -> RunsLeft:
    """``runs_left`` of the task's DAG run, from its Airflow context."""
    dag, dag_run = context.get("dag"), context.get("dag_run")
    timetable = getattr(dag, "timetable", None)
    run_after = dag_run_after(dag_run)
    return runs_left(timetable, getattr(dag_run, "run_type", None), run_after, now)
