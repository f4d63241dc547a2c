"""The run's queue: the numbers the results table holds as queued for this run (the crash-safe work queue,
warehouse/store.py), minus those taken and not yet stored, so that no number is sent twice in a run."""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterable

from airflow_provider_greenapi.warehouse import ResultsStore


class RunQueue:
    """Numbers to send, read page by page from the store. A number taken stays out of later pages until it is
    released: its outcome committed, or given back unsent (then it is still queued in the table, and the next
    run takes it first). Used from the run's thread only."""

    def __init__(self, store: ResultsStore, token: str, *, by_priority: bool) -> None:
        self._taken: set[str] = set()
        self._pages = store.queued_numbers(token, by_priority=by_priority)
        self._numbers = self._read()

    def __iter__(self) -> Generator[str, None, None]:
        return self._numbers

    def _read(self) -> Generator[str, None, None]:
        for page in self._pages:
            for number in page:
                if number not in self._taken:
                    self._taken.add(number)
                    yield number

    def release(self, numbers: Iterable[str]) -> None:
        """``numbers`` are no longer on their way: committed, or given back unsent."""
        self._taken.difference_update(numbers)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the database may be the thing that failed
            self._numbers.close()
