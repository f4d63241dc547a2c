"""The knobs of one run of the pipeline (the operator turns its arguments into these)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from airflow_provider_greenapi.quota_plan import AutoBudget, MaxChecks, parse_max_checks
from airflow_provider_greenapi.results import Freshness
from airflow_provider_greenapi.sharding import Shard
from airflow_provider_greenapi.warehouse import Engine


@dataclass(frozen=True)
class CheckOptions:
    """Knobs of one run. ``max_checks`` caps the numbers sent to checkWhatsapp in this run: a count, or
    :class:`AutoBudget` (``max_checks="auto"``: planned from the month's quota, quota_plan.py); ``shard`` keeps
    only this task's share of the input (see sharding.py); ``wait_for_other_runs`` bounds how long the run waits
    for another run sending on the same instance (one run sends per instance at a time, through the usage history
    table) before it stops; ``prune_missing`` deletes the result rows of source keys that the source, read
    whole, no longer returns."""

    freshness: Freshness = field(default_factory=Freshness)
    max_checks: MaxChecks = None
    dry_run: bool = False
    chunk_size: int | None = None  # None: the results engine's staging_rows (Engine.staging_rows)
    commit_interval: float = 5.0
    progress_interval: float = 10.0
    state_poll_interval: float = 5.0  # getStateInstance is free of quota and allows 1/s
    max_consecutive_errors: int = 50
    results_limit: int | None = None  # when set, the summary carries up to this many result rows
    shard: Shard | None = None
    wait_for_other_runs: timedelta = timedelta(hours=1)
    prune_missing: bool = False  # delete the results of source keys the (whole) source no longer has

    def __post_init__(self) -> None:
        if self.max_checks is not None and not isinstance(self.max_checks, AutoBudget):
            parse_max_checks(self.max_checks)  # the one rule for a count: ValueError unless 0 or more
            if type(self.max_checks) is not int:  # parsed already: "auto" is an AutoBudget here, a count an int
                raise ValueError(f"CheckOptions.max_checks must be a count (int), an AutoBudget or None, got "
                                 f"{self.max_checks!r}")
        if self.wait_for_other_runs < timedelta(0):
            raise ValueError(f"wait_for_other_runs must be 0 or more, got {self.wait_for_other_runs!r}")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {self.chunk_size!r}")

    def rows_per_chunk(self, engine: Engine) -> int:
        """Rows per chunk of this run on ``engine``: ``chunk_size``, or the engine's own (``Engine.staging_rows``):
        the source's fetch size, a staging statement, a commit of outcomes."""
        return self.chunk_size or engine.staging_rows
