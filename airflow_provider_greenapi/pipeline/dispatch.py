"""Dispatch: numbers in, outcomes out. Keeps as many checkWhatsapp calls going as the in-flight window says
(in_flight.py: the pace times the observed answer time, under ``max_in_flight``), watches the instance's state,
and stops sending at the first error that must stop the run. It knows nothing of tables: the caller stores the
outcomes and gives the unsent numbers back to its queue."""

from __future__ import annotations

import contextlib
import logging
import queue
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from airflow_provider_greenapi.client import CHECK_WHATSAPP, GreenApiClient
from airflow_provider_greenapi.errors import (
    GreenApiError,
    GreenApiInvalidNumberError,
    GreenApiTransientError,
    QuotaBudgetExhausted,
)
from airflow_provider_greenapi.in_flight import InFlightWindow
from airflow_provider_greenapi.numbers import mask_phone_number
from airflow_provider_greenapi.pipeline.instance_watch import InstanceWatch
from airflow_provider_greenapi.results import CheckOutcome, CheckStatus

log = logging.getLogger(__name__)


@dataclass
class Dispatched:
    """What happened since the last step: ``outcomes`` of numbers sent, and ``unsent`` numbers taken from the
    queue that were never answered (the run stopped before): still queued, for the next run."""

    outcomes: list[CheckOutcome] = field(default_factory=list)
    unsent: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DispatchEnd:
    """Why a dispatch ended (:meth:`Dispatcher.end`): ``failure``, the error that stopped it, which a person or a
    retry must act on (None: it ended by itself); ``reason``, the run summary's ``stopped_reason`` (None: every
    number it was given got an outcome)."""

    failure: BaseException | None = None
    reason: str | None = None


