"""Airflow adapter: an Airflow connection id -> a DB-API connection of a supported results dialect."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from airflow_provider_greenapi.store import Dialect

_DIALECTS = {"sqlite": Dialect.SQLITE, "postgres": Dialect.POSTGRES, "postgresql": Dialect.POSTGRES}


def get_db_hook(conn_id: str, role: str) -> Any:
    """The common-sql hook of ``conn_id``, or a clear error saying what is wrong with it."""
    from airflow.providers.common.sql.hooks.sql import DbApiHook
    from airflow.sdk import BaseHook

    try:
        hook = BaseHook.get_hook(conn_id)
    except Exception as error:
        raise ValueError(f"The {role} connection {conn_id!r} cannot be used: {error}") from None
    if not isinstance(hook, DbApiHook):
        raise ValueError(
            f"The {role} connection {conn_id!r} is of type {type(hook).__name__}, not a SQL database "
            "(a common-sql hook such as SQLite or PostgreSQL)."
        )
    return hook


def dialect_of(hook: Any, conn_id: str) -> Dialect:
    """The results dialect of a common-sql hook (its class's connection type: no second connection lookup)."""
    conn_type = hook.conn_type
    try:
        return _DIALECTS[conn_type]
    except KeyError:
        raise ValueError(
            f"The results table cannot live in connection {conn_id!r} of type {conn_type!r}: supported "
            "warehouses are sqlite and postgres."
        ) from None


def connect(hook: Any, dialect: Dialect) -> Any:
    """A new DB-API connection. SQLite's may be used from several threads (the ledger's is) and waits for
    locks held by other writers instead of failing at once."""
    if dialect is Dialect.SQLITE:
        uri = hook.get_uri().replace("sqlite:///", "file:")
        return sqlite3.connect(uri, uri=True, timeout=60, check_same_thread=False)
    return hook.get_conn()


def streaming_cursor(hook: Any, connection: Any) -> Callable[[], Any]:
    """A factory of cursors that stream a query's rows: PostgreSQL's server-side (named) cursor, whose
    rows arrive in chunks instead of all at once; the driver's plain cursor elsewhere."""
    if _DIALECTS.get(hook.conn_type) is Dialect.POSTGRES:
        return lambda: connection.cursor(name="greenapi_source", withhold=True)
    return connection.cursor


def open_warehouse(conn_id: str) -> tuple[Any, Any, Dialect]:
    """(hook, a new connection, dialect) for a results warehouse connection id."""
    hook = get_db_hook(conn_id, "destination")
    dialect = dialect_of(hook, conn_id)
    return hook, connect(hook, dialect), dialect
