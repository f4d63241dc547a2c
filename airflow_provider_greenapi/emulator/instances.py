"""Instances while the emulator runs: state, quota, rate limits, faults and counters, all thread-safe."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from airflow_provider_greenapi.emulator.api_methods import API_METHODS, CHECK_WHATSAPP
from airflow_provider_greenapi.emulator.config import (
    EmulatedInstance,
    InstanceState,
    Plan,
    RateLimits,
)
from airflow_provider_greenapi.emulator.faults import Fault, FaultPlan, FaultSequencer
from airflow_provider_greenapi.emulator.journal import RequestJournal
from airflow_provider_greenapi.emulator.rate_limit import TokenBucket

NO_RESPONSE = 0
"""The status recorded in the counters for a call answered by a dropped or hung-up connection."""


@dataclass(frozen=True)
class Counters:
    """What one instance received, as a snapshot.

    ``calls`` maps each method (as named in the URL, canonical spelling) to ``{status: count}`` for every
    request received, 401s and 404s included (``0`` = dropped or hung up). ``check_requests`` counts the
    authenticated ``POST checkWhatsapp`` requests (the number the state script counts). ``checked_numbers``
    counts the numbers (digits, or the ``@lid`` id) answered with a 200, i.e. the quota spent.
    """

    calls: dict[str, dict[int, int]]
    check_requests: int
    quota_used: int
    monthly_quota: int
    checked_numbers: Counter[str]

    def count(self, method: str, status: int | None = None) -> int:
        """Requests of ``method`` received, or only those answered with ``status``."""
        statuses = self.calls.get(method, {})
        return sum(statuses.values()) if status is None else statuses.get(status, 0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (status codes become string keys)."""
        return {
            "calls": {method: {str(s): n for s, n in sorted(st.items())} for method, st in self.calls.items()},
            "check_requests": self.check_requests,
            "quota_used": self.quota_used,
            "monthly_quota": self.monthly_quota,
            "checked_numbers": dict(self.checked_numbers),
        }


@dataclass(frozen=True)
class Admission:
    """The verdict on an authenticated call before it is answered."""

    state: InstanceState  # the state this call sees
    allowed: bool  # False: over the rate limit, answer 429
    limit: float  # requests per second of this method, 0 when unlimited
    remaining: int  # tokens left after this call
    fault: Fault
    delay_s: float


@dataclass
class _Countdown:
    remaining: int
    state: InstanceState


