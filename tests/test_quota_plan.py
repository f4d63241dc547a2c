"""max_checks="auto": the budget arithmetic (quota_plan.py) over Airflow's real timetables (operators/runs_left.py)
on the first, a middle and the last day of a month, the priority order of a short budget, shards, and a
simulated month of daily runs through the emulator that never crosses the quota."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_greenapi.operators.runs_left import runs_left
from airflow_provider_greenapi.quota_plan import (
    AutoBudget,
    QuotaReserve,
    RunsLeft,
    days_left,
    parse_max_checks,
    plan_budget,
)
from airflow_provider_greenapi.warehouse.usage_history import UsageHistory, checks_per_day, runs
from tests.conftest import ID_INSTANCE
from tests.harness import Harness

pytestmark = pytest.mark.matrix  # the timetables are Airflow's: their API is what differs between lines

QUOTA, USED_BY_OTHERS = 30_000, 12_000


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def timetable(schedule):
    from airflow.providers.common.compat.sdk import DAG

    return DAG("quota_plan_test", schedule=schedule, start_date=utc(2026, 1, 1)).timetable


@pytest.mark.parametrize(("schedule", "run_after", "runs", "budget"), [
    # @daily: the run for 21 December is one of the 11 left (21..31)
    ("@daily", utc(2026, 12, 1), 31, 18_000 // 31),
    ("@daily", utc(2026, 12, 21), 11, 18_000 // 11),
    ("@daily", utc(2026, 12, 31), 1, 18_000),
    ("@hourly", utc(2026, 12, 1), 744, 18_000 // 744),
    ("@hourly", utc(2026, 12, 21), 264, 18_000 // 264),
    ("@hourly", utc(2026, 12, 31, 23), 1, 18_000),
    # weekdays at 06:00; 1 December 2026 is a Tuesday: 23 weekdays, 9 from Monday the 21st
    ("0 6 * * 1-5", utc(2026, 12, 1, 6), 23, 18_000 // 23),
    ("0 6 * * 1-5", utc(2026, 12, 21, 6), 9, 18_000 // 9),
    ("0 6 * * 1-5", utc(2026, 12, 31, 6), 1, 18_000),
    # February of a common year: 28 days
    ("@daily", utc(2027, 2, 1), 28, 18_000 // 28),
])
def test_a_scheduled_run_shares_what_is_left_with_the_runs_after_it(schedule, run_after, runs, budget):
    left = runs_left(timetable(schedule), "scheduled", run_after, run_after + timedelta(minutes=3))
    assert left.count == runs, left.rule
    plan = plan_budget(QUOTA, USED_BY_OTHERS, left, QuotaReserve(), run_after.strftime("%Y-%m"))
    assert plan.budget == budget
    assert plan.left == QUOTA - USED_BY_OTHERS
    assert f"/ {runs} runs left = {budget} checks" in plan.explain()


@pytest.mark.parametrize(("now", "days"), [(utc(2026, 12, 1, 9), 31), (utc(2026, 12, 21, 9), 11),
                                           (utc(2026, 12, 31, 23, 59), 1)])
@pytest.mark.parametrize("schedule", [None, "@once", "@continuous"])
def test_a_dag_without_a_time_schedule_spreads_the_month_over_its_days(schedule, now, days):
    from airflow.providers.common.compat.sdk import DAG

    dag = DAG("no_schedule", schedule=schedule, start_date=utc(2026, 1, 1),
              **({"max_active_runs": 1} if schedule == "@continuous" else {}))
    left = runs_left(dag.timetable, "manual", None, now)
    assert left.count == days and "no time schedule" in left.rule
    assert left == days_left(now)


def test_an_asset_scheduled_dag_counts_days_too():
    from airflow.providers.common.compat.sdk import DAG, Asset

    dag = DAG("on_assets", schedule=[Asset("x-test://contacts")], start_date=utc(2026, 1, 1))
    assert runs_left(dag.timetable, "asset_triggered", None, utc(2026, 12, 21, 9)).count == 11


@pytest.mark.parametrize("run_type", ["manual", "asset_triggered", "backfill"])
def test_an_unscheduled_run_of_a_scheduled_dag_is_one_extra_run(run_type):
    # 21 December at noon: the @daily runs of the 22nd..31st are still to come, this run is an extra one
    left = runs_left(timetable("@daily"), run_type, utc(2026, 12, 21, 12), utc(2026, 12, 21, 12))
    assert left.count == 11 and "extra run" in left.rule and "10 still scheduled" in left.rule


def test_a_scheduled_run_executing_after_its_month_plans_as_an_extra_run():
    # the run for 30 November started late, on 1 December: December's 31 scheduled runs are still to come
    left = runs_left(timetable("@daily"), "scheduled", utc(2026, 11, 30), utc(2026, 12, 1, 0, 30))
    assert left.count == 1 + 30  # the run at 00:00 on 1 December has passed; 2..31 remain


def test_a_cron_data_interval_timetable_counts_runs_by_when_they_run():
    from airflow.providers.common.compat.sdk import DAG
    from airflow.timetables.interval import CronDataIntervalTimetable

    dag = DAG("intervals", schedule=CronDataIntervalTimetable("@daily", timezone="UTC"), start_date=utc(2026, 1, 1))
    # the run for the interval 20..21 December runs at 00:00 on the 21st: the 21st..31st runs remain
    assert runs_left(dag.timetable, "scheduled", utc(2026, 12, 21), utc(2026, 12, 21, 0, 1)).count == 11


@pytest.mark.parametrize(("schedule", "now", "later"), [
    ("@daily", utc(2026, 12, 21, 12), 10),  # the interval 21..22 December is due at 00:00 on the 22nd
    ("@weekly", utc(2026, 12, 21, 12), 1),  # the week from Sunday 20 December is due on the 27th
    ("@hourly", utc(2026, 12, 31, 22, 30), 1),  # 22:00..23:00 is due at 23:00
])
def test_a_data_interval_schedule_counts_the_run_of_the_interval_under_way(schedule, now, later):
    """A cron data-interval timetable (Airflow 2.11's default for a cron schedule) runs each interval at its
    end: an unscheduled run in the middle of an interval still has that interval's run to come."""
    from airflow.providers.common.compat.sdk import DAG
    from airflow.timetables.interval import CronDataIntervalTimetable

    dag = DAG("intervals", schedule=CronDataIntervalTimetable(schedule, timezone="UTC"), start_date=utc(2026, 1, 1))
    left = runs_left(dag.timetable, "manual", now, now)
    assert left.count == 1 + later and f"{later} still scheduled" in left.rule


@pytest.mark.parametrize(("reserve", "kept"), [(None, 0), (600, 600), ("600", 600), (0.1, 3_000), ("10%", 3_000),
                                               ("2.5%", 750)])
def test_the_reserve_is_kept_back(reserve, kept):
    plan = plan_budget(QUOTA, USED_BY_OTHERS, RunsLeft(11, "test"), QuotaReserve.parse(reserve), "2026-12")
    assert plan.reserve == kept
    assert plan.budget == (QUOTA - USED_BY_OTHERS - kept) // 11


def test_a_spent_month_plans_nothing_and_never_below_zero():
    assert plan_budget(100, 130, RunsLeft(3, "t"), QuotaReserve(), "2026-12").budget == 0
    assert plan_budget(100, 95, RunsLeft(1, "t"), QuotaReserve(checks=10), "2026-12").budget == 0
    assert plan_budget(100, 0, RunsLeft(1, "t"), QuotaReserve(checks=500), "2026-12").budget == 0


@pytest.mark.parametrize("value", ["-1", -3, "lots", True, 1.5, "150%"])
def test_bad_reserves_are_refused_with_what_is_expected(value):
    with pytest.raises(ValueError, match="quota_reserve"):
        QuotaReserve.parse(value)


@pytest.mark.parametrize(("value", "parsed"), [("auto", "auto"), (" AUTO ", "auto"), ("250", 250), (250, 250),
                                               (None, None), ("", None)])
def test_max_checks_accepts_auto_as_a_rendered_string(value, parsed):
    assert parse_max_checks(value) == parsed


@pytest.mark.parametrize("value", ["-1", "half", 2.5j])
def test_a_bad_max_checks_is_refused(value):
    with pytest.raises(ValueError, match="max_checks"):
        parse_max_checks(value)


def test_auto_without_a_monthly_quota_says_what_to_set():
    with pytest.raises(ValueError, match="set monthly_quota in the GREEN-API connection"):
        AutoBudget.check_ready(None)


# --- through the emulator --------------------------------------------------------------------------------


def test_a_short_budget_checks_unchecked_numbers_then_the_stalest_answers(emulator, warehouse):
    harness = Harness(emulator, warehouse, monthly_quota=1000)
    old, older, fresh_ish = ["79001000001", "79001000002"], ["79001000003", "79001000004"], ["79001000005"]
    year = _freshness(timedelta(days=365))  # the runs before keep each other's answers (none is carried over)
    harness.run(older, clock=lambda: utc(2026, 10, 1), freshness=year)
    harness.run(old, clock=lambda: utc(2026, 10, 20), freshness=year)
    harness.run(fresh_ish, clock=lambda: utc(2026, 11, 10), freshness=year)
    never = ["79001000009", "79001000008"]
    before = emulator.counters(ID_INSTANCE).checked_numbers
    # max_age 7 days: every stored answer is stale on 1 December; a budget of 4 takes the 2 never checked,
    # then the 2 stalest (checked 1 October); the rest stay pending
    summary = harness.run(older + old + fresh_ish + never, clock=lambda: utc(2026, 12, 1), max_checks=4,
                          freshness=_freshness(timedelta(days=7)))
    sent = emulator.counters(ID_INSTANCE).checked_numbers - before
    assert sorted(sent.elements()) == sorted(never + older)
    assert summary.pending == 3


def _freshness(age):
    from airflow_provider_greenapi.results import Freshness

    return Freshness(age, age)


def test_each_shard_plans_on_its_own_instances_ledger(warehouse):
    """Two shards on two instances: the same schedule, different months spent, different budgets."""
    from airflow_provider_greenapi.warehouse import UsageLedger

    connection = warehouse.connect_from_threads()
    plans = {}
    for instance, spent in (("1101000001", 3_000), ("1101000002", 27_000)):
        ledger = UsageLedger(connection, warehouse.dialect, instance, QUOTA, clock=lambda: utc(2026, 12, 21, 0, 5))
        ledger.ensure_table()
        ledger.record_reported(spent, None)  # the count of earlier runs this month
        left = runs_left(timetable("@daily"), "scheduled", utc(2026, 12, 21), utc(2026, 12, 21, 0, 5))
        usage = ledger.usage()  # the one owner of the quota and the month's count
        plans[instance] = AutoBudget(left).plan(usage.quota, usage.calls, usage.month)
    connection.close()
    assert plans["1101000001"].budget == (QUOTA - 3_000) // 11
    assert plans["1101000002"].budget == (QUOTA - 27_000) // 11


def test_a_month_of_daily_auto_runs_never_crosses_the_quota_and_spends_it(emulator, tmp_path, request, monkeypatch):
    """31 daily runs in a simulated December (the checker's and the ledger's clock), each planned from the
    ledger and the real @daily timetable; 40 checks were spent by another DAG before the month's first run, and
    20 are kept back (quota_reserve)."""
    from tests.conftest import make_warehouse

    quota, reserve, contacts = 164, 20, [f"7902{i:07d}" for i in range(200)]
    warehouse = make_warehouse("sqlite", tmp_path, request, monkeypatch)
    harness = Harness(emulator, warehouse, monthly_quota=quota, max_in_flight=8)
    harness.run(contacts[:40], clock=lambda: utc(2026, 12, 1, 0, 0, 1))  # another DAG, same instance
    tt, budgets, spent = timetable("@daily"), [], 40
    for day in range(1, 32):
        run_after = utc(2026, 12, day)
        now = run_after + timedelta(minutes=2)
        auto = AutoBudget(runs_left(tt, "scheduled", run_after, now), QuotaReserve.parse(reserve))
        summary = harness.run(contacts, clock=lambda now=now: now, max_checks=auto, history=True)
        assert summary.budget is not None and summary.budget.runs_left == 32 - day
        budgets.append(summary.budget.budget)
        spent += summary.quota_spent
        assert summary.quota_spent <= summary.budget.budget
        assert harness.ledger_calls() == spent <= quota
    kept = reserve
    assert quota - kept - spent <= budgets[-2]  # at most one run's budget left unused (here: none)
    assert spent == quota - kept
    assert min(budgets[:-1]) >= (quota - 40 - kept) // 31 - 1  # spread over the month, not spent early
    connection = warehouse.connect()
    rows = UsageHistory(connection, warehouse.dialect).month_rows("2026-12")
    connection.close()
    per_day = checks_per_day(rows)[ID_INSTANCE]
    assert len(per_day) == 31 and sum(per_day.values()) == spent - 40  # the other DAG's run kept no history
    assert [run.budget for run in reversed(runs(rows))] == budgets
    assert {run.state for run in runs(rows)} == {"done"}


# --- the operator ------------------------------------------------------------------------------------------


def _auto_task(max_checks, **kwargs):
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_greenapi.operators.check_whatsapp import CheckWhatsappOperator

    with DAG("contacts_daily", schedule="@daily", start_date=utc(2026, 1, 1)) as dag:
        task = CheckWhatsappOperator(task_id="check", phone_numbers=[f"7903{i:07d}" for i in range(8)],
                                     destination_conn_id="warehouse", max_checks=max_checks, **kwargs)
    return dag, task


class _Events:
    """Airflow's outlet_events accessor as the operator uses it: one event (with ``extra``) per asset."""

    def __init__(self, store: dict) -> None:
        self.store = store

    def __getitem__(self, asset):
        from types import SimpleNamespace

        # 3.1: an Asset is not hashable; 2.11's Dataset has only a URI
        return self.store.setdefault(getattr(asset, "name", None) or asset.uri, SimpleNamespace(extra={}))


def _context(dag, mocker):
    from types import SimpleNamespace

    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    run = SimpleNamespace(run_id=f"scheduled__{today.isoformat()}", run_type="scheduled", run_after=today)
    return {"ti": mocker.MagicMock(), "dag": dag, "dag_run": run, "expanded": True}


def test_the_operator_plans_auto_from_a_rendered_template(emulator, warehouse, monkeypatch, mocker, caplog):
    from airflow_provider_greenapi.emulator import airflow_connection
    from airflow_provider_greenapi.quota_plan import month_bounds
    from tests.conftest import TOKEN

    now = datetime.now(timezone.utc)
    days = (month_bounds(now)[1] - now.replace(hour=0, minute=0, second=0, microsecond=0)).days
    monkeypatch.setenv("AIRFLOW_CONN_GREENAPI_DEFAULT", airflow_connection(
        emulator.base_url, ID_INSTANCE, TOKEN, retry_backoff=0.01, monthly_quota=3 * days + 20))
    dag, task = _auto_task("{{ 'au' ~ 'to' }}", quota_reserve=20, emit_asset=True)
    context = _context(dag, mocker)
    events: dict = {}
    context["outlet_events"] = _Events(events)
    task.render_template_fields(context)
    assert task.max_checks == "auto"
    with caplog.at_level("DEBUG"):
        summary = task.execute(context)
    (event,) = events.values()
    assert event.extra["budget"] == summary["budget"]  # the asset event carries the plan too
    assert "Budget of this run: max_checks=auto" in caplog.text and TOKEN not in caplog.text
    assert summary["budget"]["budget"] == 3 and summary["budget"]["runs_left"] == days
    assert summary["budget"]["reserve"] == 20 and "scheduled run" in summary["budget"]["rule"]
    assert summary["exists"] + summary["not_exists"] == 3 and summary["pending"] == 5
    assert "max_checks=auto: 3" in summary["stopped_reason"]
    assert TOKEN not in str(summary)


def test_auto_without_a_monthly_quota_fails_the_task_before_spending(greenapi_conn, warehouse, emulator, mocker):
    from airflow_provider_greenapi._compat import AirflowFailException

    dag, task = _auto_task("auto")
    with pytest.raises(AirflowFailException, match="set monthly_quota"):
        task.execute(_context(dag, mocker))
    assert emulator.counters(ID_INSTANCE).count("checkWhatsapp") == 0


def test_a_bad_max_checks_or_reserve_fails_at_parse_time():
    with pytest.raises(ValueError, match="check: max_checks"):
        _auto_task("sometimes")
    with pytest.raises(ValueError, match="check: quota_reserve"):
        _auto_task("auto", quota_reserve="plenty")
