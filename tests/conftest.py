"""Shared fixtures: a real GREEN-API emulator, real warehouses (SQLite and DuckDB files, PostgreSQL and MariaDB
servers and fakesnow's Snowflake emulator, started by the tests), Airflow connections.

``warehouse`` runs a test on SQLite and PostgreSQL (the engines every test supports today); ``any_warehouse``
runs it on all five engines, each marked (``postgres``, ``duckdb``, ``mysql``, ``snowflake``) and skipped with the
reason when its server or provider is missing here."""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

# A throwaway Airflow home for the whole session, set before anything imports Airflow.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="greenapi-airflow-home-")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from airflow_provider_greenapi.emulator import EmulatedInstance, GreenApiEmulator, airflow_connection
from airflow_provider_greenapi.warehouse import Dialect
from tests import mariadb_server, snowflake_server
from tests.engine_support import ENGINES, PLACEHOLDERS, installed
from tests.mariadb_server import MariaDBCluster, MariaDBServer
from tests.postgres_server import PostgresCluster, PostgresServer, why_unavailable
from tests.snowflake_server import FakesnowServer

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


@pytest.fixture(scope="session")
def mariadb_cluster() -> Iterator[MariaDBCluster]:
    """The session's private MariaDB server (tests/mariadb_server.py); ``.server`` is its MariaDBServer."""
    reason = mariadb_server.why_unavailable()
    if reason:
        pytest.skip(f"MariaDB tests skipped: {reason}")
    cluster = MariaDBCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def mariadb(mariadb_cluster) -> MariaDBServer:
    return mariadb_cluster.server


@pytest.fixture(scope="session")
def fakesnow() -> Iterator[FakesnowServer]:
    """The session's fakesnow server over TLS (tests/snowflake_server.py). REQUESTS_CA_BUNDLE is set for the
    session (the system CAs plus the server's certificate), so the SnowflakeHook trusts it here and in the
    subprocesses the tests start."""
    reason = snowflake_server.why_unavailable()
    if reason:
        pytest.skip(f"Snowflake tests skipped: {reason}")
    with FakesnowServer() as server:
        saved = {name: os.environ.get(name) for name in server.environ()}
        os.environ.update(server.environ())
        try:
            yield server
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@dataclass
class Warehouse:
    """A fresh, empty database of one engine, reachable as an Airflow connection id.

    ``engine`` is one of ENGINES; ``connect()`` opens a DB-API connection with the engine's own driver (sqlite3,
    psycopg 3, duckdb, MySQLdb, the Snowflake connector through the stock hook). Close what you open: a DuckDB file
    takes one process at a time. ``dialect`` is the warehouse layer's Dialect of the engine.
    """

    engine: str
    conn_id: str
    connect: Callable[[], Any]
    airflow_uri: str

    @property
    def dialect(self) -> Dialect:
        return Dialect(self.engine)

    @property
    def placeholder(self) -> str:
        return PLACEHOLDERS[self.engine]

    def provider_connect(self) -> Any:
        """A connection as the provider opens it: through the warehouse layer (thread-shareable, DuckDB's
        taking turns at the file, Snowflake's out of autocommit)."""
        from airflow_provider_greenapi.warehouse import open_warehouse

        return open_warehouse(self.conn_id).connect()

    def connect_from_threads(self, busy_timeout: float = 30) -> Any:
        """A connection several threads may share, as the provider opens the usage ledger's."""
        if self.engine != "sqlite":
            return self.connect()
        probe = self.connect()
        path = probe.execute("PRAGMA database_list").fetchone()[2]
        probe.close()
        return sqlite3.connect(path, timeout=busy_timeout, check_same_thread=False)

    def fetch_all(self, sql: str, parameters: Any = ()) -> list[tuple[Any, ...]]:
        """Rows of one query, on a connection opened and closed here (``placeholder`` in ``sql``)."""
        return self._with_cursor(lambda cursor: [tuple(row) for row in cursor.fetchall()], sql, parameters)

    def execute(self, sql: str, parameters: Any = ()) -> None:
        """Run one statement and commit, on a connection opened and closed here."""
        self._with_cursor(lambda cursor: None, sql, parameters)

    def _with_cursor(self, then: Callable[[Any], Any], sql: str, parameters: Any) -> Any:
        def work() -> Any:
            connection = self.connect()
            try:
                cursor = connection.cursor()
                if parameters:
                    cursor.execute(sql, parameters)
                else:
                    cursor.execute(sql)
                result = then(cursor)
                connection.commit()
                return result
            finally:
                connection.close()

        if self.engine == "snowflake":  # fakesnow answers SQL it cannot run with HTTP 500, retried for minutes
            return snowflake_server.run_with_timeout(work, timeout=120, what=sql[:60])
        return work()


