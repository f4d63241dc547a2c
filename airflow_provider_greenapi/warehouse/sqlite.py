"""SQLite, the embedded default: text timestamps, integer booleans, one file shared by source and results."""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from airflow_provider_greenapi.errors import ConfigurationError
from airflow_provider_greenapi.warehouse.engine import Dialect, Engine

_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"  # sorts as text in time order
# TEXT that is not UTF-8 (another program wrote it) fails the whole fetch with the default text factory: read
# the bad bytes as lone surrogates instead, so that one value is reported invalid (storable.py escapes them).
_LENIENT_TEXT = functools.partial(str, encoding="utf-8", errors="surrogateescape")


class SQLiteEngine(Engine):
    dialect = Dialect.SQLITE
    conn_types = ("sqlite",)
    sqlalchemy_names = ("sqlite",)
    placeholder = "?"
    timestamp_type = "TEXT"
    boolean_type = "INTEGER"
    max_identifier_length = None  # SQLite keeps names of any length
    # The generic upsert is already SQLite's fastest: executemany runs the one prepared statement per row in C,
    # inside the transaction the sqlite3 module opens before the first write (one fsync per commit).
    write_path = "executemany of one prepared INSERT ... ON CONFLICT DO UPDATE, in one transaction per commit"

    def to_db_time(self, value: datetime | None) -> Any:
        return None if value is None else value.astimezone(timezone.utc).strftime(_TIME)

    def connect(self, hook: Any) -> Any:
        """The file of the connection, usable from several threads (the ledger's is), waiting up to 60 s for
        another writer's lock instead of failing at once."""
        uri = hook.get_uri().replace("sqlite:///", "file:")
        _require_folder(hook, uri)
        return sqlite3.connect(uri, uri=True, timeout=60, check_same_thread=False)

    def source_connection(self, hook: Any) -> Any:
        _require_folder(hook, hook.get_uri().replace("sqlite:///", "file:"))
        return hook.get_conn()

    def lineage_namespace(self, conn: Any) -> tuple[str, str | None]:
        return "sqlite", conn.host  # the file's path: sqlite:///path/to/file.db

    def lineage_dialect(self, hook: Any, conn: Any) -> str:
        return "sqlite"  # the SQLite hook has no OpenLineage dialect of its own ("generic")

    def lineage_default_schema(self, hook: Any, conn: Any) -> str | None:
        return "main"  # SQLite's name for the connection's own file (an attached file is another schema)

    def source_cursor(self, hook: Any, connection: Any) -> Callable[[], Any]:
        if isinstance(connection, sqlite3.Connection):
            connection.text_factory = _LENIENT_TEXT  # the same str as the default's for valid UTF-8
        return connection.cursor

    def shares_source_connection(self) -> bool:
        return True  # one file read and written by two connections of one task would lock itself out

    def create_index_sql(self, table: str, index: str, columns: Sequence[str]) -> str:
        schema, _, base = table.rpartition(".")  # SQLite qualifies the index, not the table
        name = f"{self.quote(schema)}.{self.quote(index)}" if schema else self.quote(index)
        return f"CREATE INDEX IF NOT EXISTS {name} ON {self.quote(base)} ({', '.join(columns)})"


def _require_folder(hook: Any, uri: str) -> None:
    """SQLite creates a missing file but not a missing folder, and then fails with "unable to open database
    file", which names neither: say which folder is missing (creating it could hide a mistyped path)."""
    path = uri.removeprefix("file:").partition("?")[0]
    if path in ("", ":memory:") or uri.startswith("file::memory:"):
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        conn_id = getattr(hook, "sqlite_conn_id", None) or getattr(hook, "get_conn_id", lambda: "?")()
        raise ConfigurationError(
            f"The SQLite connection {conn_id!r} names the file {path!r}, whose folder {folder!r} does not "
            "exist: create the folder (SQLite creates the file, not its folder), or correct the connection's "
            "host to the path of the database file."
        )


ENGINE = SQLiteEngine()
