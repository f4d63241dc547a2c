"""Assertions on what the emulator saw on the wire (its request journal), and on the threads left behind."""

from __future__ import annotations

import threading
from collections.abc import Sequence

PACE_TOLERANCE_S = 1.0
"""How late a request may reach the emulator after its pacer slot (thread wake-up, send, accept) before the
pace check counts it against the client: generous, so a loaded machine never fails a correct client."""


def pace_excess(arrivals: Sequence[float], rate: float, tolerance_s: float = PACE_TOLERANCE_S) -> float:
    """How far the busiest window of ``arrivals`` goes over ``rate``: the largest ``count - allowed`` over
    every window ``[a_i, a_j]``, with ``allowed = rate * (a_j - a_i) + 1 + rate * tolerance_s``. Positive:
    requests left faster than ``rate``.

    A pacer that keeps ``1 / rate`` between slots, each request reaching the server within ``tolerance_s``
    of its slot, always scores <= 0, however slow the machine (lateness only spreads requests apart or
    shifts them by less than the tolerance). A client at twice the rate over more than
    ``2 + 2 * rate * tolerance_s`` requests always scores > 0.
    """
    times = sorted(arrivals)
    worst = float("-inf")
    for i, first in enumerate(times):
        for j in range(i, len(times)):
            allowed = rate * (times[j] - first) + 1 + rate * tolerance_s + 1e-9  # float rounding
            worst = max(worst, (j - i + 1) - allowed)
    return worst


def assert_paced(arrivals: Sequence[float], rate: float, tolerance_s: float = PACE_TOLERANCE_S) -> None:
    excess = pace_excess(arrivals, rate, tolerance_s)
    assert excess <= 0, f"{len(arrivals)} requests left faster than {rate}/s: {excess:.1f} over in one window"


def provider_threads() -> list[threading.Thread]:
    """Live threads the provider started (its names start with ``greenapi``; the emulator's are not its)."""
    return [
        t for t in threading.enumerate()
        if t.name.startswith("greenapi") and not t.name.startswith("greenapi-emulator")
    ]
