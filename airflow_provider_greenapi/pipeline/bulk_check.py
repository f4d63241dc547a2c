"""One run of the pipeline, from raw inputs to stored results, spending as little quota as the job allows:

``gate on the instance's state -> stage (staging.py) -> budget (budget.py) -> dispatch (dispatch.py) from the
run's queue (run_queue.py) -> store in committed chunks (storing.py) -> summarise``.

:class:`BulkChecker` owns the run's state: it makes the :class:`RunSummary`, counts every outcome into it, and
finishes it in one place. The client counts the calls spent (it is the one place that spends them: the usage
ledger it was built with counts each before it is sent). Free of Airflow: the operator wires it to connections.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timezone

from airflow_provider_greenapi.client import GreenApiClient
from airflow_provider_greenapi.errors import BulkCheckStopped, OtherRunStillSending, retry_can_fix
from airflow_provider_greenapi.numbers import PhoneNumberNormalizer
from airflow_provider_greenapi.pipeline.budget import RunBudget, plan_run_budget
from airflow_provider_greenapi.pipeline.dispatch import DispatchEnd, Dispatcher
from airflow_provider_greenapi.pipeline.options import CheckOptions
from airflow_provider_greenapi.pipeline.run_queue import RunQueue
from airflow_provider_greenapi.pipeline.staging import stage_inputs
from airflow_provider_greenapi.pipeline.storing import OutcomeWriter
from airflow_provider_greenapi.quota_plan import AutoBudget
from airflow_provider_greenapi.results import RunContext, RunSummary
from airflow_provider_greenapi.sources import ChangedRows, start_reading
from airflow_provider_greenapi.warehouse import MonthlyUsage, ResultsStore, UsageLedger
from airflow_provider_greenapi.warehouse.usage_history import (
    RUNNING,
    WAITING,
    UsageHistory,
    UsageRecorder,
    start_recording,
)

log = logging.getLogger(__name__)
_HANDOVER_PAUSE = 1.0  # seconds between the previous run's end and this run's first call: GREEN-API counts a second


def _iso_or_unknown(moment: datetime | None) -> str:
    return "an unknown time" if moment is None else moment.isoformat(timespec="seconds")


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class BulkChecker:
    """Checks numbers on one GREEN-API instance into one results table. ``ledger`` is the usage ledger the
    ``client`` counts its calls in (``GreenApiClient(..., ledger=...)``): this reads it for the month's usage
    and quota. ``history`` keeps the usage history table up to date while the run sends. pipeline/wiring.py
    builds all of them for one run."""

    def __init__(
        self,
        client: GreenApiClient,
        store: ResultsStore,
        normalizer: PhoneNumberNormalizer,
        *,
        ledger: UsageLedger | None = None,
        history: UsageHistory | None = None,
        options: CheckOptions | None = None,
        context: RunContext | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if client.ledger is not ledger:
            raise ValueError("the client must count its calls in the ledger the run reads: build it with "
                             "GreenApiClient(..., ledger=ledger) for the same ledger (pipeline/wiring.py does)")
        self.client = client
        self.ledger = ledger
        self.store = store
        self.normalizer = normalizer
        self.history = history
        self.options = options or CheckOptions()
        # inputs staged, and outcomes written, per chunk: the options', else the engine's own
        self.chunk_size = self.options.rows_per_chunk(store.engine)
        self.context = context or RunContext(token=uuid.uuid4().hex, instance_id=client.id_instance)
        self.clock = clock

    def run(self, inputs: Iterable[tuple[object, str]]) -> RunSummary:
        """Check ``inputs`` (value, source key). Returns the summary; raises :class:`BulkCheckStopped` (with the
        summary) when the run stopped early for a reason a person must act on."""
        started = time.monotonic()
        summary = RunSummary(dry_run=self.options.dry_run, instance_id=self.client.id_instance,
                             destination_table=self.store.destination_table)
        if isinstance(self.options.max_checks, AutoBudget):
            AutoBudget.check_ready(self.ledger.monthly_quota if self.ledger else None)
        self._require_usable_instance(summary, started)
        usage = None
        if self.ledger is not None:
            self.ledger.ensure_table()
            # Read before staging: a dry run keeps its staging uncommitted, and a large uncommitted SQLite
            # write locks out even readers on another connection, the ledger's among them.
            usage = self.ledger.usage()
        # One run at a time per instance, from staging to the last answer (:meth:`_wait_for_turn`): a run staging
        # while another stores answers would write back what it read before them. A dry run writes nothing.
        recorder = None if self.options.dry_run else self._recorder(summary)
        state = "stopped"
        try:
            if recorder is not None and (blocked := self._wait_for_turn(recorder)) is not None:
                end = DispatchEnd(blocked, str(blocked))
            else:
                if recorder is not None and self.ledger is not None:
                    usage = self.ledger.usage()  # after a wait: the other run spent calls
                end = self._stage_and_send(inputs, summary, usage, recorder)
                state = "done" if end.failure is None else "stopped"
        finally:
            if recorder is not None:
                recorder.stop(state)
        summary.stopped_reason = end.reason
        failure = end.failure
        self._finish(summary, started, usage if self.options.dry_run or self.ledger is None else self.ledger.usage())
        if failure is not None:
            raise BulkCheckStopped(
                f"Stopped early: {str(failure).rstrip('.')}. {summary.checked} numbers were checked and stored; "
                f"{summary.pending} are left pending and will be checked first by the next run.",
                summary,
                retry_can_fix=retry_can_fix(failure),
            ) from (failure if isinstance(failure, OtherRunStillSending) else None)
        return summary

    # --- the steps ---------------------------------------------------------------------------------------

    def _stage_and_send(self, inputs: Iterable[tuple[object, str]], summary: RunSummary, usage: MonthlyUsage | None,
                        recorder: UsageRecorder | None) -> DispatchEnd:
        """Stage, plan the budget, and send (not in a dry run, which rolls its staging back); why it ended."""
        # A source that cannot work (a query naming a missing column) fails here, before the results table is
        # created. After the ledger's table: a SQLite source read on the results' connection holds the file
        # against the ledger's own connection until its rows are staged.
        source = inputs
        inputs = start_reading(inputs)
        self.store.ensure_table()
        try:
            beating = contextlib.nullcontext(None)
            if recorder is not None and self.store.engine.shares_source_connection():
                beating = recorder.beating_from(self.store.connection)  # type: ignore[assignment]
            with beating as beat:
                budget = self._stage(inputs, summary, usage, source, beat)
            if recorder is not None and summary.budget is not None:
                recorder.note_budget(summary.budget.budget, summary.budget.explain())
            return DispatchEnd() if self.options.dry_run else self._dispatch(budget, summary)
        finally:
            if self.options.dry_run:
                self.store.rollback()

    def _require_usable_instance(self, summary: RunSummary, started: float) -> None:
        """The health gate: an instance that cannot answer spends nothing."""
        state = self.client.get_state_instance()
        if not state.is_usable:
            self._finish(summary, started, None, staged=False)
            raise BulkCheckStopped(
                f"GREEN-API instance {self.client.id_instance} is {state.value!r}, so no number was checked. "
                f"{state.advice}",
                summary,
                retry_can_fix=state.passes_by_itself,
            )

    def _stage(self, inputs: Iterable[tuple[object, str]], summary: RunSummary, usage: MonthlyUsage | None,
               source: Iterable[tuple[object, str]], beat: Callable[[], None] | None = None) -> RunBudget:
        options = self.options
        pruned_in_database = options.prune_missing and isinstance(source, ChangedRows) and source.sql is not None
        seen_keys: set[str] | None = set() if options.prune_missing and not pruned_in_database else None
        counts = stage_inputs(inputs, normalizer=self.normalizer, store=self.store, context=self.context,
                              freshness=options.freshness, clock=self.clock, chunk_size=self.chunk_size,
                              shard=options.shard, commit=not options.dry_run,
                              commit_interval=options.commit_interval, seen_keys=seen_keys,
                              between_chunks=beat)
        if options.prune_missing:
            summary.pruned = self._prune(source, seen_keys)
        left_in_source = 0
        if isinstance(source, ChangedRows):  # rows its database found stored as they are never left it
            left_in_source = source.unchanged
            log.info("%s found %d of its rows stored as they are in the results table: only the other %d were "
                     "staged.", source.compared_in, left_in_source, counts.inputs + counts.other_shards)
        summary.inputs, summary.unchanged = counts.inputs + left_in_source, counts.unchanged + left_in_source
        summary.duplicates = counts.duplicates
        summary.invalid, summary.other_shards = counts.invalid, counts.other_shards
        limit = options.results_limit
        if limit is not None and (rows := self.store.count_staged_rows(self.context.token)) > limit:
            raise ValueError(
                f"{rows} distinct inputs are more than the {limit} results "
                "an XCom may carry: set destination_conn_id (and destination_table) to store the results "
                "in a warehouse table, or raise max_xcom_results. Nothing was checked."
            )
        named, _ = self.store.count_staged(self.context.token)
        self.store.carry_over(self.context.token, options.freshness, self.clock(),
                              None if options.shard is None else options.shard.owns)
        if not options.dry_run:
            self.store.commit()
        distinct, queued = self.store.count_staged(self.context.token)
        summary.distinct_numbers, summary.fresh, summary.pending = distinct, distinct - queued, queued
        summary.carried_over = distinct - named
        budget = plan_run_budget(queued, usage, options.max_checks)
        summary.budget = budget.plan
        if options.shard is not None:
            log.info("This task is %s: %d inputs belong to other shards (checked by their own tasks).",
                     options.shard, summary.other_shards)
        log.info(
            "Read %d inputs: %d unchanged (stored as they are, not rewritten); the new or changed ones name %d "
            "distinct valid numbers, with %d duplicates and %d invalid; %d more numbers owed a check by the "
            "results table; %d with a fresh stored answer; %d to check%s.",
            summary.inputs, summary.unchanged, named, summary.duplicates, summary.invalid,
            summary.carried_over, summary.fresh, queued,
            "" if not budget.cuts_queue else f", {budget.numbers} of them in this run (budget)",
        )
        if options.dry_run:
            log.info("Dry run: would send %d numbers to checkWhatsapp; nothing was sent or stored.", budget.target)
        return budget

    def _prune(self, source: Iterable[tuple[object, str]], seen_keys: set[str] | None) -> int:
        """Delete the results of the source keys the source, read whole, no longer returns (before the table's
        owed numbers are taken: nothing is checked for them)."""
        pruned = None
        if isinstance(source, ChangedRows) and source.sql is not None:
            pruned = self.store.prune_missing_in_database(source.sql, source.key_column, source.parameters)
        if pruned is None:
            if seen_keys is None:
                raise RuntimeError("prune_missing: the source's keys were not collected")  # a wiring mistake
            pruned = self.store.prune_missing(seen_keys)
        log.info("prune_missing: %d result rows under source keys the source no longer has were %s.", pruned,
                 "found (dry run: kept)" if self.options.dry_run else "deleted")
        return pruned

    def _wait_for_turn(self, recorder: UsageRecorder) -> OtherRunStillSending | None:
        """Wait while another live run stages or sends on the instance (or waits ahead of this one), so that no
        number is checked twice, no answer is written over and the instance's pace holds across runs; the error
        once ``wait_for_other_runs`` runs out. The run then reads the results table as the other run left it."""
        limit = self.options.wait_for_other_runs
        instance = self.client.id_instance
        began = time.monotonic()
        seen: set[str] = set()
        while ahead := recorder.take_turn():
            first = ahead[0]
            if first.run_token not in seen:
                seen.add(first.run_token)
                log.info("Another run (%s/%s, started %s) is %s on instance %s; waiting for it to finish "
                         "(up to %s, wait_for_other_runs) so that no number is checked twice and the instance's "
                         "pace holds.", first.dag_id, first.run_id, _iso_or_unknown(first.started_at),
                         "sending" if first.state == RUNNING else "waiting ahead of this one", instance, limit)
            left = limit.total_seconds() - (time.monotonic() - began)
            if left <= 0:
                return OtherRunStillSending(
                    f"another run ({first.dag_id}/{first.run_id}) was still sending on instance {instance} after "
                    f"this run waited {limit} for it (wait_for_other_runs), so this run sent nothing: two runs "
                    "at once would check numbers twice and together exceed the instance's pace. A retry checks "
                    "them once the instance is free; raise wait_for_other_runs, or schedule the DAGs on this "
                    "instance so that their runs do not overlap")
            time.sleep(min(self.options.state_poll_interval, left))
        if seen:
            time.sleep(_HANDOVER_PAUSE)
            log.info("Instance %s is free after %.0f s of waiting: this run goes on with what the other run left.",
                     instance, time.monotonic() - began)
        return None

    def _dispatch(self, budget: RunBudget, summary: RunSummary) -> DispatchEnd:
        """Dispatch the queue within ``budget``, storing outcomes as they come; why it ended."""
        options = self.options
        dispatcher = Dispatcher(self.client, clock=self.clock, state_poll_interval=options.state_poll_interval,
                                max_consecutive_errors=options.max_consecutive_errors)
        run_queue = RunQueue(self.store, self.context.token, by_priority=budget.cuts_queue)
        writer = OutcomeWriter(self.store, self.context, self.clock, chunk_size=self.chunk_size,
                               commit_interval=options.commit_interval)
        sending = last_progress = time.monotonic()
        try:
            with contextlib.closing(dispatcher.dispatch(iter(run_queue), budget.numbers)) as steps:
                for step in steps:
                    run_queue.release(step.unsent)
                    for outcome in step.outcomes:
                        summary.count_outcome(outcome.status)
                    run_queue.release(writer.add(step.outcomes))
                    if time.monotonic() - last_progress >= options.progress_interval:
                        self._log_progress(summary, budget.target, time.monotonic() - sending, dispatcher)
                        last_progress = time.monotonic()
            run_queue.release(writer.commit())
            _, summary.pending = self.store.count_staged(self.context.token)
        except Exception as error:
            with contextlib.suppress(Exception):  # the lost chunk's locks go before the history's last write
                self.store.rollback()
            raise RuntimeError(
                f"The run stopped on an error of the warehouse: {error}. The {summary.checked} numbers "
                "checked until then are stored, except at most the last uncommitted chunk; rerun the task "
                "to resume (numbers already answered are not checked again)."
            ) from error
        finally:
            run_queue.close()
        elapsed = time.monotonic() - sending
        summary.checks_per_second = round(summary.checked / elapsed, 2) if elapsed > 0 else 0.0
        cut = f"{budget.limit}: {budget.numbers} numbers checked, the rest stay pending for the next run"
        return dispatcher.end(cut if budget.cuts_queue else None)

    def _recorder(self, summary: RunSummary) -> UsageRecorder | None:
        """The run's rows in the usage history, kept up to date while it sends (None: no history)."""
        if self.history is None:
            return None
        history = self.history
        if self.ledger is not None:  # the ledger books the calls: the rows are written on its connection
            history = history.sharing(self.ledger.connection, self.ledger.lock)
        recorder = start_recording(history, self.client.id_instance, self.context, self.clock,
                                   self.options.commit_interval, WAITING)
        if recorder is not None and self.ledger is not None:
            self.ledger.book_on(recorder.book)
        return recorder

    def _log_progress(self, summary: RunSummary, target: int, elapsed: float, dispatcher: Dispatcher) -> None:
        done = summary.checked
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (target - done) / rate if rate > 0 else float("inf")
        log.info(
            "Progress: %d/%d numbers checked (%.0f%%), %.1f/s, ETA %s, %s; exists %d, not_exists %d, "
            "error %d; %d retries, %d rate-limited answers.",
            done, target, 100.0 * done / target if target else 100.0, rate,
            "unknown" if eta == float("inf") else f"{eta:.0f} s", dispatcher.describe(),
            summary.exists, summary.not_exists, summary.error,
            self.client.stats.retries, self.client.stats.rate_limited,
        )

    def _finish(self, summary: RunSummary, started: float, usage: MonthlyUsage | None, *,
                staged: bool = True) -> None:
        """The summary's last figures: calls spent (the client's count), timings, the month's usage, and the
        rows for the XCom once something was ``staged`` and kept."""
        stats = self.client.stats
        summary.numbers_sent = summary.checked
        summary.quota_spent = self.client.calls_spent
        summary.retries = stats.retries
        summary.rate_limited = stats.rate_limited
        summary.duration_seconds = round(time.monotonic() - started, 3)
        if usage is not None:
            summary.note_monthly_usage(usage.calls, usage.quota, usage.left)
        if self.options.results_limit is not None and staged and not self.options.dry_run:
            summary.results = self.store.staged_rows(self.context.token, self.options.results_limit)
        log.info("Done: %s", summary.describe())
