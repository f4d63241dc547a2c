"""Keys and numbers compare exactly as stored, on every engine and whatever a MariaDB database's default
collation: source keys that differ only by case, accent or a trailing space each keep their own result row,
through the real operator, the emulator and the real warehouses."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from airflow_provider_greenapi.operators.check_whatsapp import CheckWhatsappOperator

# Pairs a case-, accent- or pad-insensitive collation takes for one key, each pair sharing a number (one person
# listed twice): each key must keep its own row.
KEYED = {"C-17": "79170000017", "c-17": "79170000017", "Jose": "79170000019", "José": "79170000019",
         "k9": "79170000021", "k9 ": "79170000021"}
# Invalid values are stored under their own text (phone_number): the same goes for them.
INVALID_TEXTS = ["abc", "ABC", "abç", "abc\t!"]


@pytest.fixture
def context(mocker):
    return {"ti": mocker.MagicMock(), "dag_run": SimpleNamespace(run_id="manual__test")}


def run_both(context) -> tuple[dict, dict]:
    keyed = CheckWhatsappOperator(task_id="keyed", phone_numbers=KEYED, destination_conn_id="warehouse",
                                  destination_table="keyed").execute(context)
    texts = CheckWhatsappOperator(task_id="texts", phone_numbers=INVALID_TEXTS, destination_conn_id="warehouse",
                                  destination_table="texts").execute(context)
    return keyed, texts


def assert_each_key_joins_back(warehouse) -> None:
    p = warehouse.placeholder
    rows = warehouse.fetch_all("SELECT source_key, phone_number, status FROM keyed")
    assert sorted((key, number) for key, number, _ in rows) == sorted(KEYED.items())
    assert all(status in ("exists", "not_exists") for _, _, status in rows)
    for key, number in KEYED.items():  # the join back, compared by the warehouse itself
        assert warehouse.fetch_all(f"SELECT phone_number FROM keyed WHERE source_key = {p}", (key,)) == [(number,)]
    texts = warehouse.fetch_all("SELECT phone_number, status FROM texts")
    assert sorted(texts) == sorted((text.strip(), "invalid") for text in INVALID_TEXTS)


def test_keys_differing_by_case_accent_or_trailing_space_each_keep_their_row(greenapi_conn, any_warehouse, context):
    keyed, texts = run_both(context)
    assert (keyed["inputs"], keyed["distinct_numbers"], keyed["duplicates"]) == (6, 3, 3)
    assert (texts["inputs"], texts["invalid"], texts["duplicates"]) == (4, 4, 0)
    assert_each_key_joins_back(any_warehouse)


def _collations(warehouse) -> set[tuple[str, str]]:
    return set(warehouse.fetch_all(
        "SELECT table_name, collation_name FROM information_schema.columns WHERE table_schema = DATABASE() "
        "AND collation_name IS NOT NULL"))


@pytest.mark.mysql
def test_keys_compare_exactly_in_a_default_collation_mariadb_database(greenapi_conn, mariadb_default_collation,
                                                                     context):
    """A database created with a case- and accent-insensitive default (the server's, or utf8mb4_general_ci):
    every text column of the provider's tables (results, ledger, usage history) compares exactly."""
    run_both(context)
    assert_each_key_joins_back(mariadb_default_collation)
    collations = _collations(mariadb_default_collation)
    assert {table for table, _ in collations} >= {"keyed", "texts", "greenapi_usage", "greenapi_usage_runs"}
    assert {collation for _, collation in collations} == {"utf8mb4_nopad_bin"}


@pytest.mark.mysql
def test_an_older_case_insensitive_table_is_converted_in_place(greenapi_conn, mariadb_default_collation, context,
                                                               caplog):
    """Tables an older version created with the database's insensitive collation are converted to the exact one
    when a task next opens them (a warning says so); their rows are kept."""
    run_both(context)
    warehouse = mariadb_default_collation
    for table in ("keyed", "texts"):  # rows a ci collation cannot hold apart
        warehouse.execute(f"DELETE FROM {table}")
    tables = sorted({table for table, _ in _collations(warehouse)})
    for table in tables:  # what an older version left: the tables in the database's insensitive collation
        warehouse.execute(f"ALTER TABLE {table} CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
    assert {collation for _, collation in _collations(warehouse)} == {"utf8mb4_general_ci"}
    caplog.set_level(logging.WARNING)
    run_both(context)
    assert_each_key_joins_back(warehouse)
    assert {collation for _, collation in _collations(warehouse)} == {"utf8mb4_nopad_bin"}
    assert "converted" in caplog.text and "utf8mb4_nopad_bin" in caplog.text
