"""What only some engines have: DuckDB's one-process file lock, the choice of engine from a hook, the error
for an engine that is not supported."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from airflow_provider_greenapi.errors import WarehouseBusyError
from airflow_provider_greenapi.warehouse import Dialect, dialect_of
from tests.conftest import make_warehouse
from tests.harness import Harness, assert_invariants

NUMBERS = [f"7915{i:07d}" for i in range(12)]


@pytest.mark.parametrize(("conn_type", "dialect_name", "expected"), [
    ("sqlite", None, Dialect.SQLITE), ("postgres", None, Dialect.POSTGRES), ("duckdb", None, Dialect.DUCKDB),
    ("mysql", None, Dialect.MYSQL), ("snowflake", None, Dialect.SNOWFLAKE),
    ("my_postgres_flavour", "postgresql", Dialect.POSTGRES),  # a subclassed hook: its SQLAlchemy dialect
    ("my_mariadb_flavour", "mariadb", Dialect.MYSQL),  # each engine declares its names (Engine.sqlalchemy_names)
])
def test_the_engine_comes_from_the_hook(conn_type, dialect_name, expected):
    assert dialect_of(SimpleNamespace(conn_type=conn_type, dialect_name=dialect_name), "w") is expected


@pytest.mark.parametrize("dialect", list(Dialect))
def test_each_engine_declares_the_extra_that_installs_its_airflow_provider(dialect):
    """The hint a missing provider gets (``pip install "airflow-provider-greenapi[<extra>]"``) names an extra
    of the installed package that brings the engine's Airflow provider (SQLite's comes with Airflow)."""
    from importlib.metadata import metadata

    installed = metadata("airflow-provider-greenapi")
    extra = dialect.engine.extra
    if dialect is Dialect.SQLITE:
        assert extra is None
        return
    assert extra in installed.get_all("Provides-Extra")
    assert any(requirement.startswith(f"apache-airflow-providers-{dialect.value}") and f'extra == "{extra}"'
               in requirement for requirement in installed.get_all("Requires-Dist"))


def test_an_unsupported_engine_names_the_supported_ones_and_the_extra():
    with pytest.raises(ValueError, match="mssql") as error:
        dialect_of(SimpleNamespace(conn_type="mssql", dialect_name="mssql"), "w")
    message = str(error.value)
    assert "sqlite, postgres, duckdb, mysql, snowflake" in message
    assert 'pip install "airflow-provider-greenapi[duckdb]"' in message


def _hold_file(path: str, seconds: float) -> subprocess.Popen:
    """Another process that opens the DuckDB file and keeps it for ``seconds``."""
    code = (f"import duckdb, sys, time; c = duckdb.connect({path!r}); print('open', flush=True); "
            f"time.sleep({seconds}); c.close()")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "open"
    return holder


@pytest.mark.duckdb
def test_duckdb_tasks_take_turns_at_the_file(emulator, tmp_path, request, monkeypatch):
    warehouse = make_warehouse("duckdb", tmp_path, request, monkeypatch)
    harness = Harness(emulator, warehouse)
    harness.run(NUMBERS[:1])  # the tables exist; now another process holds the file for a while
    holder = _hold_file(str(tmp_path / "warehouse.duckdb"), 1.5)
    started = time.monotonic()
    summary = harness.run(NUMBERS)
    assert holder.wait(timeout=10) == 0
    assert time.monotonic() - started >= 1.0  # it waited its turn...
    assert summary.pending == 0 and sorted(harness.table()) == sorted(NUMBERS)  # ...and lost nothing
    assert_invariants(harness, summary)


@pytest.mark.duckdb
def test_duckdb_held_too_long_is_refused_with_what_to_do(emulator, tmp_path, request, monkeypatch):
    from airflow_provider_greenapi.warehouse.duckdb import ENGINE

    warehouse = make_warehouse("duckdb", tmp_path, request, monkeypatch)
    harness = Harness(emulator, warehouse)
    harness.run(NUMBERS[:1])
    monkeypatch.setattr(ENGINE, "lock_wait", 0.5)
    holder = _hold_file(str(tmp_path / "warehouse.duckdb"), 5)
    try:
        with pytest.raises(WarehouseBusyError, match=r"one process open a file at a time.*one after another"):
            harness.run(NUMBERS)
    finally:
        holder.kill()
        holder.wait()
    monkeypatch.setattr(ENGINE, "lock_wait", 30)
    summary = harness.run(NUMBERS)  # the next try finishes the job, nothing spent twice
    assert summary.pending == 0
    assert_invariants(harness, summary)


def test_concurrent_shards_on_one_warehouse(any_warehouse, monkeypatch, mocker):
    """Three mapped tasks at once on one results table and ledger, on every engine: each number checked once,
    by its shard's instance; every input stored once; the ledger equals the emulator's counters."""
    from airflow_provider_greenapi.operators.check_whatsapp import CheckWhatsappOperator
    from airflow_provider_greenapi.sharding import greenapi_shards
    from tests.conftest import greenapi_connection
    from tests.test_scale_out import INSTANCES, multi_emulator, numbers

    valid = numbers(24)
    inputs = {f"k{i}": n for i, n in enumerate(valid)}
    with multi_emulator(3) as emu:
        for i, (instance, token) in enumerate(INSTANCES[:3]):
            monkeypatch.setenv(f"AIRFLOW_CONN_GREENAPI_{i + 1}",
                               greenapi_connection(emu, instance, token, requests_per_second=10))
        results: list = []
        errors: list = []

        def shard(kwargs):
            context = {"ti": mocker.MagicMock(), "dag_run": SimpleNamespace(run_id="manual__concurrent")}
            try:
                results.append(CheckWhatsappOperator(task_id="check", phone_numbers=inputs, chunk_size=4,
                                                     destination_conn_id=any_warehouse.conn_id,
                                                     **kwargs).execute(context))
            except Exception as error:  # reported below, with the engine's message
                errors.append(error)

        threads = [threading.Thread(target=shard, args=(kwargs,))
                   for kwargs in greenapi_shards(["greenapi_1", "greenapi_2", "greenapi_3"])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=240)
        counters = {instance: emu.counters(instance) for instance, _ in INSTANCES[:3]}
    assert not errors, errors
    assert sum(s["exists"] + s["not_exists"] for s in results) == len(valid)
    assert sum(len(c.checked_numbers) for c in counters.values()) == len(valid)
    assert all(set(c.checked_numbers.values()) == {1} for c in counters.values())
    rows = any_warehouse.fetch_all("SELECT source_key, status FROM whatsapp_checks")
    assert len(rows) == len(inputs) and {status for _, status in rows} <= {"exists", "not_exists"}
    ledger = dict(any_warehouse.fetch_all("SELECT instance_id, calls FROM greenapi_usage"))
    assert ledger == {i: c.count("checkWhatsapp") for i, c in counters.items()}


class _CountingConnection:
    """A DB-API connection that records the first word of every statement its cursors run."""

    def __init__(self, connection):
        self.connection, self.statements = connection, []

    def __getattr__(self, name):
        return getattr(self.connection, name)

    def cursor(self, *args, **kwargs):
        cursor = self.connection.cursor(*args, **kwargs)
        run = cursor.execute

        def execute(sql, params=None):
            self.statements.append(sql.split()[0].upper())
            return run(sql, params)

        cursor.execute = execute
        return cursor


@pytest.mark.snowflake
def test_snowflake_writes_a_chunk_in_one_statement_per_table(tmp_path, request, monkeypatch):
    """No statement per number on a cloud warehouse: a chunk of 300 staged is one bulk load (its load table
    emptied, one COPY INTO it) and one MERGE; their answers are one MERGE."""
    from datetime import datetime, timezone

    from airflow_provider_greenapi.numbers import NormalizedNumber
    from airflow_provider_greenapi.results import CheckOutcome, CheckStatus, Freshness, RunContext
    from airflow_provider_greenapi.warehouse import ResultsStore, StagedInput

    warehouse = make_warehouse("snowflake", tmp_path, request, monkeypatch)
    store = ResultsStore(warehouse.provider_connect(), Dialect.SNOWFLAKE, "whatsapp_checks")
    store.ensure_table()
    counting = store.connection = _CountingConnection(store.connection)
    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    digits = [f"7916{i:07d}" for i in range(300)]
    store.stage([StagedInput(NormalizedNumber(d, d, None)) for d in digits], RunContext("run"), Freshness(), now)
    store.commit()
    outcomes = [CheckOutcome(d, CheckStatus.EXISTS if i % 3 else CheckStatus.ERROR, now, detail="x")
                for i, d in enumerate(digits)]
    store.write_outcomes(outcomes, RunContext("run"), now)
    store.commit()
    writes = [s for s in counting.statements if s in ("INSERT", "UPDATE", "DELETE", "MERGE", "COPY")]
    assert writes == ["DELETE", "COPY", "MERGE", "MERGE"]
    assert store.count_staged("run") == (300, 0)
    counting.connection.close()


@pytest.mark.snowflake
def test_snowflake_loads_a_schema_qualified_table_through_a_load_table_named_for_both(tmp_path, request, monkeypatch):
    """A results table named ``schema.table`` is loaded through a load table named for both, in the session's
    schema (as the stage): tables of one name in two schemas never share one."""
    from datetime import datetime, timezone

    from airflow_provider_greenapi.numbers import NormalizedNumber
    from airflow_provider_greenapi.results import Freshness, RunContext
    from airflow_provider_greenapi.warehouse import ResultsStore, StagedInput

    warehouse = make_warehouse("snowflake", tmp_path, request, monkeypatch)
    warehouse.execute("CREATE SCHEMA IF NOT EXISTS crm")
    store = ResultsStore(warehouse.provider_connect(), Dialect.SNOWFLAKE, "crm.whatsapp_checks")
    store.ensure_table()
    now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    digits = [f"7916{i:07d}" for i in range(1_500)]
    store.stage([StagedInput(NormalizedNumber(d, d, None), f"k{i}") for i, d in enumerate(digits)],
                RunContext("run"), Freshness(), now)
    store.commit()
    assert store.count_staged("run") == (1_500, 1_500)
    cursor = store.connection.cursor()
    cursor.execute("SELECT COUNT(*) FROM crm_whatsapp_checks_upserts")
    assert cursor.fetchall() == [(1_500,)]  # the last load (emptied before the next one)
    cursor.execute("LIST @greenapi_upserts")
    assert cursor.fetchall() == []  # every file purged once loaded
    cursor.execute("SELECT COUNT(*) FROM crm.whatsapp_checks")
    assert cursor.fetchall() == [(1_500,)]
    store.connection.close()
