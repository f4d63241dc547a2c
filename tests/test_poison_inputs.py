"""One bad value never fails the run: every value a list, an XCom or a source row can carry (text with a NUL or
a lone surrogate, text a driver cannot decode, bytes, odd numeric types, nested objects, very long text) is
stored ``invalid`` with a reason, and so is an input whose source key cannot be stored as it is; the other
inputs are checked. Through the real operator, the emulator and every warehouse engine."""

from __future__ import annotations

import datetime
import logging
import sqlite3
import uuid
from decimal import Decimal
from fractions import Fraction
from types import SimpleNamespace

import pytest

from airflow_provider_greenapi.operators.check_whatsapp import CheckWhatsappOperator
from airflow_provider_greenapi.warehouse import Dialect

GOOD = ["79001234567", "79001234568"]
# Values none of which is a phone number, each of which once failed a run on some engine (or could).
POISON = [
    "79001234569\x00",  # PostgreSQL refuses a NUL in text
    "\x00",
    "79001\ud800234570",  # a lone surrogate: no driver can encode it
    "\udcff\udcfe",
    "7" * 100_000,  # very long text
    "😀" * 300,
    b"79001234571", bytearray(b"79001234572"), memoryview(b"79001234573"),
    Fraction(1, 3), complex(1, 2), Decimal("NaN"), Decimal("1E+400"), float("nan"), 10**5000,
    {"nested": ["79001234574", {"deeper": b"\x00"}]}, [["79001234575"]], ("79001234576",), {"79001234577"},
    datetime.datetime(2026, 1, 2, 3, 4, 5), datetime.date(2026, 1, 2), uuid.UUID(int=7),
]
# Source keys that cannot be stored as they are: the input is stored invalid, under the key escaped.
POISON_KEYS = {"key\x00nul": "79001234580", "key\ud800surrogate": "79001234581", "k" * 300: "79001234582",
               "\udcff": "79001234583"}


@pytest.fixture
def context(mocker):
    return {"ti": mocker.MagicMock(), "dag_run": SimpleNamespace(run_id="manual__test")}


def stored(warehouse, table: str = "whatsapp_checks") -> list[tuple]:
    return warehouse.fetch_all(f"SELECT phone_number, source_key, status, detail, input_value FROM {table}")


def test_poison_values_from_a_list_are_stored_invalid_and_the_run_goes_on(greenapi_conn, any_warehouse, context,
                                                                          emulator):
    values = GOOD + POISON
    kwargs = {"task_id": "check", "phone_numbers": values, "destination_conn_id": "warehouse", "chunk_size": 5}
    summary = CheckWhatsappOperator(**kwargs).execute(context)
    assert (summary["inputs"], summary["distinct_numbers"]) == (len(values), len(GOOD))
    assert summary["invalid"] + summary["duplicates"] == len(POISON)
    rows = stored(any_warehouse)
    invalid = [row for row in rows if row[2] == "invalid"]
    assert len(invalid) == summary["invalid"] and all(row[3] for row in invalid)  # each with its reason
    assert sorted(row[0] for row in rows if row[2] != "invalid") == GOOD
    again = CheckWhatsappOperator(**kwargs).execute(context)  # the rerun: same rows, nothing new
    assert again["unchanged"] == len(values) and again["quota_spent"] == 0  # read again, but nothing rewritten
    assert sorted(stored(any_warehouse)) == sorted(rows)
    assert emulator.counters("1101000001").count("checkWhatsapp") == len(GOOD)


