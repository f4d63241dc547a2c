"""Fault injection: what can go wrong on the wire, planned by share or by script, reproducibly."""

from __future__ import annotations

import enum
import random
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_greenapi.emulator._keys import reject_unknown_keys
from airflow_provider_greenapi.emulator.api_methods import canonical_method


class Fault(str, enum.Enum):
    """One injected outcome. The value is the name used in scripts, config files and CLI flags."""

    OK = "ok"  # no fault: answer normally
    TIMEOUT_LIMIT = "timeout_limit"  # 400 "check phone number timeout limit exceeded"
    STARTING = "starting"  # 400 "instance in starting process try later"
    RATE_LIMITED = "429"  # 429, empty body, no Retry-After
    RATE_LIMITED_RETRY_AFTER = "429_retry_after"  # 429, empty body, Retry-After: FaultPlan.retry_after_s
    CLIENT_CLOSED = "499"
    SERVER_ERROR = "500"
    ECHO_400 = "400_echo"  # 400 of no known kind whose description echoes the request path (token included)
    ECHO_500 = "500_echo"  # 500 whose description echoes the request path (token included)
    BAD_GATEWAY = "502"  # nginx-style HTML body, as a gateway sends it
    UNAVAILABLE = "503"  # nginx-style HTML body
    DROP = "drop"  # close the connection without any answer
    HANG = "hang"  # send nothing for FaultPlan.hang_s seconds, then close the connection

    @classmethod
    def parse(cls, value: object) -> Fault:
        if isinstance(value, Fault):
            return value
        text = str(value).strip()
        for fault in cls:
            if fault.value == text:
                return fault
        names = ", ".join(fault.value for fault in cls)
        raise ValueError(f"unknown fault {value!r}; choose one of: {names}")


_PLAN_FIELDS = frozenset(
    {
        "methods",
        "error_rate",
        "errors",
        "script",
        "loop_script",
        "latency_ms",
        "jitter_ms",
        "hang_s",
        "retry_after_s",
        "seed",
    }
)


@dataclass(frozen=True)
class FaultPlan:
    """Faults for one instance.

    Each call of a method in ``methods`` takes the next entry of ``script`` (from the start again when
    ``loop_script``); once the script is used up, a share ``error_rate`` of calls gets one of ``errors``
    picked at random. Every such call is first delayed by ``latency_ms`` plus a uniform random
    ``0..jitter_ms``. The random choices come from ``random.Random(seed)``, so a run is reproducible
    (``seed=None`` draws a fresh seed).
    """

    methods: Sequence[str] = ("checkWhatsapp",)
    error_rate: float = 0.0
    errors: Sequence[Fault | str] = (Fault.SERVER_ERROR,)
    script: Sequence[Fault | str] = ()
    loop_script: bool = False
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    hang_s: float = 5.0
    retry_after_s: int = 1
    seed: int | None = 0

    def __post_init__(self) -> None:
        if isinstance(self.methods, str):
            object.__setattr__(self, "methods", (self.methods,))
        object.__setattr__(self, "methods", tuple(canonical_method(m) for m in self.methods))
        object.__setattr__(self, "errors", tuple(Fault.parse(f) for f in self.errors))
        object.__setattr__(self, "script", tuple(Fault.parse(f) for f in self.script))
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error_rate must be between 0 and 1 (got {self.error_rate!r})")
        if self.error_rate > 0 and not self.errors:
            raise ValueError("error_rate > 0 needs at least one fault in errors")
        for name in ("latency_ms", "jitter_ms", "hang_s", "retry_after_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultPlan:
        """Build from JSON (config file, control API); keys are the field names."""
        reject_unknown_keys(data, _PLAN_FIELDS, "fault plan")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return {
            "methods": list(self.methods),
            "error_rate": self.error_rate,
            "errors": [Fault.parse(f).value for f in self.errors],
            "script": [Fault.parse(f).value for f in self.script],
            "loop_script": self.loop_script,
            "latency_ms": self.latency_ms,
            "jitter_ms": self.jitter_ms,
            "hang_s": self.hang_s,
            "retry_after_s": self.retry_after_s,
            "seed": self.seed,
        }


class FaultSequencer:
    """A FaultPlan in motion: hands out the outcome and delay of each call. Thread-safe."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._methods = frozenset(plan.methods)
        self._script: tuple[Fault, ...] = tuple(Fault.parse(f) for f in plan.script)
        self._errors: tuple[Fault, ...] = tuple(Fault.parse(f) for f in plan.errors)
        self._position = 0
        self._random = random.Random(plan.seed)
        self._lock = threading.Lock()

    def applies_to(self, method: str) -> bool:
        return method in self._methods

    def next_call(self) -> tuple[Fault, float]:
        """The fault for the next call and the delay (seconds) before answering it."""
        plan = self.plan
        with self._lock:
            if self._position < len(self._script):
                fault = self._script[self._position]
                self._position += 1
                if plan.loop_script and self._position == len(self._script):
                    self._position = 0
            elif plan.error_rate > 0 and self._random.random() < plan.error_rate:
                fault = self._random.choice(self._errors)
            else:
                fault = Fault.OK
            jitter_ms = self._random.uniform(0.0, plan.jitter_ms) if plan.jitter_ms else 0.0
        return fault, (plan.latency_ms + jitter_ms) / 1000.0
