"""What every warehouse engine shares, and the knobs an engine module turns.

The results store and the usage ledger write portable SQL through an :class:`Engine`; each engine module
(``sqlite.py``, ``postgres.py``, ``duckdb.py``, ``mysql.py``, ``snowflake.py``) subclasses it and overrides
only what differs for it: types, quoting, the placeholder, the upsert statement, locks, how rows are batched,
how a connection is opened and how a source query is streamed. Adding an engine means one such module, a
line in :class:`Dialect`, and its tests.
"""

from __future__ import annotations

import contextlib
import enum
import importlib
import re
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, ClassVar

from airflow_provider_greenapi.errors import ConfigurationError

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

Row = tuple[Any, ...]


class Dialect(str, enum.Enum):
    """The supported engines, by name; ``.engine`` is the engine module's :class:`Engine`."""

    SQLITE = "sqlite"
    POSTGRES = "postgres"
    DUCKDB = "duckdb"
    MYSQL = "mysql"
    SNOWFLAKE = "snowflake"

    @property
    def engine(self) -> Engine:
        return _engine(self)

    @property
    def placeholder(self) -> str:
        return self.engine.placeholder


class Capability(str, enum.Enum):
    """What a run relies on in the engine of its results table; each engine declares what it has
    (:attr:`Engine.capabilities`), and a run refuses an engine that lacks one (:func:`require_capabilities`)."""

    # a rollback undoes what the transaction wrote: a dry run's staging, a chunk lost to an error
    TRANSACTIONS = "transactions"
    # an UPDATE's cursor.rowcount says how many rows it changed: the usage ledger counts a call by it
    ROWCOUNT = "a reliable rowcount"
    # an UPDATE or DELETE of a few rows takes effect in its own statement, at the cost of those rows: answers are
    # written back and queued numbers released chunk by chunk (not an asynchronous mutation of the table)
    ROW_UPDATES = "cheap row updates"


_ENGINES: dict[Dialect, Engine] = {}


def _engine(dialect: Dialect) -> Engine:
    if dialect not in _ENGINES:
        module = importlib.import_module(f"airflow_provider_greenapi.warehouse.{dialect.value}")
        _ENGINES[dialect] = module.ENGINE
    return _ENGINES[dialect]


def check_table_name(name: str) -> list[str]:
    """The parts of ``name`` (``table`` or ``schema.table``); ValueError unless plain identifiers."""
    parts = name.split(".") if isinstance(name, str) else []
    if not 1 <= len(parts) <= 2 or not all(_IDENTIFIER.fullmatch(p) for p in parts):
        raise ValueError(
            f"Table name {name!r} is not a plain identifier: use letters, digits and underscores "
            "(optionally schema.table), starting with a letter or underscore, at most 63 characters."
        )
    return parts


def check_distinct_tables(tables: dict[str, str | None]) -> None:
    """ConfigurationError when two of ``tables`` (argument name -> table name, None: not used) name one table.
    Names are compared without case: Snowflake folds them, and two names a letter's case apart are a mistake."""
    seen: dict[str, str] = {}
    for argument, name in tables.items():
        if name is None:
            continue
        other = seen.setdefault(name.lower(), argument)
        if other != argument:
            raise ConfigurationError(
                f"{argument}={name!r} names the same table as {other}: the results, the usage ledger and the "
                f"usage history each need a table of their own. Give {argument} another name (or leave it "
                "unset for its default)."
            )


