"""OpenLineage: the tables a check reads (its source query, parsed by OpenLineage's SQL parser) and writes (the
results table), named as the database's own operators name them."""

from __future__ import annotations

import json
import sqlite3
import sys
import uuid

import pytest
from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_greenapi.operators.check_whatsapp import CheckWhatsappOperator
from tests.conftest import engine_params, make_warehouse

pytest.importorskip("airflow.providers.openlineage")

# `make test-matrix` installs the openlineage extra on the lines in MATRIX_OPENLINEAGE (2.11 and 3.0: the
# OpenLineage provider's Airflow 2 and 3.0 paths); elsewhere this module skips there for want of it.
pytestmark = pytest.mark.matrix

NUMBERS = [f"7900{i:07d}" for i in range(3)]


def lineage(sql: str | None = None, destination_table: str = "whatsapp_checks", **kwargs):
    operator = CheckWhatsappOperator(task_id="check", sql=sql, source_conn_id="warehouse" if sql else None,
                                     destination_conn_id="warehouse", destination_table=destination_table,
                                     **kwargs)
    return operator.get_openlineage_facets_on_complete(None)


def names(datasets) -> set[tuple[str, str]]:
    return {(d.namespace, d.name) for d in datasets}


def naming(engine: str) -> tuple[str, str]:
    """(namespace, how a table named without a schema is qualified) of the test connection ``warehouse``,
    written out per engine from OpenLineage's naming spec and each hook's rules."""
    conn = BaseHook.get_connection("warehouse")
    return {
        "sqlite": (f"sqlite://{conn.host}", "main"),
        "postgres": (f"postgres://{conn.host}:{conn.port}", f"{conn.schema}.public"),
        "mysql": (f"mysql://{conn.host}:{conn.port}", conn.schema),
    }[engine]


def schema_qualified(engine: str, schema: str, table: str) -> str:
    """``schema.table`` as named in a query: PostgreSQL adds the connection's database."""
    return f"{BaseHook.get_connection('warehouse').schema}.{schema}.{table}" if engine == "postgres" \
        else f"{schema}.{table}"


@pytest.fixture(params=engine_params("sqlite", "postgres", "mysql"))
def engine(request, tmp_path, monkeypatch) -> str:
    """SQLite, PostgreSQL and MySQL connections named ``warehouse`` (no table needed: lineage only parses)."""
    make_warehouse(request.param, tmp_path, request, monkeypatch)
    return str(request.param)


QUERIES = {
    # the EXTRACT case: ``FROM created_at`` inside a function is no table
    "plain": ("SELECT EXTRACT(YEAR FROM created_at) AS y, phone FROM contacts", [(None, "contacts")]),
    "quoted": ('SELECT id, phone FROM "Contacts"', [(None, "Contacts")]),
    "joined": ("SELECT c.id, p.phone FROM contacts c JOIN crm.phones p ON p.contact_id = c.id",
               [(None, "contacts"), ("crm", "phones")]),
    "cte": ("WITH recent AS (SELECT id, phone FROM contacts WHERE id > 10) SELECT id, phone FROM recent",
            [(None, "contacts")]),
    "schema-qualified": ("SELECT id, phone FROM crm.contacts WHERE active", [("crm", "contacts")]),
    "sub-query": ("SELECT id, phone FROM contacts WHERE id IN (SELECT contact_id FROM optins)",
                  [(None, "contacts"), (None, "optins")]),
}


@pytest.mark.parametrize("case", QUERIES)
def test_the_inputs_are_the_tables_the_query_reads(engine, case):
    sql, tables = QUERIES[case]
    if engine == "mysql":
        sql = sql.replace('"', "`")  # MySQL quotes identifiers with backticks
    namespace, default_prefix = naming(engine)
    expected = {(namespace, schema_qualified(engine, schema, table) if schema else f"{default_prefix}.{table}")
                for schema, table in tables}
    found = lineage(sql)
    assert names(found.inputs) == expected
    assert found.job_facets["sql"].query == sql


