"""The request journal: what an instance saw, request by request, for tests to assert on.

Each finished request to an instance becomes a :class:`JournalEntry` (method, the number a checkWhatsapp
body asked about, the status answered, monotonic arrival and answer times). The journal also keeps the
high-water mark of checkWhatsapp requests in flight at once. Memory is bounded: the newest
:data:`JOURNAL_LIMIT` entries are kept, older ones are dropped (and counted in :attr:`RequestJournal.dropped`).
"""

from __future__ import annotations

import json
import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from airflow_provider_greenapi.emulator.api_methods import CHECK_WHATSAPP

_BODY_KEPT = 1000
JOURNAL_LIMIT = 100_000
"""Entries kept per instance (about 20 MB at most); older entries are dropped first."""


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One request an instance received and how it was answered.

    ``number`` is, for checkWhatsapp, the ``phoneNumber`` of the JSON body as text, or its ``chatId`` without
    an ``@c.us`` suffix (an ``@lid`` id stays whole); None for other methods and unreadable bodies.
    ``status`` is the HTTP status answered (``0``: the connection was dropped or hung up).
    ``arrived`` / ``answered`` are ``time.monotonic()`` readings: request line read, and the moment just
    before the answer is written (or the connection closed), so an entry is there once its client has the answer.
    ``body`` is the checkWhatsapp request body as sent (decoded as UTF-8, at most 1000 characters); empty
    for other methods. ``fields`` are the keys of that JSON body (``("chatId",)``), empty when unreadable.
    """

    method: str
    number: str | None
    status: int
    arrived: float
    answered: float
    body: str = ""

    @property
    def fields(self) -> tuple[str, ...]:
        try:
            payload = json.loads(self.body)
        except ValueError:
            return ()
        return tuple(payload) if isinstance(payload, dict) else ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "number": self.number,
            "status": self.status,
            "arrived": self.arrived,
            "answered": self.answered,
            "body": self.body,
        }


def checked_number(body: bytes) -> str | None:
    """The number a checkWhatsapp body asks about (see :attr:`JournalEntry.number`), or None."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    value = payload.get("phoneNumber", payload.get("chatId"))
    if value is None or isinstance(value, bool | list | dict):
        return None
    return str(value).removesuffix("@c.us")


class RequestJournal:
    """The journal of one instance. Thread-safe."""

    def __init__(self, limit: int = JOURNAL_LIMIT) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._entries: deque[JournalEntry] = deque(maxlen=limit)
        self._seen = 0
        self._checks_in_flight = 0
        self._max_checks_in_flight = 0

    def request_started(self, method: str) -> None:
        """A request of ``method`` arrived; checkWhatsapp requests count as in flight until it is answered."""
        if method == CHECK_WHATSAPP:
            with self._lock:
                self._checks_in_flight += 1
                if self._checks_in_flight > self._max_checks_in_flight:
                    self._max_checks_in_flight = self._checks_in_flight

    def request_finished(self, method: str, body: bytes, status: int, arrived: float, answered: float) -> None:
        """Record the answered request (pairs with one :meth:`request_started`)."""
        number = checked_number(body) if method == CHECK_WHATSAPP else None
        text = body[:_BODY_KEPT].decode("utf-8", "replace") if method == CHECK_WHATSAPP else ""
        entry = JournalEntry(method, number, status, arrived, answered, text)
        with self._lock:
            if method == CHECK_WHATSAPP:
                self._checks_in_flight -= 1
            self._entries.append(entry)
            self._seen += 1

    def entries(self, method: str | None = None) -> list[JournalEntry]:
        """The kept entries (of ``method`` only, if given), in order of arrival."""
        with self._lock:
            entries = list(self._entries)
        if method is not None:
            entries = [entry for entry in entries if entry.method == method]
        entries.sort(key=lambda entry: entry.arrived)
        return entries

    def requested_numbers(self) -> Counter[str]:
        """checkWhatsapp requests per number, whatever their answer."""
        return Counter(e.number for e in self.entries(CHECK_WHATSAPP) if e.number is not None)

    @property
    def max_in_flight(self) -> int:
        """The most checkWhatsapp requests in flight at once since the last :meth:`reset`."""
        return self._max_checks_in_flight

    @property
    def dropped(self) -> int:
        """Entries dropped because the journal was full."""
        with self._lock:
            return self._seen - len(self._entries)

    def reset(self) -> None:
        """Forget the entries and the high-water mark (requests in flight now still count)."""
        with self._lock:
            self._entries.clear()
            self._seen = 0
            self._max_checks_in_flight = self._checks_in_flight

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the control API."""
        entries = self.entries()
        return {
            "entries": [entry.to_dict() for entry in entries],
            "max_in_flight": self.max_in_flight,
            "dropped": self.dropped,
            "limit": self.limit,
        }
