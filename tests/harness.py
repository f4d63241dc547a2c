"""A run wired as the operator wires it (pipeline/wiring.py), over the emulator and a warehouse; used in-process by the
tests and as a separate process (``python -m tests.harness``) that a test can kill mid-run."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from airflow_provider_greenapi.client import CHECK_WHATSAPP, ClientSettings, GreenApiClient
from airflow_provider_greenapi.emulator import NumbersRule
from airflow_provider_greenapi.numbers import PhoneNumberNormalizer
from airflow_provider_greenapi.pipeline import CheckOptions
from airflow_provider_greenapi.pipeline.wiring import wire_run
from airflow_provider_greenapi.rate_limit import shared_limiter
from airflow_provider_greenapi.warehouse import Dialect, UsageLedger, open_warehouse
from tests.conftest import ID_INSTANCE, TOKEN, Warehouse

_RAW_DRIVER_ENGINES = ("sqlite", "postgres")


class _OwnConnections:
    """A test warehouse as a run's database (pipeline.wiring.RunDatabase): its own connections, the ledger's with
    the harness's busy timeout."""

    def __init__(self, warehouse: Warehouse, busy_timeout: float) -> None:
        self.conn_id, self.dialect = warehouse.conn_id, warehouse.dialect
        self.connect = warehouse.connect
        self.connect_from_threads = functools.partial(warehouse.connect_from_threads, busy_timeout)


class Harness:
    """A checker wired to the emulator and a warehouse, run like the operator runs it."""

    def __init__(self, emulator, warehouse, monthly_quota=None, unpaced_rate=None, **settings):
        """``unpaced_rate``: checks per second above GREEN-API's 10, to load the pipeline harder than the
        client's settings allow (the shared pacer is raised after the client is built, as bench/ does)."""
        self.emulator = emulator
        self.unpaced_rate = unpaced_rate
        self.base_url = emulator.base_url if emulator is not None else None
        self.warehouse = warehouse
        self.monthly_quota = monthly_quota
        self.busy_timeout = 30.0  # seconds a SQLite writer waits for a lock, as the provider's 60 s
        self.settings = {"requests_per_second": 10, "max_in_flight": 4, "retry_backoff": 0.01,
                         "timeout": 2, **settings}

    def run(self, values, keys=None, clock=None, history=False, context=None, **options):
        """One run over ``values`` (with their source ``keys``, default all ``""``); ``clock`` replaces the
        checker's (and the ledger's) clock of UTC datetimes; ``history`` keeps the usage history table too."""
        with ExitStack() as stack:
            # SQLite and PostgreSQL: the test's own connections (busy timeouts); the others as the operator opens
            # them, through the warehouse layer
            database = _OwnConnections(self.warehouse, self.busy_timeout) \
                if self.warehouse.engine in _RAW_DRIVER_ENGINES else open_warehouse(self.warehouse.conn_id)
            run = wire_run(stack, database, instance_id=ID_INSTANCE, monthly_quota=self.monthly_quota,
                           make_client=self._client, normalizer=PhoneNumberNormalizer(),
                           options=CheckOptions(**{"state_poll_interval": 0.2, **options}),
                           context=context, history=history, clock=clock)
            keys = [""] * len(values) if keys is None else keys
            return run.run(list(zip(values, keys, strict=True)))

    def _client(self, ledger: UsageLedger | None) -> GreenApiClient:
        client = GreenApiClient(self.base_url, ID_INSTANCE, TOKEN, ClientSettings(**self.settings), ledger=ledger)
        if self.unpaced_rate is not None:
            shared_limiter(client.api_url, client.id_instance, CHECK_WHATSAPP, self.unpaced_rate)
        return client

    def rows(self):
        """Every row of the results table: (phone_number, status, exists_whatsapp, queued_at, source_key)."""
        return self.warehouse.fetch_all(
            "SELECT phone_number, status, exists_whatsapp, queued_at, source_key FROM whatsapp_checks")

    def table(self):
        """The rows by phone number (the harness stores one source key per number)."""
        return {row[0]: row[:4] for row in self.rows()}

    def ledger_calls(self):
        rows = self.warehouse.fetch_all("SELECT calls FROM greenapi_usage")
        return rows[0][0] if rows else 0


