"""The bulk checker: from raw inputs to stored results, spending as little quota as the job allows.

``normalise -> stage (dedupe, freshness) -> health gate -> drain the queue (paced, concurrent, budgeted)
-> commit results chunk by chunk -> summary``. Free of Airflow: the operator wires it to connections.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone

from airflow_provider_greenapi.client import CHECK_WHATSAPP, GreenApiClient
from airflow_provider_greenapi.errors import (
    BulkCheckStopped,
    GreenApiError,
    GreenApiInvalidNumberError,
    GreenApiQuotaExceededError,
    GreenApiTransientError,
    QuotaBudgetExhausted,
    retry_can_fix,
)
from airflow_provider_greenapi.in_flight import InFlightWindow
from airflow_provider_greenapi.models import InstanceState
from airflow_provider_greenapi.numbers import PhoneNumberNormalizer, mask_phone_number
from airflow_provider_greenapi.quota_plan import AutoBudget
from airflow_provider_greenapi.results import CheckOutcome, CheckStatus, RunSummary
from airflow_provider_greenapi.sharding import Shard
from airflow_provider_greenapi.warehouse import (
    Freshness,
    MonthlyUsage,
    ResultsStore,
    RunContext,
    StagedInput,
    UsageLedger,
)
from airflow_provider_greenapi.warehouse.usage_history import UsageHistory, UsageRecorder, start_recording

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckOptions:
    """Knobs of one run. ``max_checks`` caps the numbers sent to checkWhatsapp in this run; ``auto_budget``
    plans that cap from the month's quota instead (quota_plan.py); ``shard`` keeps only this task's share of the
    input (see sharding.py)."""

    freshness: Freshness = field(default_factory=Freshness)
    max_checks: int | None = None
    auto_budget: AutoBudget | None = None
    dry_run: bool = False
    chunk_size: int = 1000
    commit_interval: float = 5.0
    progress_interval: float = 10.0
    state_poll_interval: float = 5.0  # getStateInstance is free of quota and allows 1/s
    max_consecutive_errors: int = 50
    results_limit: int | None = None  # when set, the summary carries up to this many result rows
    shard: Shard | None = None

    def __post_init__(self) -> None:
        if self.max_checks is not None and self.max_checks < 0:
            raise ValueError(f"max_checks must be 0 or more, got {self.max_checks!r}")
        if self.max_checks is not None and self.auto_budget is not None:
            raise ValueError("give max_checks or auto_budget, not both")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {self.chunk_size!r}")


class _Stop:
    """A worker's signal that no further number can be checked (quota spent, instance unusable)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _StateWatch(threading.Thread):
    """Polls getStateInstance in the background during a run: WhatsApp may flag the account
    (``yellowCard``) while checkWhatsapp still answers, and then bulk checks must stop at once."""

    def __init__(self, client: GreenApiClient, interval: float) -> None:
        super().__init__(name="greenapi-state-watch", daemon=True)
        self.client = client
        self.interval = interval
        self.failure: BaseException | None = None
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self.interval):
            self.failure = self._poll()
            if self.failure is not None:
                return

    def stop(self) -> None:
        """Stop polling and wait for the thread to end: it never outlives its run. A poll under way ends
        within the client's timeout (it is never retried)."""
        self._stopped.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(self.client.settings.timeout + 5.0)

    def _poll(self) -> BaseException | None:
        try:
            state = self.client.get_state_instance(max_retries=0)  # the next poll is the retry
        except GreenApiError as error:
            if error.stops_run:
                return error
            log.warning("Could not read the instance state (%s); going on.", error)
            return None
        if state is InstanceState.AUTHORIZED:
            return None
        return GreenApiError(f"the instance turned {state.value!r} during the run. {state.advice}")


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class BulkChecker:
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
        self.client = client
        self.store = store
        self.normalizer = normalizer
        self.ledger = ledger
        self.history = history
        self._by_priority = False  # the queue in priority order (never checked, then stalest): a short budget
        self.options = options or CheckOptions()
        self.context = context or RunContext(token=uuid.uuid4().hex, instance_id=client.id_instance)
        self.clock = clock
        if ledger is not None:
            client.before_send = self._before_send

    # --- the run -----------------------------------------------------------------------------------------

    def run(self, inputs: Iterable[tuple[object, str]]) -> RunSummary:
        started = time.monotonic()
        summary = RunSummary(dry_run=self.options.dry_run, instance_id=self.client.id_instance,
                             destination_table=self.store.table_name)
        if self.options.auto_budget is not None:
            self.options.auto_budget.check_ready(self.ledger.monthly_quota if self.ledger else None)
        self._health_gate()
        self.store.ensure_table()
        usage = None
        if self.ledger is not None:
            self.ledger.ensure_table()
            # Read before staging: a dry run keeps its staging uncommitted, and a large uncommitted SQLite
            # write locks out even readers on another connection, the ledger's among them.
            usage = self.ledger.usage()
        try:
            self._stage(inputs, summary)
            limit = self.options.results_limit
            if limit is not None and (rows := self.store.count_staged_rows(self.context.token)) > limit:
                raise ValueError(
                    f"{rows} distinct inputs are more than the {limit} results "
                    "an XCom may carry: set destination_conn_id (and destination_table) to store the results "
                    "in a warehouse table, or raise max_xcom_results. Nothing was checked."
                )
            distinct, queued = self.store.count_staged(self.context.token)
            summary.distinct_numbers, summary.fresh = distinct, distinct - queued
            budget, budget_limit = self._budget(queued, usage, summary)
            if self.options.shard is not None:
                log.info("This task is %s: %d inputs belong to other shards (checked by their own tasks).",
                         self.options.shard, summary.other_shards)
            log.info(
                "Staged %d inputs: %d distinct valid numbers, %d duplicates, %d invalid, %d with a fresh "
                "stored answer; %d to check%s.",
                summary.inputs, distinct, summary.duplicates, summary.invalid, summary.fresh, queued,
                "" if budget >= queued else f", {budget} of them in this run (budget)",
            )
            if self.options.dry_run:
                summary.pending = queued
                log.info("Dry run: would send %d numbers to checkWhatsapp; nothing was sent or stored.",
                         min(budget, queued))
                return summary
            self._by_priority = budget < queued
            recorder = self._recorder(summary)
            state = "stopped"
            try:
                failure = _Drain(self, budget, budget_limit, queued, summary).run()
                _, summary.pending = self.store.count_staged(self.context.token)
                state = "done" if failure is None else "stopped"
            except Exception as error:
                with contextlib.suppress(Exception):  # the lost chunk's locks go before the history's last write
                    self.store.rollback()
                raise RuntimeError(
                    f"The run stopped on an error of the warehouse: {error}. The {summary.checked} numbers "
                    "checked until then are stored, except at most the last uncommitted chunk; rerun the task "
                    "to resume (numbers already answered are not checked again)."
                ) from error
            finally:
                if recorder is not None:
                    recorder.stop(state)
        finally:
            if self.options.dry_run:
                self.store.rollback()
        self._finish(summary, started)
        if self.options.results_limit is not None:
            summary.results = self.store.staged_rows(self.context.token, self.options.results_limit)
        log.info("Done: %s", summary.describe())
        if failure is not None:
            reason, done = str(failure).rstrip("."), summary.checked
            raise BulkCheckStopped(
                f"Stopped early: {reason}. {done} numbers were checked and stored; {summary.pending} are "
                "left pending and will be checked first by the next run.",
                summary,
                retry_can_fix=retry_can_fix(failure),
            ) from None
        return summary

    def _health_gate(self) -> None:
        state = self.client.get_state_instance()
        if not state.is_usable:
            raise BulkCheckStopped(
                f"GREEN-API instance {self.client.id_instance} is {state.value!r}, so no number was checked. "
                f"{state.advice}",
                RunSummary(instance_id=self.client.id_instance),
                retry_can_fix=state.passes_by_itself,
            )

    def _stage(self, inputs: Iterable[tuple[object, str]], summary: RunSummary) -> None:
        iterator = iter(inputs)
        shard = self.options.shard
        while chunk := list(itertools.islice(iterator, self.options.chunk_size)):
            staged = [StagedInput(self.normalizer(value), key) for value, key in chunk]
            if shard is not None:
                own = [s for s in staged if shard.owns(s.number.digits)]
                summary.other_shards += len(staged) - len(own)
                staged = own
            counts = self.store.stage(staged, self.context, self.options.freshness, self.clock())
            summary.inputs += counts.inputs
            summary.duplicates += counts.duplicates
            summary.invalid += counts.invalid
            if not self.options.dry_run:
                self.store.commit()

    def _recorder(self, summary: RunSummary) -> UsageRecorder | None:
        """The run's rows in the usage history, kept up to date while it sends (None: no history)."""
        if self.history is None:
            return None
        return start_recording(self.history, self.client.id_instance, self.context, self.clock,
                               lambda: self.client.stats.requests[CHECK_WHATSAPP], self.options.commit_interval,
                               summary.budget)

    def _budget(self, queued: int, usage: MonthlyUsage | None, summary: RunSummary) -> tuple[int, str]:
        """How many queued numbers this run may send, and the limit that says so."""
        budget, limit = queued, "the queue"
        max_checks, name = self.options.max_checks, f"max_checks={self.options.max_checks}"
        if self.options.auto_budget is not None:
            assert usage is not None  # check_ready: auto needs the ledger
            plan = self.options.auto_budget.plan(usage.calls, usage.month)
            summary.budget = plan.to_dict()
            log.info("Budget of this run: %s.", plan.explain())
            max_checks, name = plan.budget, f"max_checks=auto: {plan.budget}"
        if max_checks is not None and max_checks < queued:
            budget, limit = max_checks, f"run budget reached ({name})"
        if usage is not None:
            summary.note_monthly_usage(usage.calls, usage.quota, usage.left)
            if usage.left is not None and usage.left < budget:
                log.warning(
                    "Only %d checkWhatsapp calls are left this month (%d of %d used): checking %d of %d numbers.",
                    usage.left, usage.calls, usage.quota, usage.left, queued,
                )
                budget, limit = usage.left, f"monthly quota reached ({usage.calls} of {usage.quota} calls used)"
        return budget, limit

    # --- draining the queue ------------------------------------------------------------------------------

    def _queued(self, uncommitted: set[str]) -> Generator[str, None, None]:
        for page in self.store.queued_numbers(self.context.token, by_priority=self._by_priority):
            for number in page:
                if number not in uncommitted:
                    yield number

    def _check_one(self, number: str) -> CheckOutcome | _Stop:
        try:
            answer = self.client.check_whatsapp(number)
        except GreenApiInvalidNumberError as error:
            return CheckOutcome(number, CheckStatus.INVALID, self.clock(),
                                detail=f"GREEN-API rejected the number: {error.detail}")
        except GreenApiError as error:
            if error.stops_run:
                if isinstance(error, GreenApiQuotaExceededError) and self.ledger is not None:
                    self._record_reported(error)
                return _Stop(error)
            log.warning("Number %s: %s", mask_phone_number(number), error)
            return CheckOutcome(number, CheckStatus.ERROR, self.clock(), detail=str(error))
        except Exception as error:  # a failure of our own side (the ledger's database, say): stop spending
            return _Stop(error)
        status = CheckStatus.EXISTS if answer.exists else CheckStatus.NOT_EXISTS
        return CheckOutcome(number, status, self.clock(), whatsapp_lid=answer.lid)

    def _record_reported(self, error: GreenApiQuotaExceededError) -> None:
        assert self.ledger is not None
        try:
            self.ledger.record_reported(error.used, error.total)
        except Exception as db_error:  # the 466 is what matters; the ledger note is best effort
            log.warning("Could not record the 466 answer in the usage ledger: %s", db_error)

    def _before_send(self, method: str) -> None:
        if method == CHECK_WHATSAPP and self.ledger is not None:
            self.ledger.reserve_call(method, pace=self.client.check_pace)

    def _log_progress(self, summary: RunSummary, target: int, elapsed: float, window: InFlightWindow) -> None:
        done = summary.checked
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (target - done) / rate if rate > 0 else float("inf")
        log.info(
            "Progress: %d/%d numbers checked (%.0f%%), %.1f/s, ETA %s, %s; exists %d, not_exists %d, "
            "error %d; %d retries, %d rate-limited answers.",
            done, target, 100.0 * done / target if target else 100.0, rate,
            "unknown" if eta == float("inf") else f"{eta:.0f} s", window.describe(),
            summary.exists, summary.not_exists, summary.error,
            self.client.stats.retries, self.client.stats.rate_limited,
        )

    def _finish(self, summary: RunSummary, started: float) -> None:
        stats = self.client.stats
        summary.numbers_sent = summary.checked
        summary.quota_spent = stats.requests[CHECK_WHATSAPP]
        summary.retries = stats.retries
        summary.rate_limited = stats.rate_limited
        summary.duration_seconds = round(time.monotonic() - started, 3)
        if self.ledger is not None:
            usage = self.ledger.usage()
            summary.note_monthly_usage(usage.calls, usage.quota, usage.left)


