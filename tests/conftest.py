"""Shared fixtures: a real GREEN-API emulator, real SQLite and PostgreSQL warehouses, Airflow connections."""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

# A throwaway Airflow home for the whole session, set before anything imports Airflow.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="greenapi-airflow-home-")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from airflow_provider_greenapi.emulator import EmulatedInstance, GreenApiEmulator, airflow_connection
from airflow_provider_greenapi.store import Dialect
from tests.postgres_server import PostgresCluster, PostgresServer, why_unavailable

ID_INSTANCE = "1101000001"
TOKEN = "emulator-secret-token-8f14e45fceea167a"


@pytest.fixture
def emulator() -> Iterator[GreenApiEmulator]:
    with GreenApiEmulator([EmulatedInstance(ID_INSTANCE, TOKEN, plan="business")]) as emu:
        yield emu


def greenapi_connection(emu: GreenApiEmulator, id_instance: str = ID_INSTANCE, token: str = TOKEN,
                        **extra: Any) -> str:
    """An AIRFLOW_CONN_* value (JSON) for an emulated instance, with fast-retry test settings."""
    return airflow_connection(emu.base_url, id_instance, token, **{"retry_backoff": 0.01, "timeout": 5, **extra})


@pytest.fixture
def greenapi_conn(emulator, monkeypatch) -> str:
    monkeypatch.setenv("AIRFLOW_CONN_GREENAPI_DEFAULT", greenapi_connection(emulator))
    return "greenapi_default"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    reason = why_unavailable()
    if reason:
        pytest.skip(f"PostgreSQL tests skipped: {reason}")
    cluster = PostgresCluster()
    try:
        yield cluster.start()
    finally:
        cluster.close()


@dataclass
class Warehouse:
    """A fresh, empty database of one dialect, reachable as an Airflow connection id."""

    dialect: Dialect
    conn_id: str
    connect: Callable[[], Any]
    airflow_uri: str

    def connect_from_threads(self, busy_timeout: float = 30) -> Any:
        """A connection several threads may share, as the provider opens the usage ledger's."""
        if self.dialect is not Dialect.SQLITE:
            return self.connect()
        probe = self.connect()
        path = probe.execute("PRAGMA database_list").fetchone()[2]
        probe.close()
        return sqlite3.connect(path, timeout=busy_timeout, check_same_thread=False)


def _new_pg_database(server: PostgresServer) -> str:
    import psycopg2

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(host=server.host, port=server.port, user=server.user, dbname=server.database)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE DATABASE {name}")
    admin.close()
    return name


def make_warehouse(dialect: str, tmp_path, request, monkeypatch, conn_id: str = "warehouse") -> Warehouse:
    if dialect == "sqlite":
        path = str(tmp_path / f"{conn_id}.db")
        uri = json.dumps({"conn_type": "sqlite", "host": path})
        warehouse = Warehouse(Dialect.SQLITE, conn_id, lambda: sqlite3.connect(path, timeout=30), uri)
    else:
        import psycopg2

        server = request.getfixturevalue("postgres")
        name = _new_pg_database(server)
        warehouse = Warehouse(
            Dialect.POSTGRES, conn_id,
            lambda: psycopg2.connect(host=server.host, port=server.port, user=server.user, dbname=name),
            server.airflow_conn(name),
        )
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", warehouse.airflow_uri)
    return warehouse


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse(request, tmp_path, monkeypatch) -> Warehouse:
    return make_warehouse(request.param, tmp_path, request, monkeypatch)
