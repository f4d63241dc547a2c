"""What the tests of the results table share (test_store.py, test_queue.py, test_changes.py): numbers as
staging gets them, a run's staging and answers in one call each, and the table's rows. The ``store`` fixture
(conftest.py) gives the table on each of the five engines."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow_provider_greenapi.numbers import NormalizedNumber
from airflow_provider_greenapi.results import CheckOutcome, Freshness, RunContext
from airflow_provider_greenapi.warehouse import ResultsStore, StagedInput

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def valid(digits: str, raw: str | None = None) -> NormalizedNumber:
    return NormalizedNumber(raw=raw or digits, digits=digits, reason=None)


def invalid(raw: str, reason: str = "too short") -> NormalizedNumber:
    return NormalizedNumber(raw=raw, digits=None, reason=reason)


def rows(store: ResultsStore) -> dict[tuple[str, str], dict]:
    cursor = store.connection.cursor()
    cursor.execute("SELECT phone_number, source_key, status, exists_whatsapp, whatsapp_lid, queued_at, checked_at, "
                   "detail FROM whatsapp_checks")
    names = [d[0].lower() for d in cursor.description]
    found = {(r[0], r[1]): dict(zip(names, r, strict=True)) for r in cursor.fetchall()}
    store.connection.commit()
    return found


def run(store: ResultsStore, inputs: list[StagedInput], token: str, now: datetime = NOW,
        freshness: Freshness | None = None):
    counts = store.stage(inputs, RunContext(token, "1101"), freshness or Freshness(), now)
    store.commit()
    return counts


def answer(store: ResultsStore, outcomes: list[CheckOutcome], token: str) -> None:
    store.write_outcomes(outcomes, RunContext(token, "1101"), NOW)
    store.commit()
