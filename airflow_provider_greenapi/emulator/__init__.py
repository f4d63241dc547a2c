"""A faithful local GREEN-API server: checkWhatsapp, getStateInstance and getSettings over real HTTP.

For tests, demos and benchmarks; standard library only. Run it with ``greenapi-emulator`` (or
``python -m airflow_provider_greenapi.emulator``), or in-process::

    with GreenApiEmulator([EmulatedInstance("1101000001", "tok", plan="developer")]) as emu:
        url = f"{emu.base_url}/waInstance1101000001/checkWhatsapp/tok"
        requests.post(url, json={"phoneNumber": 79001234567})

See docs/emulator.md.
"""

from __future__ import annotations

from airflow_provider_greenapi.emulator.config import (
    DEFAULT_API_TOKEN,
    DEFAULT_ID_INSTANCE,
    ChatIdStyle,
    Contract,
    EmulatedInstance,
    EmulatorConfig,
    InstanceState,
    Plan,
    RateLimits,
    StateChange,
)
from airflow_provider_greenapi.emulator.control import CONTROL_PREFIX
from airflow_provider_greenapi.emulator.faults import Fault, FaultPlan
from airflow_provider_greenapi.emulator.http_server import redact_path
from airflow_provider_greenapi.emulator.instances import NO_RESPONSE, Counters, LiveInstance
from airflow_provider_greenapi.emulator.journal import JOURNAL_LIMIT, JournalEntry, RequestJournal
from airflow_provider_greenapi.emulator.numbers_rule import NumbersRule
from airflow_provider_greenapi.emulator.server import GreenApiEmulator, airflow_connection

__all__ = [
    "CONTROL_PREFIX",
    "DEFAULT_API_TOKEN",
    "DEFAULT_ID_INSTANCE",
    "JOURNAL_LIMIT",
    "NO_RESPONSE",
    "ChatIdStyle",
    "Contract",
    "Counters",
    "EmulatedInstance",
    "EmulatorConfig",
    "Fault",
    "FaultPlan",
    "GreenApiEmulator",
    "InstanceState",
    "JournalEntry",
    "LiveInstance",
    "NumbersRule",
    "Plan",
    "RateLimits",
    "RequestJournal",
    "StateChange",
    "airflow_connection",
    "redact_path",
]
