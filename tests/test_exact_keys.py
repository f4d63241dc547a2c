"""Keys and numbers compare exactly as stored, on every engine and whatever a MariaDB database's default
collation: source keys that differ only by case, accent or a trailing space each keep their own result row,
through the real operator, the emulator and the real warehouses."""

from __future__ import annotations

import json
import logging
import os
from types import SimpleNamespace

import pytest

from airflow_provider_greenapi._compat import AirflowFailException
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
    _make_older(warehouse)
    assert {collation for _, collation in _collations(warehouse)} == {"utf8mb4_general_ci"}
    caplog.set_level(logging.WARNING)
    run_both(context)
    assert_each_key_joins_back(warehouse)
    assert {collation for _, collation in _collations(warehouse)} == {"utf8mb4_nopad_bin"}
    assert "converted" in caplog.text and "utf8mb4_nopad_bin" in caplog.text


def _make_older(warehouse) -> None:
    """What an older version left: the tables in the database's insensitive collation (rows a ci collation
    cannot hold apart deleted first)."""
    for table in ("keyed", "texts"):
        warehouse.execute(f"DELETE FROM {table}")
    for table in sorted({table for table, _ in _collations(warehouse)}):
        warehouse.execute(f"ALTER TABLE {table} CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")


@pytest.mark.mysql
def test_an_older_table_a_user_may_not_alter_is_refused_with_the_statement_to_run(
        greenapi_conn, mariadb_default_collation, mariadb, context, monkeypatch):
    """A user without the ALTER privilege cannot convert an older table: the task fails at once (no retry can
    fix it) with the statement to run, and nothing is merged meanwhile."""
    run_both(context)
    warehouse = mariadb_default_collation
    _make_older(warehouse)
    database = json.loads(warehouse.airflow_uri)["schema"]
    user = f"u_{database[-10:]}"
    warehouse.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'limited-pw'")
    warehouse.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, INDEX ON `{database}`.* TO '{user}'@'%'")
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({**json.loads(warehouse.airflow_uri), "login": user,
                                                             "password": "limited-pw"}))
    assert os.environ["AIRFLOW_CONN_WAREHOUSE"] != warehouse.airflow_uri
    with pytest.raises(AirflowFailException, match=r"may not alter it.*ALTER TABLE `\w+` CONVERT TO CHARACTER "
                                                   r"SET utf8mb4 COLLATE utf8mb4_nopad_bin"):
        run_both(context)
    assert warehouse.fetch_all("SELECT COUNT(*) FROM keyed") == [(0,)]
