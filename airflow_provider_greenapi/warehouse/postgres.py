"""PostgreSQL through psycopg 3 (the postgres provider's driver): TIMESTAMPTZ, BOOLEAN, server-side cursors."""

from __future__ import annotations

import contextlib
import io
import itertools
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from airflow_provider_greenapi.warehouse.engine import Dialect, Engine, Row, one_per_key

_COPY_FROM_ROWS = 50  # fewer rows (the usage history's one) cost less as one executemany than as four statements


class PostgresEngine(Engine):
    dialect = Dialect.POSTGRES
    conn_types = ("postgres", "postgresql")
    sqlalchemy_names = ("postgresql",)
    extra = "postgres"
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
    write_path = ("COPY into a temporary table (ON COMMIT DELETE ROWS), then one INSERT ... SELECT ... ON CONFLICT "
                  "DO UPDATE in the caller's order (executemany below 50 rows or on a psycopg2 cursor)")

    lookup_keys = 10_000
    staging_rows = 10_000

    def one_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column = ANY(%s)``: the values as one array parameter (psycopg and psycopg2 bind a list as an array).
        An IN list of 1,000 marks costs psycopg a parse of the statement and the server a plan of its own: 2x
        slower analysed, up to 20x on a table not analysed yet (docs/benchmarks.md)."""
        return f"{column} = ANY({self.placeholder})", [list(values)]

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

    def drop_copy_table(self, cursor: Any, name: str) -> None:
        cursor.execute(f"DROP TABLE IF EXISTS pg_temp.{name}")

    @contextlib.contextmanager
    def copying(self, cursor: Any, name: str, columns: Sequence[str]) -> Iterator[Callable[[list[Row]], None]]:
        """One ``COPY`` for the whole copy (psycopg 3): the server takes in each batch while the next is read; a
        ``COPY`` per batch on a psycopg2 cursor (the postgres provider's driver under SQLAlchemy 1.4, as on
        Airflow 2.11). Rows of text or None, in COPY's text format (:func:`_copy_text`). Not analysed
        (autovacuum never analyses a temporary table): the anti-join is planned as a hash anti-join from the
        table's size alone."""
        sql = f"COPY {name} ({', '.join(columns)}) FROM STDIN"
        if not hasattr(cursor, "copy"):
            yield lambda rows: cursor.copy_expert(sql, io.StringIO(_copy_text(rows)))
            return
        with cursor.copy(sql) as copy:
            yield lambda rows: copy.write(_copy_text(rows))

    def upsert(self, cursor: Any, table: str, columns: Sequence[str], key: Sequence[str], rows: list[Row]) -> None:
        """``COPY`` the rows into a temporary table of the target's column types, then one ``INSERT ... SELECT``
        in the order given (rows are locked in that order, as the row-by-row upsert locked them); psycopg
        escapes every value for COPY. The temporary table lives as long as the session, is emptied at every
        commit, and vanishes with a rollback of the transaction that created it (it is created again)."""
        if not rows:
            return
        if len(rows) < _COPY_FROM_ROWS or not hasattr(cursor, "copy"):  # a few rows, or a psycopg2 cursor
            super().upsert(cursor, table, columns, key, rows)
            return
        rows = one_per_key(rows, columns, key)
        names = ", ".join(columns)
        staging = f"greenapi_upsert_{zlib.crc32(f'{table}:{names}'.encode()):08x}"
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS "
            f"SELECT 0::bigint AS greenapi_row, {names} FROM {self.table_name(table)} WITH NO DATA"
        )
        with cursor.copy(f"COPY pg_temp.{staging} (greenapi_row, {names}) FROM STDIN") as copy:
            for index, row in enumerate(rows):
                copy.write_row((index, *row))
        cursor.execute(
            f"INSERT INTO {self.table_name(table)} ({names}) SELECT {names} FROM pg_temp.{staging} "
            f"ORDER BY greenapi_row {self.on_conflict_update(key, [c for c in columns if c not in key])}"
        )
        cursor.execute(f"DELETE FROM pg_temp.{staging}")  # a second chunk in this transaction starts empty


def _copy_text(rows: list[Row]) -> str:
    """``rows`` of text or None in COPY's text format: values apart by a tab, a row a line, NULL as ``\\N``, a
    backslash, tab, newline or carriage return in a value escaped. At once when no value needs escaping (the
    text then holds exactly one tab between values, one newline per row and a backslash per NULL)."""
    nulls = sum(map(tuple.count, rows, itertools.repeat(None)))
    plain = rows
    if nulls:
        plain = [row if None not in row else tuple("\\N" if v is None else v for v in row) for row in rows]
    text = "\n".join(map("\t".join, plain)) + "\n"
    width = len(rows[0]) if rows else 0
    if (text.count("\t") == len(rows) * (width - 1) and text.count("\n") == len(rows) and "\r" not in text
            and text.count("\\") == nulls):
        return text
    return "".join("\t".join("\\N" if v is None else v.translate(_COPY_ESCAPES) for v in row) + "\n"
                   for row in rows)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


ENGINE = PostgresEngine()
