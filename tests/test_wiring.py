"""pipeline/wiring.py: the one place that wires a run (the operator, tests/harness.py and test_layers.py use it)."""

from __future__ import annotations

import logging
import sqlite3
from contextlib import ExitStack
from types import SimpleNamespace

import pytest

from airflow_provider_greenapi.client import GreenApiClient
from airflow_provider_greenapi.errors import ConfigurationError
from airflow_provider_greenapi.numbers import PhoneNumberNormalizer
from airflow_provider_greenapi.pipeline import CheckOptions
from airflow_provider_greenapi.pipeline.wiring import RunTables, wire_run
from airflow_provider_greenapi.settings import ClientSettings
from airflow_provider_greenapi.warehouse import Dialect, Engine, UsageLedger
from airflow_provider_greenapi.warehouse.engine import Capability
from tests.conftest import ID_INSTANCE, TOKEN


class SqliteFile:
    """A run's database of the core's own (a RunDatabase): a SQLite file, no Airflow connection."""

    def __init__(self, path, dialect=Dialect.SQLITE) -> None:
        self.conn_id, self.dialect, self.path, self.opened = "local", dialect, path, 0

    def connect(self):
        self.opened += 1
        return sqlite3.connect(self.path)

    def connect_from_threads(self):
        self.opened += 1
        return sqlite3.connect(self.path, check_same_thread=False)


def _wire(stack, database, built, **kwargs):
    def make_client(ledger: UsageLedger | None) -> GreenApiClient:
        built.append(ledger)
        return GreenApiClient("http://127.0.0.1:9", ID_INSTANCE, TOKEN, ClientSettings(), ledger=ledger)

    return wire_run(stack, database, instance_id=ID_INSTANCE, make_client=make_client,
                    normalizer=PhoneNumberNormalizer(), options=CheckOptions(), **kwargs)


def test_a_run_on_a_database_counts_its_calls_in_the_ledger_it_reads_with_the_connections_quota(tmp_path):
    built = []
    with ExitStack() as stack:
        run = _wire(stack, SqliteFile(tmp_path / "w.db"), built, monthly_quota=500,
                    tables=RunTables("checks", "usage", "runs"))
        ledger = run.checker.ledger
        assert built == [ledger] and run.checker.client.ledger is ledger  # one ledger, passed explicitly
        assert (ledger.monthly_quota, ledger.table_name, run.store.destination_table) == (500, "usage", "checks")
        assert run.checker.history is not None and run.checker.history.connection is ledger.connection
        assert run.checker.history.table_name == "runs"


def test_a_run_without_a_database_keeps_its_results_in_memory_and_says_the_quota_is_not_enforced(caplog):
    built = []
    with ExitStack() as stack, caplog.at_level(logging.WARNING, "airflow_provider_greenapi"):
        run = _wire(stack, None, built, monthly_quota=500)
        assert built == [None] and run.checker.ledger is None and run.checker.history is None
        assert run.store.destination_table is None  # a temporary table: the results go to the XCom
    assert "monthly_quota is set on the GREEN-API connection but the run has no destination_conn_id" in caplog.text


def test_two_tables_of_one_name_are_refused_before_anything_is_opened(tmp_path):
    database = SqliteFile(tmp_path / "w.db")
    with ExitStack() as stack, pytest.raises(ConfigurationError, match="usage_table='Checks' names the same table"):
        _wire(stack, database, [], monthly_quota=None, tables=RunTables("checks", "Checks", "runs"))
    assert database.opened == 0


class ToyEngine(Engine):
    """An engine without transactions whose UPDATEs are asynchronous mutations (ClickHouse, say): it reports
    rowcounts, and nothing else a run relies on."""

    conn_types = ("toy",)
    capabilities = frozenset({Capability.ROWCOUNT})


def test_an_engine_that_lacks_what_a_run_relies_on_is_refused_before_anything_is_opened(tmp_path):
    toy = SimpleNamespace(value="toy", engine=ToyEngine())  # the run reaches the engine through its dialect
    database = SqliteFile(tmp_path / "w.db", dialect=toy)
    with ExitStack() as stack, pytest.raises(
            ConfigurationError, match=r"The results table cannot live in connection 'local': its engine lacks "
                                      r"transactions, cheap row updates, which a run relies on"):
        _wire(stack, database, [], monthly_quota=None)
    assert database.opened == 0


@pytest.mark.parametrize("dialect", list(Dialect))
def test_every_supported_engine_has_what_a_run_relies_on(dialect):
    assert dialect.engine.capabilities == frozenset(Capability)
