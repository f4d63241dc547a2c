"""Every row of the contract's error tables maps to the right exception and retry decision."""

from __future__ import annotations

import json

import pytest

from airflow_provider_greenapi import errors as e

QUOTA_BODY = json.dumps({"invokeStatus": {
    "method": "checkwhatsapp", "used": 100, "total": 100, "status": "QUOTE_EXCEEDED",
    "description": "Monthly quota has been exceeded. Please go to your personal account and change the "
                   "tariff to business https://console.green-api.com"}})

# (status, body, exception class, retried?, stops the run?)
CONTRACT_ROWS = [
    (400, '{"message": "bad phone number, valid 11 or 12 digits"}', e.GreenApiInvalidNumberError, False, False),
    (400, "bad phone number, valid from 11 to 16 digits", e.GreenApiInvalidNumberError, False, False),
    (400, "Validation failed. Details: 'value' must have at least 1 key", e.GreenApiInvalidNumberError, False, False),
    (400, "Validation failed. Details: 'phoneNumber' must contain only digits", e.GreenApiInvalidNumberError,
     False, False),
    (400, '{"message": "check phone number timeout limit exceeded"}', e.GreenApiTransientError, True, False),
    (400, "instance is starting or not authorized", e.GreenApiInstanceNotAuthorizedError, False, True),
    (400, "instance in starting process try later", e.GreenApiTransientError, True, False),
    (400, "Instance account is expired. Renew it", e.GreenApiAccountExpiredError, False, True),
    (400, "Instance is deleted", e.GreenApiAccountExpiredError, False, True),
    (401, "", e.GreenApiCredentialsError, False, True),
    (403, "Forbidden", e.GreenApiInstanceNotFoundError, False, True),
    (404, "Not Found", e.GreenApiMethodError, False, True),
    (429, "", e.GreenApiRateLimitedError, True, False),
    (466, QUOTA_BODY, e.GreenApiQuotaExceededError, False, True),
    (499, "", e.GreenApiTransientError, True, False),
    (500, "Internal Server Error", e.GreenApiTransientError, True, False),
    (502, "Bad Gateway", e.GreenApiTransientError, True, False),
    (503, "", e.GreenApiTransientError, True, False),
    (504, "", e.GreenApiTransientError, True, False),
    (507, "Insufficient Storage", e.GreenApiTransientError, True, False),  # any 5xx: transient
    (520, "", e.GreenApiTransientError, True, False),
]


@pytest.mark.parametrize(("status", "body", "error_class", "retryable", "stops_run"), CONTRACT_ROWS)
def test_contract_row_maps_to_exception(status, body, error_class, retryable, stops_run):
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    error = e.error_from_response("checkWhatsapp", status, body, parsed, None)
    assert type(error) is error_class
    assert error.retryable is retryable
    assert error.stops_run is stops_run
    assert error.status_code == status
    assert "checkWhatsapp" in str(error)


def test_quota_error_reads_used_and_total_as_numbers_or_strings():
    error = e.error_from_response("checkWhatsapp", 466, QUOTA_BODY, json.loads(QUOTA_BODY), None)
    assert isinstance(error, e.GreenApiQuotaExceededError)
    assert (error.used, error.total) == (100, 100)
    as_strings = {"invokeStatus": {"used": "42", "total": "100"}}
    error = e.error_from_response("checkWhatsapp", 466, json.dumps(as_strings), as_strings, None)
    assert (error.used, error.total) == (42, 100)
    assert "42 of 100" in str(error)


def test_rate_limited_keeps_retry_after():
    error = e.error_from_response("checkWhatsapp", 429, "", None, 3.0)
    assert isinstance(error, e.GreenApiRateLimitedError)
    assert error.retry_after == 3.0


def test_unknown_answers_are_errors_not_answers():
    unknown_400 = e.error_from_response("checkWhatsapp", 400, "something new", None, None)
    assert type(unknown_400) is e.GreenApiResponseError
    assert not unknown_400.retryable and not unknown_400.stops_run
    teapot = e.error_from_response("checkWhatsapp", 418, "", None, None)
    assert type(teapot) is e.GreenApiResponseError
    assert "empty body" in str(teapot)


def test_messages_tell_the_user_what_to_do():
    assert "apiTokenInstance" in str(e.error_from_response("getStateInstance", 401, "", None, None))
    assert "idInstance" in str(e.error_from_response("getStateInstance", 403, "", None, None))
    assert "QR code" in str(e.error_from_response("checkWhatsapp", 400, "instance is starting or not authorized",
                                                   None, None))


# --- whether running the task again can fix it (retry_can_fix) ----------------------------------------------

