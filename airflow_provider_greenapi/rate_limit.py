"""A thread-safe pacer that spaces calls evenly under a requests-per-second ceiling.

Each call reserves the next free time slot (``1 / rate`` after the previous one) and sleeps until it, so
calls never burst and the per-instance limit holds whatever the number of threads. One pacer is shared by
all clients of the same instance and method in a process (:func:`shared_limiter`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self,
        requests_per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests_per_second <= 0:
            raise ValueError(f"requests_per_second must be positive, got {requests_per_second!r}")
        self._interval = 1.0 / requests_per_second
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = 0.0

    @property
    def requests_per_second(self) -> float:
        return 1.0 / self._interval

    def set_rate(self, requests_per_second: float) -> None:
        if requests_per_second <= 0:
            raise ValueError(f"requests_per_second must be positive, got {requests_per_second!r}")
        with self._lock:
            self._interval = 1.0 / requests_per_second

    def acquire(self) -> float:
        """Wait for the next slot; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
        return wait

    def pause(self, seconds: float) -> None:
        """Hold every caller back for ``seconds`` (after a 429 with Retry-After, say)."""
        with self._lock:
            self._next_slot = max(self._next_slot, self._clock() + seconds)


_shared: dict[tuple[str, str, str], RateLimiter] = {}
_shared_lock = threading.Lock()


def shared_limiter(api_url: str, id_instance: str, method: str, requests_per_second: float) -> RateLimiter:
    """The process-wide pacer for one instance and method; a later call may lower or raise its rate."""
    key = (api_url.rstrip("/"), id_instance, method)
    with _shared_lock:
        limiter = _shared.get(key)
        if limiter is None:
            limiter = _shared[key] = RateLimiter(requests_per_second)
        elif limiter.requests_per_second != requests_per_second:
            limiter.set_rate(requests_per_second)
        return limiter
