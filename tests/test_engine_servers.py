"""The test servers of the warehouse engines work through the official Airflow hooks: a private MariaDB for the
MySqlHook, fakesnow over TLS for the stock SnowflakeHook, a DuckDB file for the DuckDBHook."""

from __future__ import annotations

import pytest

from tests.snowflake_server import run_with_timeout

# --- MariaDB ------------------------------------------------------------------------------------------------


@pytest.mark.mysql
def test_the_private_mariadb_serves_the_mysql_hook(mariadb, monkeypatch):
    from airflow.providers.common.compat.sdk import BaseHook

    name = mariadb.create_database()
    monkeypatch.setenv("AIRFLOW_CONN_MARIADB_PROBE", mariadb.airflow_conn(name))
    hook = BaseHook.get_hook("mariadb_probe")
    assert type(hook).__name__ == "MySqlHook" and hook.dialect_name == "mysql"
    hook.run("CREATE TABLE t (k VARCHAR(32) PRIMARY KEY, v INT)")
    hook.run("INSERT INTO t VALUES (%s, %s) ON DUPLICATE KEY UPDATE v = VALUES(v)", parameters=("a", 1))
    hook.run("INSERT INTO t VALUES (%s, %s) ON DUPLICATE KEY UPDATE v = VALUES(v)", parameters=("a", 2))
    assert list(hook.get_records("SELECT k, v FROM t")) == [("a", 2)]
    assert list(hook.get_records("SELECT DATABASE()")) == [(name,)]


@pytest.mark.mysql
def test_committed_rows_survive_a_killed_mariadb(mariadb_cluster):
    server = mariadb_cluster.server
    name = server.create_database()
    db = server.connect(name)
    db.cursor().execute("CREATE TABLE t (k INT PRIMARY KEY)")
    db.cursor().execute("INSERT INTO t VALUES (1)")
    db.commit()
    db.close()
    mariadb_cluster.stop()  # SIGKILL, as a crash would
    mariadb_cluster.restart()
    db = server.connect(name)
    cursor = db.cursor()
    cursor.execute("SELECT k FROM t")
    assert cursor.fetchall() == ((1,),)
    db.close()


@pytest.mark.mysql
def test_each_test_database_is_fresh(mariadb):
    first, second = mariadb.create_database(), mariadb.create_database()
    assert first != second
    db = mariadb.connect(second)
    cursor = db.cursor()
    cursor.execute("SHOW TABLES")
    assert cursor.fetchall() == ()
    db.close()


# --- fakesnow (Snowflake) -----------------------------------------------------------------------------------


@pytest.fixture
def snowflake_hook(fakesnow, monkeypatch):
    from airflow.providers.common.compat.sdk import BaseHook

    monkeypatch.setenv("AIRFLOW_CONN_SNOWFLAKE_PROBE", fakesnow.airflow_conn(fakesnow.new_database()))
    hook = BaseHook.get_hook("snowflake_probe")
    assert type(hook).__name__ == "SnowflakeHook"  # the stock hook of apache-airflow-providers-snowflake
    return hook


def guarded(call, what):
    return run_with_timeout(call, timeout=60, what=what)


@pytest.mark.snowflake
def test_the_stock_snowflake_hook_runs_select_ddl_insert_merge(snowflake_hook):
    hook = snowflake_hook
    assert guarded(lambda: hook.get_records("SELECT 1, CURRENT_DATABASE()"), "SELECT")[0][0] == 1
    guarded(lambda: hook.run("CREATE TABLE results (k VARCHAR PRIMARY KEY, v INTEGER, b BOOLEAN)"), "CREATE")
    guarded(lambda: hook.run("INSERT INTO results (k, v, b) VALUES (%s, %s, %s)", parameters=("a", 1, True)),
            "INSERT with %s")
    merge = ("MERGE INTO results USING (SELECT %s AS k, %s AS v) s ON results.k = s.k "
             "WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT (k, v) VALUES (s.k, s.v)")
    guarded(lambda: hook.run(merge, parameters=("a", 2)), "MERGE (update)")
    guarded(lambda: hook.run(merge, parameters=("b", 3)), "MERGE (insert)")
    rows = guarded(lambda: hook.get_records("SELECT k, v, b FROM results ORDER BY k"), "SELECT back")
    assert [tuple(r) for r in rows] == [("a", 2, True), ("b", 3, None)]


