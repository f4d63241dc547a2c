"""DuckDB files (the duckdb provider): TIMESTAMPTZ, BOOLEAN, ``INSERT ... ON CONFLICT``, and its lock.

One process at a time may open a DuckDB file (any other process, even a reader, fails with "Conflicting lock
is held"). So that several tasks can share one file, a connection here holds the file only for the length of
one transaction: it opens the file at its first statement and closes it at the commit or rollback, and pure
reads release it at once (:meth:`DuckDBEngine.end_read`). A task that finds the file taken retries, with a
growing pause, for up to ``LOCK_WAIT_SECONDS``; then it fails with a message saying what to do. Transactions
are DuckDB's own (ACID, write-ahead log), so a task killed mid-write loses its open transaction, never a
committed row, and never leaves a corrupt file. Inside one process, connections to one file share it, and
DuckDB would abort one of two transactions writing the same row (the ledger's threads do): writing
transactions of one process therefore take turns too, on a lock per file taken at their first write.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

from airflow_provider_greenapi.errors import ConfigurationError, WarehouseBusyError
from airflow_provider_greenapi.warehouse.engine import Dialect, Engine, one_per_key

LOCK_WAIT_SECONDS = 120.0
_WRITES = ("insert", "update", "delete", "create", "alter", "drop", "merge")
_ROWS_PER_STATEMENT = 1000


_WRITERS: dict[str, threading.Lock] = {}
_WRITERS_GUARD = threading.Lock()


def _writer_lock(database: str) -> threading.Lock:
    with _WRITERS_GUARD:
        return _WRITERS.setdefault(database, threading.Lock())


def _open(hook: Any, wait: float) -> Any:
    """The hook's database, opened as the hook does (config, extensions, secrets) without its per-open log
    line; retried while another process holds the file."""
    import duckdb

    deadline = time.monotonic() + wait
    pause = 0.02
    while True:
        try:
            connection = duckdb.connect(database=hook.get_database(), config=hook.get_connect_config())
        except duckdb.IOException as error:
            if "lock" not in str(error).lower():
                raise
            if time.monotonic() + pause > deadline:
                raise WarehouseBusyError(
                    f"The DuckDB file {hook.get_database()!r} stayed in use by another process for {wait:.0f} s "
                    "(DuckDB lets one process open a file at a time). Run the tasks that write this file one "
                    "after another (an Airflow pool with one slot, or max_active_tis_per_dag=1), or give each "
                    "its own file, or move the results to a server database."
                ) from None
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
            continue
        try:
            hook.load_extensions(connection)
            hook.configure_secrets(connection)
        except Exception:
            connection.close()
            raise
        return connection


class _Cursor:
    """A cursor on the connection itself: DuckDB's ``cursor()`` is a second connection with its own
    transaction, and the store's statements must share one."""

    def __init__(self, owner: TurnTakingConnection) -> None:
        self._owner = owner
        self._connection: Any = None

    def execute(self, sql: str, params: Any = ()) -> _Cursor:
        self._connection = self._owner.acquire(sql)
        self._connection.execute(sql, list(params) if params else None)
        return self

    def insert_from(self, name: str, data: Any, sql: str) -> None:
        """Run ``sql`` (a write) with ``data`` (an Arrow table) visible to it as the view ``name``."""
        self._connection = self._owner.acquire(sql)
        self._connection.register(name, data)
        try:
            self._connection.execute(sql)
        finally:
            self._connection.unregister(name)

    def executemany(self, sql: str, rows: Sequence[Any]) -> _Cursor:
        self._connection = self._owner.acquire(sql)
        self._connection.executemany(sql, [list(r) for r in rows])
        return self

    @property
    def description(self) -> Any:
        return self._connection.description if self._connection is not None else None

    @property
    def rowcount(self) -> int:
        return int(self._connection.rowcount) if self._connection is not None else -1

    def fetchone(self) -> Any:
        return self._connection.fetchone()

    def fetchmany(self, size: int = 1) -> list[Any]:
        return list(self._connection.fetchmany(size))

    def fetchall(self) -> list[Any]:
        return list(self._connection.fetchall())

    def close(self) -> None:
        self._connection = None


