"""What only some engines have: DuckDB's one-process file lock, the choice of engine from a hook, the error
for an engine that is not supported."""

from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from airflow_provider_greenapi.warehouse import Dialect, dialect_of
from airflow_provider_greenapi.warehouse.duckdb import DuckDBFileBusy
from tests.conftest import make_warehouse
from tests.harness import Harness, assert_invariants

NUMBERS = [f"7915{i:07d}" for i in range(12)]


@pytest.mark.parametrize(("conn_type", "dialect_name", "expected"), [
    ("sqlite", None, Dialect.SQLITE), ("postgres", None, Dialect.POSTGRES), ("duckdb", None, Dialect.DUCKDB),
    ("mysql", None, Dialect.MYSQL), ("snowflake", None, Dialect.SNOWFLAKE),
    ("my_postgres_flavour", "postgresql", Dialect.POSTGRES),  # a subclassed hook: its SQLAlchemy dialect
])
def test_the_engine_comes_from_the_hook(conn_type, dialect_name, expected):
    assert dialect_of(SimpleNamespace(conn_type=conn_type, dialect_name=dialect_name), "w") is expected


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
        with pytest.raises(DuckDBFileBusy, match=r"one process open a file at a time.*one after another"):
            harness.run(NUMBERS)
    finally:
        holder.kill()
        holder.wait()
    monkeypatch.setattr(ENGINE, "lock_wait", 30)
    summary = harness.run(NUMBERS)  # the next try finishes the job, nothing spent twice
    assert summary.pending == 0
    assert_invariants(harness, summary)