class _Stop:
    """A check thread's signal that no further number can be checked (quota spent, instance unusable)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class Dispatcher:
    """Sends numbers to checkWhatsapp from a pool of threads. After :meth:`dispatch` has ended, :meth:`end` says
    why, and ``sent`` how many numbers it sent."""

    def __init__(self, client: GreenApiClient, *, clock: Callable[[], datetime], state_poll_interval: float,
                 max_consecutive_errors: int) -> None:
        self.client = client
        self.clock = clock
        self.state_poll_interval = state_poll_interval
        self.max_consecutive_errors = max_consecutive_errors
        self._window = InFlightWindow(client.check_pace, client.settings.max_in_flight)
        self.failure: BaseException | None = None  # the error that stops it
        self.budget_stop: str | None = None  # the usage ledger's own cap stopped it: a quiet stop, not a failure
        self.sent = 0
        self._limit = 0
        self._consecutive_errors = 0
        self._in_flight: dict[Future[CheckOutcome | _Stop], str] = {}
        self._finished: queue.SimpleQueue[Future[CheckOutcome | _Stop]] = queue.SimpleQueue()
        self._seen = self._client_counts()  # the window learns only from what this dispatcher causes

    def dispatch(self, numbers: Iterator[str], limit: int) -> Generator[Dispatched, None, None]:
        """Send up to ``limit`` of ``numbers``; yields what happened about twice a second (often empty, so
        that the caller may commit and log on time) until nothing is in flight. Close the iterator if the
        caller fails: nothing more is sent, and the threads end."""
        self._limit = limit
        watch = InstanceWatch(self.client, self.state_poll_interval)
        watch.start()
        with ThreadPoolExecutor(max_workers=self.client.settings.max_in_flight,
                                thread_name_prefix="greenapi-check") as pool:
            try:
                while self._top_up(pool, numbers, self._observe()):
                    step = Dispatched()
                    for future in self._collect_finished(timeout=0.5):
                        number = self._in_flight.pop(future, None)
                        if number is not None:  # None: cancelled, already given back below
                            self._take(number, future.result(), step)
                    if self.failure is None and watch.failure is not None:
                        self.failure = watch.failure
                    if self.failure is not None:
                        step.unsent.extend(self._cancel_unsent())
                    yield step
            except BaseException:
                for future in self._in_flight:  # a failure of our own side (or of the caller): send nothing more
                    future.cancel()
                raise
            finally:
                watch.stop()

    def end(self, cut: str | None = None) -> DispatchEnd:
        """Why the finished dispatch ended: its failure; else the usage ledger's cap; else ``cut`` (what set its
        ``limit`` below the numbers waiting, None: nothing did) once it sent all of that limit."""
        if self.failure is not None:
            return DispatchEnd(self.failure, str(self.failure))
        if self.budget_stop is not None:
            return DispatchEnd(None, self.budget_stop)
        if cut is not None and self.sent >= self._limit:  # unchanged: only the ledger's cap lowers it
            return DispatchEnd(None, cut)
        return DispatchEnd()

    def describe(self) -> str:
        """The in-flight window's state, for the progress line."""
        return self._window.describe()

    def _check(self, number: str) -> CheckOutcome | _Stop:
        """One number, in a check thread."""
        try:
            answer = self.client.check_whatsapp(number)
        except GreenApiInvalidNumberError as error:
            return CheckOutcome(number, CheckStatus.INVALID, self.clock(),
                                detail=f"GREEN-API rejected the number: {error.detail}")
        except GreenApiError as error:
            if error.stops_run:
                return _Stop(error)
            log.warning("Number %s: %s", mask_phone_number(number), error)
            return CheckOutcome(number, CheckStatus.ERROR, self.clock(), detail=str(error))
        except Exception as error:  # the ledger's cap, or a failure of our own side (its database): stop spending
            return _Stop(error)
        status = CheckStatus.EXISTS if answer.exists else CheckStatus.NOT_EXISTS
        return CheckOutcome(number, status, self.clock(), whatsapp_lid=answer.lid)

    def _observe(self) -> int:
        """Feed the window what the client saw since the last look (answers and their time, retries); the
        number of checks to keep in flight."""
        seen = self._client_counts()
        (answers, seconds, retries), self._seen = self._seen, seen
        return self._window.observe(seen[0] - answers, seen[1] - seconds, seen[2] - retries,
                                   self.client.oldest_check_age())

    def _client_counts(self) -> tuple[int, float, int]:
        stats = self.client.stats
        return stats.answered[CHECK_WHATSAPP], stats.answer_seconds.get(CHECK_WHATSAPP, 0.0), stats.retries

    def _top_up(self, pool: ThreadPoolExecutor, numbers: Iterator[str], window: int) -> bool:
        """Submit numbers until ``window`` are in flight; False once nothing is left to wait for."""
        while self.failure is None and self.sent < self._limit and len(self._in_flight) < window:
            number = next(numbers, None)
            if number is None:
                break
            future = pool.submit(self._check, number)
            self._in_flight[future] = number
            future.add_done_callback(self._finished.put)
            self.sent += 1
        return bool(self._in_flight)

    def _collect_finished(self, timeout: float) -> list[Future[CheckOutcome | _Stop]]:
        """The futures done since the last call, waiting up to ``timeout`` for the first one."""
        try:
            done = [self._finished.get(timeout=timeout)]
        except queue.Empty:
            return []
        with contextlib.suppress(queue.Empty):
            while True:
                done.append(self._finished.get_nowait())
        return done

    def _take(self, number: str, result: CheckOutcome | _Stop, step: Dispatched) -> None:
        if isinstance(result, _Stop):
            step.unsent.append(number)
            if isinstance(result.error, QuotaBudgetExhausted):  # the ledger's own cap: stop sending, quietly
                if self.failure is None and self.budget_stop is None:
                    self.budget_stop = str(result.error)
                    self._limit = self.sent
            elif self.failure is None:
                self.failure = result.error
            return
        step.outcomes.append(result)
        self._consecutive_errors = self._consecutive_errors + 1 if result.status is CheckStatus.ERROR else 0
        if self._consecutive_errors >= self.max_consecutive_errors and self.failure is None:
            self.failure = GreenApiTransientError(
                f"{self._consecutive_errors} numbers in a row failed after retries; GREEN-API or the network "
                "seems down"
            )

    def _cancel_unsent(self) -> list[str]:
        """Cancel the checks not started yet; their numbers."""
        cancelled = []
        for future in list(self._in_flight):
            if future.cancel():
                cancelled.append(self._in_flight.pop(future))
        return cancelled
