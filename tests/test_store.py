"""warehouse/store.py, the results table on all five engines: its schema, staging (duplicates, invalid
inputs, fresh answers), idempotence."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow_provider_greenapi.results import CheckOutcome, CheckStatus, Freshness, RunContext
from airflow_provider_greenapi.warehouse import ResultsStore, StagedInput
from airflow_provider_greenapi.warehouse.engine import Dialect
from tests.store_support import NOW, answer, invalid, rows, run, valid


@pytest.fixture
def warehouse(any_warehouse):
    """Every test here runs on all five engines (conftest.any_warehouse)."""
    return any_warehouse


def test_staging_counts_every_input_once(store):
    inputs = [StagedInput(valid("79001234567")), StagedInput(valid("79001234567", "+7 900 123-45-67")),
              StagedInput(invalid("12")), StagedInput(invalid("12")), StagedInput(valid("4915112345678"))]
    counts = run(store, inputs, "run-1")
    assert (counts.inputs, counts.duplicates, counts.invalid) == (5, 2, 1)
    assert store.count_staged("run-1") == (2, 2)
    stored = rows(store)
    assert stored[("12", "")]["status"] == "invalid"
    assert stored[("12", "")]["detail"] == "too short"
    assert stored[("79001234567", "")]["status"] == "pending"
    assert stored[("79001234567", "")]["queued_at"] is not None


def test_duplicates_across_chunks_are_found_in_the_table(store):
    run(store, [StagedInput(valid("79001234567"))], "run-1")
    counts = run(store, [StagedInput(valid("79001234567")), StagedInput(valid("79001234567"), "contact-9")],
                 "run-1")
    assert counts.duplicates == 2  # the number was seen in the first chunk: checked once...
    assert store.count_staged("run-1") == (1, 1)
    assert rows(store)[("79001234567", "contact-9")]["status"] == "pending"  # ...and joined back to every key


def test_fresh_answers_are_not_queued_and_are_copied_to_new_keys(store):
    run(store, [StagedInput(valid("79000000001"), "a"), StagedInput(valid("79000000002"))], "run-1")
    answer(store, [CheckOutcome("79000000001", CheckStatus.EXISTS, NOW),
                   CheckOutcome("79000000002", CheckStatus.NOT_EXISTS, NOW)], "run-1")
    soon = NOW + timedelta(days=3)
    run(store, [StagedInput(valid("79000000001"), "new-contact"), StagedInput(valid("79000000002"))], "run-2",
        now=soon)
    assert store.count_staged("run-2") == (2, 0)
    assert rows(store)[("79000000001", "new-contact")]["status"] == "exists"
    # not_exists answers age faster (7 days by default): after 8 days only that one is re-queued
    run(store, [StagedInput(valid("79000000001"), "a"), StagedInput(valid("79000000002"))], "run-3",
        now=NOW + timedelta(days=8))
    assert list(store.queued_numbers("run-3")) == [["79000000002"]]


def test_error_and_invalid_are_never_fresh(store):
    run(store, [StagedInput(valid("79000000001"))], "run-1")
    answer(store, [CheckOutcome("79000000001", CheckStatus.ERROR, NOW, detail="timeout")], "run-1")
    run(store, [StagedInput(valid("79000000001"))], "run-2")
    assert store.count_staged("run-2") == (1, 1)


def test_no_freshness_means_always_checked(store):
    run(store, [StagedInput(valid("79000000001"))], "run-1")
    answer(store, [CheckOutcome("79000000001", CheckStatus.EXISTS, NOW)], "run-1")
    run(store, [StagedInput(valid("79000000001"))], "run-2", freshness=Freshness(None, None))
    assert store.count_staged("run-2") == (1, 1)


def test_rerun_replaces_rows_never_duplicates(store):
    for token in ("run-1", "run-2"):
        run(store, [StagedInput(valid("79000000001")), StagedInput(invalid("abc"))], token,
            freshness=Freshness(None, None))
        answer(store, [CheckOutcome("79000000001", CheckStatus.EXISTS, NOW)], token)
    cursor = store.connection.cursor()
    cursor.execute("SELECT COUNT(*) FROM whatsapp_checks")
    assert cursor.fetchone()[0] == 2


def test_a_table_of_an_older_version_gets_the_lid_column(warehouse):
    """Tables made before whatsapp_lid had chat_id: the column is added, LIDs in chat_id are copied over,
    and the table works as a new one (chat_id stays, no longer written)."""
    connection = warehouse.connect()
    fresh = ResultsStore(connection, warehouse.dialect, "whatsapp_checks")
    fresh.ensure_table()
    cursor = connection.cursor()
    cursor.execute("ALTER TABLE whatsapp_checks RENAME COLUMN whatsapp_lid TO chat_id")  # the older shape
    p, now = warehouse.dialect.placeholder, warehouse.dialect.engine.to_db_time(NOW)
    cursor.executemany(
        f"INSERT INTO whatsapp_checks (phone_number, source_key, status, chat_id, updated_at) VALUES ({p}, '', "
        f"'exists', {p}, {p})",
        [("79000000001", "123456789012345@lid", now), ("79000000002", "79000000002@c.us", now)],
    )
    connection.commit()
    fresh.ensure_table()
    fresh.ensure_table()  # once added, nothing more to do
    stored = rows(fresh)
    assert stored[("79000000001", "")]["whatsapp_lid"] == "123456789012345@lid"
    assert stored[("79000000002", "")]["whatsapp_lid"] is None  # a @c.us id is no LID
    run(fresh, [StagedInput(valid("79000000003"))], "run-1")
    answer(fresh, [CheckOutcome("79000000003", CheckStatus.EXISTS, NOW, whatsapp_lid="5@lid")], "run-1")
    assert rows(fresh)[("79000000003", "")]["whatsapp_lid"] == "5@lid"
    connection.close()


def test_an_incompatible_existing_table_is_refused(warehouse):
    connection = warehouse.connect()
    connection.cursor().execute("CREATE TABLE whatsapp_checks (id INTEGER, phone TEXT)")
    connection.commit()
    with pytest.raises(ValueError, match="lacks the columns phone_number"):
        ResultsStore(connection, warehouse.dialect, "whatsapp_checks").ensure_table()
    connection.close()


@pytest.mark.parametrize("dialect", list(Dialect))
@pytest.mark.parametrize("name", ["checks; DROP TABLE x", "a.b.c", "1abc", "", "checks--", 'x"y', "a b"])
def test_table_names_must_be_plain_identifiers(dialect, name):
    with pytest.raises(ValueError, match="not a plain identifier"):
        ResultsStore(None, dialect, name)


@pytest.mark.parametrize(("dialect", "quoted"), [
    (Dialect.SQLITE, '"analytics"."whatsapp_checks"'),
    (Dialect.POSTGRES, '"analytics"."whatsapp_checks"'),
    (Dialect.DUCKDB, '"analytics"."whatsapp_checks"'),
    (Dialect.MYSQL, "`analytics`.`whatsapp_checks`"),
    (Dialect.SNOWFLAKE, "analytics.whatsapp_checks"),  # unquoted: Snowflake folds it to upper case
])
def test_schema_qualified_names_are_quoted(dialect, quoted):
    assert dialect.engine.table_name("analytics.whatsapp_checks") == quoted


def test_a_list_number_written_two_ways_stays_one_row_and_is_not_rewritten_each_run(store):
    written_two_ways = [StagedInput(valid("79000000001", "+7 900 000-00-01")), StagedInput(valid("79000000001"))]
    store.stage(written_two_ways, RunContext("run-1", "1101"), Freshness(), NOW, "abc")
    store.commit()
    answer(store, [CheckOutcome("79000000001", CheckStatus.EXISTS, NOW)], "run-1")
    again = store.stage(written_two_ways, RunContext("run-2", "1101"), Freshness(), NOW, "abc")
    store.commit()
    assert (again.unchanged, again.duplicates) == (1, 1)
    assert store.count_staged_rows("run-2") == 0  # nothing rewritten under the second run
