"""The quota planner behind ``max_checks="auto"``: a run's share of the month's quota. Free of Airflow.

``budget = floor((monthly_quota - used this month - reserve) / runs left this month, this one counted)``

*used* is the usage ledger's count for the instance and UTC month; *runs left* comes from the DAG's timetable
(the operator's side, ``operators/runs_left.py``); the *reserve* (``quota_reserve``) is kept back for ad-hoc
runs with a fixed ``max_checks``. Each run plans again from what the ledger says, so a run that spent less
leaves more to the next ones, and the last run of the month may spend all that is left. Rounding down never
lets the runs of a month together plan more than the quota. docs/quota.md works through examples.
"""

from __future__ import annotations

import calendar
import math
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

AUTO = "auto"
_PERCENT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*%\s*")


@dataclass(frozen=True)
class QuotaReserve:
    """Checks a month kept back from ``auto``: a share of the monthly quota or a number of checks."""

    share: float | None = None
    checks: int | None = None

    @classmethod
    def parse(cls, value: object) -> QuotaReserve:
        """``None``/``0``: no reserve; an int: checks; a float below 1 or ``"10%"``: a share of the quota."""
        if value is None or value == "" or value == 0:
            return cls()
        if isinstance(value, bool):
            raise ValueError(f"quota_reserve must be a number of checks or a share, got {value!r}")
        if isinstance(value, str):
            text = value.strip()
            if match := _PERCENT.fullmatch(text):
                return cls._share(float(match.group(1)) / 100, value)
            if text.isdigit():
                return cls(checks=int(text))
            try:
                number: float = float(text)
            except ValueError:
                raise ValueError(
                    f"quota_reserve {value!r} is neither a number of checks (500), a share (0.1) nor a "
                    "percentage (\"10%\")"
                ) from None
            return cls.parse(number)
        if isinstance(value, int):
            if value < 0:
                raise ValueError(f"quota_reserve must be 0 or more checks, got {value!r}")
            return cls(checks=value)
        if isinstance(value, float):
            if value.is_integer() and value >= 1:
                return cls(checks=int(value))
            return cls._share(value, value)
        raise ValueError(f"quota_reserve must be a number of checks or a share, got {value!r}")

    @classmethod
    def _share(cls, share: float, given: object) -> QuotaReserve:
        if not 0 <= share < 1:
            raise ValueError(f"quota_reserve {given!r} is a share of the quota: it must be at least 0 and below 1")
        return cls(share=share)

    def checks_of(self, monthly_quota: int) -> int:
        """The reserve in checks for a quota (a share is rounded up: the reserve is never smaller than asked)."""
        if self.share is not None:
            return math.ceil(self.share * monthly_quota)
        return self.checks or 0

    def describe(self) -> str:
        if self.share is not None:
            return f"{self.share:.0%} of the quota"
        return f"{self.checks or 0} checks"


@dataclass(frozen=True)
class RunsLeft:
    """How many runs share what is left of the month, this one counted, and the rule that says so."""

    count: int
    rule: str

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"runs left must count this run (1 or more), got {self.count}")


@dataclass(frozen=True)
class BudgetPlan:
    """What ``auto`` allowed this run and how: carried by the run's summary and its asset event."""

    budget: int
    monthly_quota: int
    used: int
    reserve: int
    runs_left: int
    rule: str
    month: str

    @property
    def left(self) -> int:
        return max(0, self.monthly_quota - self.used)

    def explain(self) -> str:
        return (
            f"max_checks=auto: ({self.monthly_quota} quota - {self.used} used in {self.month} - {self.reserve} "
            f"reserve) / {self.runs_left} runs left = {self.budget} checks ({self.rule})"
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(mode=AUTO, left=self.left, explanation=self.explain())
        return data


def plan_budget(monthly_quota: int, used: int, runs_left: RunsLeft, reserve: QuotaReserve, month: str) -> BudgetPlan:
    """This run's share of what is left of the month's quota, after the reserve, rounded down."""
    if monthly_quota < 0:
        raise ValueError(f"monthly_quota must be 0 or more, got {monthly_quota}")
    kept = min(monthly_quota, reserve.checks_of(monthly_quota))
    available = max(0, monthly_quota - max(0, used) - kept)
    return BudgetPlan(available // runs_left.count, monthly_quota, max(0, used), kept, runs_left.count,
                      runs_left.rule, month)


def month_bounds(moment: datetime) -> tuple[datetime, datetime]:
    """The UTC calendar month of ``moment``: (its first instant, the first instant of the next month)."""
    moment = moment.astimezone(timezone.utc)
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = calendar.monthrange(start.year, start.month)[1]
    return start, start + timedelta(days=days)


def month_key(moment: datetime) -> str:
    """``YYYY-MM`` of ``moment`` in UTC, as the usage ledger keys its months."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m")


def days_left(now: datetime) -> RunsLeft:
    """The rule for runs without a time schedule: the month is spread as if the DAG ran once a day."""
    _, end = month_bounds(now)
    today = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    count = (end - today).days
    return RunsLeft(count, f"no time schedule: spread over the {count} days left in the month, today counted")


def is_auto(max_checks: object) -> bool:
    """True for ``max_checks="auto"`` (also as a rendered template, any case, surrounding blanks ignored)."""
    return isinstance(max_checks, str) and max_checks.strip().lower() == AUTO


def parse_max_checks(value: object) -> int | str | None:
    """``max_checks`` as given or rendered: None, a count of checks, or ``"auto"``; ValueError otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if is_auto(value):
        return AUTO
    if isinstance(value, bool):
        raise ValueError(f"max_checks must be a number of checks, \"auto\" or None, got {value!r}")
    try:
        count = int(str(value).strip()) if isinstance(value, str) else int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ValueError(f"max_checks must be a number of checks, \"auto\" or None, got {value!r}") from None
    if count < 0:
        raise ValueError(f"max_checks must be 0 or more, got {value!r}")
    return count


@dataclass(frozen=True)
class AutoBudget:
    """``max_checks="auto"`` for one run: its runs left (from the timetable) and the reserve; planned against
    the month's quota and count in the usage ledger (its :class:`MonthlyUsage`, the one owner of both) once
    the run reads it."""

    runs_left: RunsLeft
    reserve: QuotaReserve = QuotaReserve()

    @staticmethod
    def check_ready(monthly_quota: int | None) -> None:
        """ValueError, before anything is spent, when there is no quota to plan from: ``monthly_quota`` is the
        usage ledger's (None: no ledger, or none set on the GREEN-API connection)."""
        if monthly_quota is None:
            raise ValueError(
                "max_checks=\"auto\" plans the run from the month's quota, but none is known: set monthly_quota "
                "in the GREEN-API connection's extra (the plan's checks a month, e.g. 30000 for Business) and give "
                "the operator a destination_conn_id, whose usage ledger counts what the month has spent. Nothing "
                "was checked."
            )

    def plan(self, monthly_quota: int, used: int, month: str) -> BudgetPlan:
        return plan_budget(monthly_quota, used, self.runs_left, self.reserve, month)


MaxChecks = int | AutoBudget | None
"""A run's cap, parsed once (:func:`parse_max_checks`, then :meth:`AutoBudget` for ``"auto"``): a count of
checks, ``auto``'s rule, or None for no cap."""
