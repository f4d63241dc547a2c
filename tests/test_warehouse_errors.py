"""Warehouse errors a retry cannot fix fail the task at once, with a message that says what to do, before anything
is created; a frozen warehouse fails the task within its statement_timeout instead of hanging it. Through the
real operator, the real emulator and real engines (and Airflow's real retries for two of them)."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import threading
import time
from types import SimpleNamespace

import pytest

from airflow_provider_greenapi._compat import AirflowFailException
from airflow_provider_greenapi.errors import ConfigurationError, WarehouseTimeoutError
from airflow_provider_greenapi.operators.check_whatsapp import CheckWhatsappOperator
from airflow_provider_greenapi.warehouse import Dialect
from tests.airflow_cli import AIRFLOW, migrate, task_tries
from tests.conftest import ID_INSTANCE, greenapi_connection, make_warehouse

NUMBERS = [f"7900{i:07d}" for i in range(8)]
LONGEST = "t" * 63  # the longest table name check_table_name allows


@pytest.fixture
def context(mocker):
    return {"ti": mocker.MagicMock(), "dag_run": SimpleNamespace(run_id="manual__test")}


def seed_contacts(warehouse):
    connection = warehouse.connect()
    cursor = connection.cursor()
    cursor.execute("CREATE TABLE contacts (contact_id INTEGER, full_name TEXT, phone TEXT)")
    p = warehouse.placeholder
    cursor.executemany(f"INSERT INTO contacts VALUES ({p}, {p}, {p})", [(1, "Ann", NUMBERS[0]), (2, "Bo", NUMBERS[1])])
    connection.commit()
    connection.close()


def table_exists(warehouse, table: str) -> bool:
    try:
        warehouse.fetch_all(f"SELECT COUNT(*) FROM {table}")
    except Exception:
        return False
    return True


def index_names(warehouse, table: str) -> list[str]:
    if warehouse.engine == "postgres":
        return [r[0] for r in warehouse.fetch_all("SELECT indexname FROM pg_indexes WHERE tablename = %s", (table,))]
    if warehouse.engine == "mysql":
        return [r[0] for r in warehouse.fetch_all(
            "SELECT DISTINCT index_name FROM information_schema.statistics WHERE table_schema = DATABASE() "
            "AND table_name = %s", (table,))]
    return [r[1] for r in warehouse.fetch_all(f"PRAGMA index_list({table})")]  # sqlite


# --- 1. names too long for the engine --------------------------------------------------------------------------

def test_tables_named_at_the_length_limit_work_and_keep_their_indexes(greenapi_conn, any_warehouse, emulator,
                                                                      context):
    """63 characters: MariaDB refused the derived index name (64 at most) after creating the table, and
    PostgreSQL cut it to the table's own name, found "it" and created no queue index at all."""
    operator = CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS, destination_conn_id="warehouse",
                                     destination_table=LONGEST, usage_table="u" * 63,
                                     usage_history_table="h" * 63)
    summary = operator.execute(context)
    assert summary["quota_spent"] == len(NUMBERS)
    assert emulator.counters(ID_INSTANCE).count("checkWhatsapp") == len(NUMBERS)
    engine = any_warehouse.dialect.engine
    if engine.has_indexes:
        ours = sorted(n for n in index_names(any_warehouse, LONGEST) if n.endswith(("_work_idx", "_key_idx")))
        assert ours == sorted(engine.index_name(LONGEST, suffix) for suffix in ("work_idx", "key_idx"))
        assert engine.max_identifier_length is None or max(map(len, ours)) <= engine.max_identifier_length
    assert operator.execute(context)["quota_spent"] == 0  # a rerun finds its tables (and index) as they are


def test_index_names_fit_every_engine_and_keep_the_short_names_of_existing_tables():
    for dialect in Dialect:
        engine = dialect.engine
        assert engine.index_name("analytics.whatsapp_checks", "queue_idx") == "whatsapp_checks_queue_idx"
        long_name = engine.index_name("a" * 63, "queue_idx")
        assert long_name != "a" * 63 and long_name.endswith("_queue_idx")
        if engine.max_identifier_length is not None:
            assert len(long_name) <= engine.max_identifier_length
    engine = Dialect.POSTGRES.engine
    assert engine.index_name("a" * 63, "queue_idx") != engine.index_name("a" * 62 + "b", "queue_idx")