def test_the_output_is_the_results_table(engine):
    namespace, default_prefix = naming(engine)
    (output,) = lineage("SELECT id, phone FROM contacts").outputs
    assert (output.namespace, output.name) == (namespace, f"{default_prefix}.whatsapp_checks")
    (output,) = lineage("SELECT id, phone FROM contacts", destination_table="marts.Checks").outputs
    assert (output.namespace, output.name) == (namespace, schema_qualified(engine, "marts", "Checks"))


def test_a_list_or_xcom_input_has_no_input_dataset(engine):
    found = lineage(phone_numbers=NUMBERS)
    assert found.inputs == [] and "sql" not in found.job_facets
    namespace, default_prefix = naming(engine)
    assert names(found.outputs) == {(namespace, f"{default_prefix}.whatsapp_checks")}


def test_without_a_destination_there_is_no_output_dataset(tmp_path, request, monkeypatch):
    make_warehouse("sqlite", tmp_path, request, monkeypatch)
    operator = CheckWhatsappOperator(task_id="check", sql="SELECT id, phone FROM contacts",
                                     source_conn_id="warehouse")
    found = operator.get_openlineage_facets_on_complete(None)
    assert [d.name for d in found.inputs] == ["main.contacts"] and found.outputs == []


def test_without_openlineage_installed_lineage_is_none(monkeypatch):
    monkeypatch.setitem(sys.modules, "airflow.providers.openlineage.extractors", None)
    operator = CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS)
    assert operator.get_openlineage_facets_on_complete(None) is None


# --- the same names as the database's own operators -------------------------------------------------------

SAME_AS_COMMON_SQL = [
    "SELECT id, phone FROM contacts_{t}",
    'SELECT id, phone FROM "Optins_{t}"',
    "SELECT c.id, p.phone FROM contacts_{t} c JOIN crm.phones_{t} p ON p.contact_id = c.id",
    "SELECT id, phone FROM crm.phones_{t}",
]
# Names of this test only ({t}): for a table named without a schema, common-sql's MySQL look-up reads the
# information schema of every database on the server, and would report the same name in other tests'
# databases too. No two names differ only in case: MySQL's and Snowflake's look-ups would match both.
TABLES = ["contacts_{t}", '"Optins_{t}"', "crm.phones_{t}", "checks_{t}"]


@pytest.mark.parametrize("engine", engine_params("postgres", "mysql", "snowflake"))
def test_names_match_what_sql_execute_query_operator_emits(engine, tmp_path, request, monkeypatch):
    """common-sql's SQLExecuteQueryOperator, on the same connection and SQL, reports the same datasets (it
    reads the tables' schemas from the database, so they exist here). SQLite and DuckDB hooks offer no
    OpenLineage database info: common-sql reports nothing for them (checked below)."""
    from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator

    warehouse = make_warehouse(engine, tmp_path, request, monkeypatch)
    quote, tag = ("`" if engine == "mysql" else '"'), uuid.uuid4().hex[:8]
    for table in TABLES:
        schema, _, _ = table.rpartition(".")
        if schema:
            warehouse.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        warehouse.execute(f"CREATE TABLE {table.format(t=tag).replace(chr(34), quote)} "
                          "(id INTEGER, phone TEXT, contact_id INTEGER)")
    for sql in SAME_AS_COMMON_SQL:
        sql = sql.format(t=tag).replace('"', quote)
        theirs = SQLExecuteQueryOperator(task_id="q", conn_id="warehouse", sql=sql).get_openlineage_facets_on_start()
        assert theirs.inputs, f"common-sql found no input in {sql!r}"
        assert names(lineage(sql).inputs) == names(theirs.inputs), sql
    insert = f"INSERT INTO checks_{tag} (phone) SELECT phone FROM contacts_{tag}"
    theirs = SQLExecuteQueryOperator(task_id="q", conn_id="warehouse", sql=insert).get_openlineage_facets_on_start()
    assert theirs.outputs
    assert names(lineage("SELECT 1", destination_table=f"checks_{tag}").outputs) == names(theirs.outputs)