class TurnTakingConnection:
    """A DB-API connection to a DuckDB file that holds the file only while a transaction is open."""

    def __init__(self, opener: Callable[[], Any], writers: threading.Lock, wait: float,
                 writes_file: bool = True) -> None:
        self._opener = opener
        self._writers = writers
        self._wait = wait
        self._connection: Any = None
        self._wrote = False
        # False: the connection writes only its own temporary tables (a source's copy), never the file's
        # tables, so it does not take turns with the process's writers of the file
        self._writes_file = writes_file

    def acquire(self, sql: str) -> Any:
        if self._writes_file and not self._wrote and sql.lstrip()[:6].lower() in _WRITES:
            if not self._writers.acquire(timeout=self._wait):
                raise WarehouseBusyError(f"Another writer of this process kept the DuckDB file for {self._wait:.0f} s.")
            self._wrote = True
        if self._connection is None:
            try:
                self._connection = self._opener()
                self._connection.execute("BEGIN TRANSACTION")
            except BaseException:
                self._end("ROLLBACK")
                raise
        return self._connection

    def cursor(self) -> _Cursor:
        return _Cursor(self)

    def commit(self) -> None:
        self._end("COMMIT")

    def rollback(self) -> None:
        self._end("ROLLBACK")

    def release_if_read_only(self) -> None:
        if not self._wrote:
            self._end("COMMIT")

    def close(self) -> None:
        self._end("ROLLBACK")

    def _end(self, statement: str) -> None:
        connection, self._connection = self._connection, None
        try:
            if connection is not None:
                try:
                    connection.execute(statement)
                finally:
                    connection.close()
        finally:
            if self._wrote:
                self._wrote = False
                self._writers.release()


class _SourceCursor(_Cursor):
    """A source query's cursor: its own connection (a reader), closed, and the file released, with it."""

    def __init__(self, hook: Any, wait: float) -> None:
        super().__init__(TurnTakingConnection(lambda: _open(hook, wait), _writer_lock(hook.get_database()), wait))

    def close(self) -> None:
        super().close()
        self._owner.close()


class DuckDBEngine(Engine):
    dialect = Dialect.DUCKDB
    conn_types = ("duckdb",)
    sqlalchemy_names = ("duckdb",)
    extra = "duckdb"
    placeholder = "?"
    timestamp_type = "TIMESTAMPTZ"
    # DuckDB's (ART) indexes turn an UPDATE of an indexed column into a delete and an insert, and the queue's
    # columns change on every answer; a scan of the columnar table finds the queue fast without one.
    has_indexes = False
    max_identifier_length = None  # DuckDB keeps names of any length
    lock_wait: float = LOCK_WAIT_SECONDS
    write_path = ("an Arrow table registered on the connection, read by one INSERT ... SELECT ... ON CONFLICT DO "
                  "UPDATE (with pyarrow installed); else multi-row INSERTs of 1,000 rows")

    # A look-up by source key scans the table whatever it names (no index: see has_indexes), so one names many.
    lookup_keys = 100_000
    staging_rows = 10_000

    def one_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column IN (SELECT unnest(?))``: the values as one list parameter, joined by hash (an IN list of
        marks costs DuckDB a plan per mark: about 40 ms for 1,000)."""
        return f"{column} IN (SELECT unnest({self.placeholder}))", [list(values)]

    def lineage_namespace(self, conn: Any) -> tuple[str, str | None]:
        return "duckdb", conn.host or conn.extra_dejson.get("database", "")  # the file's path

    def lineage_dialect(self, hook: Any, conn: Any) -> str:
        return "duckdb"  # the DuckDB hook has no OpenLineage dialect of its own ("generic")

    def lineage_default_schema(self, hook: Any, conn: Any) -> str | None:
        return "main"  # DuckDB's default schema

    def connect(self, hook: Any) -> Any:
        _refuse_motherduck_token(hook)
        if not hook.get_database() or hook.get_database() == ":memory:":
            raise ValueError(
                "The DuckDB connection has no file (its host, or extra 'database', is empty): an in-memory "
                "database would vanish with the task. Set host to the path of a .duckdb file."
            )
        return TurnTakingConnection(lambda: _open(hook, self.lock_wait), _writer_lock(hook.get_database()),
                                    self.lock_wait)

    def source_cursor(self, hook: Any, connection: Any) -> Callable[[], Any]:
        _refuse_motherduck_token(hook)
        if isinstance(connection, TurnTakingConnection):  # a source's copy: read on the session that made it
            return connection.cursor
        return lambda: _SourceCursor(hook, self.lock_wait)

    def copy_connection(self, hook: Any) -> Any:
        """A connection of its own that writes only its temporary table: it never waits for the file's writers."""
        _refuse_motherduck_token(hook)
        return TurnTakingConnection(lambda: _open(hook, self.lock_wait), _writer_lock(hook.get_database()),
                                    self.lock_wait, writes_file=False)

    def create_copy_table(self, cursor: Any, name: str, columns: Sequence[str]) -> None:
        """As every engine, once pyarrow is there to load it (DuckDB inserts rows one by one, about 1 ms each,
        from anything else: comparing by key is then faster)."""
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ConfigurationError("pyarrow is not installed (pip install pyarrow)") from None
        super().create_copy_table(cursor, name, columns)

    @contextlib.contextmanager
    def copying(self, cursor: Any, name: str, columns: Sequence[str]) -> Iterator[Callable[[list[Any]], None]]:
        """Each batch as an Arrow table, read by one ``INSERT ... SELECT``."""
        def write(rows: list[Any]) -> None:
            cursor.insert_from("greenapi_copy_rows", _arrow_table(columns, rows),
                               f"INSERT INTO {name} SELECT * FROM greenapi_copy_rows")
        yield write

    def source_connection(self, hook: Any) -> Any:
        """Nothing to open up front: the source's cursor opens (and closes) the file itself."""
        return _NoConnection()

    def upsert(self, cursor: Any, table: str, columns: Sequence[str], key: Sequence[str], rows: list[Any]) -> None:
        """The rows as an Arrow table (with pyarrow installed: the duckdb and snowflake extras bring it)
        registered on the connection, read by one ``INSERT ... SELECT ... ON CONFLICT``; without
        pyarrow, or for values Arrow cannot type, multi-row INSERTs (:meth:`_upsert_values`)."""
        if not rows:
            return
        rows = one_per_key(rows, columns, key)
        data = _arrow_table(columns, rows) if hasattr(cursor, "insert_from") else None
        if data is None:
            self._upsert_values(cursor, table, columns, key, rows)
            return
        names = ", ".join(columns)
        conflict = self.on_conflict_update(key, [c for c in columns if c not in key])
        cursor.insert_from("greenapi_upsert_rows", data,
                           f"INSERT INTO {self.table_name(table)} ({names}) SELECT {names} FROM greenapi_upsert_rows "
                           f"{conflict}")

    def _upsert_values(self, cursor: Any, table: str, columns: Sequence[str], key: Sequence[str],
                       rows: list[Any]) -> None:
        """Multi-row INSERTs: DuckDB runs ``executemany`` one row at a time (about 1 ms a row), a VALUES list
        of 1,000 rows in about 30 ms."""
        marks = "(" + ", ".join([self.placeholder] * len(columns)) + ")"
        conflict = self.on_conflict_update(key, [c for c in columns if c not in key])
        for start in range(0, len(rows), _ROWS_PER_STATEMENT):
            batch = rows[start : start + _ROWS_PER_STATEMENT]
            cursor.execute(
                f"INSERT INTO {self.table_name(table)} ({', '.join(columns)}) VALUES "
                f"{', '.join([marks] * len(batch))} {conflict}",
                [value for row in batch for value in row],
            )

    def update_matching(self, cursor: Any, table: str, match: str, not_null: str,
                        groups: Sequence[tuple[Sequence[str], Sequence[str], list[Any]]]) -> None:
        """One ``UPDATE ... FROM (VALUES ...)`` per group and 1,000 rows, for the same reason."""
        for columns, constants, rows in groups:
            names = [*columns, match]
            marks = "(" + ", ".join([self.placeholder] * len(names)) + ")"
            sets = ", ".join([*(f"{c} = src.{c}" for c in columns), *constants])
            for start in range(0, len(rows), _ROWS_PER_STATEMENT):
                batch = rows[start : start + _ROWS_PER_STATEMENT]
                cursor.execute(
                    f"UPDATE {self.table_name(table)} SET {sets} FROM (VALUES {', '.join([marks] * len(batch))}) "
                    f"AS src ({', '.join(names)}) WHERE {self.table_name(table)}.{match} = src.{match} "
                    f"AND {self.table_name(table)}.{not_null} IS NOT NULL",
                    [value for row in batch for value in row],
                )

    def end_read(self, connection: Any) -> None:
        if isinstance(connection, TurnTakingConnection):
            connection.release_if_read_only()


