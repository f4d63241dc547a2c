"""MySQL and MariaDB (the mysql provider, mysqlclient): ON DUPLICATE KEY UPDATE, sized VARCHAR keys,
DATETIME(6) in UTC, BOOLEAN as tinyint(1), server-side cursors for sources, and text that compares exactly.

A table takes its database's default collation unless told otherwise, and that default is usually case-,
accent- and pad-insensitive (``utf8mb4_general_ci``, ``latin1_swedish_ci``): ``C-17`` and ``c-17``, ``Jose``
and ``José``, ``k9`` and ``k9 `` would be one key. Every table of the provider is therefore created in a binary
collation that does not pad (``utf8mb4_nopad_bin`` on MariaDB, ``utf8mb4_0900_bin`` on MySQL 8), and a table an
older version created otherwise is converted in place when a task opens it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

from airflow_provider_greenapi.errors import ConfigurationError
from airflow_provider_greenapi.warehouse.engine import Dialect, Engine, Row

_LOCK_WAIT_SECONDS = 120
_STATEMENT_TIMEOUTS = (1969, 3024)  # MariaDB's ER_STATEMENT_TIMEOUT, MySQL's ER_QUERY_TIMEOUT
# Binary and NO PAD, best first: MariaDB 10.2+, MySQL 8. utf8mb4_bin (MySQL 5.7) pads: trailing spaces are ignored.
_EXACT_COLLATIONS = ("utf8mb4_nopad_bin", "utf8mb4_0900_bin")
_FALLBACK_COLLATION = "utf8mb4_bin"
_NOT_ALLOWED = (1044, 1142)  # access denied to the database, ALTER command denied
_MAX_STATEMENT_BYTES = 16 * 1024 * 1024

log = logging.getLogger(__name__)


class MySQLEngine(Engine):
    dialect = Dialect.MYSQL
    conn_types = ("mysql",)
    sqlalchemy_names = ("mysql", "mariadb")
    extra = "mysql"
    timestamp_type = "DATETIME(6)"  # no time zone: values are UTC; TIMESTAMP would end in 2038
    boolean_type = "BOOLEAN"  # tinyint(1): reads back as 0/1
    max_identifier_length = 64  # characters; a longer index name fails ("Identifier name ... is too long")
    write_path = ("multi-row INSERT ... VALUES (...), (...) ON DUPLICATE KEY UPDATE, each statement under a quarter "
                  "of max_allowed_packet")
    # A source in the results' database is cut to its changed rows there too (as_text: its columns, in the
    # database's case- and accent-insensitive, padding collation by default, converted per row to the results'
    # exact one): the statement alone, 2.8 s for 1,000,000 rows on MariaDB 10.11 (docs/benchmarks.md).

    def quote(self, identifier: str) -> str:
        return f"`{identifier}`"

    def key_text_type(self, length: int) -> str:
        return f"VARCHAR({length})"  # a key or index column needs a length (InnoDB: 3072 bytes per index)

    def to_db_time(self, value: datetime | None) -> Any:
        return None if value is None else value.astimezone(timezone.utc).replace(tzinfo=None)

    def lineage_default_schema(self, hook: Any, conn: Any) -> str | None:
        return getattr(hook, "schema", None) or conn.schema or None  # MySQL's schema is the database

    def limit_statements(self, connection: Any, seconds: float) -> None:
        """MariaDB: ``max_statement_time`` for the session (any statement, lock waits included). MySQL has only
        ``max_execution_time``, for SELECTs; a write waits at most ``innodb_lock_wait_timeout`` (50 s) for a row."""
        cursor = connection.cursor()
        try:
            if "mariadb" in str(connection.get_server_info()).lower():
                cursor.execute("SET SESSION max_statement_time = %s", (float(seconds),))
            else:
                cursor.execute("SET SESSION max_execution_time = %s", (max(1, round(seconds * 1000)),))
        finally:
            cursor.close()

    def is_statement_timeout(self, error: BaseException) -> bool:
        args: tuple[Any, ...] = getattr(error, "args", ())
        return bool(args) and args[0] in _STATEMENT_TIMEOUTS

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

    def as_text(self, expression: str, connection: Any) -> str:
        """``expression`` converted to utf8mb4 in the server's exact collation (the results' columns'): compared
        in the columns' own collation, the look-up uses their index (an index probe per row)."""
        cursor = connection.cursor()
        try:
            collation = self.exact_collation(cursor)
        finally:
            cursor.close()
        return f"CONVERT({expression} USING utf8mb4) COLLATE {collation}"

    def exact_collation(self, cursor: Any) -> str:
        """The server's binary, non-padding utf8mb4 collation (utf8mb4_bin where it has none)."""
        cursor.execute("SELECT collation_name FROM information_schema.collations WHERE collation_name IN (%s, %s)",
                       _EXACT_COLLATIONS)
        found = {str(row[0]) for row in cursor.fetchall()}
        return next((c for c in _EXACT_COLLATIONS if c in found), _FALLBACK_COLLATION)

    def table_options(self, cursor: Any) -> str:
        return f" CHARACTER SET utf8mb4 COLLATE {self.exact_collation(cursor)}"

    def make_text_exact(self, cursor: Any, table: str) -> None:
        collation = self.exact_collation(cursor)
        schema, _, base = table.rpartition(".")
        cursor.execute(
            "SELECT column_name, collation_name FROM information_schema.columns WHERE table_schema = "
            "COALESCE(%s, DATABASE()) AND table_name = %s AND collation_name IS NOT NULL AND collation_name <> %s",
            (schema or None, base, collation),
        )
        loose = cursor.fetchall()
        if loose:  # a binary collation tells apart what the old one merged: the conversion cannot collide
            log.warning(
                "Table %s compares text by %s, which takes keys differing only by case, accent or trailing space "
                "for one: converted it in place to %s (once; rows merged before stay merged, a rerun restores "
                "them).", table, ", ".join(sorted({f"{c} ({n})" for n, c in loose})), collation)
            statement = f"ALTER TABLE {self.table_name(table)} CONVERT TO CHARACTER SET utf8mb4 COLLATE {collation}"
            try:
                cursor.execute(statement)
            except Exception as error:
                if not error.args or error.args[0] not in _NOT_ALLOWED:
                    raise
                raise ConfigurationError(
                    f"Table {table} must be converted to compare keys exactly, and this connection's user may not "
                    f"alter it ({error.args[-1]}). Run once, as a user who may: {statement}; or choose another "
                    "destination table."
                ) from None

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
        if rows:
            self._insert_rows(cursor, head=f"INSERT INTO {self.table_name(table)} ({', '.join(columns)}) VALUES ",
                              tail=" " + self.on_conflict_update(key, [c for c in columns if c not in key]),
                              width=len(columns), rows=rows)

    def drop_copy_table(self, cursor: Any, name: str) -> None:
        """``DROP TEMPORARY TABLE``: it commits nothing, and it costs nothing where a rollback would undo every
        row copied (1.4 s per 1,000,000 rows on MariaDB 10.11)."""
        cursor.execute(f"DROP TEMPORARY TABLE IF EXISTS {name}")

    @contextlib.contextmanager
    def copying(self, cursor: Any, name: str, columns: Sequence[str]) -> Iterator[Callable[[list[Row]], None]]:
        """Multi-row INSERTs as large as :meth:`upsert`'s (mysqlclient's ``executemany`` cuts them at 64 KiB)."""
        head = f"INSERT INTO {name} ({', '.join(columns)}) VALUES "
        yield lambda rows: self._insert_rows(cursor, head=head, tail="", width=len(columns), rows=rows)

    def _insert_rows(self, cursor: Any, head: str, tail: str, width: int, rows: list[Row]) -> None:
        """``head (...), (...) tail`` for ``rows`` of ``width`` values, each statement under a quarter of the
        server's ``max_allowed_packet`` (and 16 MiB), rows in the order given."""
        cursor.execute("SELECT @@max_allowed_packet")
        budget = min(int(cursor.fetchone()[0]) // 4, _MAX_STATEMENT_BYTES)
        mark = "(" + ", ".join([self.placeholder] * width) + ")"
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