def test_common_sql_reports_nothing_for_sqlite(tmp_path, request, monkeypatch):
    """Why SQLite's names come from its engine module: its hook has no OpenLineage database info."""
    from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator

    make_warehouse("sqlite", tmp_path, request, monkeypatch)
    theirs = SQLExecuteQueryOperator(task_id="q", conn_id="warehouse",
                                     sql="SELECT id FROM contacts").get_openlineage_facets_on_start()
    assert theirs.inputs == [] and lineage("SELECT id FROM contacts").inputs


@pytest.mark.duckdb
def test_duckdb_names_tables_in_its_file_and_main_schema(tmp_path, request, monkeypatch):
    make_warehouse("duckdb", tmp_path, request, monkeypatch)
    path = BaseHook.get_connection("warehouse").host
    found = lineage("SELECT c.id, p.phone FROM contacts c JOIN crm.phones p ON p.contact_id = c.id")
    assert names(found.inputs) == {(f"duckdb://{path}", "main.contacts"), (f"duckdb://{path}", "crm.phones")}
    assert names(found.outputs) == {(f"duckdb://{path}", "main.whatsapp_checks")}


# --- the real path: Airflow's CLI, the OpenLineage listener, its file transport ----------------------------

LINEAGE_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_greenapi.operators.check_whatsapp import CheckWhatsappOperator

with DAG("greenapi_lineage", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    CheckWhatsappOperator(
        task_id="check", source_conn_id="warehouse_default", destination_conn_id="warehouse_default",
        sql="WITH active AS (SELECT contact_id FROM contacts WHERE active) "
            "SELECT a.contact_id, p.phone FROM active a JOIN phones p ON p.contact_id = a.contact_id",
        phone_column="phone", key_column="contact_id", destination_table="whatsapp_checks")
"""


@pytest.mark.slow
def test_the_openlineage_listener_emits_the_datasets(tmp_path, emulator):
    """``airflow dags test`` with OpenLineage's own listener writing its events to a file: the task's
    COMPLETE event names both tables the source query reads (through a CTE and a join) and the results
    table."""
    from tests.airflow_cli import example_dags_home
    from tests.test_example_dags import dags_test

    warehouse = tmp_path / "warehouse.db"
    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE contacts (contact_id INTEGER PRIMARY KEY, active BOOLEAN)")
        db.execute("INSERT INTO contacts VALUES (1, 1)")
        db.execute("CREATE TABLE phones (contact_id INTEGER, phone TEXT)")
        db.execute("INSERT INTO phones VALUES (1, '+1 212 555 0001')")
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "greenapi_lineage.py").write_text(LINEAGE_DAG)
    events = tmp_path / "openlineage.jsonl"
    env = {**example_dags_home(tmp_path / "home"),
           "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags"),
           "AIRFLOW_CONN_GREENAPI_DEFAULT": emulator.airflow_connection(),
           "AIRFLOW_CONN_WAREHOUSE_DEFAULT": json.dumps({"conn_type": "sqlite", "host": str(warehouse)}),
           "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(events),
                                                          "append": True})}
    dags_test(env, "greenapi_lineage")
    emitted = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    (complete,) = [e for e in emitted if e["eventType"] == "COMPLETE" and e["job"]["name"] == "greenapi_lineage.check"]
    namespace = f"sqlite://{warehouse}"
    assert {(d["namespace"], d["name"]) for d in complete["inputs"]} == {(namespace, "main.contacts"),
                                                                         (namespace, "main.phones")}
    assert {(d["namespace"], d["name"]) for d in complete["outputs"]} == {(namespace, "main.whatsapp_checks")}
