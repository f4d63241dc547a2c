"""Airflow adapter: an Airflow connection id -> its common-sql hook, its engine, and the connections the
results store, the usage ledger and a source query use (lineage.py names their tables for OpenLineage)."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from airflow_provider_greenapi.sources import (
    ChangedRows,
    InputRow,
    QueryParameters,
    batches_from_query,
    count_rows,
    numbers_from_query,
)
from airflow_provider_greenapi.warehouse.changes import COPY_COLUMNS, COPY_TABLE, copied_inputs
from airflow_provider_greenapi.warehouse.engine import Dialect, Engine, engine_names
from airflow_provider_greenapi.warehouse.store import ResultsStore

log = logging.getLogger(__name__)

_COPY_BATCH = 10_000  # source rows fetched, and handed to the engine's copy (Engine.copying), at a time
_BY_CONN_TYPE = {t: d for d in Dialect for t in d.engine.conn_types}
_BY_SQLALCHEMY_NAME = {n: d for d in Dialect for n in d.engine.sqlalchemy_names}


def _install_hint(conn_type: str | None) -> str:
    dialect = _BY_CONN_TYPE.get(conn_type or "")
    extra = dialect.engine.extra if dialect else None
    if extra is None:
        return ""
    return f' Install the engine\'s extra: pip install "airflow-provider-greenapi[{extra}]".'


def get_db_hook(conn_id: str, role: str) -> Any:
    """The common-sql hook of ``conn_id``, or a clear error saying what is wrong with it."""
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    from airflow_provider_greenapi._compat import BaseHook

    try:
        hook = BaseHook.get_hook(conn_id)
    except Exception as error:
        try:
            conn_type = BaseHook.get_connection(conn_id).conn_type
        except Exception:
            conn_type = None
        raise ValueError(f"The {role} connection {conn_id!r} cannot be used: {error}.{_install_hint(conn_type)}") \
            from None
    if not isinstance(hook, DbApiHook):
        raise ValueError(
            f"The {role} connection {conn_id!r} is of type {type(hook).__name__}, not a SQL database "
            f"(a common-sql hook of one of the supported engines: {engine_names()})."
        )
    return hook


def engine_of(hook: Any, conn_id: str) -> Engine:
    """The engine of a common-sql hook; the generic engine for a database this provider does not list
    (its tables can still be read, through its driver's cursor)."""
    try:
        return dialect_of(hook, conn_id).engine
    except ValueError:
        return Engine()


def dialect_of(hook: Any, conn_id: str) -> Dialect:
    """The engine of a common-sql hook: its class's connection type (no connection lookup), else the
    SQLAlchemy dialect of its URL (``hook.dialect_name``)."""
    conn_type = getattr(hook, "conn_type", None)
    if conn_type in _BY_CONN_TYPE:
        return _BY_CONN_TYPE[conn_type]
    try:
        name = hook.dialect_name
    except Exception:
        name = None
    if name in _BY_SQLALCHEMY_NAME:
        return _BY_SQLALCHEMY_NAME[name]
    raise ValueError(
        f"The results table cannot live in connection {conn_id!r} of type {conn_type!r}: supported warehouses "
        f"are {engine_names()}, each through its Airflow provider (for example "
        'pip install "airflow-provider-greenapi[duckdb]"). See docs/warehouses.md.'
    )


@dataclass
class Warehouse:
    """A results warehouse: an Airflow connection id, its hook and its engine (a pipeline.wiring.RunDatabase)."""

    conn_id: str
    hook: Any
    dialect: Dialect
    statement_timeout: float | None = None  # seconds a statement may run before the server cancels it

    def connect(self) -> Any:
        connection = self.dialect.engine.connect(self.hook)
        if self.statement_timeout is not None:
            self.dialect.engine.limit_statements(connection, self.statement_timeout)
        return connection

    def timed_out(self, error: BaseException | None) -> bool:
        """Whether ``error``, or an error it came from, is a statement this warehouse's server cancelled for
        running past ``statement_timeout``."""
        seen: set[int] = set()
        while error is not None and id(error) not in seen:
            if self.dialect.engine.is_statement_timeout(error):
                return True
            seen.add(id(error))
            error = error.__cause__ or error.__context__
        return False

    def connect_from_threads(self) -> Any:
        """A connection the checker's threads share (the usage ledger's): every engine's connections allow it."""
        return self.connect()


def open_warehouse(conn_id: str, role: str = "destination", statement_timeout: float | None = None) -> Warehouse:
    hook = get_db_hook(conn_id, role)
    return Warehouse(conn_id, hook, dialect_of(hook, conn_id), statement_timeout)


def in_memory_store(stack: ExitStack, table: str) -> ResultsStore:
    """A results table that lives only for the task (results go to the XCom): an in-memory SQLite."""
    memory = sqlite3.connect(":memory:")
    stack.callback(memory.close)
    return ResultsStore(memory, Dialect.SQLITE, table, temporary=True)


def source_inputs(stack: ExitStack, conn_id: str, sql: str, phone_column: str | None, key_column: str | None,
                  chunk_size: int, destination: tuple[str, ResultsStore] | None = None,
                  changed_only: str | None = None, prune_missing: bool = False,
                  parameters: QueryParameters = None) -> Iterable[InputRow]:
    """The inputs of a source query, streamed in chunks of ``chunk_size`` rows. ``destination`` is the
    results' (conn id, store): an engine whose file a task may open once (SQLite) reads through the store's
    own connection when the source is the same connection. ``changed_only`` (the normaliser's fingerprint):
    only the source's rows not stored as they are reach staging (:class:`ChangedRows`), cut in the source's
    database when it is the results' one, else in the results' database from a copy of the source
    (:func:`_changed_through_a_copy`; not when ``prune_missing`` needs every key of the source). ``parameters``
    are bound to ``sql``'s placeholders wherever it runs, the statements that wrap it included."""
    hook = get_db_hook(conn_id, "source")
    engine = engine_of(hook, conn_id)
    same_database = destination is not None and destination[0] == conn_id
    if same_database and engine.shares_source_connection():
        connection = destination[1].connection  # type: ignore[index]
    else:
        connection = engine.source_connection(hook)
        stack.callback(connection.close)
    open_cursor = engine.source_cursor(hook, connection)
    if same_database and changed_only and phone_column and key_column:
        store = destination[1]  # type: ignore[index]
        changed_sql = None
        if store.holds_inputs_read_by(changed_only):
            changed_sql = store.changed_rows_sql(sql, phone_column, key_column, changed_only)
        total = None if changed_sql is None else _count(open_cursor, connection, sql, parameters)
        if changed_sql is not None and total is not None:
            rows = numbers_from_query(open_cursor, changed_sql, phone_column, key_column, chunk_size, parameters)
            stack.callback(rows.close)
            return ChangedRows(rows, total, sql, key_column, parameters=parameters)
    if destination is not None and not same_database and changed_only and key_column and not prune_missing:
        batches = batches_from_query(open_cursor, sql, phone_column, key_column, max(chunk_size, _COPY_BATCH),
                                     parameters)
        stack.callback(batches.close)
        copied = _changed_through_a_copy(stack, destination, batches, changed_only, chunk_size)
        if copied is not None:
            return copied
    rows = numbers_from_query(open_cursor, sql, phone_column, key_column, chunk_size, parameters)
    stack.callback(rows.close)  # a run that stops mid-source closes the cursor before its connection
    return rows


def _changed_through_a_copy(stack: ExitStack, destination: tuple[str, ResultsStore],
                            batches: Iterator[list[InputRow]], normalized_by: str,
                            chunk_size: int) -> ChangedRows | None:
    """The rows of ``batches`` (a source in another database, not read yet) cut to the ones not stored as they
    are, in the results' database: the source is streamed once into a temporary table there (the engine's bulk
    path, ``Engine.copying``) and the same anti-join as a source in the results' database runs on it. An input
    the copy cannot hold as it is (no key, an odd value: ``copied_inputs``) is staged at once. None where the
    engine does not copy sources, the table holds no input read alike, or the temporary table cannot be made
    (the rows are then compared by key, a window at a time)."""
    conn_id, store = destination
    engine = store.engine
    changed_sql = store.changed_copy_rows_sql(normalized_by) if store.holds_inputs_read_by(normalized_by) else None
    if changed_sql is None:
        return None
    hook = get_db_hook(conn_id, "destination")
    if engine.shares_source_connection():
        connection = store.connection  # its temporary table, never committed: the store's transaction
    else:
        connection = engine.copy_connection(hook)
        stack.callback(connection.close)  # the temporary table goes with its session
    cursor = connection.cursor()
    try:
        engine.create_copy_table(cursor, COPY_TABLE, COPY_COLUMNS)
    except Exception as error:
        with contextlib.suppress(Exception):
            connection.rollback()
        log.warning("The source could not be copied into a temporary table of the results' database (%s): its "
                    "rows are compared with the stored ones by key instead, a window at a time.", error)
        return None
    finally:
        cursor.close()

    def copy_then_changed() -> Iterator[InputRow]:
        read = 0
        cursor = connection.cursor()
        try:
            with engine.copying(cursor, COPY_TABLE, COPY_COLUMNS) as copy:
                for batch in batches:
                    read += len(batch)
                    copied = copied_inputs(batch)
                    rows = [row for row in copied if row is not None]
                    if rows:
                        copy(rows)
                    if len(rows) < len(batch):  # staged as they are
                        yield from (item for item, row in zip(batch, copied, strict=True) if row is None)
        finally:
            cursor.close()
        changed.total = read
        changed_rows = numbers_from_query(engine.source_cursor(hook, connection), changed_sql, "input_value",
                                          "source_key", chunk_size)
        try:
            yield from changed_rows
        finally:
            changed_rows.close()
        _drop_copy(engine, store, connection)

    changed = ChangedRows(copy_then_changed(), None, None, "source_key",
                          compared_in="The results' database, holding a copy of the source,")
    stack.callback(changed.close)
    return changed


def _drop_copy(engine: Engine, store: ResultsStore, connection: Any) -> None:
    """Drop a source's copy once its changed rows are read (Engine.drop_copy_table). A session of its own then
    commits, ending the transaction whose snapshot would hold back PostgreSQL's vacuum while the run sends (a
    rollback would cost MariaDB an undo of every row copied); the store's own connection (SQLite) drops the
    table in the store's transaction."""
    cursor = connection.cursor()
    try:
        engine.drop_copy_table(cursor, COPY_TABLE)
    finally:
        cursor.close()
    if connection is not store.connection:
        connection.commit()


def _count(open_cursor: Any, connection: Any, sql: str, parameters: QueryParameters) -> int | None:
    cursor = open_cursor()
    try:
        total = count_rows(cursor, sql, parameters)
    finally:
        cursor.close()
    if total is None:
        with contextlib.suppress(Exception):  # a failed statement leaves PostgreSQL's transaction aborted
            connection.rollback()
    return total
