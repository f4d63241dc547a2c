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
