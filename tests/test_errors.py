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