@pytest.mark.snowflake
def test_a_batched_merge_from_a_values_list(snowflake_hook):
    """The form the warehouse layer can use for one write statement per chunk (see the notes)."""
    hook = snowflake_hook
    guarded(lambda: hook.run("CREATE TABLE results (k VARCHAR, v INTEGER)"), "CREATE")
    rows = [(f"k{i}", i) for i in range(200)]
    values = ", ".join(["(%s, %s)"] * len(rows))
    merge = (f"MERGE INTO results USING (SELECT column1 AS k, column2 AS v FROM VALUES {values}) s "
             "ON results.k = s.k WHEN MATCHED THEN UPDATE SET v = s.v "
             "WHEN NOT MATCHED THEN INSERT (k, v) VALUES (s.k, s.v)")
    flat = [x for row in rows for x in row]
    guarded(lambda: hook.run(merge, parameters=flat), "MERGE from VALUES")
    guarded(lambda: hook.run(merge, parameters=flat), "the same MERGE again")
    assert guarded(lambda: hook.get_records("SELECT COUNT(*), SUM(v) FROM results"), "count") == [(200, 19900)]


@pytest.mark.snowflake
def test_a_transaction_commits_or_rolls_back(snowflake_hook):
    hook = snowflake_hook
    guarded(lambda: hook.run("CREATE TABLE t (k INTEGER)"), "CREATE")
    guarded(lambda: hook.run(["BEGIN", "INSERT INTO t VALUES (1)", "ROLLBACK"]), "rolled back")
    guarded(lambda: hook.run(["BEGIN", "INSERT INTO t VALUES (2)", "COMMIT"]), "committed")
    connection = guarded(hook.get_conn, "login")
    try:
        connection.autocommit(False)
        cursor = connection.cursor()
        guarded(lambda: cursor.execute("INSERT INTO t VALUES (3)"), "INSERT in a transaction")
        connection.rollback()
        guarded(lambda: cursor.execute("INSERT INTO t VALUES (4)"), "INSERT in a transaction")
        connection.commit()
    finally:
        connection.close()
    assert guarded(lambda: hook.get_records("SELECT k FROM t ORDER BY k"), "SELECT") == [(2,), (4,)]


@pytest.mark.snowflake
def test_every_login_sees_the_same_database(snowflake_hook):
    from airflow.providers.common.compat.sdk import BaseHook

    guarded(lambda: snowflake_hook.run("CREATE TABLE shared (k INTEGER)"), "CREATE")
    guarded(lambda: snowflake_hook.run("INSERT INTO shared VALUES (7)"), "INSERT")
    other = BaseHook.get_hook("snowflake_probe")
    assert guarded(lambda: other.get_records("SELECT k FROM shared"), "SELECT") == [(7,)]


def test_run_with_timeout_gives_up_on_a_stuck_call():
    import threading

    never = threading.Event()
    with pytest.raises(AssertionError, match="no answer from fakesnow within"):
        run_with_timeout(never.wait, timeout=0.2)
    assert run_with_timeout(lambda: 42, timeout=5) == 42
    with pytest.raises(ZeroDivisionError):
        run_with_timeout(lambda: 1 / 0, timeout=5)


# --- the warehouse fixtures of conftest.py ------------------------------------------------------------------


def test_any_warehouse_is_fresh_and_reached_by_its_airflow_hook(any_warehouse):
    from airflow.providers.common.compat.sdk import BaseHook

    w = any_warehouse
    w.execute("CREATE TABLE probe (k VARCHAR(16) PRIMARY KEY, v INTEGER)")
    w.execute(f"INSERT INTO probe (k, v) VALUES ({w.placeholder}, {w.placeholder})", ("a", 1))
    assert w.fetch_all("SELECT k, v FROM probe") == [("a", 1)]
    hook = BaseHook.get_hook(w.conn_id)
    expected = {"sqlite": "SqliteHook", "postgres": "PostgresHook", "duckdb": "DuckDBHook", "mysql": "MySqlHook",
                "snowflake": "SnowflakeHook"}[w.engine]
    assert type(hook).__name__ == expected
    rows = run_with_timeout(lambda: hook.get_records("SELECT k, v FROM probe"), 60, "the hook's SELECT")
    assert [tuple(r) for r in rows] == [("a", 1)]


def test_the_default_warehouse_fixture_stays_on_sqlite_and_postgres(warehouse):
    assert warehouse.engine in ("sqlite", "postgres")
    assert warehouse.dialect.value == warehouse.engine
