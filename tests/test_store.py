"""The results table on real SQLite and PostgreSQL: schema, staging, freshness, the queue, idempotence."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_greenapi.numbers import NormalizedNumber
from airflow_provider_greenapi.results import CheckOutcome, CheckStatus, Freshness, RunContext
from airflow_provider_greenapi.warehouse import ResultsStore, StagedInput
from airflow_provider_greenapi.warehouse.engine import Dialect


@pytest.fixture
def warehouse(any_warehouse):
    """Every test here runs on all five engines (conftest.any_warehouse)."""
    return any_warehouse


NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def valid(digits: str, raw: str | None = None) -> NormalizedNumber:
    return NormalizedNumber(raw=raw or digits, digits=digits, reason=None)


def invalid(raw: str, reason: str = "too short") -> NormalizedNumber:
    return NormalizedNumber(raw=raw, digits=None, reason=reason)


@pytest.fixture
def store(warehouse):
    connection = warehouse.provider_connect()
    results = ResultsStore(connection, warehouse.dialect, "whatsapp_checks")
    results.ensure_table()
    yield results
    connection.close()


def rows(store: ResultsStore) -> dict[tuple[str, str], dict]:
    cursor = store.connection.cursor()
    cursor.execute("SELECT phone_number, source_key, status, exists_whatsapp, whatsapp_lid, queued_at, checked_at, "
                   "detail FROM whatsapp_checks")
    names = [d[0].lower() for d in cursor.description]
    found = {(r[0], r[1]): dict(zip(names, r, strict=True)) for r in cursor.fetchall()}
    store.connection.commit()
    return found


def run(store: ResultsStore, inputs: list[StagedInput], token: str, now: datetime = NOW,
        freshness: Freshness | None = None):
    counts = store.stage(inputs, RunContext(token, "1101"), freshness or Freshness(), now)
    store.commit()
    return counts


def answer(store: ResultsStore, outcomes: list[CheckOutcome], token: str) -> None:
    store.write_outcomes(outcomes, RunContext(token, "1101"), NOW)
    store.commit()


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


def test_queue_is_distinct_and_in_number_order_whatever_the_page_size(store):
    many_keys = [StagedInput(valid("79000000002"), f"k{i}") for i in range(5)]
    run(store, [StagedInput(valid("79000000001"), "a"), StagedInput(valid("79000000001"), "b"), *many_keys,
                StagedInput(valid("79000000003"))], "run-2")
    for page_size in (1, 2, 3, 4, 100):
        pages = list(store.queued_numbers("run-2", page_size=page_size))
        flat = [n for page in pages for n in page]
        # a number's rows straddling a page boundary are not taken twice
        assert flat == ["79000000001", "79000000002", "79000000003"], page_size


def test_carry_over_queues_what_earlier_runs_left_owed_whatever_this_run_named(store):
    run(store, [StagedInput(valid("79000000001"), "pending"), StagedInput(valid("79000000002"), "answered"),
                StagedInput(valid("79000000003"), "stale"), StagedInput(invalid("n/a"), "junk")], "run-1")
    answer(store, [CheckOutcome("79000000002", CheckStatus.EXISTS, NOW),
                   CheckOutcome("79000000003", CheckStatus.NOT_EXISTS, NOW - timedelta(days=8))], "run-1")
    store.carry_over("run-2", Freshness(), NOW)
    store.commit()
    queued = [n for page in store.queued_numbers("run-2") for n in page]
    assert queued == ["79000000001", "79000000003"]  # pending, and an answer older than 7 days
    assert store.count_staged("run-2") == (2, 2)


def test_carry_over_copies_a_fresh_answer_under_another_key_instead_of_a_check(store):
    run(store, [StagedInput(valid("79000000001"), "old")], "run-1", now=NOW - timedelta(days=40))
    answer(store, [CheckOutcome("79000000001", CheckStatus.EXISTS, NOW - timedelta(days=40))], "run-1")
    run(store, [StagedInput(valid("79000000001"), "new")], "run-2")
    answer(store, [CheckOutcome("79000000001", CheckStatus.EXISTS, NOW, whatsapp_lid="1@lid")], "run-2")
    store.carry_over("run-3", Freshness(), NOW)
    store.commit()
    assert store.count_staged("run-3") == (0, 0)
    assert store.engine.from_db_time(rows(store)[("79000000001", "old")]["checked_at"]) == NOW


def test_carry_over_takes_only_the_numbers_its_shard_owns(store):
    run(store, [StagedInput(valid("79000000001")), StagedInput(valid("79000000002"))], "run-1")
    store.carry_over("run-2", Freshness(), NOW, owns=lambda digits: digits.endswith("2"))
    store.commit()
    assert [n for page in store.queued_numbers("run-2") for n in page] == ["79000000002"]


def test_an_input_stored_as_it_is_is_unchanged_until_its_text_or_the_reading_changes(store):
    run(store, [StagedInput(valid("79000000001", "+7 900 000-00-01"), "c1"), StagedInput(invalid("n/a"), "c2")],
        "run-1")
    chunk = [("+7 900 000-00-01", "c1"), ("n/a", "c2"), ("79000000001", "c1"), ("x", "c3"), (79000000001, "c1"),
             ("+7 900 000-00-01", "")]
    assert store.unchanged_inputs(chunk, None) == {}  # stored without the reader's settings: read again
    store.stage([StagedInput(valid("79000000001", "+7 900 000-00-01"), "c1"), StagedInput(invalid("n/a"), "c2")],
                RunContext("run-2", "1101"), Freshness(), NOW, "region=RU;rules=")
    store.commit()
    assert store.unchanged_inputs(chunk, "region=RU;rules=") == {0: "79000000001", 1: None}
    assert store.unchanged_inputs(chunk, "region=-;rules=") == {}


def test_answers_clear_the_queue_and_errors_keep_the_last_answer(store):
    run(store, [StagedInput(valid("79000000001"), "a"), StagedInput(valid("79000000001"), "b"),
                StagedInput(valid("79000000002"))], "run-1")
    answer(store, [CheckOutcome("79000000001", CheckStatus.EXISTS, NOW, whatsapp_lid="100000000000001@lid"),
                   CheckOutcome("79000000002", CheckStatus.NOT_EXISTS, NOW)], "run-1")
    assert store.count_staged("run-1") == (2, 0)
    later = NOW + timedelta(days=40)  # both answers are stale now
    run(store, [StagedInput(valid("79000000001"), "a"), StagedInput(valid("79000000002"))], "run-2", now=later)
    answer(store, [CheckOutcome("79000000001", CheckStatus.ERROR, later, detail="HTTP 502")], "run-2")
    stored = rows(store)
    assert stored[("79000000001", "a")]["status"] == "error"
    assert bool(stored[("79000000001", "a")]["exists_whatsapp"]) is True  # the last known answer stays
    assert stored[("79000000001", "a")]["whatsapp_lid"] == "100000000000001@lid"
    assert stored[("79000000001", "a")]["detail"] == "HTTP 502"
    assert stored[("79000000001", "b")]["status"] == "exists"  # not staged by run-2, not queued: untouched
    assert stored[("79000000002", "")]["status"] == "not_exists"  # still queued in run-2
    assert stored[("79000000002", "")]["queued_at"] is not None


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


def test_staged_rows_for_the_xcom(store):
    run(store, [StagedInput(valid("79000000001"), "k1"), StagedInput(invalid("x"))], "run-1")
    answer(store, [CheckOutcome("79000000001", CheckStatus.EXISTS, NOW, whatsapp_lid="1@lid")], "run-1")
    result = {r["phone_number"]: r for r in store.staged_rows("run-1", 10)}
    assert result["79000000001"]["exists_whatsapp"] is True
    assert result["79000000001"]["whatsapp_lid"] == "1@lid"
    assert result["79000000001"]["source_key"] == "k1"
    assert result["79000000001"]["checked_at"].startswith("2026-11-28T12:00")
    assert result["x"]["status"] == "invalid"
    assert len(store.staged_rows("run-1", 1)) == 1


def test_a_list_number_written_two_ways_stays_one_row_and_is_not_rewritten_each_run(store):
    written_two_ways = [StagedInput(valid("79000000001", "+7 900 000-00-01")), StagedInput(valid("79000000001"))]
    store.stage(written_two_ways, RunContext("run-1", "1101"), Freshness(), NOW, "abc")
    store.commit()
    answer(store, [CheckOutcome("79000000001", CheckStatus.EXISTS, NOW)], "run-1")
    again = store.stage(written_two_ways, RunContext("run-2", "1101"), Freshness(), NOW, "abc")
    store.commit()
    assert (again.unchanged, again.duplicates) == (1, 1)
    assert store.count_staged_rows("run-2") == 0  # nothing rewritten under the second run


def test_a_source_copy_holds_text_and_integers_under_a_storable_key_and_leaves_the_rest_to_staging():
    from airflow_provider_greenapi.numbers.values import read_value
    from airflow_provider_greenapi.warehouse.changes import copied_input, copied_inputs

    assert copied_input("+7 900 123-45-67", "c1") == ("c1", "+7 900 123-45-67")
    assert copied_input(79001234567, "c1") == ("c1", "79001234567")
    assert read_value("79001234567") == read_value(79001234567)  # its text reads back as the integer did
    assert copied_input(None, "c1") == ("c1", None)  # no number: NULL, compared as ''
    assert copied_input("79001234567", "ключ") == ("ключ", "79001234567")  # stored as it is
    assert read_value("-79001234567").digits != read_value(-79001234567).digits  # so a negative one is not copied
    for value, key in [(-79001234567, "c1"), (7.9e10, "c1"), (b"79001234567", "c1"), (True, "c1"),
                       ("79001234567", ""), ("79001234567", "k" * 256), ("79001234567", "k\x00"),
                       ("7" * 201, "c1"), ("7\x00", "c1")]:
        assert copied_input(value, key) is None, (value, key)
        assert copied_inputs([("79001234567", "c1"), (value, key)]) == [("c1", "79001234567"), None]
