"""One place that wires a run: the database its tables live in, the results store, the usage ledger that the
client counts its calls in and the checker reads the month from, the usage history, and a source query that
must read through the results' own connection (SQLite). The operator, tests/harness.py and tests/test_layers.py
all wire their runs here.

Free of Airflow: the database is a :class:`warehouse.Warehouse` (an Airflow connection) or any object with the
same attributes (:class:`RunDatabase`), such as a test's own connections.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from airflow_provider_greenapi.client import GreenApiClient
from airflow_provider_greenapi.numbers import PhoneNumberNormalizer
from airflow_provider_greenapi.pipeline.bulk_check import BulkChecker
from airflow_provider_greenapi.pipeline.options import CheckOptions
from airflow_provider_greenapi.results import RunContext, RunSummary
from airflow_provider_greenapi.sources import InputRow, QueryParameters
from airflow_provider_greenapi.warehouse import (
    DEFAULT_USAGE_TABLE,
    Dialect,
    ResultsStore,
    UsageLedger,
    check_distinct_tables,
    check_table_name,
    in_memory_store,
    source_inputs,
)
from airflow_provider_greenapi.warehouse.engine import require_capabilities
from airflow_provider_greenapi.warehouse.usage_history import DEFAULT_HISTORY_TABLE, UsageHistory

log = logging.getLogger(__name__)

DEFAULT_DESTINATION_TABLE = "whatsapp_checks"


class RunDatabase(Protocol):
    """Where a run's tables live: a :class:`warehouse.Warehouse`, or any object that opens connections alike."""

    conn_id: str  # the Airflow connection id: a source query on the same one reads the results' database
    dialect: Dialect

    def connect(self) -> Any:
        """A DB-API connection for the results store."""

    def connect_from_threads(self) -> Any:
        """A DB-API connection the checker's threads share: the usage ledger's, on which the history is written."""


@dataclass(frozen=True)
class RunTables:
    """The names of a run's three tables, each its own (:meth:`check`)."""

    results: str = DEFAULT_DESTINATION_TABLE
    usage: str = DEFAULT_USAGE_TABLE
    history: str = DEFAULT_HISTORY_TABLE

    def check(self) -> None:
        """ValueError on a name that is not a plain identifier; ConfigurationError when two name one table.
        The messages name the operator's arguments."""
        for name in (self.results, self.usage, self.history):
            check_table_name(name)
        check_distinct_tables({"destination_table": self.results, "usage_table": self.usage,
                               "usage_history_table": self.history})


@dataclass
class WiredRun:
    """A run ready to go: :meth:`run` its inputs, read from :meth:`query_inputs` or given as (value, key) pairs."""

    checker: BulkChecker
    database: RunDatabase | None  # None: results in memory, for the XCom

    @property
    def store(self) -> ResultsStore:
        return self.checker.store

    def run(self, inputs: Iterable[tuple[object, str]]) -> RunSummary:
        return self.checker.run(inputs)

    def query_inputs(self, stack: ExitStack, conn_id: str, sql: str, phone_column: str | None,
                     key_column: str | None, *, changed_only: str | None, prune_missing: bool = False,
                     parameters: QueryParameters = None) -> Iterable[InputRow]:
        """The inputs of ``sql`` on ``conn_id`` (warehouse.source_inputs), in the run's chunks, through the
        results' own connection where the engine must share it and the source is the results' database."""
        destination = None if self.database is None else (self.database.conn_id, self.store)
        return source_inputs(stack, conn_id, sql, phone_column, key_column, self.checker.chunk_size, destination,
                             changed_only=changed_only, prune_missing=prune_missing, parameters=parameters)


def wire_run(
    stack: ExitStack,
    database: RunDatabase | None,
    *,
    instance_id: str,
    monthly_quota: int | None,
    make_client: Callable[[UsageLedger | None], GreenApiClient],
    normalizer: PhoneNumberNormalizer,
    options: CheckOptions,
    context: RunContext | None = None,
    tables: RunTables = RunTables(),
    history: bool = True,
    clock: Callable[[], datetime] | None = None,
) -> WiredRun:
    """Open one run's parts on ``database`` (None: an in-memory results table, no ledger, no history), each closed
    with ``stack``; ConfigurationError first when the database's engine lacks a capability the run relies on
    (warehouse.engine.Capability) or two tables share a name. ``monthly_quota`` is the GREEN-API connection's,
    handed to the usage ledger, its one owner from here on; ``make_client`` builds the client that counts its calls
    in that ledger; ``history`` keeps the usage history table (one run per instance at a time); ``clock`` replaces
    the checker's and the ledger's clock of UTC datetimes."""
    clocked: dict[str, Any] = {} if clock is None else {"clock": clock}
    ledger: UsageLedger | None = None
    usage_history: UsageHistory | None = None
    if database is None:
        if monthly_quota is not None:
            log.warning("monthly_quota is set on the GREEN-API connection but the run has no destination_conn_id to "
                        "keep the usage ledger in: the quota is not enforced.")
        store = in_memory_store(stack, tables.results)
    else:
        require_capabilities(database.dialect.engine, f"connection {database.conn_id!r}")
        tables.check()
        connection = database.connect()
        stack.callback(connection.close)
        store = ResultsStore(connection, database.dialect, tables.results)
        ledger = UsageLedger(database.connect_from_threads(), database.dialect, instance_id, monthly_quota,
                             tables.usage, **clocked)
        stack.callback(ledger.close)
        if history:  # written on the ledger's connection, which books the calls (BulkChecker._recorder)
            usage_history = UsageHistory(ledger.connection, database.dialect, tables.history)
    client = make_client(ledger)
    stack.callback(client.close)
    checker = BulkChecker(client, store, normalizer, ledger=ledger, history=usage_history, options=options,
                          context=context, **clocked)
    return WiredRun(checker, database)