@pytest.mark.parametrize(("status", "body", "error_class", "retryable", "stops_run"), CONTRACT_ROWS)
def test_every_error_that_stops_a_run_says_whether_a_retry_can_fix_it(status, body, error_class, retryable,
                                                                       stops_run):
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    error = e.error_from_response("checkWhatsapp", status, body, parsed, None)
    # Whatever the client may resend, a later run may also get through; the rest needs a person.
    assert e.retry_can_fix(error) is retryable


def test_credentials_quota_and_an_unusable_instance_are_not_fixed_by_a_retry():
    for error in (e.GreenApiCredentialsError("x"), e.GreenApiInstanceNotFoundError("x"),
                  e.GreenApiQuotaExceededError("x"), e.QuotaBudgetExhausted("the ledger's monthly cap"),
                  e.GreenApiInstanceNotAuthorizedError("x"), e.GreenApiAccountExpiredError("x")):
        assert e.retry_can_fix(error) is False, type(error)
    for error in (e.GreenApiTransientError("server error", status_code=503), e.GreenApiRateLimitedError("x"),
                  e.GreenApiResponseError("an answer nobody documented")):
        assert e.retry_can_fix(error) is True, type(error)


def test_configuration_and_argument_errors_are_not_fixed_by_a_retry():
    assert not e.retry_can_fix(ValueError("Connection 'greenapi_default' has no password"))
    assert not e.retry_can_fix(TypeError("phone_numbers must be a list of phone numbers"))


def test_an_unknown_failure_is_left_to_airflows_retries():
    assert e.retry_can_fix(RuntimeError("something unforeseen"))
    assert e.retry_can_fix(ConnectionResetError("peer reset"))


def test_an_exception_that_says_so_itself_is_believed():
    class Stopped(Exception):
        retry_can_fix = True

    assert e.retry_can_fix(Stopped())
    Stopped.retry_can_fix = False
    assert not e.retry_can_fix(Stopped())


def test_a_wrapper_is_judged_by_its_cause():
    def wrapped(cause: BaseException) -> RuntimeError:
        try:
            raise RuntimeError("The run stopped on an error of the warehouse") from cause
        except RuntimeError as error:
            return error

    assert not e.retry_can_fix(wrapped(ValueError("bad table")))
    assert e.retry_can_fix(wrapped(e.GreenApiTransientError("x")))


def test_sqlite_errors_of_the_statement_or_schema_are_lasting_and_locks_pass(tmp_path):
    import sqlite3

    db = sqlite3.connect(tmp_path / "w.db")
    db.execute("CREATE TABLE t (a TEXT)")
    for sql in ("SELECT * FROM missing", "SELECT nope FROM t", "SELEC 1", "INSERT INTO t (b) VALUES (1)"):
        with pytest.raises(sqlite3.OperationalError) as bad:
            db.execute(sql)
        assert not e.retry_can_fix(bad.value), bad.value
    db.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(tmp_path / "w.db", timeout=0)
    with pytest.raises(sqlite3.OperationalError, match="locked") as locked:
        other.execute("SELECT * FROM t")
    assert e.retry_can_fix(locked.value)
    db.close()
    other.close()


def test_dbapi_error_classes_of_any_driver_are_read_by_name():
    class ProgrammingError(Exception):  # as psycopg, DuckDB or MySQL name theirs
        pass

    class UndefinedTable(ProgrammingError):
        pass

    class OperationalError(Exception):
        pass

    class IntegrityError(Exception):
        pass

    assert not e.retry_can_fix(UndefinedTable('relation "contacts" does not exist'))
    assert not e.retry_can_fix(IntegrityError('null value in column "status"'))
    assert e.retry_can_fix(OperationalError("connection refused: is the server running?"))
    assert e.retry_can_fix(OperationalError("Lock wait timeout exceeded; try restarting transaction"))
    assert not e.retry_can_fix(OperationalError("(1045, \"Access denied for user 'etl'@'10.0.0.7'\")"))


@pytest.mark.postgres
def test_postgres_errors_a_retry_cannot_fix_and_an_unreachable_server(postgres):
    import psycopg2

    connection = psycopg2.connect(host=postgres.host, port=postgres.port, user=postgres.user,
                                  dbname=postgres.database)
    with pytest.raises(psycopg2.Error) as missing:
        connection.cursor().execute("SELECT phone FROM no_such_contacts")
    assert not e.retry_can_fix(missing.value)
    connection.close()
    from tests.airflow_cli import free_port

    with pytest.raises(psycopg2.OperationalError) as down:
        psycopg2.connect(host="127.0.0.1", port=free_port(), user="postgres", dbname="x", connect_timeout=3)
    assert e.retry_can_fix(down.value)
    for wrong in ({"dbname": "no_such_warehouse"}, {"user": "no_such_user"}):
        with pytest.raises(psycopg2.OperationalError) as refused:
            psycopg2.connect(**{"host": postgres.host, "port": postgres.port, "user": postgres.user,
                                "dbname": postgres.database, **wrong})
        assert not e.retry_can_fix(refused.value), refused.value


