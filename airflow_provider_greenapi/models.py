"""Typed values exchanged with GREEN-API: instance states and check answers."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class InstanceState(str, enum.Enum):
    """``stateInstance`` of getStateInstance, with what a data engineer should do about each."""

    AUTHORIZED = "authorized"
    NOT_AUTHORIZED = "notAuthorized"
    BLOCKED = "blocked"
    SLEEP_MODE = "sleepMode"
    STARTING = "starting"
    YELLOW_CARD = "yellowCard"
    CREATING = "creating"  # the API answers JSON null while the instance is being created
    UNKNOWN = "unknown"  # a state this provider does not know yet

    @classmethod
    def from_api(cls, value: object) -> InstanceState:
        if value is None:
            return cls.CREATING
        for state in cls:
            if state.value == value:
                return state
        return cls.UNKNOWN

    @property
    def is_usable(self) -> bool:
        return self is InstanceState.AUTHORIZED

    @property
    def passes_by_itself(self) -> bool:
        """States that end without anyone acting (a start, a creation): a later run may find the instance
        ready. The others need a person (scan the QR code, turn the phone on) or must not be pushed on."""
        return self in (InstanceState.STARTING, InstanceState.CREATING)

    @property
    def advice(self) -> str:
        return _ADVICE[self]


_ADVICE: dict[InstanceState, str] = {
    InstanceState.AUTHORIZED: "The instance is authorized and ready.",
    InstanceState.NOT_AUTHORIZED: (
        "The instance is not authorized: open the GREEN-API console and scan the QR code with the WhatsApp "
        "phone, then run again."
    ),
    InstanceState.BLOCKED: (
        "The WhatsApp account of this instance is blocked (banned). Stop bulk checks on it; contact "
        "WhatsApp support or use another number."
    ),
    InstanceState.SLEEP_MODE: (
        "The instance is in sleep mode: the phone is off or offline. Turn it on and connect it to the "
        "internet, then run again."
    ),
    InstanceState.STARTING: "The instance is starting (this can take up to 5 minutes): run again shortly.",
    InstanceState.YELLOW_CARD: (
        "WhatsApp suspects this account of spam (yellowCard): stop bulk checks now, reduce activity for "
        "a day or more, and lower requests_per_second before running again."
    ),
    InstanceState.CREATING: "The instance is still being created: wait a few minutes and run again.",
    InstanceState.UNKNOWN: "The instance reports a state this provider does not know: check it in the console.",
}


@dataclass(frozen=True, slots=True)
class WhatsappCheck:
    """checkWhatsapp's answer for one number: whether it has WhatsApp, and the chatId when returned."""

    phone_number: str
    exists: bool
    chat_id: str | None = None

    @property
    def lid(self) -> str | None:
        """The account's LID (``<digits>@lid``), which GREEN-API's current contract answers in ``chatId``;
        None when the answer carried no chatId or another kind of id (``…@c.us`` is just the number)."""
        return self.chat_id if self.chat_id is not None and self.chat_id.endswith("@lid") else None
