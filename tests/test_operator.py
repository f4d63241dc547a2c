"""CheckWhatsappOperator: its arguments, both input kinds, the join key, XCom mode, stops. Real HTTP and
real databases; the task context is the only stand-in."""

from __future__ import annotations

import inspect
import re
from datetime import timedelta
from types import SimpleNamespace

import pytest

from airflow_provider_greenapi._compat import AirflowFailException
from airflow_provider_greenapi.emulator import FaultPlan
from airflow_provider_greenapi.errors import BulkCheckStopped
from airflow_provider_greenapi.operators.check_whatsapp import CheckWhatsappOperator
from tests.conftest import ID_INSTANCE
from tests.wire import assert_paced

pytestmark = pytest.mark.matrix  # the operator through the emulator into a warehouse, on every Airflow line


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
    ({"phone_numbers": ["1"], "wait_for_other_runs": -1}, "wait_for_other_runs must be"),
    ({"phone_numbers": ["1"], "wait_for_other_runs": None}, "wait_for_other_runs must be"),
    ({"phone_numbers": ["1"], "wait_for_other_runs": "an hour"}, "wait_for_other_runs must be"),
])
def test_misconfiguration_fails_at_parse_time(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CheckWhatsappOperator(task_id="check", **kwargs)


def test_wait_for_other_runs_takes_a_timedelta_or_seconds():
    assert CheckWhatsappOperator(task_id="a", phone_numbers=["1"]).wait_for_other_runs == timedelta(hours=1)
    assert CheckWhatsappOperator(task_id="b", phone_numbers=["1"], wait_for_other_runs=90).wait_for_other_runs \
        == timedelta(seconds=90)
    assert CheckWhatsappOperator(task_id="c", phone_numbers=["1"],
                                 wait_for_other_runs=timedelta(0)).wait_for_other_runs == timedelta(0)


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
    with pytest.raises(AirflowFailException, match="destination_conn_id"):
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
    assert (second["unchanged"], second["quota_spent"]) == (len(NUMBERS), 0)  # stored as they are: not rewritten
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
    with pytest.raises(AirflowFailException, match="3 numbers were checked and stored; 5 are left pending") as stop:
        operator.execute(context)
    assert isinstance(stop.value.__cause__, BulkCheckStopped)  # no retry: the quota is spent until next month
    assert ".." not in str(stop.value)
    pushed = context["ti"].xcom_push.call_args.kwargs
    assert pushed["key"] == "summary" and pushed["value"]["pending"] == 5


def test_request_pacing_can_be_overridden_per_task(greenapi_conn, emulator, context):
    """The emulator sees the task's pace (2/s, not the connection's 5/s) and one request at a time: with
    600 ms answers, the connection's 4 concurrent requests would overlap."""
    emulator.inject_faults(ID_INSTANCE, FaultPlan(latency_ms=600))
    operator = CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS[:6], requests_per_second=2,
                                     max_in_flight=1)
    operator.execute(context)
    checks = emulator.journal(ID_INSTANCE, "checkWhatsapp")
    assert len(checks) == 6
    assert_paced([e.arrived for e in checks], rate=2)
    assert emulator.max_in_flight(ID_INSTANCE) == 1


def test_a_destination_that_is_not_a_database_is_refused(greenapi_conn, context):
    operator = CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS, destination_conn_id="greenapi_default")
    with pytest.raises(AirflowFailException, match="not a SQL database"):
        operator.execute(context)


def test_an_unknown_connection_is_named(greenapi_conn, context):
    operator = CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS, destination_conn_id="no_such_db")
    with pytest.raises(AirflowFailException, match="no_such_db"):
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


# --- failures: at once when a retry cannot fix them, Airflow's retries otherwise ------------------------------

def test_a_wrong_token_fails_at_once_with_the_same_message(emulator, monkeypatch, context):
    from airflow_provider_greenapi.errors import GreenApiCredentialsError
    from tests.conftest import greenapi_connection

    monkeypatch.setenv("AIRFLOW_CONN_GREENAPI_DEFAULT", greenapi_connection(emulator, token="wrong-token"))
    with pytest.raises(AirflowFailException, match="apiTokenInstance") as failed:
        CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS).execute(context)
    assert isinstance(failed.value.__cause__, GreenApiCredentialsError)
    assert str(failed.value) == str(failed.value.__cause__)
    assert emulator.counters(ID_INSTANCE).count("checkWhatsapp") == 0


def test_a_missing_connection_fails_at_once_and_says_how_to_create_it(monkeypatch, context):
    monkeypatch.delenv("AIRFLOW_CONN_NOT_CREATED_YET", raising=False)
    operator = CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS, greenapi_conn_id="not_created_yet")
    with pytest.raises(AirflowFailException, match="'not_created_yet' is not defined: create it"):
        operator.execute(context)