# --- 2. a usage table named like the results table --------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "argument"), [
    ({"usage_table": "whatsapp_checks"}, "usage_table"),
    ({"destination_table": "contacts_checked", "usage_history_table": "Contacts_Checked"}, "usage_history_table"),
    ({"usage_table": "greenapi_usage_runs"}, "usage_history_table"),
])
def test_a_usage_table_named_like_another_table_is_refused_at_parse_time(kwargs, argument):
    with pytest.raises(ConfigurationError, match=f"{argument}=.* each need a table of their own"):
        CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS, destination_conn_id="warehouse", **kwargs)


def test_a_rendered_results_table_named_like_the_ledger_fails_at_once_and_creates_nothing(
        greenapi_conn, warehouse, emulator, context):
    operator = CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS, destination_conn_id="warehouse",
                                     destination_table="{{ params.table }}")
    operator.destination_table = "greenapi_usage"  # as Airflow renders it
    with pytest.raises(AirflowFailException, match="usage_table='greenapi_usage' names the same table"):
        operator.execute(context)
    assert not table_exists(warehouse, "greenapi_usage")
    assert emulator.counters(ID_INSTANCE).count("checkWhatsapp") == 0


# --- 3. a SQLite file in a missing folder, 4. a DuckDB connection with a password --------------------------------

def test_a_sqlite_file_in_a_missing_folder_fails_at_once_naming_the_folder(greenapi_conn, tmp_path, monkeypatch,
                                                                          context):
    folder = tmp_path / "not_made_yet"
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "sqlite",
                                                             "host": str(folder / "results.db")}))
    operator = CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS, destination_conn_id="warehouse")
    with pytest.raises(AirflowFailException, match=f"folder '{folder}' does not exist: create the folder"):
        operator.execute(context)
    assert not folder.exists()


@pytest.mark.duckdb
def test_a_duckdb_connection_with_a_password_fails_at_once_without_repeating_it(greenapi_conn, tmp_path,
                                                                                 monkeypatch, context):
    pytest.importorskip("airflow.providers.duckdb")
    path = tmp_path / "results.duckdb"
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({"conn_type": "duckdb", "host": str(path),
                                                             "password": "md-secret-7731"}))
    operator = CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS, destination_conn_id="warehouse")
    with pytest.raises(AirflowFailException, match="Leave the password empty for a local DuckDB file") as failed:
        operator.execute(context)
    assert "md-secret-7731" not in str(failed.value) and not path.exists()


# --- 5. a source query naming a missing column ------------------------------------------------------------------

def test_a_source_query_naming_a_missing_column_fails_at_once_and_creates_nothing(greenapi_conn, any_warehouse,
                                                                                  emulator, context):
    seed_contacts(any_warehouse)
    operator = CheckWhatsappOperator(task_id="check", sql="SELECT contact_id, phne FROM contacts",
                                     source_conn_id="warehouse", key_column="contact_id",
                                     destination_conn_id="warehouse")
    with pytest.raises(AirflowFailException, match=r"(?i)source query failed: .*phne.*key_column='contact_id'"):
        operator.execute(context)
    assert not table_exists(any_warehouse, "whatsapp_checks")
    # the ledger's and the history's tables come first (the run takes the instance's turn before it reads its
    # source: see bulk_check), and the run's row says it stopped
    states = any_warehouse.fetch_all("SELECT state FROM greenapi_usage_runs")
    assert [row[0] for row in states] == ["stopped"]
    assert emulator.counters(ID_INSTANCE).count("checkWhatsapp") == 0


def test_a_phone_column_the_query_does_not_return_fails_at_once_naming_its_columns(greenapi_conn, any_warehouse,
                                                                                   context):
    seed_contacts(any_warehouse)
    operator = CheckWhatsappOperator(task_id="check", sql="SELECT contact_id, phone FROM contacts",
                                     source_conn_id="warehouse", phone_column="mobile",
                                     destination_conn_id="warehouse")
    with pytest.raises(AirflowFailException, match=r"no column 'mobile' .*its columns: contact_id, phone; "
                                                   r"phone_column='mobile'"):
        operator.execute(context)
    assert not table_exists(any_warehouse, "whatsapp_checks")


# --- 6. a frozen warehouse: statement_timeout --------------------------------------------------------------------

