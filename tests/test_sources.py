"""sources.py: where the numbers come from, a list or an XCom, or a SQL query read in chunks (on a real SQLite;
tests/test_incremental_runs.py binds ``parameters`` on all five engines, through the operator)."""

from __future__ import annotations

import sqlite3

import pytest

from airflow_provider_greenapi.errors import ConfigurationError
from airflow_provider_greenapi.sources import (
    ChangedRows,
    batches_from_query,
    count_rows,
    key_text,
    numbers_from_query,
    numbers_from_value,
    start_reading,
)


@pytest.fixture
def contacts():
    """An in-memory SQLite with five contacts: integer ids, a NULL key and a NULL number among them."""
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE contacts (Contact_Id, Phone TEXT, note TEXT)")
    connection.executemany("INSERT INTO contacts VALUES (?, ?, ?)", [
        (1, "+7 900 000-00-01", "a"), (2, "79000000002", "b"), (None, "79000000003", "c"),
        (b"k\xff", None, "d"), (5, "79000000005", "e"),
    ])
    yield connection
    connection.close()


class RecordedCursor:
    """A cursor that says whether it was closed."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor
        self.closed = False

    def __getattr__(self, name: str):
        return getattr(self._cursor, name)

    def close(self) -> None:
        self.closed = True
        self._cursor.close()


class ClosingCursors:
    """Opens cursors on ``connection`` and remembers them, to tell whether they were closed."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.opened: list[RecordedCursor] = []

    def __call__(self) -> RecordedCursor:
        cursor = RecordedCursor(self.connection.cursor())
        self.opened.append(cursor)
        return cursor

    def all_closed(self) -> bool:
        return bool(self.opened) and all(c.closed for c in self.opened)


# --- a list or an XCom ----------------------------------------------------------------------------------


def test_a_list_gives_its_numbers_under_the_empty_key_and_a_dict_its_keys_as_text():
    assert list(numbers_from_value(["79000000001", 79000000002])) == [("79000000001", ""), (79000000002, "")]
    assert list(numbers_from_value({1: "79000000001", "crm-2": "79000000002", None: "79000000003"})) == [
        ("79000000001", "1"), ("79000000002", "crm-2"), ("79000000003", "")]
    assert list(numbers_from_value(n for n in ("79000000001",))) == [("79000000001", "")]  # any iterable


@pytest.mark.parametrize("value", ["+1 212 555 0187", b"79000000001", 79000000001])
def test_a_single_number_is_refused_with_what_to_do(value):
    with pytest.raises(TypeError, match="wrap a single number in a list"):
        list(numbers_from_value(value))


# --- a SQL query ---------------------------------------------------------------------------------------


def test_a_query_is_read_in_chunks_of_the_size_asked_with_its_columns_found_without_case(contacts):
    batches = list(batches_from_query(contacts.cursor, "SELECT note, phone, contact_id FROM contacts",
                                      phone_column="PHONE", key_column="contact_ID", chunk_size=2))
    assert [len(batch) for batch in batches] == [2, 2, 1]
    assert [row for batch in batches for row in batch] == [
        ("+7 900 000-00-01", "1"), ("79000000002", "2"),
        ("79000000003", ""),  # a NULL key is the empty key
        (None, "k\udcff"),  # a NULL number arrives as None (staged as invalid); undecodable bytes escaped
        ("79000000005", "5"),
    ]


def test_without_a_phone_column_the_first_column_holds_the_number(contacts):
    rows = list(numbers_from_query(contacts.cursor, "SELECT phone, note FROM contacts WHERE phone IS NOT NULL"))
    assert [row[0] for row in rows] == ["+7 900 000-00-01", "79000000002", "79000000003", "79000000005"]
    assert {row[1] for row in rows} == {""}


def test_the_query_runs_when_its_first_batch_is_asked_for_and_its_cursor_closes_with_the_last(contacts):
    cursors = ClosingCursors(contacts)
    batches = batches_from_query(cursors, "SELECT phone FROM contacts", chunk_size=10)
    assert cursors.opened == []  # nothing runs before the run reads it
    assert len(next(batches)) == 5 and not cursors.all_closed()
    assert list(batches) == []
    assert cursors.all_closed()  # an open read would hold a SQLite file's lock while the run sends


def test_a_run_that_stops_mid_source_closes_the_cursor(contacts):
    cursors = ClosingCursors(contacts)
    rows = numbers_from_query(cursors, "SELECT phone FROM contacts", chunk_size=1)
    next(rows)
    rows.close()
    assert cursors.all_closed()


def test_parameters_are_bound_to_the_querys_placeholders(contacts):
    rows = numbers_from_query(contacts.cursor, "SELECT phone, contact_id FROM contacts WHERE contact_id "
                              "BETWEEN ? AND ? AND note <> ?", "phone", "contact_id", parameters=[2, 5, "e"])
    assert list(rows) == [("79000000002", "2")]


def test_a_column_the_query_lacks_names_the_columns_it_has(contacts):
    with pytest.raises(ConfigurationError, match=r"no column 'mobile' for the phone number \(its columns: "
                                                 r"contact_id, phone; .*Nothing was checked or stored"):
        list(numbers_from_query(contacts.cursor, "SELECT contact_id, phone FROM contacts", "mobile"))


def test_a_query_that_fails_says_so_and_what_to_correct(contacts):
    with pytest.raises(ConfigurationError, match=r"The source query failed: no such table: no_contacts\. Correct "
                                                 r"the query \(phone_column=None \(None: the first column\), "
                                                 r"key_column=None\); nothing was checked or stored\."):
        list(numbers_from_query(contacts.cursor, "SELECT phone FROM no_contacts"))


def test_a_query_is_counted_by_its_database_or_not_at_all(contacts):
    assert count_rows(contacts.cursor(), "SELECT phone FROM contacts WHERE contact_id BETWEEN ? AND ? ;",
                      [1, 5]) == 3
    assert count_rows(contacts.cursor(), "SELECT phone FROM no_contacts") is None  # then read as it is


def test_changed_rows_count_as_unchanged_what_the_database_did_not_return():
    changed = ChangedRows(iter([("79000000001", "1"), ("79000000002", "2")]), total=10, sql="SELECT 1",
                          key_column="id")
    assert changed.unchanged == 10  # none read yet
    assert list(changed) == [("79000000001", "1"), ("79000000002", "2")]
    assert changed.unchanged == 8
    copy = ChangedRows(iter([]), total=None, sql=None, key_column="source_key")  # a copy counts as it is made
    assert copy.unchanged == 0


def test_a_source_that_cannot_work_fails_when_reading_starts_and_its_rows_stay_as_they_are(contacts):
    with pytest.raises(ConfigurationError, match="no such table"):
        start_reading(numbers_from_query(contacts.cursor, "SELECT phone FROM no_contacts"))
    with pytest.raises(TypeError, match="wrap a single number"):
        start_reading(numbers_from_value("79000000001"))
    read = start_reading(numbers_from_query(contacts.cursor, "SELECT phone FROM contacts", chunk_size=2))
    assert [row[0] for row in read] == ["+7 900 000-00-01", "79000000002", "79000000003", None, "79000000005"]


@pytest.mark.parametrize(("value", "text"), [(None, ""), ("crm-1", "crm-1"), (42, "42"), (b"ab", "ab"),
                                             (bytearray(b"\xff"), "\udcff"), (memoryview(b"x"), "x")])
def test_a_source_key_is_text(value, text):
    assert key_text(value) == text