def assert_invariants(harness, summary, ledger_calls=None, ledger_slack=0):
    """The invariants every scenario must keep: every input accounted for exactly once; no row duplicated;
    an answer stored only where GREEN-API gave one (a transient failure is never ``not_exists``), and the
    right one; the usage ledger equals the emulator's count of checkWhatsapp requests (or ``ledger_calls``), or
    exceeds it by at most ``ledger_slack`` (the calls a killed task had counted and not sent)."""
    named = summary.distinct_numbers - summary.carried_over  # the distinct numbers this run's inputs named
    assert summary.inputs == summary.unchanged + summary.duplicates + summary.invalid + named, summary
    assert summary.distinct_numbers == (summary.fresh + summary.exists + summary.not_exists + summary.rejected
                                        + summary.error + summary.pending), summary
    rows = harness.rows()
    keys = [(row[0], row[4]) for row in rows]
    assert len(keys) == len(set(keys)), "a (phone_number, source_key) row is stored twice"
    counters = harness.emulator.counters(ID_INSTANCE)
    expected = counters.count("checkWhatsapp") if ledger_calls is None else ledger_calls
    assert expected <= harness.ledger_calls() <= expected + ledger_slack, (harness.ledger_calls(), expected)
    truth = NumbersRule()
    for number, status, exists, _, _ in rows:
        if status in ("exists", "not_exists"):
            assert exists is not None and bool(exists) == (status == "exists")
        if exists is not None:  # an answer, or an error row keeping the last answer
            assert counters.checked_numbers[number] >= 1, f"{status} stored for a number GREEN-API never answered"
            assert bool(exists) == truth.has_whatsapp(number)


def _warehouse(dialect: str, target: str) -> Warehouse:
    """The test warehouse the killed process writes to, rebuilt from the command line."""
    if dialect == Dialect.SQLITE.value:
        connect: Callable[[], Any] = functools.partial(sqlite3.connect, target, timeout=30)
    elif dialect == Dialect.POSTGRES.value:
        import psycopg

        connect = functools.partial(psycopg.connect, target)
    else:  # the Airflow connection itself: the harness opens it through the warehouse layer
        os.environ["AIRFLOW_CONN_WAREHOUSE"] = target
        connect = _unused
    return Warehouse(dialect, "warehouse", connect, target)


def _unused() -> Any:
    raise AssertionError("the killed process opens this warehouse through the warehouse layer")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="Run one bulk check (a test kills it mid-run).")
    parser.add_argument("base_url")
    parser.add_argument("dialect", choices=[d.value for d in Dialect])
    parser.add_argument("target", help="SQLite path, PostgreSQL DSN, or else the AIRFLOW_CONN value")
    parser.add_argument("numbers", help="comma-separated numbers")
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--history", action="store_true", help="keep the usage history table too")
    parser.add_argument("--requests-per-second", type=float, default=10)
    parser.add_argument("--retry-backoff", type=float, default=0.01)
    parser.add_argument("--state-poll-interval", type=float, default=0.2)
    parser.add_argument("--json", action="store_true", help="log at INFO and print the summary as JSON last")
    args = parser.parse_args(argv)
    if args.json:  # the package's own handler: Airflow, imported by the warehouse layer, reconfigures the root's
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
        package_log = logging.getLogger("airflow_provider_greenapi")
        package_log.addHandler(handler)
        package_log.setLevel(logging.INFO)
        package_log.propagate = False
    harness = Harness(None, _warehouse(args.dialect, args.target), max_in_flight=2,
                      requests_per_second=args.requests_per_second, retry_backoff=args.retry_backoff)
    harness.base_url = args.base_url
    summary = harness.run(args.numbers.split(","), chunk_size=args.chunk_size, commit_interval=0.5,
                          history=args.history, state_poll_interval=args.state_poll_interval)
    print(json.dumps(summary.to_dict()) if args.json else summary.describe(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
