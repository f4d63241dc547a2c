"""PostgreSQL through psycopg 3 (the postgres provider's driver): TIMESTAMPTZ, BOOLEAN, server-side cursors."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from airflow_provider_greenapi.warehouse.engine import Dialect, Engine


class PostgresEngine(Engine):
    dialect = Dialect.POSTGRES
    conn_types = ("postgres", "postgresql")
    timestamp_type = "TIMESTAMPTZ"
    max_identifier_length = 63  # NAMEDATALEN - 1 bytes; a longer name is cut short without an error

    def limit_statements(self, connection: Any, seconds: float) -> None:
        """``statement_timeout`` for the session (it covers waiting for a lock too)."""
        cursor = connection.cursor()
        try:
            cursor.execute("SELECT set_config('statement_timeout', %s, false)", (str(max(1, round(seconds * 1000))),))
        finally:
            cursor.close()
        connection.commit()

    def is_statement_timeout(self, error: BaseException) -> bool:
        return getattr(error, "sqlstate", None) == "57014" and "statement timeout" in str(error)  # query_canceled

    def source_cursor(self, hook: Any, connection: Any) -> Callable[[], Any]:
        """A server-side (named) cursor: its rows arrive in batches instead of all at once."""
        return lambda: connection.cursor(name="greenapi_source", withhold=True)

    @contextlib.contextmanager
    def schema_lock(self, cursor: Any, table: str) -> Iterator[None]:
        """PostgreSQL's IF NOT EXISTS is no guard against a concurrent create: of several mapped tasks
        starting together, all but one may fail on a unique violation in the catalog. A transaction-scoped
        advisory lock keyed on the table name makes them take turns (until the commit)."""
        key = zlib.crc32(f"airflow_provider_greenapi:{table}".encode())
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
        yield

    def index_missing(self, cursor: Any, table: str, index: str) -> bool:
        """CREATE INDEX IF NOT EXISTS locks the table first, so it would wait for every task writing it:
        look the index up instead."""
        schema, _, _ = table.rpartition(".")
        name = f"{self.quote(schema)}.{self.quote(index)}" if schema else self.quote(index)
        cursor.execute("SELECT to_regclass(%s)", (name,))
        return cursor.fetchone()[0] is None


ENGINE = PostgresEngine()
