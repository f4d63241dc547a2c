"""Each engine's bulk write path (Engine.upsert), on the real engines: 20,000 rows of inserts and updates mixed,
NULLs, timestamps, booleans, unicode and the values a COPY or a multi-row literal could break (quotes,
backslashes, tabs, newlines, COPY's NULL marker); the same table a row-by-row upsert would leave, each engine's
own path taken (a handful of statements, no statement per row), and nothing kept by a rollback."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_greenapi.warehouse import Dialect

COLUMNS = ("key_a", "key_b", "body", "flag", "seen_at", "note")
KEY = ("key_a", "key_b")
TABLE = "bulk_rows"
NASTY = ["O'Brien", 'say "hi"', "back\\slash", "\\", "tab\there", "new\nline", "cr\r\nlf", "\\N", "NULL", "",
         "%s", "?", ":1", "{}", "a,b;c", "\\.", " spaced ", "Ünïcødé 😀 中文 \u0440\u0443", "\x7f", "end\\"]
T0 = datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=timezone.utc)


def size_of(engine: str) -> int:
    return 5_000 if engine == "snowflake" else 20_000  # fakesnow: each write is a Parquet file and a MERGE


def row(i: int, version: int) -> tuple[Any, ...]:
    """Row ``i`` as written by write ``version``: every kind of value, NULLs in every nullable column."""
    nasty = NASTY[(i + version) % len(NASTY)]
    return (
        f"{i:06d}", "k'\\\t" if i % 5 == 0 else "",  # keys: a quote, a backslash and a tab in some
        None if i % 7 == 0 else f"{nasty} #{i} v{version}",
        None if i % 11 == 0 else (i + version) % 2 == 0,
        None if i % 13 == 0 else T0 + timedelta(seconds=i, microseconds=version),
        nasty if i % 3 else None,
    )


def create(warehouse, prepared: bool = True) -> tuple[Any, Any]:
    """The table, made as the results store makes its own: ``prepared`` for bulk upserts (Snowflake's load table
    and stage; nothing on the other engines)."""
    engine = warehouse.dialect.engine
    connection = warehouse.provider_connect()
    types = {"key_a": engine.key_text_type(20), "key_b": engine.key_text_type(20), "body": engine.text_type,
             "flag": engine.boolean_type, "seen_at": engine.timestamp_type, "note": engine.text_type}
    columns = ", ".join(f"{c} {t}{' NOT NULL' if c in KEY else ''}" for c, t in types.items())
    engine.create_table(connection, TABLE, f"{columns}, PRIMARY KEY (key_a, key_b)",
                        then=(lambda cursor: engine.prepare_upserts(cursor, TABLE, types)) if prepared else None)
    return engine, connection


def upsert(engine, connection, rows: list[tuple[Any, ...]], commit: bool = True) -> list[tuple[str, str]]:
    """Write ``rows`` through the engine (timestamps as the store converts them); the calls the cursor saw."""
    cursor = _Recording(connection.cursor())
    engine.upsert(cursor, TABLE, COLUMNS, KEY, [(*r[:4], engine.to_db_time(r[4]), r[5]) for r in rows])
    cursor.close()
    if commit:
        connection.commit()
    return cursor.calls


def stored(engine, connection) -> dict[tuple[str, str], tuple[Any, ...]]:
    cursor = connection.cursor()
    # fakesnow's server reads a NULL timestamp back as 1970-01-01 (IS NULL is right): ask the database
    cursor.execute(f"SELECT {', '.join(COLUMNS)}, CASE WHEN seen_at IS NULL THEN 1 ELSE 0 END FROM {TABLE}")
    found = {(r[0], r[1]): (r[0], r[1], r[2], None if r[3] is None else bool(r[3]),
                            None if r[6] else engine.from_db_time(r[4]), r[5])
             for r in cursor.fetchall()}
    cursor.close()
    connection.commit()
    return found


class _Recording:
    """A cursor that records each call that sends SQL: (method, first word of the statement)."""

    def __init__(self, cursor: Any) -> None:
        self._cursor, self.calls = cursor, []

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._cursor, name)
        if name not in ("execute", "executemany", "copy", "insert_from"):
            return found

        def call(sql: str, *args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, (sql if name != "insert_from" else args[1]).split()[0].upper()))
            return found(sql, *args, **kwargs)

        return call


# Statements a 20,000-row write may send, per engine, at most (the old paths: executemany of a row per statement,
# or a statement per 1,000 rows on DuckDB); SQLite's own path is one executemany of one prepared statement in C.
# Snowflake: a COPY INTO its load table, then one MERGE.
MOST_WRITES = {"postgres": 4, "duckdb": 1, "mysql": 8, "snowflake": 2, "sqlite": 1}


def test_a_bulk_write_of_inserts_and_updates_mixed_leaves_what_row_by_row_writes_would(any_warehouse):
    engine, connection = create(any_warehouse)
    n = size_of(any_warehouse.engine)
    try:
        first = [row(i, 1) for i in range(n)]
        calls = upsert(engine, connection, first)
        expected = {(r[0], r[1]): r for r in first}
        assert stored(engine, connection) == expected
        writes = [c for c in calls if c[1] in ("INSERT", "MERGE", "COPY") or c[0] != "execute"]
        assert 1 <= len(writes) <= MOST_WRITES[any_warehouse.engine], calls
        if any_warehouse.engine != "sqlite":
            assert not any(method == "executemany" for method, _ in calls), calls

        # half updates, half inserts; one key given twice (the last one wins); in two calls before one commit
        second = [row(i, 2) for i in range(n // 2, n + n // 2)]
        second.append(row(n, 3))
        second.append(row(n // 2, 6))  # a key of the first call written again by the second, in one transaction
        upsert(engine, connection, second[: n // 3], commit=False)
        upsert(engine, connection, second[n // 3 :])
        expected.update({(r[0], r[1]): r for r in second})
        assert stored(engine, connection) == expected
        assert len(expected) == n + n // 2

        upsert(engine, connection, [row(i, 4) for i in range(0, 2 * n, 2)], commit=False)
        connection.rollback()  # nothing of an uncommitted write stays; the next write still works
        assert stored(engine, connection) == expected
        upsert(engine, connection, [row(0, 5)] * 60)
        expected[(row(0, 5)[0], row(0, 5)[1])] = row(0, 5)
        assert stored(engine, connection) == expected
    finally:
        connection.close()


@pytest.mark.snowflake
def test_snowflake_table_not_prepared_for_bulk_loads_is_merged_from_values_lists(tmp_path, request, monkeypatch):
    from tests.conftest import make_warehouse

    warehouse = make_warehouse("snowflake", tmp_path, request, monkeypatch)
    engine, connection = create(warehouse, prepared=False)
    try:
        rows = [row(i, 1) for i in range(300)]
        calls = upsert(engine, connection, rows)
        assert calls == [("execute", "MERGE")]  # no stage, no load table: the rows in the statement
        assert stored(engine, connection) == {(r[0], r[1]): r for r in rows}
    finally:
        connection.close()


@pytest.mark.duckdb
def test_duckdb_without_pyarrow_falls_back_to_multi_row_inserts(tmp_path, request, monkeypatch):
    from tests.conftest import make_warehouse

    warehouse = make_warehouse("duckdb", tmp_path, request, monkeypatch)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
    engine, connection = create(warehouse)
    try:
        rows = [row(i, 1) for i in range(2_500)]
        calls = upsert(engine, connection, rows)
        assert [c for c in calls if c[1] == "INSERT"] == [("execute", "INSERT")] * 3  # 1,000 rows a statement
        assert stored(engine, connection) == {(r[0], r[1]): r for r in rows}
    finally:
        connection.close()


def test_every_engine_declares_its_write_path():
    paths = {d: d.engine.write_path for d in Dialect}
    assert len(set(paths.values())) == len(paths)  # each its own, none left at the generic one's text


# A source's copy (connections._changed_through_a_copy): text that COPY's text format must escape, NULL, and a
# batch of plain text (written at once), on each driver the postgres provider may hand out.
COPY_ROWS = [("tab\tkey", "v\t1"), ("nl\n", "v\r\n"), ("back\\N", "\\."), ("null", None), ("ключ", "значение"),
             ("end", "\\")]
PLAIN_ROWS = [(str(i), f"7900{i:07d}") for i in range(2000)] + [("no phone", None)]


@pytest.mark.postgres
@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_postgres_copies_a_source_through_copy_on_either_driver(postgres, driver):
    module = pytest.importorskip(driver)  # psycopg2: the provider's driver under SQLAlchemy 1.4 (Airflow 2.11)
    connection = module.connect(host=postgres.host, port=postgres.port, user=postgres.user,
                                dbname=postgres.create_database())
    engine, columns = Dialect.POSTGRES.engine, ("source_key", "input_value")
    try:
        cursor = connection.cursor()
        engine.create_copy_table(cursor, "greenapi_source_copy", columns)
        with engine.copying(cursor, "greenapi_source_copy", columns) as copy:
            copy(PLAIN_ROWS)
            copy(COPY_ROWS)
        cursor.execute("SELECT source_key, input_value FROM greenapi_source_copy")
        assert sorted(cursor.fetchall(), key=repr) == sorted(PLAIN_ROWS + COPY_ROWS, key=repr)
    finally:
        connection.close()