# --- the hierarchy: whose problem each exception is ---------------------------------------------------------

def test_every_exception_of_the_provider_shares_one_base():
    for error_class in (e.GreenApiError, e.GreenApiQuotaExceededError, e.ConfigurationError,
                        e.GreenApiConnectionError, e.RunStopped, e.BulkCheckStopped, e.QuotaBudgetExhausted,
                        e.InstanceStateError, e.WarehouseBusyError):
        assert issubclass(error_class, e.GreenApiProviderError), error_class


def test_the_runs_own_budget_is_a_stop_of_the_provider_not_an_answer_of_greenapi():
    spent = e.QuotaBudgetExhausted("the monthly quota of instance 1101000001 is used up for 2026-01 "
                                   "(7 of 7 checkWhatsapp calls counted in the usage ledger)",
                                   method="checkWhatsapp")
    assert isinstance(spent, e.RunStopped) and not isinstance(spent, e.GreenApiError)
    assert spent.stops_run is True and e.retry_can_fix(spent) is False
    # It reads as it always did: the summary's stopped_reason is this text.
    assert str(spent) == ("checkWhatsapp: the monthly quota of instance 1101000001 is used up for 2026-01 "
                          "(7 of 7 checkWhatsapp calls counted in the usage ledger).")


def test_a_bulk_check_stop_is_a_stop_of_the_provider_that_says_whether_a_retry_helps():
    from airflow_provider_greenapi.results import RunSummary

    summary = RunSummary(instance_id="1101000001")
    for can in (True, False):
        stopped = e.BulkCheckStopped("Stopped early: the instance turned 'starting'.", summary, retry_can_fix=can)
        assert isinstance(stopped, e.RunStopped) and not isinstance(stopped, e.GreenApiError)
        assert stopped.summary is summary and str(stopped) == "Stopped early: the instance turned 'starting'."
        assert e.retry_can_fix(stopped) is can


def test_a_bad_connection_is_the_users_configuration_and_still_a_value_error():
    bad = e.GreenApiConnectionError("Connection 'greenapi_default' has no password")
    assert isinstance(bad, e.ConfigurationError) and isinstance(bad, ValueError)
    assert not isinstance(bad, (e.GreenApiError, e.RunStopped))
    assert e.retry_can_fix(bad) is False and e.retry_can_fix(e.ConfigurationError("x")) is False


def test_the_connection_error_still_imports_from_the_hook():
    from airflow_provider_greenapi.hooks import greenapi

    assert greenapi.GreenApiConnectionError is e.GreenApiConnectionError


def test_a_busy_warehouse_passes_and_is_still_a_runtime_error():
    busy = e.WarehouseBusyError("The DuckDB file 'w.duckdb' stayed in use by another process for 120 s")
    assert isinstance(busy, RuntimeError) and not isinstance(busy, (e.GreenApiError, e.ConfigurationError))
    assert e.retry_can_fix(busy) is True


def test_an_instance_in_a_fail_state_is_a_stop_a_retry_cannot_fix():
    blocked = e.InstanceStateError("GREEN-API instance 1101000001 is 'blocked', a fail state", "blocked")
    assert isinstance(blocked, e.RunStopped) and not isinstance(blocked, e.GreenApiError)
    assert blocked.state == "blocked" and e.retry_can_fix(blocked) is False
    assert e.InstanceStateError("HTTP 401").state is None


def test_the_sensors_error_is_both_the_core_error_and_airflows_no_retry_exception():
    from airflow_provider_greenapi._compat import AirflowFailException
    from airflow_provider_greenapi.sensors import GreenApiInstanceStateError

    blocked = GreenApiInstanceStateError("GREEN-API instance 1101000001 is 'blocked'", "blocked")
    # Airflow skips the task's retries only for an AirflowFailException: this one must be one itself.
    assert isinstance(blocked, AirflowFailException) and isinstance(blocked, e.InstanceStateError)
    assert blocked.state == "blocked" and str(blocked) == "GREEN-API instance 1101000001 is 'blocked'"


def test_the_errors_module_imports_nothing_of_airflow():
    import subprocess
    import sys

    code = ("import sys, airflow_provider_greenapi.errors; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'airflow'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
