"""How many checkWhatsapp requests a run keeps in flight: as many as the pace needs at the observed answer time.

By Little's law a pace of P requests a second with answers taking L seconds needs P x L requests in flight;
with fewer, the run is capped at window / L whatever the pace allows (4 in flight and 1 s answers: 4 checks/s).
The window is that need with headroom for jitter, under two ceilings: the configured cap (``max_in_flight``)
and a back-off ceiling that halves when the server pushes back (429, 5xx, timeouts: any retried failure)
and grows back by about one per window of clean answers (additive increase, multiplicative decrease, as TCP).

The window never sets the pace: the shared RateLimiter spaces every send, so a window larger than the need
only leaves a request waiting for its slot. It is kept tight anyway, because a request waiting for its slot
is still sent after the run decides to stop.

Pure: observations in, window out; no clock, no threads, no I/O.
"""

from __future__ import annotations

import math

INITIAL_LATENCY_S = 1.0
"""The answer time assumed before the first answer: GREEN-API asks WhatsApp, a second is common."""
HEADROOM = 1.5
"""The need is sized for answers 50% slower than the average, plus one request."""
STRAGGLER = 2.0
"""A request older than this many average answer times is a straggler (a hung one, say), not a trend."""
SMOOTHING = 0.1
"""Weight of each answer in the latency estimate (about the last 10 to 20 answers count)."""


class InFlightWindow:
    """The in-flight window of one run. ``observe`` what happened since the last call, read ``size``."""

    def __init__(self, pace: float, cap: int, *, initial_latency: float = INITIAL_LATENCY_S) -> None:
        if not pace > 0:
            raise ValueError(f"pace must be above 0 requests a second, got {pace!r}")
        if cap < 1:
            raise ValueError(f"cap must be at least 1, got {cap!r}")
        self.pace = pace
        self.cap = cap
        self.latency = initial_latency
        self.ceiling = float(cap)  # the back-off ceiling
        self._answers_since_cut = 0
        self._answers_before_next_cut = 0
        self.oldest_wait = 0.0  # the age of the oldest request still waiting for its answer
        self.size = self._size()

    @property
    def need(self) -> int:
        """Requests in flight the pace needs at the estimated answer time, with headroom. The oldest request in
        flight has waited ``oldest_wait``: answers take at least that long, so the need is sized, with the same
        headroom, for the longer of the two (the average lags behind when answers slow down, and at the start
        it is a guess, then only the fast answers are back: sized for the wait alone, the window would only
        just keep up with the pace, and a run at 2 s answers lost its first seconds)."""
        waited = min(self.oldest_wait, STRAGGLER * self.latency)
        wanted = self.pace * max(self.latency, waited) * HEADROOM
        return math.ceil(min(wanted, float(self.cap)) - 1e-6) + 1  # 3.0000000004 is 3

    def observe(self, answers: int = 0, answer_seconds: float = 0.0, pushbacks: int = 0,
                oldest_wait: float = 0.0) -> int:
        """``answers`` answered requests took ``answer_seconds`` in all (server time, not time spent waiting
        for the pacer); ``pushbacks`` requests were refused or failed in a way worth retrying; the oldest
        request still on the wire has waited ``oldest_wait`` seconds. Returns the new window."""
        self.oldest_wait = max(0.0, oldest_wait)
        if answers > 0:
            mean = max(0.0, answer_seconds) / answers
            keep = (1.0 - SMOOTHING) ** answers
            self.latency = mean + (self.latency - mean) * keep
            self._answers_since_cut += answers
        if pushbacks > 0:
            # One cut per window: the requests already in flight at a cut may be refused too.
            if self._answers_since_cut >= self._answers_before_next_cut:
                self.ceiling = max(1.0, self.size / 2)
                self._answers_since_cut = 0
                self._answers_before_next_cut = self._size()
        elif answers > 0 and self.ceiling < self.cap:
            self.ceiling = min(float(self.cap), self.ceiling + answers / self.ceiling)
        self.size = self._size()
        return self.size

    def _size(self) -> int:
        return max(1, min(self.cap, self.need, math.floor(self.ceiling)))

    def describe(self) -> str:
        """For the progress line: ``window 16 (answers in 1.0 s)``."""
        return f"window {self.size} in flight (answers in {self.latency:.2f} s)"