@pytest.mark.parametrize("tls", [True, False], ids=["self-signed certificate", "plain HTTP addressed as https"])
def test_a_tls_failure_fails_at_once(monkeypatch, context, tls):
    from airflow_provider_greenapi.emulator import airflow_connection
    from airflow_provider_greenapi.errors import GreenApiTlsError
    from tests.conftest import TOKEN
    from tests.scripted_server import ScriptedServer

    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    with ScriptedServer(tls=tls) as server:
        url = server.url.replace("http://", "https://")
        monkeypatch.setenv("AIRFLOW_CONN_GREENAPI_DEFAULT", airflow_connection(url, ID_INSTANCE, TOKEN, max_retries=5))
        with pytest.raises(AirflowFailException, match="REQUESTS_CA_BUNDLE") as failed:
            CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS).execute(context)
        assert server.connections == 1  # one try, then the task fails without Airflow's retries
    assert isinstance(failed.value.__cause__, GreenApiTlsError)


def test_an_unknown_extra_fails_at_once_and_names_the_close_match(emulator, monkeypatch, context):
    from tests.conftest import greenapi_connection

    monkeypatch.setenv("AIRFLOW_CONN_GREENAPI_DEFAULT", greenapi_connection(emulator, request_per_second=1))
    with pytest.raises(AirflowFailException, match="did you mean 'requests_per_second'"):
        CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS).execute(context)
    assert emulator.counters(ID_INSTANCE).count("checkWhatsapp") == 0  # nothing sent at the default pace


@pytest.mark.parametrize("state", ["blocked", "notAuthorized", "yellowCard"])
def test_an_unusable_instance_fails_at_once(greenapi_conn, emulator, context, state):
    emulator.set_state(ID_INSTANCE, state)
    with pytest.raises(AirflowFailException, match=state) as failed:
        CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS).execute(context)
    assert isinstance(failed.value.__cause__, BulkCheckStopped)


def test_a_starting_instance_is_left_to_airflows_retries(greenapi_conn, emulator, context):
    emulator.set_state(ID_INSTANCE, "starting")
    with pytest.raises(BulkCheckStopped, match="starting"):
        CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS).execute(context)


def test_an_outage_is_left_to_airflows_retries(emulator, monkeypatch, context):
    from airflow_provider_greenapi.emulator import FaultPlan
    from airflow_provider_greenapi.errors import GreenApiTransientError
    from tests.conftest import greenapi_connection

    monkeypatch.setenv("AIRFLOW_CONN_GREENAPI_DEFAULT", greenapi_connection(emulator, max_retries=1))
    emulator.inject_faults(ID_INSTANCE, FaultPlan(methods=("getStateInstance",), error_rate=1.0, errors=("503",)))
    with pytest.raises(GreenApiTransientError, match="503"):
        CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS).execute(context)


def test_an_incompatible_results_table_fails_at_once(greenapi_conn, warehouse, emulator, context):
    connection = warehouse.connect()
    connection.cursor().execute("CREATE TABLE whatsapp_checks (id INTEGER, phone TEXT)")
    connection.commit()
    connection.close()
    operator = CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS, destination_conn_id="warehouse")
    with pytest.raises(AirflowFailException, match="lacks the columns"):
        operator.execute(context)
    assert emulator.counters(ID_INSTANCE).count("checkWhatsapp") == 0


def test_a_source_query_on_a_missing_table_fails_at_once(greenapi_conn, warehouse, context):
    operator = CheckWhatsappOperator(task_id="check", sql="SELECT phone FROM no_such_contacts",
                                     source_conn_id="warehouse", destination_conn_id="warehouse")
    with pytest.raises(AirflowFailException, match=r"(?i)no_such_contacts"):  # Snowflake says NO_SUCH_CONTACTS
        operator.execute(context)


def test_a_bad_templated_argument_fails_at_once(greenapi_conn, context):
    operator = CheckWhatsappOperator(task_id="check", phone_numbers="+1 212 555 0187")  # a string, not a list
    with pytest.raises(AirflowFailException, match="wrap a single number in a list"):
        operator.execute(context)


@pytest.mark.parametrize("operator", ["CheckWhatsappOperator", "GreenApiInstanceStateSensor"])
def test_every_parameter_has_a_param_line_that_airflows_docs_render(operator):
    """Airflow's docs tooling renders ``:param name:`` lines; a parameter added without one is missing there."""
    import airflow_provider_greenapi.operators.check_whatsapp as operators
    import airflow_provider_greenapi.sensors.instance_state as sensors

    cls = getattr(operators, operator, None) or getattr(sensors, operator)
    own = [name for name in inspect.signature(cls.__init__).parameters if name not in ("self", "kwargs")]
    documented = re.findall(r":param (\w+):", cls.__doc__)
    assert sorted(own) == sorted(documented)