def _new_pg_database(server: PostgresServer) -> str:
    return server.create_database()


def _require(module: str, extra: str) -> None:
    if not installed(module):
        pytest.skip(f"{extra} tests skipped: {module} is not installed "
                    f"(pip install '.[{extra}]' or scripts/install-engine-test-deps.sh)")


def make_warehouse(engine: str, tmp_path, request, monkeypatch, conn_id: str = "warehouse",
                   mysql_collation: str | None = "utf8mb4_bin") -> Warehouse:
    """A fresh database of ``engine`` as the Airflow connection ``conn_id`` (set with monkeypatch); a MariaDB
    database gets ``mysql_collation`` (None: the server's default, as a plain ``CREATE DATABASE``)."""
    if engine == "sqlite":
        path = str(tmp_path / f"{conn_id}.db")
        uri = json.dumps({"conn_type": "sqlite", "host": path})
        warehouse = Warehouse("sqlite", conn_id, lambda: sqlite3.connect(path, timeout=30), uri)
    elif engine == "postgres":
        import psycopg

        server = request.getfixturevalue("postgres")
        name = _new_pg_database(server)
        warehouse = Warehouse(
            "postgres", conn_id,
            lambda: psycopg.connect(host=server.host, port=server.port, user=server.user, dbname=name),
            server.airflow_conn(name),
        )
    elif engine == "duckdb":
        _require("airflow.providers.duckdb", "duckdb")
        import duckdb

        path = str(tmp_path / f"{conn_id}.duckdb")
        warehouse = Warehouse("duckdb", conn_id, lambda: duckdb.connect(path),
                              json.dumps({"conn_type": "duckdb", "host": path}))
    elif engine == "mysql":
        mysql: MariaDBServer = request.getfixturevalue("mariadb")
        name = mysql.create_database(collation=mysql_collation)
        warehouse = Warehouse("mysql", conn_id, lambda: mysql.connect(name), mysql.airflow_conn(name))
    elif engine == "snowflake":
        snow: FakesnowServer = request.getfixturevalue("fakesnow")

        def connect() -> Any:
            from airflow.sdk import BaseHook

            return BaseHook.get_hook(conn_id).get_conn()

        warehouse = Warehouse("snowflake", conn_id, connect, snow.airflow_conn(snow.new_database()))
    else:
        raise ValueError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", warehouse.airflow_uri)
    return warehouse


def engine_params(*engines: str) -> list[Any]:
    """pytest params of ``engines``, each with its marker (all but sqlite have one)."""
    return [pytest.param(e, marks=getattr(pytest.mark, e)) if e != "sqlite" else e for e in engines]


@pytest.fixture(params=engine_params("sqlite", "postgres"))
def warehouse(request, tmp_path, monkeypatch) -> Warehouse:
    """SQLite and PostgreSQL: the engines every test supports today."""
    return make_warehouse(request.param, tmp_path, request, monkeypatch)


@pytest.fixture(params=engine_params(*ENGINES))
def any_warehouse(request, tmp_path, monkeypatch) -> Warehouse:
    """All five engines; a test opts in by asking for this fixture instead of ``warehouse``."""
    return make_warehouse(request.param, tmp_path, request, monkeypatch)


@pytest.fixture
def store(any_warehouse):
    """A results table (a ResultsStore, its table made) on each of the five engines, over the provider's own
    connection; tests/store_support.py has what its tests share."""
    from airflow_provider_greenapi.warehouse import ResultsStore

    connection = any_warehouse.provider_connect()
    results = ResultsStore(connection, any_warehouse.dialect, "whatsapp_checks")
    results.ensure_table()
    yield results
    connection.close()


@pytest.fixture(params=[None, "utf8mb4_general_ci"], ids=["server-default", "utf8mb4_general_ci"])
def mariadb_default_collation(request, tmp_path, monkeypatch) -> Warehouse:
    """A MariaDB database with a case- and accent-insensitive default collation, as most servers create one:
    the server's own default (latin1_swedish_ci here) and utf8mb4_general_ci (Debian's and many hosts')."""
    return make_warehouse("mysql", tmp_path, request, monkeypatch, mysql_collation=request.param)
