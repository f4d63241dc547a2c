"""Gate: how many of the queued numbers this run may send, and which limit says so (the queue itself,
``max_checks``, ``max_checks="auto"``'s plan, or the month's quota left in the usage ledger)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from airflow_provider_greenapi.quota_plan import AutoBudget, BudgetPlan, MaxChecks
from airflow_provider_greenapi.warehouse import MonthlyUsage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunBudget:
    """``numbers``: the most numbers this run may send; ``limit``: what sets that figure; ``queued``: the
    numbers waiting; ``plan``: ``auto``'s plan, None otherwise."""

    numbers: int
    limit: str
    queued: int
    plan: BudgetPlan | None = None

    @property
    def target(self) -> int:
        """The numbers this run means to send."""
        return min(self.numbers, self.queued)

    @property
    def cuts_queue(self) -> bool:
        """Whether some queued numbers must wait for a later run (then the queue goes in priority order)."""
        return self.numbers < self.queued


def plan_run_budget(queued: int, usage: MonthlyUsage | None, max_checks: MaxChecks) -> RunBudget:
    """The budget of a run with ``queued`` numbers waiting; ``usage`` is the ledger's reading (None: no ledger)."""
    budget, limit, plan = queued, "the queue", None
    cap, name = None, f"max_checks={max_checks}"
    if isinstance(max_checks, AutoBudget):
        if usage is None or usage.quota is None:  # AutoBudget.check_ready refuses such a run before it stages
            raise RuntimeError("max_checks=auto reached the budget without the usage ledger's quota")
        plan = max_checks.plan(usage.quota, usage.calls, usage.month)
        log.info("Budget of this run: %s.", plan.explain())
        cap, name = plan.budget, f"max_checks=auto: {plan.budget}"
    elif max_checks is not None:
        cap = max_checks
    if cap is not None and cap < queued:
        budget, limit = cap, f"run budget reached ({name})"
    if usage is not None and usage.left is not None and usage.left < budget:
        log.warning(
            "Only %d checkWhatsapp calls are left this month (%d of %d used): checking %d of %d numbers.",
            usage.left, usage.calls, usage.quota, usage.left, queued,
        )
        budget, limit = usage.left, f"monthly quota reached ({usage.calls} of {usage.quota} calls used)"
    return RunBudget(budget, limit, queued, plan)