class Engine:
    """The generic engine: ANSI SQL with ``INSERT ... ON CONFLICT``, one statement per row through
    ``executemany``. Subclasses change the class attributes and override the methods that differ."""

    dialect: ClassVar[Dialect]
    conn_types: ClassVar[tuple[str, ...]]  # Airflow connection types served by this engine
    # SQLAlchemy dialect names (a common-sql hook's ``dialect_name``) of the connections it serves, for a hook whose
    # connection type it does not list (a subclassed hook, another provider's flavour)
    sqlalchemy_names: ClassVar[tuple[str, ...]] = ()
    # The provider's pip extra that installs the engine's Airflow provider and driver (None: Airflow has it)
    extra: ClassVar[str | None] = None
    # What the engine offers of what a run relies on: every supported engine has all of them
    capabilities: ClassVar[frozenset[Capability]] = frozenset(Capability)
    placeholder: ClassVar[str] = "%s"
    timestamp_type: ClassVar[str] = "TIMESTAMP WITH TIME ZONE"
    boolean_type: ClassVar[str] = "BOOLEAN"
    text_type: ClassVar[str] = "TEXT"
    has_indexes: ClassVar[bool] = True  # a secondary index on the queue columns
    # Calls reserved per ledger statement (1: each call, by group commit). A cloud warehouse, where one statement
    # costs tens of milliseconds or more and DML locks the table, reserves them in blocks, and its engine
    # overrides the writes (upsert, update_matching) to move a whole chunk in one statement.
    ledger_block: ClassVar[int] = 1
    # The longest name (of a table, a schema or an index) the engine keeps as written, None: no limit. Table
    # names are at most 63 characters on every engine (check_table_name: PostgreSQL's limit, the smallest);
    # a name the provider derives, as an index's, is fitted to this (index_name).
    max_identifier_length: ClassVar[int | None] = 63
    # How upsert writes a chunk of rows: each engine module declares its own fastest path (docs/warehouses.md).
    write_path: ClassVar[str] = "INSERT ... ON CONFLICT DO UPDATE through executemany, in the caller's transaction"
    # Whether a source query in the results' database is cut to its new or changed rows by one statement there
    # (an anti-join on the results' source key), rather than streamed whole and compared by key in batches.
    diffs_in_database: ClassVar[bool] = True
    # How many values one look-up of stored rows names (by source key: ResultsStore.unchanged_inputs; by number:
    # staging's freshness look-up): staging reads a window of this many inputs at a time to compare them with
    # the stored ones. An engine whose look-up costs a
    # scan of the table whatever it names (DuckDB) takes big windows; one that binds a list as one array
    # parameter (PostgreSQL) takes bigger ones than one that binds each key (an IN list of 1,000 marks).
    lookup_keys: ClassVar[int] = 1000
    # Inputs staged (and outcomes written, and source rows fetched) per chunk when the run sets no chunk_size:
    # an engine whose chunk costs a scan of the table (DuckDB's look-ups) or a fixed number of statements
    # (PostgreSQL's COPY and INSERT ... SELECT, Snowflake's load) takes fewer, bigger chunks. 10,000 made a first
    # run of 1,000,000 contacts 2x faster on DuckDB and 1.2x on PostgreSQL (fakesnow, 20,000: 2.7x), and slower
    # on SQLite and MariaDB (docs/benchmarks.md).
    staging_rows: ClassVar[int] = 1000
    # Whether a source in another database is copied into a temporary table of the results' database
    # (create_copy_table, copying: each engine's bulk path) and cut there by the same anti-join as a source in
    # the results' database, rather than compared by key a window at a time (ResultsStore.unchanged_inputs).
    copies_sources: ClassVar[bool] = True

    # --- names and values -------------------------------------------------------------------------------

    def quote(self, identifier: str) -> str:
        return f'"{identifier}"'

    def table_name(self, name: str) -> str:
        """``name`` (``table`` or ``schema.table``) quoted for this engine; ValueError unless plain."""
        return ".".join(self.quote(p) for p in check_table_name(name))

    def index_name(self, table: str, suffix: str) -> str:
        """The name of ``table``'s index ``suffix``: ``<table>_<suffix>`` when it fits the engine's identifier
        limit, else the table's name cut short and made unique by a hash of the whole name."""
        base = table.rpartition(".")[2]
        name = f"{base}_{suffix}"
        limit = self.max_identifier_length
        if limit is None or len(name) <= limit:
            return name
        digest = f"{zlib.crc32(base.encode()):08x}"
        return f"{base[:limit - len(suffix) - len(digest) - 2]}_{digest}_{suffix}"

    def as_text(self, expression: str, connection: Any) -> str:
        """SQL for ``expression`` as text that compares exactly with the results' text columns, in the database
        of ``connection`` (the results')."""
        return f"CAST({expression} AS TEXT)"

    def one_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """SQL true for a row whose ``column`` is one of ``values``, and its parameters (an IN list of marks)."""
        return f"{column} IN ({', '.join([self.placeholder] * len(values))})", list(values)

    def key_text_type(self, length: int) -> str:
        """A text column that is part of a key or an index (MySQL needs a length there)."""
        return self.text_type

    def to_db_time(self, value: datetime | None) -> Any:
        return None if value is None else value.astimezone(timezone.utc)

    def from_db_time(self, value: Any) -> datetime | None:
        """A stored timestamp as an aware UTC datetime (naive values are UTC: that is what was written)."""
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    # --- connections ------------------------------------------------------------------------------------

    def connect(self, hook: Any) -> Any:
        """A new DB-API connection from the connection's common-sql hook, not in autocommit mode."""
        return hook.get_conn()

    def limit_statements(self, connection: Any, seconds: float) -> None:
        """Make the server cancel any statement of ``connection`` that runs longer than ``seconds`` (engines
        without such a setting leave this as is: docs/warehouses.md says what bounds their waits)."""

    def is_statement_timeout(self, error: BaseException) -> bool:
        """Whether ``error`` is this engine's statement cancelled by :meth:`limit_statements`."""
        return False

    def source_connection(self, hook: Any) -> Any:
        """The connection a source query runs on (closed by the caller)."""
        return hook.get_conn()

    def source_cursor(self, hook: Any, connection: Any) -> Callable[[], Any]:
        """A factory of cursors that stream a source query's rows in batches (``fetchmany``)."""
        return connection.cursor

    def copy_connection(self, hook: Any) -> Any:
        """The session a source's copy is made and read on (:attr:`copies_sources`; closed by the caller)."""
        return self.source_connection(hook)

    def shares_source_connection(self) -> bool:
        """True when a source on the results' own connection must reuse the store's connection."""
        return False

    def end_read(self, connection: Any) -> None:
        """Called after a statement sequence that only read: engines that hold a file lock release it."""

    # --- OpenLineage naming (lineage.py): the hook's own, but for what a hook does not say ---------------

    def lineage_namespace(self, conn: Any) -> tuple[str, str | None]:
        """(scheme, authority) of the OpenLineage namespace, for a hook with no ``get_openlineage_database_info``."""
        return conn.conn_type, conn.host or conn.conn_id

    def lineage_dialect(self, hook: Any, conn: Any) -> str:
        """The OpenLineage SQL parser's dialect for source queries."""
        return str(hook.get_openlineage_database_dialect(conn))

    def lineage_default_schema(self, hook: Any, conn: Any) -> str | None:
        """The schema of a table named without one (PostgreSQL asks the server: ``current_schema``)."""
        return hook.get_openlineage_default_schema()

    # --- schema -----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def schema_lock(self, cursor: Any, table: str) -> Iterator[None]:
        """Serialise this task's CREATE ... IF NOT EXISTS of ``table`` with other tasks' (see postgres.py)."""
        yield

    def create_table(
        self, connection: Any, table: str, columns: str, then: Callable[[Any], None] | None = None
    ) -> None:
        """``CREATE TABLE IF NOT EXISTS table (columns)``, then ``then(cursor)`` if given (checks, added columns,
        indexes), both under the schema lock and committed together."""
        cursor = connection.cursor()
        try:
            with self.schema_lock(cursor, table):
                cursor.execute(f"CREATE TABLE IF NOT EXISTS {self.table_name(table)} ({columns})"
                               f"{self.table_options(cursor)}")
                self.make_text_exact(cursor, table)
                if then is not None:
                    then(cursor)
        finally:
            cursor.close()
        connection.commit()

    def table_options(self, cursor: Any) -> str:
        """What follows CREATE TABLE's column list: MySQL names the collation that compares text exactly."""
        return ""

    def make_text_exact(self, cursor: Any, table: str) -> None:
        """Make an existing table's text columns compare exactly as stored (MySQL converts a table an older
        version created in the database's case-insensitive collation); other engines already do."""

    def index_missing(self, cursor: Any, table: str, index: str) -> bool:
        """False when ``index`` of ``table`` exists (engines whose CREATE INDEX IF NOT EXISTS would wait)."""
        return True

    def create_index_sql(self, table: str, index: str, columns: Sequence[str]) -> str:
        return f"CREATE INDEX IF NOT EXISTS {self.quote(index)} ON {self.table_name(table)} ({', '.join(columns)})"

    def present_columns(self, cursor: Any, table: str) -> set[str]:
        cursor.execute(f"SELECT * FROM {self.table_name(table)} WHERE 1 = 0")
        names = {str(d[0]).lower() for d in cursor.description or ()}
        cursor.fetchall()
        return names

    # --- a source's copy (copies_sources) ----------------------------------------------------------------

    def create_copy_table(self, cursor: Any, name: str, columns: Sequence[str]) -> None:
        """A temporary table ``name`` of text ``columns`` on this session (named unqualified, it hides a table of
        that name for the session: temporary tables come first on every engine that copies)."""
        cursor.execute(f"CREATE TEMPORARY TABLE {name} ({', '.join(f'{c} {self.text_type}' for c in columns)})"
                       f"{self.table_options(cursor)}")

    def drop_copy_table(self, cursor: Any, name: str) -> None:
        """Drop the temporary table ``name`` of this session, never a table of the database by that name."""
        cursor.execute(f"DROP TABLE IF EXISTS temp.{name}")

    @contextlib.contextmanager
    def copying(self, cursor: Any, name: str, columns: Sequence[str]) -> Iterator[Callable[[list[Row]], None]]:
        """A function that appends rows to the copy table ``name``, usable until the block ends (one
        ``executemany`` of a prepared INSERT per call here; PostgreSQL keeps one COPY open)."""
        marks = ", ".join([self.placeholder] * len(columns))
        sql = f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({marks})"
        yield lambda rows: cursor.executemany(sql, rows)

    # --- writes -----------------------------------------------------------------------------------------

    def prepare_upserts(self, cursor: Any, table: str, column_types: Mapping[str, str]) -> None:
        """Make what :meth:`upsert` of ``table`` loads through on this session (Snowflake: a temporary stage and
        table). Called where the table is made, before any row is written: DDL may end a transaction."""

    def upsert(self, cursor: Any, table: str, columns: Sequence[str], key: Sequence[str], rows: list[Row]) -> None:
        """Insert ``rows`` (in ``columns`` order), replacing every non-key column of a row whose key exists."""
        if not rows:
            return
        marks = ", ".join([self.placeholder] * len(columns))
        sql = (f"INSERT INTO {self.table_name(table)} ({', '.join(columns)}) VALUES ({marks}) "
               f"{self.on_conflict_update(key, [c for c in columns if c not in key])}")
        cursor.executemany(sql, rows)

    def on_conflict_update(self, key: Sequence[str], updates: Sequence[str]) -> str:
        return (f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in updates))

    def insert_missing(self, cursor: Any, table: str, columns: Sequence[str], key: Sequence[str], row: Row) -> None:
        """Insert one row unless its key exists."""
        marks = ", ".join([self.placeholder] * len(columns))
        cursor.execute(
            f"INSERT INTO {self.table_name(table)} ({', '.join(columns)}) VALUES ({marks}) "
            f"ON CONFLICT ({', '.join(key)}) DO NOTHING",
            row,
        )

    def update_matching(self, cursor: Any, table: str, match: str, not_null: str,
                        groups: Sequence[tuple[Sequence[str], Sequence[str], list[Row]]]) -> None:
        """For each group ``(columns, constants, rows)``: every row whose ``match`` column equals a row's last
        value gets ``columns`` set to the row's other values and the
        ``constants`` (``"column = SQL"``) applied, among the rows whose ``not_null`` column is set."""
        p = self.placeholder
        for columns, constants, rows in groups:
            if rows:
                sets = ", ".join([*(f"{c} = {p}" for c in columns), *constants])
                cursor.executemany(
                    f"UPDATE {self.table_name(table)} SET {sets} WHERE {match} = {p} AND {not_null} IS NOT NULL", rows
                )


