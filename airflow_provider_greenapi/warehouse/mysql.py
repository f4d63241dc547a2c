"""MySQL and MariaDB (the mysql provider, mysqlclient): ON DUPLICATE KEY UPDATE, sized VARCHAR keys,
DATETIME(6) in UTC, BOOLEAN as tinyint(1), server-side cursors for sources."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

from airflow_provider_greenapi.warehouse.engine import Dialect, Engine, Row

_LOCK_WAIT_SECONDS = 120
_MAX_STATEMENT_BYTES = 16 * 1024 * 1024


class MySQLEngine(Engine):
    dialect = Dialect.MYSQL
    conn_types = ("mysql",)
    timestamp_type = "DATETIME(6)"  # no time zone: values are UTC; TIMESTAMP would end in 2038
    boolean_type = "BOOLEAN"  # tinyint(1): reads back as 0/1
    write_path = ("multi-row INSERT ... VALUES (...), (...) ON DUPLICATE KEY UPDATE, each statement under a quarter "
                  "of max_allowed_packet")

    def quote(self, identifier: str) -> str:
        return f"`{identifier}`"

    def key_text_type(self, length: int) -> str:
        return f"VARCHAR({length})"  # a key or index column needs a length (InnoDB: 3072 bytes per index)

    def to_db_time(self, value: datetime | None) -> Any:
        return None if value is None else value.astimezone(timezone.utc).replace(tzinfo=None)

    def lineage_default_schema(self, hook: Any, conn: Any) -> str | None:
        return getattr(hook, "schema", None) or conn.schema or None  # MySQL's schema is the database

    def source_cursor(self, hook: Any, connection: Any) -> Callable[[], Any]:
        """An unbuffered (server-side) cursor: rows come from the server as they are fetched."""
        from MySQLdb.cursors import SSCursor

        return lambda: connection.cursor(SSCursor)

    @contextlib.contextmanager
    def schema_lock(self, cursor: Any, table: str) -> Iterator[None]:
        """Tasks that start together would each find the index missing and create it: a named lock makes
        them take turns."""
        name = f"airflow_provider_greenapi:{table}"
        cursor.execute("SELECT GET_LOCK(%s, %s)", (name, _LOCK_WAIT_SECONDS))
        cursor.fetchall()
        try:
            yield
        finally:
            cursor.execute("SELECT RELEASE_LOCK(%s)", (name,))
            cursor.fetchall()

    def index_missing(self, cursor: Any, table: str, index: str) -> bool:
        schema, _, base = table.rpartition(".")
        cursor.execute(
            "SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = COALESCE(%s, DATABASE()) "
            "AND table_name = %s AND index_name = %s",
            (schema or None, base, index),
        )
        return int(cursor.fetchone()[0]) == 0

    def create_index_sql(self, table: str, index: str, columns: Sequence[str]) -> str:
        return f"CREATE INDEX {self.quote(index)} ON {self.table_name(table)} ({', '.join(columns)})"

    def on_conflict_update(self, key: Sequence[str], updates: Sequence[str]) -> str:
        return "ON DUPLICATE KEY UPDATE " + ", ".join(f"{c} = VALUES({c})" for c in updates)

    def insert_missing(self, cursor: Any, table: str, columns: Sequence[str], key: Sequence[str], row: Any) -> None:
        marks = ", ".join([self.placeholder] * len(columns))
        first = key[0]
        cursor.execute(
            f"INSERT INTO {self.table_name(table)} ({', '.join(columns)}) VALUES ({marks}) "
            f"ON DUPLICATE KEY UPDATE {first} = {first}",  # INSERT IGNORE would also hide other errors
            row,
        )

    def upsert(self, cursor: Any, table: str, columns: Sequence[str], key: Sequence[str], rows: list[Row]) -> None:
        """Multi-row ``INSERT ... VALUES (...), (...) ON DUPLICATE KEY UPDATE``, each statement under a quarter
        of the server's ``max_allowed_packet`` (and 16 MiB), rows in the order given (locked in that order). A
        key given twice is written twice, as one statement per row would."""
        if not rows:
            return
        cursor.execute("SELECT @@max_allowed_packet")
        budget = min(int(cursor.fetchone()[0]) // 4, _MAX_STATEMENT_BYTES)
        mark = "(" + ", ".join([self.placeholder] * len(columns)) + ")"
        head = f"INSERT INTO {self.table_name(table)} ({', '.join(columns)}) VALUES "
        tail = " " + self.on_conflict_update(key, [c for c in columns if c not in key])
        start, size = 0, len(head) + len(tail)
        for end, row in enumerate(rows):
            # escaped, a value is at most twice its text: repr's is longer than the literal's
            cost = 2 * len(repr(row).encode()) + len(mark)
            if end > start and size + cost > budget:
                self._insert_values(cursor, head, mark, tail, rows[start:end])
                start, size = end, len(head) + len(tail)
            size += cost
        self._insert_values(cursor, head, mark, tail, rows[start:])

    def _insert_values(self, cursor: Any, head: str, mark: str, tail: str, rows: list[Row]) -> None:
        cursor.execute(head + ", ".join([mark] * len(rows)) + tail, [value for row in rows for value in row])


ENGINE = MySQLEngine()