def _refuse_motherduck_token(hook: Any) -> None:
    """The DuckDB provider reads a connection's password as a MotherDuck token and then opens MotherDuck,
    ignoring the file in the host: refuse a password beside a file (never repeating it: it is a secret)."""
    connection = getattr(hook, "airflow_connection", None)
    if connection is not None and connection.password and connection.host:
        raise ConfigurationError(
            f"The DuckDB connection {connection.conn_id!r} has a password: the DuckDB provider reads it as a "
            f"MotherDuck token and would open MotherDuck instead of the file {connection.host!r}. Leave the "
            "password empty for a local DuckDB file."
        )
def _arrow_table(columns: Sequence[str], rows: list[Any]) -> Any:
    """``rows`` as a pyarrow Table of ``columns``; None without pyarrow or when a column's values do not make one
    Arrow type. Timestamps are made aware UTC first (naive ones are UTC: what the store writes)."""
    try:
        import pyarrow as pa
    except ImportError:
        return None
    arrays = []
    for index in range(len(columns)):
        values = [row[index] for row in rows]
        kind = None
        # a column holds one type: its first value that is not NULL says which (a mix fails below: None)
        if isinstance(next((v for v in values if v is not None), None), datetime):
            values = [v if v is None or not isinstance(v, datetime) else
                      (v.replace(tzinfo=timezone.utc) if v.tzinfo is None else v.astimezone(timezone.utc))
                      for v in values]
            kind = pa.timestamp("us", tz="UTC")
        try:
            arrays.append(pa.array(values, type=kind))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            return None
    return pa.Table.from_arrays(arrays, names=list(columns))


class _NoConnection:
    def close(self) -> None:
        pass


ENGINE = DuckDBEngine()