@contextlib.contextmanager
def committed(connection: Any) -> Iterator[Any]:
    """A cursor whose statements are committed together, or rolled back (and the error raised) when one fails."""
    cursor = connection.cursor()
    try:
        yield cursor
        connection.commit()
    except BaseException:
        with contextlib.suppress(Exception):
            connection.rollback()
        raise
    finally:
        cursor.close()


def one_per_key(rows: Sequence[Row], columns: Sequence[str], key: Sequence[str]) -> list[Row]:
    """``rows`` with one row per key: the last one given, at the place of the first (what a row-by-row upsert
    leaves behind). A set-based write (one INSERT ... SELECT, one MERGE) refuses to touch a row twice."""
    positions = [list(columns).index(c) for c in key]
    at: dict[tuple[Any, ...], int] = {}
    kept: list[Row] = []
    for row in rows:
        k = tuple(row[i] for i in positions)
        index = at.get(k)
        if index is None:
            at[k] = len(kept)
            kept.append(row)
        else:
            kept[index] = row
    return kept


def require_capabilities(engine: Engine, name: str) -> None:
    """ConfigurationError, before anything is opened, when ``engine`` (``name``: how the user knows it) lacks a
    capability a run relies on in its results table (:class:`Capability`): it would seem to work and then keep a
    dry run's rows, miscount the quota or lag behind its own answers."""
    missing = [capability.value for capability in Capability if capability not in engine.capabilities]
    if missing:
        raise ConfigurationError(
            f"The results table cannot live in {name}: its engine lacks {', '.join(missing)}, which a run relies on "
            "(a dry run rolls its staging back, the usage ledger counts each call by the rows its UPDATE changed, "
            f"answers are written back row by row). Keep the results in one of {engine_names()} "
            "(docs/warehouses.md); the source may stay where it is."
        )


def engine_names() -> str:
    return ", ".join(d.value for d in Dialect)