@pytest.mark.parametrize("value", [0, -1, "5 minutes"])
def test_a_statement_timeout_that_cannot_work_is_refused_at_parse_time(value):
    with pytest.raises(ValueError, match="statement_timeout must be"):
        CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS, statement_timeout=value)


LOCKS = {"postgres": ("LOCK TABLE whatsapp_checks IN ACCESS EXCLUSIVE MODE", None),
         "mysql": ("LOCK TABLES whatsapp_checks WRITE", "UNLOCK TABLES")}


@pytest.mark.parametrize("engine", [pytest.param("postgres", marks=pytest.mark.postgres),
                                    pytest.param("mysql", marks=pytest.mark.mysql)])
def test_a_table_locked_by_another_session_fails_the_task_within_its_statement_timeout(
        engine, greenapi_conn, tmp_path, request, monkeypatch, emulator, context):
    warehouse = make_warehouse(engine, tmp_path, request, monkeypatch)
    run = {"task_id": "check", "phone_numbers": NUMBERS, "destination_conn_id": "warehouse"}
    CheckWhatsappOperator(**run).execute(context)  # the tables exist
    holder = warehouse.connect()
    lock, unlock = LOCKS[engine]
    holder.cursor().execute(lock)  # held until the holder's transaction ends
    release = threading.Timer(60, lambda: holder.rollback() if unlock is None else holder.cursor().execute(unlock))
    release.start()  # so that a provider without a timeout waits 60 s, then succeeds: the test fails, not hangs
    started = time.monotonic()
    try:
        with pytest.raises(WarehouseTimeoutError, match=r"ran longer than statement_timeout \(2 s\) and was "
                                                        r"cancelled: .*another session holds a lock"):
            CheckWhatsappOperator(**run, statement_timeout=2).execute(context)
        elapsed = time.monotonic() - started
    finally:
        release.cancel()
        holder.close()
    assert elapsed < 20, elapsed
    assert CheckWhatsappOperator(**run, statement_timeout=2).execute(context)["quota_spent"] == 0  # released: it runs


# --- through Airflow: fails on its first try despite retries -----------------------------------------------------

PROBE_DAG = textwrap.dedent('''
    from datetime import timedelta

    import pendulum
    from airflow.sdk import DAG

    from airflow_provider_greenapi.operators.check_whatsapp import CheckWhatsappOperator

    with DAG("greenapi_warehouse_probe", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        CheckWhatsappOperator(task_id="check", sql="SELECT contact_id, phne FROM contacts",
                              source_conn_id="warehouse", destination_conn_id="warehouse",
                              retries=2, retry_delay=timedelta(seconds=1))
''')


@pytest.fixture(scope="module")
def probe_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-warehouse-errors")
    (home / "dags").mkdir()
    (home / "dags" / "greenapi_warehouse_probe.py").write_text(PROBE_DAG)
    env = {"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    migrate({**os.environ, **env})
    return env


@pytest.mark.slow
@pytest.mark.parametrize("case", [pytest.param("mysql", marks=pytest.mark.mysql), "missing_folder"])
def test_a_warehouse_error_no_retry_can_fix_fails_on_the_first_try_despite_retries(
        case, probe_home, emulator, tmp_path, request, monkeypatch):
    """MariaDB reports a missing column as an OperationalError, which Airflow retried; SQLite a missing folder
    as "unable to open database file", retried as well."""
    if case == "missing_folder":
        warehouse_uri = json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "no_such_folder" / "w.db")})
        expected = "does not exist: create the folder"
    else:
        warehouse = make_warehouse(case, tmp_path, request, monkeypatch)
        seed_contacts(warehouse)
        warehouse_uri, expected = warehouse.airflow_uri, "key_column=None"
    env = {**os.environ, **probe_home, "AIRFLOW_CONN_WAREHOUSE": warehouse_uri,
           "AIRFLOW_CONN_GREENAPI_DEFAULT": greenapi_connection(emulator)}
    result = subprocess.run([AIRFLOW, "dags", "test", "greenapi_warehouse_probe"], env=env, capture_output=True,
                            text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "DagRun failed" in output, output[-4000:]
    assert task_tries(env, "greenapi_warehouse_probe", "check") == ("failed", 1, []), output[-4000:]
    assert "AirflowFailException" in output and expected in output, output[-4000:]
