"""The emulator's per-instance, per-method rate limit: a token bucket holding one second of requests."""

from __future__ import annotations

import time


class TokenBucket:
    """Allows ``rate`` requests a second, in bursts of up to ``rate``. The caller holds a lock."""

    __slots__ = ("_capacity", "_tokens", "_updated", "rate")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._capacity = max(rate, 1.0)
        self._tokens = self._capacity
        self._updated = time.monotonic()

    def try_take(self) -> bool:
        """Spend one token if there is one; False means the request is over the limit (HTTP 429)."""
        now = time.monotonic()
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    @property
    def remaining(self) -> int:
        """Whole requests still allowed right now (the ``X-RateLimit-Remaining`` header)."""
        return int(self._tokens)
