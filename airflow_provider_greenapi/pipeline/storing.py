"""Store: the outcomes of a run written to the results table in committed chunks, every ``chunk_size``
outcomes or ``commit_interval`` seconds, whichever comes first, so that a crash loses at most one chunk (whose
numbers stay queued, and the next run checks them again)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from airflow_provider_greenapi.results import CheckOutcome, RunContext
from airflow_provider_greenapi.warehouse import ResultsStore


class OutcomeWriter:
    """Buffers outcomes and commits them; each commit returns the numbers it stored."""

    def __init__(self, store: ResultsStore, context: RunContext, clock: Callable[[], datetime], *,
                 chunk_size: int, commit_interval: float) -> None:
        self.store = store
        self.context = context
        self.clock = clock
        self.chunk_size = chunk_size
        self.commit_interval = commit_interval
        self._buffer: list[CheckOutcome] = []
        self._last_commit = time.monotonic()

    def add(self, outcomes: list[CheckOutcome]) -> list[str]:
        """Buffer ``outcomes``; commit when a chunk is full or the interval has passed. The numbers stored."""
        self._buffer.extend(outcomes)
        due = time.monotonic() - self._last_commit >= self.commit_interval
        return self.commit() if due or len(self._buffer) >= self.chunk_size else []

    def commit(self) -> list[str]:
        """Write and commit what is buffered; the numbers stored."""
        stored = [outcome.phone_number for outcome in self._buffer]
        if self._buffer:
            self.store.write_outcomes(self._buffer, self.context, self.clock())
            self.store.commit()
            self._buffer.clear()
        self._last_commit = time.monotonic()
        return stored