class _Drain:
    """One pass over the queue: keeps as many checks going as the in-flight window says (in_flight.py: the
    pace times the observed answer time, under ``max_in_flight``), stores the answers in chunks, logs
    progress, and stops sending at the first error that must stop the run."""

    def __init__(self, checker: BulkChecker, budget: int, limit: str, queued: int, summary: RunSummary) -> None:
        self.checker, self.options, self.summary = checker, checker.options, summary
        self.budget, self.limit, self.queued, self.target = budget, limit, queued, min(budget, queued)
        self.in_flight: dict[Future[CheckOutcome | _Stop], str] = {}
        self.finished: queue.SimpleQueue[Future[CheckOutcome | _Stop]] = queue.SimpleQueue()
        self.uncommitted: set[str] = set()  # sent or answered, not yet committed: not to be taken again
        self.buffer: list[CheckOutcome] = []
        self.numbers = checker._queued(self.uncommitted)
        self.submitted = 0
        self.failure: BaseException | None = None
        self.consecutive_errors = 0
        client = checker.client
        self.window = InFlightWindow(client.check_pace, client.settings.max_in_flight)
        self.seen = self._client_counts()  # the window learns only from what this pass causes
        self.started = self.last_commit = self.last_progress = time.monotonic()

    def run(self) -> BaseException | None:
        workers = self.checker.client.settings.max_in_flight
        watch = _StateWatch(self.checker.client, self.options.state_poll_interval)
        watch.start()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="greenapi-check") as pool:
            try:
                while self._top_up(pool, limit=self._observe()):
                    for future in self._collect_finished(timeout=0.5):
                        number = self.in_flight.pop(future, None)
                        if number is not None:  # None: cancelled, already given back by _cancel_unsent
                            self._take(number, future.result())
                    if self.failure is None and watch.failure is not None:
                        self.failure = watch.failure
                    if self.failure is not None:
                        self._cancel_unsent()
                    self._tick()
                self._flush()
            except BaseException:
                for future in self.in_flight:  # a failure of our own side: send nothing more
                    future.cancel()
                raise
            finally:
                watch.stop()
                with contextlib.suppress(Exception):  # the database may be the thing that failed
                    self.numbers.close()
        self._conclude()
        return self.failure

    def _observe(self) -> int:
        """Feed the window what the client saw since the last look: answers and their time, retries."""
        seen = self._client_counts()
        (answers, seconds, retries), self.seen = self.seen, seen
        return self.window.observe(seen[0] - answers, seen[1] - seconds, seen[2] - retries,
                                   self.checker.client.oldest_check_age())

    def _client_counts(self) -> tuple[int, float, int]:
        stats = self.checker.client.stats
        return stats.answered[CHECK_WHATSAPP], stats.answer_seconds.get(CHECK_WHATSAPP, 0.0), stats.retries

    def _top_up(self, pool: ThreadPoolExecutor, limit: int) -> bool:
        """Submit queued numbers until ``limit`` are in flight; False once nothing is left to wait for."""
        while self.failure is None and self.submitted < self.budget and len(self.in_flight) < limit:
            number = next(self.numbers, None)
            if number is None:
                break
            future = pool.submit(self.checker._check_one, number)
            self.in_flight[future] = number
            future.add_done_callback(self.finished.put)
            self.uncommitted.add(number)
            self.submitted += 1
        return bool(self.in_flight)

    def _collect_finished(self, timeout: float) -> list[Future[CheckOutcome | _Stop]]:
        """The futures done since the last call, waiting up to ``timeout`` for the first one."""
        try:
            done = [self.finished.get(timeout=timeout)]
        except queue.Empty:
            return []
        with contextlib.suppress(queue.Empty):
            while True:
                done.append(self.finished.get_nowait())
        return done

    def _take(self, number: str, result: CheckOutcome | _Stop) -> None:
        if isinstance(result, _Stop):
            self.uncommitted.discard(number)  # still queued: the next run takes it first
            if self.failure is None and isinstance(result.error, QuotaBudgetExhausted):
                self.summary.stopped_reason = str(result.error)  # the ledger's own cap: stop quietly
                self.submitted = self.budget
            elif self.failure is None:
                self.failure = result.error
            return
        self.buffer.append(result)
        self.summary.count_outcome(result.status)
        self.consecutive_errors = self.consecutive_errors + 1 if result.status is CheckStatus.ERROR else 0
        if self.consecutive_errors >= self.options.max_consecutive_errors and self.failure is None:
            self.failure = GreenApiTransientError(
                f"{self.consecutive_errors} numbers in a row failed after retries; GREEN-API or the network "
                "seems down"
            )

    def _cancel_unsent(self) -> None:
        for future in list(self.in_flight):
            if future.cancel():
                self.uncommitted.discard(self.in_flight.pop(future))

    def _tick(self) -> None:
        now = time.monotonic()
        if len(self.buffer) >= self.options.chunk_size or now - self.last_commit >= self.options.commit_interval:
            self._flush()
        if now - self.last_progress >= self.options.progress_interval:
            self.checker._log_progress(self.summary, self.target, now - self.started, self.window)
            self.last_progress = now

    def _flush(self) -> None:
        if self.buffer:
            self.checker.store.write_outcomes(self.buffer, self.checker.context, self.checker.clock())
            self.checker.store.commit()
            self.uncommitted.difference_update(o.phone_number for o in self.buffer)
            self.buffer.clear()
        self.last_commit = time.monotonic()

    def _conclude(self) -> None:
        elapsed = time.monotonic() - self.started
        self.summary.checks_per_second = round(self.summary.checked / elapsed, 2) if elapsed > 0 else 0.0
        if self.failure is not None:
            self.summary.stopped_reason = str(self.failure)
        elif self.submitted >= self.budget and self.budget < self.queued and self.summary.stopped_reason is None:
            self.summary.stopped_reason = (
                f"{self.limit}: {self.budget} numbers checked, the rest stay pending for the next run"
            )
