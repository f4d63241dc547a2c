"""CheckWhatsappOperator: its arguments, both input kinds, the join key, XCom mode, stops. Real HTTP and
real databases; the task context is the only stand-in."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from airflow_provider_greenapi.checker import BulkCheckStopped
from airflow_provider_greenapi.operators.check_whatsapp import CheckWhatsappOperator
from tests.conftest import ID_INSTANCE


@pytest.fixture
def warehouse(any_warehouse):
    """Every test here runs on all five engines (conftest.any_warehouse)."""
    return any_warehouse


NUMBERS = [f"7900{i:07d}" for i in range(8)]


@pytest.fixture
def context(mocker):
    return {"ti": mocker.MagicMock(), "dag_run": SimpleNamespace(run_id="manual__test")}


def pushed_results(context):
    (call,) = [c for c in context["ti"].xcom_push.call_args_list if c.kwargs["key"] == "results"]
    return call.kwargs["value"]


def seed_contacts(warehouse, rows):
    connection = warehouse.connect()
    cursor = connection.cursor()
    cursor.execute("CREATE TABLE contacts (contact_id INTEGER, full_name TEXT, phone TEXT)")
    placeholder = warehouse.dialect.placeholder
    cursor.executemany(f"INSERT INTO contacts VALUES ({placeholder}, {placeholder}, {placeholder})", rows)
    connection.commit()
    connection.close()


def fetch(warehouse, sql):
    return warehouse.fetch_all(sql)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "exactly one source"),
    ({"phone_numbers": ["1"], "sql": "SELECT 1", "source_conn_id": "w"}, "exactly one source"),
    ({"sql": "SELECT phone FROM contacts"}, "needs source_conn_id"),
    ({"phone_numbers": ["1"], "key_column": "id"}, "only apply to a sql source"),
    ({"phone_numbers": ["1"], "destination_table": "t"}, "needs destination_conn_id"),
    ({"phone_numbers": ["1"], "destination_conn_id": "w", "destination_table": "x; DROP TABLE y"},
     "plain identifier"),
    ({"phone_numbers": ["1"], "default_region": "XX"}, "region"),
    ({"phone_numbers": ["1"], "number_rules": ["no_such_rule"]}, "Unknown number rule"),
    ({"phone_numbers": ["1"], "max_age": "a week"}, "max_age must be"),
    ({"phone_numbers": ["1"], "state_poll_interval": 0}, "state_poll_interval must be"),
])
def test_misconfiguration_fails_at_parse_time(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CheckWhatsappOperator(task_id="check", **kwargs)


def test_numbers_from_a_list_come_back_in_the_xcom(greenapi_conn, emulator, context):
    operator = CheckWhatsappOperator(task_id="check", phone_numbers=[*NUMBERS, "+7 900 000-00-01", "oops"])
    summary = operator.execute(context)
    assert (summary["inputs"], summary["duplicates"], summary["invalid"]) == (10, 1, 1)
    assert summary["exists"] + summary["not_exists"] == len(NUMBERS)
    assert "results" not in summary  # per-number rows go to their own XCom key, not the return value
    assert summary["destination_table"] is None  # no warehouse table: the results live only in the XCom
    results = {r["phone_number"]: r for r in pushed_results(context)}
    assert results["oops"]["status"] == "invalid"
    assert isinstance(results[NUMBERS[0]]["exists_whatsapp"], bool)
    assert emulator.counters(ID_INSTANCE).count("checkWhatsapp") == len(NUMBERS)


def test_a_dict_of_key_to_number_keeps_the_keys(greenapi_conn, context):
    operator = CheckWhatsappOperator(task_id="check", phone_numbers={"c1": NUMBERS[0], "c2": NUMBERS[0]})
    summary = operator.execute(context)
    assert sorted(r["source_key"] for r in pushed_results(context)) == ["c1", "c2"]
    assert summary["numbers_sent"] == 1


def test_too_many_numbers_for_an_xcom_are_refused(greenapi_conn, emulator, context):
    operator = CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS, max_xcom_results=3)
    with pytest.raises(ValueError, match="destination_conn_id"):
        operator.execute(context)
    assert emulator.counters(ID_INSTANCE).count("checkWhatsapp") == 0


def test_a_source_table_with_a_join_key_into_a_warehouse_table(greenapi_conn, warehouse, context):
    seed_contacts(warehouse, [(1, "Ann", NUMBERS[0]), (2, "Bob", NUMBERS[1]), (3, "Bob's twin", NUMBERS[1]),
                              (4, "Nobody", None), (5, "Typo", "12-34")])
    operator = CheckWhatsappOperator(
        task_id="check", sql="SELECT contact_id, full_name, phone FROM contacts", source_conn_id="warehouse",
        phone_column="phone", key_column="contact_id", destination_conn_id="warehouse", chunk_size=2,
    )
    summary = operator.execute(context)
    assert (summary["inputs"], summary["duplicates"], summary["invalid"], summary["distinct_numbers"],
            summary["numbers_sent"]) == (5, 1, 2, 2, 2)  # Bob's twin shares Bob's number: checked once
    assert not [c for c in context["ti"].xcom_push.call_args_list if c.kwargs["key"] == "results"]
    text = "CHAR" if warehouse.engine == "mysql" else "TEXT"
    joined = fetch(warehouse, "SELECT c.full_name, w.status FROM contacts c JOIN whatsapp_checks w "
                              f"ON w.source_key = CAST(c.contact_id AS {text}) ORDER BY c.contact_id")
    assert [name for name, _ in joined] == ["Ann", "Bob", "Bob's twin", "Nobody", "Typo"]
    statuses = dict(joined)
    assert statuses["Nobody"] == "invalid" and statuses["Typo"] == "invalid"
    assert statuses["Bob"] == statuses["Bob's twin"] in ("exists", "not_exists")
    run_ids = fetch(warehouse, "SELECT DISTINCT run_id, instance_id FROM whatsapp_checks")
    assert run_ids == [("manual__test", ID_INSTANCE)]


def test_rerun_is_idempotent_and_spends_nothing(greenapi_conn, warehouse, emulator, context):
    seed_contacts(warehouse, [(i, f"n{i}", number) for i, number in enumerate(NUMBERS)])
    kwargs = {"task_id": "check", "sql": "SELECT phone FROM contacts", "source_conn_id": "warehouse",
              "destination_conn_id": "warehouse", "destination_table": "wa_results"}
    CheckWhatsappOperator(**kwargs).execute(context)
    second = CheckWhatsappOperator(**kwargs).execute(context)
    assert (second["fresh"], second["quota_spent"]) == (len(NUMBERS), 0)
    assert fetch(warehouse, "SELECT COUNT(*) FROM wa_results") == [(len(NUMBERS),)]
    assert fetch(warehouse, "SELECT calls FROM greenapi_usage") == [(len(NUMBERS),)]
    assert emulator.counters(ID_INSTANCE).count("checkWhatsapp") == len(NUMBERS)


def test_a_large_source_is_streamed_in_chunks(greenapi_conn, warehouse, context):
    seed_contacts(warehouse, [(i, "x", f"7901{i % 3000:07d}") for i in range(6000)])
    operator = CheckWhatsappOperator(
        task_id="check", sql="SELECT phone FROM contacts", source_conn_id="warehouse",
        destination_conn_id="warehouse", dry_run=True, chunk_size=500,
    )
    summary = operator.execute(context)
    assert (summary["inputs"], summary["duplicates"], summary["distinct_numbers"]) == (6000, 3000, 3000)
    assert summary["pending"] == 3000 and summary["dry_run"] is True


def test_quota_exhausted_mid_run_fails_the_task_with_the_summary(greenapi_conn, warehouse, emulator, context):
    emulator.set_quota_used(ID_INSTANCE, 30000 - 3)
    operator = CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS, destination_conn_id="warehouse")
    with pytest.raises(BulkCheckStopped, match="3 numbers were checked and stored; 5 are left pending") as stop:
        operator.execute(context)
    assert ".." not in str(stop.value)
    pushed = context["ti"].xcom_push.call_args.kwargs
    assert pushed["key"] == "summary" and pushed["value"]["pending"] == 5


def test_request_pacing_can_be_overridden_per_task(greenapi_conn, mocker, context):
    operator = CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS[:1], requests_per_second=2,
                                     max_in_flight=1)
    from airflow_provider_greenapi.hooks.greenapi import GreenApiHook

    spy = mocker.spy(GreenApiHook, "get_client")
    operator.execute(context)
    assert spy.call_args.kwargs == {"requests_per_second": 2, "max_in_flight": 1}


def test_a_destination_that_is_not_a_database_is_refused(greenapi_conn, context):
    operator = CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS, destination_conn_id="greenapi_default")
    with pytest.raises(ValueError, match="not a SQL database"):
        operator.execute(context)


def test_an_unknown_connection_is_named(greenapi_conn, context):
    operator = CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS, destination_conn_id="no_such_db")
    with pytest.raises(ValueError, match="no_such_db"):
        operator.execute(context)


def test_a_postgres_source_streams_through_a_server_side_cursor(warehouse):
    from airflow_provider_greenapi.warehouse import open_warehouse

    source = open_warehouse("warehouse", "source")
    engine = source.dialect.engine
    connection = engine.source_connection(source.hook)
    try:
        cursor = engine.source_cursor(source.hook, connection)()
        named = getattr(cursor, "name", None) is not None  # psycopg's named cursors live on the server
        assert named is (warehouse.dialect.value == "postgres")
    finally:
        connection.close()