class LiveInstance:
    """One instance of a running emulator. Every method may be called from any thread."""

    def __init__(self, spec: EmulatedInstance, rate_limits: RateLimits | None) -> None:
        self.id_instance = spec.id_instance
        self.api_token = spec.api_token
        self.plan = Plan.parse(spec.plan)
        self.phone = spec.phone or ""
        self.monthly_quota = spec.total_quota
        self.retry_after_s = rate_limits.retry_after_s if rate_limits else None
        self._lock = threading.Lock()
        self._state = InstanceState.parse(spec.state)
        self._quota_used = 0
        self._buckets: dict[str, TokenBucket] = {}
        if rate_limits is not None:
            for method in API_METHODS:
                if rate_limits.per_second(method) > 0:
                    self._buckets[method] = TokenBucket(rate_limits.per_second(method))
        self._faults = FaultSequencer(spec.faults) if spec.faults else None
        self._countdowns: list[_Countdown] = []
        self._calls: dict[str, Counter[int]] = {}
        self._check_requests = 0
        self._checked_numbers: Counter[str] = Counter()
        self.journal = RequestJournal()
        for change in spec.state_changes:
            self.schedule_state_change(change.after_check_calls, change.state)

    def __repr__(self) -> str:
        return f"LiveInstance(id_instance={self.id_instance!r}, state={self.state.value!r}, api_token='***')"

    # --- the request path ----------------------------------------------------------------------------------

    def admit(self, method: str) -> Admission:
        """Count the call, advance the state script, apply the rate limit, then pick the fault and delay."""
        with self._lock:
            state = self._state
            if method == CHECK_WHATSAPP:
                self._check_requests += 1
                if self._countdowns:
                    self._advance_state_script()
            bucket = self._buckets.get(method)
            allowed = bucket.try_take() if bucket is not None else True
            limit, remaining = (bucket.rate, bucket.remaining) if bucket is not None else (0.0, 0)
            faults = self._faults
        fault, delay_s = Fault.OK, 0.0
        if allowed and faults is not None and faults.applies_to(method):
            fault, delay_s = faults.next_call()
        return Admission(state, allowed, limit, remaining, fault, delay_s)

    def spend_check(self, number: str) -> bool:
        """Spend one check of the monthly quota on ``number`` and count a 200; False when it is used up."""
        with self._lock:
            if self._quota_used >= self.monthly_quota:
                return False
            self._quota_used += 1
            self._checked_numbers[number] += 1
            self._record(CHECK_WHATSAPP, 200)
            return True

    def record(self, method: str, status: int) -> None:
        with self._lock:
            self._record(method, status)

    def _record(self, method: str, status: int) -> None:
        statuses = self._calls.get(method)
        if statuses is None:
            statuses = self._calls[method] = Counter()
        statuses[status] += 1

    def _advance_state_script(self) -> None:
        pending = []
        for countdown in self._countdowns:
            countdown.remaining -= 1
            if countdown.remaining <= 0:
                self._state = countdown.state
            else:
                pending.append(countdown)
        self._countdowns = pending

    # --- control -------------------------------------------------------------------------------------------

    @property
    def state(self) -> InstanceState:
        return self._state

    def set_state(self, state: InstanceState | str) -> None:
        parsed = InstanceState.parse(state)
        with self._lock:
            self._state = parsed

    def schedule_state_change(self, after_check_calls: int, state: InstanceState | str) -> None:
        """Become ``state`` once ``after_check_calls`` more checkWhatsapp calls have arrived (0: now)."""
        parsed = InstanceState.parse(state)
        if after_check_calls < 0:
            raise ValueError("after_check_calls must not be negative")
        with self._lock:
            if after_check_calls == 0:
                self._state = parsed
            else:
                self._countdowns.append(_Countdown(after_check_calls, parsed))

    @property
    def quota_used(self) -> int:
        return self._quota_used

    def set_quota_used(self, used: int) -> None:
        if used < 0:
            raise ValueError("quota used must not be negative")
        with self._lock:
            self._quota_used = used

    def reset_quota(self) -> None:
        self.set_quota_used(0)

    @property
    def faults(self) -> FaultPlan | None:
        return self._faults.plan if self._faults is not None else None

    def inject_faults(self, plan: FaultPlan | None) -> None:
        """Replace the fault plan (``None`` clears it); a script starts again from its first entry."""
        sequencer = FaultSequencer(plan) if plan is not None else None
        with self._lock:
            self._faults = sequencer

    def clear_faults(self) -> None:
        self.inject_faults(None)

    def counters(self) -> Counters:
        with self._lock:
            return Counters(
                calls={method: dict(statuses) for method, statuses in self._calls.items()},
                check_requests=self._check_requests,
                quota_used=self._quota_used,
                monthly_quota=self.monthly_quota,
                checked_numbers=Counter(self._checked_numbers),
            )

    def reset_counters(self) -> None:
        """Forget calls, checked numbers and the journal (the quota is reset separately, by :meth:`reset_quota`)."""
        with self._lock:
            self._calls = {}
            self._check_requests = 0
            self._checked_numbers = Counter()
        self.journal.reset()

    def to_public_dict(self) -> dict[str, Any]:
        """JSON description for the control API: everything but the token."""
        with self._lock:
            return {
                "id_instance": self.id_instance,
                "plan": self.plan.value,
                "state": self._state.value,
                "monthly_quota": self.monthly_quota,
                "quota_used": self._quota_used,
                "phone": self.phone,
                "rate_limits": {method: bucket.rate for method, bucket in self._buckets.items()},
                "faults": self._faults.plan.to_dict() if self._faults is not None else None,
                "pending_state_changes": [
                    {"after_check_calls": c.remaining, "state": c.state.value} for c in self._countdowns
                ],
            }
