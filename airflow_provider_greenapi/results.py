"""What a bulk check produces and by what rules: a status per number, when an answer stays fresh, who wrote
a row, and a run summary."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_provider_greenapi.quota_plan import BudgetPlan


class CheckStatus(str, enum.Enum):
    """The stored status of a number.

    ``error`` is a transient failure that survived the retries: the number's WhatsApp status is unknown
    and it is checked again next run; it is never stored as ``not_exists``.
    """

    EXISTS = "exists"
    NOT_EXISTS = "not_exists"
    INVALID = "invalid"
    ERROR = "error"
    PENDING = "pending"

    @property
    def is_answer(self) -> bool:
        return self in (CheckStatus.EXISTS, CheckStatus.NOT_EXISTS)


@dataclass(frozen=True)
class Freshness:
    """How long a stored answer stays good. None means answers never count as fresh."""

    exists_max_age: timedelta | None = timedelta(days=30)
    not_exists_max_age: timedelta | None = timedelta(days=7)

    def cutoffs(self, now: datetime) -> dict[str, datetime | None]:
        return {
            CheckStatus.EXISTS.value: None if self.exists_max_age is None else now - self.exists_max_age,
            CheckStatus.NOT_EXISTS.value: (
                None if self.not_exists_max_age is None else now - self.not_exists_max_age
            ),
        }


@dataclass(frozen=True)
class RunContext:
    """Who writes the rows: recorded in each row for lineage and debugging."""

    token: str
    instance_id: str | None = None
    dag_id: str | None = None
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """The result of sending one normalised number to checkWhatsapp."""

    phone_number: str
    status: CheckStatus
    checked_at: datetime
    whatsapp_lid: str | None = None  # the account's LID (``…@lid``) when GREEN-API answered one
    detail: str | None = None

    @property
    def exists_whatsapp(self) -> bool | None:
        return {CheckStatus.EXISTS: True, CheckStatus.NOT_EXISTS: False}.get(self.status)


@dataclass
class RunSummary:
    """The task's XCom: small whatever the size of the input. Every input is in exactly one count of
    ``unchanged`` (stored exactly as it is: not read again nor rewritten), ``duplicates`` (its number came
    earlier in the input, under any source key: checked once, stored under each key), ``invalid`` and the
    distinct valid numbers it names. ``distinct_numbers`` are those plus ``carried_over`` (numbers the
    results table still owed a check: left pending or in error by an earlier run, or a stale answer); each
    is in exactly one of ``fresh``, ``exists``, ``not_exists``, ``rejected`` (valid here, refused by
    GREEN-API), ``error`` and ``pending``. A sharded task (see sharding.py) counts only its own share in
    ``inputs``; the inputs it left to the other shards are in ``other_shards``, so the ``inputs`` of all shards
    add up to the whole input."""

    inputs: int = 0
    other_shards: int = 0
    unchanged: int = 0
    duplicates: int = 0
    invalid: int = 0
    distinct_numbers: int = 0
    carried_over: int = 0
    pruned: int = 0  # result rows deleted: their source key left the source (prune_missing)
    fresh: int = 0
    exists: int = 0
    not_exists: int = 0
    rejected: int = 0
    error: int = 0
    pending: int = 0
    numbers_sent: int = 0
    quota_spent: int = 0
    retries: int = 0
    rate_limited: int = 0
    duration_seconds: float = 0.0
    checks_per_second: float = 0.0
    monthly_used: int | None = None
    monthly_quota: int | None = None
    monthly_left: int | None = None
    # max_checks="auto": the planned budget and how it was computed (a dict in to_dict(), the XCom)
    budget: BudgetPlan | None = None
    stopped_reason: str | None = None
    dry_run: bool = False
    instance_id: str | None = None
    destination_table: str | None = None
    # Per-number rows when the run has no results table; never part of to_dict() (see the operator).
    results: list[dict[str, Any]] | None = field(default=None, repr=False)

    def note_monthly_usage(self, used: int, quota: int | None, left: int | None) -> None:
        """The usage ledger's figures for this instance and month."""
        self.monthly_used, self.monthly_quota, self.monthly_left = used, quota, left

    def count_outcome(self, status: CheckStatus) -> None:
        """Count the outcome of one number sent to checkWhatsapp."""
        name = "rejected" if status is CheckStatus.INVALID else status.value
        setattr(self, name, getattr(self, name) + 1)

    @property
    def checked(self) -> int:
        """Numbers sent to checkWhatsapp that got an outcome in this run."""
        return self.exists + self.not_exists + self.rejected + self.error

    def to_dict(self) -> dict[str, Any]:
        """The counts, without per-number rows: small, and free of personal data."""
        data = asdict(self)
        data.pop("results")
        data["budget"] = None if self.budget is None else self.budget.to_dict()
        return data

    def describe(self) -> str:
        """One line for the task log."""
        parts = [
            f"{self.inputs} inputs",
            f"{self.unchanged} unchanged",
            f"{self.distinct_numbers} distinct valid numbers ({self.carried_over} owed from earlier runs)",
            f"{self.duplicates} duplicates",
            f"{self.invalid} invalid",
            f"{self.fresh} fresh (not re-checked)",
            f"{self.exists} on WhatsApp",
            f"{self.not_exists} not on WhatsApp",
            f"{self.rejected} rejected by GREEN-API",
            f"{self.error} errors (retried next run)",
            f"{self.pending} pending (checked first next run)",
        ]
        if self.other_shards:
            parts.insert(1, f"{self.other_shards} more inputs left to other shards")
        quota = f"quota spent: {self.quota_spent} checkWhatsapp calls"
        if self.monthly_left is not None:
            quota += f", {self.monthly_left} of {self.monthly_quota} left this month"
        elif self.monthly_used is not None:
            quota += f", {self.monthly_used} used this month"
        budget = f" Budget: {self.budget.explain()}." if self.budget else ""
        return "; ".join(parts) + f". {quota}.{budget}"