def test_a_source_key_that_cannot_be_stored_is_reported_invalid_under_an_escaped_key(greenapi_conn, any_warehouse,
                                                                                     context):
    summary = CheckWhatsappOperator(task_id="check", phone_numbers={**POISON_KEYS, "fine": GOOD[0]},
                                    destination_conn_id="warehouse").execute(context)
    assert (summary["inputs"], summary["invalid"], summary["distinct_numbers"]) == (len(POISON_KEYS) + 1,
                                                                                    len(POISON_KEYS), 1)
    rows = {row[1]: row for row in stored(any_warehouse)}
    assert rows["fine"][:3] == (GOOD[0], "fine", "exists") or rows["fine"][2] == "not_exists"
    escaped = {key: row for key, row in rows.items() if key != "fine"}
    assert len(escaped) == len(POISON_KEYS)
    assert {"key\\x00nul", "key\\ud800surrogate", "\\udcff"} <= set(escaped)
    for row in escaped.values():
        assert row[2] == "invalid" and "source key" in row[3]
        assert len(row[1]) <= 255


def _seed_source(warehouse, rows: list[tuple[str, object]]) -> int:
    """A contacts table with (key, phone) rows; the rows this engine refuses to hold are left out (a source
    cannot deliver them). The number of rows written."""
    p = warehouse.placeholder
    text = "VARCHAR(400)" if warehouse.engine == "mysql" else "TEXT"
    warehouse.execute(f"CREATE TABLE contacts (contact_key {text}, phone {text})")
    written = 0
    for key, phone in rows:
        try:
            warehouse.execute(f"INSERT INTO contacts VALUES ({p}, {p})", (key, phone))
            written += 1
        except Exception:  # the engine cannot hold this value: no source of it can carry it
            pass
    return written


def test_poison_rows_of_a_sql_source_are_stored_invalid_and_the_run_goes_on(greenapi_conn, any_warehouse, context,
                                                                           caplog):
    rows = [("a", GOOD[0]), ("b", GOOD[1]), ("nul", "79001234569\x00"), ("long", "7" * 5000),
            ("emoji", "😀" * 300), ("key\x00nul", "79001234580"), ("k" * 300, "79001234582")]
    written = _seed_source(any_warehouse, rows)
    if any_warehouse.dialect is Dialect.SQLITE:  # text that is not UTF-8, as another program may write it
        connection = any_warehouse.connect()
        connection.execute("INSERT INTO contacts VALUES ('bad-utf8', CAST(x'3739303031323334353834ff' AS TEXT))")
        connection.execute("INSERT INTO contacts VALUES (CAST(x'6b6579ff' AS TEXT), '79001234585')")
        connection.commit()
        connection.close()
        written += 2
    caplog.set_level(logging.INFO)  # (the Snowflake connector logs bound parameters at DEBUG: not ours to shorten)
    caplog.set_level(logging.DEBUG, logger="airflow_provider_greenapi")
    summary = CheckWhatsappOperator(task_id="check", sql="SELECT contact_key, phone FROM contacts",
                                    source_conn_id="warehouse", phone_column="phone", key_column="contact_key",
                                    destination_conn_id="warehouse", destination_table="results",
                                    chunk_size=3).execute(context)
    assert summary["inputs"] == written and summary["distinct_numbers"] == len(GOOD)
    results = stored(any_warehouse, "results")
    assert len(results) == written  # every source row has its row: nothing lost
    assert sum(row[2] == "invalid" for row in results) == written - len(GOOD)
    assert all(row[3] for row in results if row[2] == "invalid")
    for number in ("79001234569", "79001234580", "79001234582", "79001234584", "79001234585"):
        assert number not in caplog.text  # numbers are shortened in every log line of the provider


def test_text_a_sqlite_source_cannot_decode_is_read_as_escaped_text():
    """The SQLite engine reads a source's invalid UTF-8 as text with the bad bytes escaped (surrogateescape)
    rather than failing the whole fetch."""
    from airflow_provider_greenapi.warehouse.sqlite import ENGINE

    connection = sqlite3.connect(":memory:")
    cursor = ENGINE.source_cursor(None, connection)()
    cursor.execute("SELECT CAST(x'3739ff' AS TEXT), 'ok'")
    assert cursor.fetchall() == [("79\udcff", "ok")]
    connection.close()
