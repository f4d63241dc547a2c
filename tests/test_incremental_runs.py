"""A run costs what changed (issue 25), through the emulator (real HTTP) into every engine: an input stored as
it is is neither read again nor rewritten, and the work of a run is what the results table still owes,
whatever the run's input named."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from airflow_provider_greenapi.emulator import EmulatedInstance, GreenApiEmulator
from airflow_provider_greenapi.operators.check_whatsapp import CheckWhatsappOperator
from tests.conftest import ID_INSTANCE, TOKEN, make_warehouse
from tests.harness import Harness, assert_invariants

NUMBERS = [f"7900{i:07d}" for i in range(12)]
# a contacts table as typed: one number twice under two contacts, one not a number, one without a phone
CONTACTS = {f"c{i}": f"+7 900 {n[4:7]}-{n[7:9]}-{n[9:]}" for i, n in enumerate(NUMBERS)}
CONTACTS |= {"c12": NUMBERS[0], "c13": "n/a", "c14": None}
EVERY_COLUMN = ("SELECT phone_number, source_key, input_value, status, exists_whatsapp, whatsapp_lid, detail, "
                "checked_at, queued_at, updated_at, run_id, staged_by, normalized_by FROM whatsapp_checks")


@pytest.fixture
def harness(emulator, any_warehouse):
    return Harness(emulator, any_warehouse)


def run(harness: Harness, contacts: dict[str, object], **options):
    return harness.run(list(contacts.values()), list(contacts), **options)


def checks(harness: Harness) -> dict[str, int]:
    return dict(harness.emulator.counters(ID_INSTANCE).checked_numbers)


def table(harness: Harness) -> list[tuple]:
    return sorted(harness.warehouse.fetch_all(EVERY_COLUMN), key=lambda row: (row[0], row[1]))


def test_a_rerun_with_nothing_new_reads_nothing_again_writes_nothing_and_spends_nothing(harness):
    first = run(harness, CONTACTS)
    assert (first.inputs, first.unchanged, first.distinct_numbers, first.quota_spent) == (15, 0, 12, 12)
    before = table(harness)
    again = run(harness, CONTACTS)
    assert again.inputs == again.unchanged == 15
    assert (again.distinct_numbers, again.quota_spent, again.pending) == (0, 0, 0)
    assert table(harness) == before  # not one row rewritten: updated_at, run and token are the first run's
    assert set(checks(harness).values()) == {1}
    assert_invariants(harness, again)


def test_a_changed_phone_under_the_same_key_is_read_again_and_checked(harness):
    run(harness, CONTACTS)
    changed = {**CONTACTS, "c3": "+7 900 999-99-99", "c13": "+7 900 888-88-88"}
    again = run(harness, changed)
    assert again.unchanged == 13 and again.distinct_numbers == 2 and again.quota_spent == 2
    assert {n: c for n, c in checks(harness).items() if n.startswith("7900999") or n.startswith("7900888")} == {
        "79009999999": 1, "79008888888": 1}
    def numbers_under(key: str) -> list[str]:
        p = harness.warehouse.placeholder
        return sorted(r[0] for r in harness.warehouse.fetch_all(
            f"SELECT phone_number FROM whatsapp_checks WHERE source_key = {p}", (key,)))

    assert numbers_under("c3") == [NUMBERS[3], "79009999999"]  # the new number has its row; the old one is kept
    assert numbers_under("c13") == ["79008888888", "n/a"]  # invalid text is read again when it changes


def test_changes_spread_over_many_look_up_windows_are_each_read_again(harness, monkeypatch):
    """Staging compares a window of the engine's ``lookup_keys`` inputs per statement (10,000 on PostgreSQL,
    100,000 on DuckDB): made 7 here, so that 40 inputs span six windows and three chunks each, on every engine's
    own look-up SQL."""
    monkeypatch.setattr(type(harness.warehouse.dialect.engine), "lookup_keys", 7)
    contacts = {f"k{i:02d}": f"+7 901 {i:03d}-00-00" for i in range(40)} | {"k40": "n/a", "k41": None}
    first = run(harness, contacts, chunk_size=3)
    assert first.distinct_numbers == first.quota_spent == 40
    before = {(row[0], row[1]): row for row in table(harness)}
    changed = {**contacts, "k00": "+7 902 000-00-00", "k20": "+7 902 020-00-00", "k39": "+7 902 039-00-00",
               "k40": "+7 902 040-00-00"}
    again = run(harness, changed, chunk_size=3)
    assert (again.inputs, again.unchanged, again.distinct_numbers, again.quota_spent) == (42, 38, 4, 4)
    after = {(row[0], row[1]): row for row in table(harness)}
    assert {k: row for k, row in after.items() if k in before} == before  # nothing else rewritten
    assert sorted(k[1] for k in after.keys() - before.keys()) == ["k00", "k20", "k39", "k40"]
    assert set(checks(harness).values()) == {1}
    assert_invariants(harness, again)


def test_pending_numbers_of_a_capped_run_are_checked_by_the_next_run_whatever_its_input(harness):
    capped = run(harness, CONTACTS, max_checks=5)
    assert capped.pending == 7
    other_input = harness.run(["+7 900 777-77-77"], ["c99"])  # another XCom, another templated query
    assert other_input.carried_over == 7 and other_input.quota_spent == 8 and other_input.pending == 0
    assert sorted(checks(harness)) == sorted([*NUMBERS, "79007777777"])
    assert set(checks(harness).values()) == {1}
    assert_invariants(harness, other_input)


def test_an_incremental_source_still_refreshes_stale_answers(harness):
    start = datetime.now(timezone.utc)

    def days_later(days: int):
        return lambda: start + timedelta(days=days) + (datetime.now(timezone.utc) - start)

    run(harness, CONTACTS)
    nothing_new = harness.run([], [])  # a query of the rows updated since the last run: none
    assert (nothing_new.distinct_numbers, nothing_new.quota_spent) == (0, 0)
    not_exists = {row[0] for row in harness.rows() if row[1] == "not_exists"}
    assert 0 < len(not_exists) < len(NUMBERS)
    week = harness.run([], [], clock=days_later(8))  # past the 7 days of a "not on WhatsApp" answer only
    assert week.carried_over == week.quota_spent == len(not_exists)
    month = harness.run([], [], clock=days_later(40))  # past both windows
    assert month.carried_over == month.quota_spent == len(NUMBERS)
    assert checks(harness) == {n: 3 if n in not_exists else 2 for n in NUMBERS}


def test_a_number_under_many_keys_is_checked_once_with_pacing_lifted_and_many_in_flight(any_warehouse):
    unlimited = GreenApiEmulator([EmulatedInstance(ID_INSTANCE, TOKEN, plan="business")], rate_limits=None)
    with unlimited:
        harness = Harness(unlimited, any_warehouse, unpaced_rate=2000, max_in_flight=32)
        summary = check_each_number_under_four_keys(harness)
    assert_invariants(harness, summary)


def check_each_number_under_four_keys(harness: Harness):
    numbers = [f"7901{i:07d}" for i in range(400)]
    keys = [f"k{i:05d}" for i in range(1600)]
    values = [numbers[(i * 7) % len(numbers)] for i in range(1600)]  # each number under 4 keys, spread out
    summary = harness.run(values, keys, chunk_size=100, commit_interval=0.0)
    assert summary.distinct_numbers == 400 and summary.duplicates == 1200
    assert checks(harness) == {n: 1 for n in numbers}
    assert summary.pending == 0
    return summary


def test_a_table_written_before_normalized_by_is_upgraded_in_place(harness):
    run(harness, CONTACTS)
    harness.warehouse.execute("ALTER TABLE whatsapp_checks DROP COLUMN normalized_by")  # the older table's shape
    upgraded = run(harness, CONTACTS)
    assert upgraded.unchanged == 0 and upgraded.quota_spent == 0  # read once more, answers kept
    assert upgraded.fresh == 12
    after = run(harness, CONTACTS)
    assert after.unchanged == 15 and after.quota_spent == 0
    assert set(checks(harness).values()) == {1}


# --- through the operator, from a SQL source ---------------------------------------------------------------

SOURCE_ROWS = [(i, phone) for i, phone in enumerate([*CONTACTS.values(), 79001234567], start=1)]


@pytest.fixture
def context(mocker):
    return {"ti": mocker.MagicMock(), "dag_run": SimpleNamespace(run_id="manual__test")}


def contacts_table(warehouse, rows) -> None:
    warehouse.execute("CREATE TABLE contacts (contact_id INTEGER PRIMARY KEY, phone VARCHAR(64))")
    p = warehouse.placeholder
    warehouse.execute(f"INSERT INTO contacts (contact_id, phone) VALUES {', '.join([f'({p}, {p})'] * len(rows))}",
                      [value for row in rows for value in row])


@pytest.mark.parametrize("source", ["same database", "another database"])
def test_a_sql_source_rerun_reads_only_what_changed(greenapi_conn, any_warehouse, emulator, context, source,
                                                    tmp_path, monkeypatch, caplog):
    source_conn_id = "warehouse"
    source_db = any_warehouse
    if source == "another database":
        source_db = make_warehouse("sqlite", tmp_path, None, monkeypatch, conn_id="contacts_db")
        source_conn_id = "contacts_db"
    contacts_table(source_db, SOURCE_ROWS)
    kwargs = {"task_id": "check", "sql": "SELECT contact_id, phone FROM contacts", "source_conn_id": source_conn_id,
              "phone_column": "phone", "key_column": "contact_id", "destination_conn_id": "warehouse"}
    first = CheckWhatsappOperator(**kwargs).execute(context)
    assert (first["inputs"], first["quota_spent"]) == (len(SOURCE_ROWS), 13)
    before = sorted(any_warehouse.fetch_all(EVERY_COLUMN), key=lambda row: (row[0], row[1]))
    caplog.clear()
    again = CheckWhatsappOperator(**kwargs).execute(context)
    assert (again["inputs"], again["unchanged"], again["quota_spent"]) == (len(SOURCE_ROWS),) * 2 + (0,)
    assert sorted(any_warehouse.fetch_all(EVERY_COLUMN), key=lambda row: (row[0], row[1])) == before
    engine = any_warehouse.dialect.engine  # cut in the source's database, or in the results' from a copy
    in_database = engine.diffs_in_database if source == "same database" else engine.copies_sources
    assert (f"found {len(SOURCE_ROWS)} of its rows stored as they are" in caplog.text) == in_database
    assert ("holding a copy of the source" in caplog.text) == (in_database and source == "another database")
    p = source_db.placeholder
    source_db.execute(f"UPDATE contacts SET phone = {p} WHERE contact_id = 4", ("+7 900 555-55-55",))
    source_db.execute(f"INSERT INTO contacts (contact_id, phone) VALUES (100, {p})", ("+7 900 666-66-66",))
    changed = CheckWhatsappOperator(**kwargs).execute(context)
    assert (changed["inputs"], changed["unchanged"]) == (len(SOURCE_ROWS) + 1, len(SOURCE_ROWS) - 1)
    assert changed["quota_spent"] == 2 and changed["distinct_numbers"] == 2
    assert set(checks_of(emulator).values()) == {1}


# A source in another database (SQLite, untyped: each value as the program wrote it): rows a copy of the source
# holds (text, an integer, no phone) and rows it cannot (a negative integer, a float, bytes, no key, a key longer
# than the results' column), which are staged at once on every rerun.
ODD_SOURCE_ROWS = [("a", "+7 900 123-45-67"), ("b", 79001234568), ("ключ", "79001234574"), ("nophone", None),
                   ("dup", "+7 900 123-45-67"), ("tab\tkey", "+7 900 123-45-75\t"), ("back\\N", "79001234576"),
                   ("new\nline\r", "79001234577"),  # a bulk path that escapes nothing would break these
                   ("neg", -79001234569), ("float", 79001234570.0), ("blob", b"79001234571"),
                   (None, "79001234572"), ("k" * 300, "79001234573")]
COPIED = 8  # the first eight


def test_a_rerun_from_another_database_compares_a_copy_and_stages_what_the_copy_cannot_hold(
        greenapi_conn, any_warehouse, emulator, context, tmp_path, monkeypatch, caplog):
    source = make_warehouse("sqlite", tmp_path, None, monkeypatch, conn_id="contacts_db")
    source.execute("CREATE TABLE contacts (contact_key TEXT, phone)")
    for row in ODD_SOURCE_ROWS:
        source.execute("INSERT INTO contacts VALUES (?, ?)", row)
    kwargs = {"task_id": "check", "sql": "SELECT contact_key, phone FROM contacts", "source_conn_id": "contacts_db",
              "phone_column": "phone", "key_column": "contact_key", "destination_conn_id": "warehouse"}
    first = CheckWhatsappOperator(**kwargs).execute(context)
    assert (first["inputs"], first["distinct_numbers"], first["quota_spent"], first["invalid"]) == (13, 7, 7, 5)
    before = sorted(any_warehouse.fetch_all(EVERY_COLUMN), key=lambda row: (row[0], row[1]))
    caplog.clear()
    again = CheckWhatsappOperator(**kwargs).execute(context)
    assert (again["inputs"], again["unchanged"], again["quota_spent"]) == (13, 13, 0)
    assert sorted(any_warehouse.fetch_all(EVERY_COLUMN), key=lambda row: (row[0], row[1])) == before
    copies = any_warehouse.dialect.engine.copies_sources
    assert (f"holding a copy of the source, found {COPIED} of its rows stored as they are" in caplog.text) == copies
    source.execute("UPDATE contacts SET phone = '+7 900 555-55-55' WHERE contact_key = 'a'")
    source.execute("INSERT INTO contacts VALUES ('new', 79006666666)")
    dry = CheckWhatsappOperator(**kwargs, dry_run=True).execute(context)
    assert (dry["inputs"], dry["unchanged"], dry["quota_spent"]) == (14, 12, 0)
    assert sorted(any_warehouse.fetch_all(EVERY_COLUMN), key=lambda row: (row[0], row[1])) == before
    changed = CheckWhatsappOperator(**kwargs).execute(context)
    assert (changed["inputs"], changed["unchanged"], changed["quota_spent"]) == (14, 12, 2)
    assert set(checks_of(emulator).values()) == {1}  # each number checked once over all four runs
    assert {"79005555555", "79006666666"} <= set(checks_of(emulator))
    keyed = dict(any_warehouse.fetch_all("SELECT source_key, phone_number FROM whatsapp_checks "
                                         "WHERE source_key IN ('a', 'new', 'dup')"))
    assert keyed == {"a": "79005555555", "new": "79006666666", "dup": "79001234567"}


def checks_of(emulator) -> dict[str, int]:
    return dict(emulator.counters(ID_INSTANCE).checked_numbers)


@pytest.mark.parametrize("source", ["same database", "another database", "a dict"])
def test_prune_missing_deletes_the_results_of_keys_the_source_lost(greenapi_conn, any_warehouse, emulator, context,
                                                                   source, tmp_path, monkeypatch):
    kwargs: dict = {"task_id": "check", "destination_conn_id": "warehouse", "prune_missing": True}
    if source == "a dict":
        kwargs["phone_numbers"] = {str(k): v for k, v in SOURCE_ROWS}
    else:
        source_db, source_conn_id = any_warehouse, "warehouse"
        if source == "another database":
            source_db = make_warehouse("sqlite", tmp_path, None, monkeypatch, conn_id="contacts_db")
            source_conn_id = "contacts_db"
        contacts_table(source_db, SOURCE_ROWS)
        kwargs |= {"sql": "SELECT contact_id, phone FROM contacts", "source_conn_id": source_conn_id,
                   "phone_column": "phone", "key_column": "contact_id"}
    CheckWhatsappOperator(**kwargs).execute(context)
    harness_rows = any_warehouse.fetch_all("SELECT source_key FROM whatsapp_checks")
    assert sorted(int(r[0]) for r in harness_rows) == [k for k, _ in SOURCE_ROWS]
    gone = {3, 14, 16}  # a number, the contact without a phone, the last one
    if source == "a dict":
        kwargs["phone_numbers"] = {str(k): v for k, v in SOURCE_ROWS if k not in gone}
    else:
        source_db.execute(f"DELETE FROM contacts WHERE contact_id IN ({', '.join(map(str, gone))})")
    dry = CheckWhatsappOperator(**kwargs, dry_run=True).execute(context)
    assert dry["pruned"] == len(gone)
    assert len(any_warehouse.fetch_all("SELECT source_key FROM whatsapp_checks")) == len(SOURCE_ROWS)
    pruned = CheckWhatsappOperator(**kwargs).execute(context)
    assert pruned["pruned"] == len(gone) and pruned["quota_spent"] == 0
    kept = sorted(int(r[0]) for r in any_warehouse.fetch_all("SELECT source_key FROM whatsapp_checks"))
    assert kept == [k for k, _ in SOURCE_ROWS if k not in gone]


def test_prune_missing_needs_a_whole_keyed_source():
    with pytest.raises(ValueError, match=r"prune_missing .* needs destination_conn_id"):
        CheckWhatsappOperator(task_id="t", sql="SELECT phone FROM c", source_conn_id="w", destination_conn_id="w",
                              prune_missing=True)
    with pytest.raises(ValueError, match="no shard_index"):
        CheckWhatsappOperator(task_id="t", phone_numbers={"a": "1"}, destination_conn_id="w", prune_missing=True,
                              shard_index=0, shard_count=2)


@pytest.mark.postgres
def test_a_results_user_who_may_not_make_temporary_tables_gets_the_rows_compared_by_key(
        greenapi_conn, postgres, emulator, context, tmp_path, monkeypatch, caplog):
    import uuid

    import psycopg

    name, role = postgres.create_database(), f"r_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(host=postgres.host, port=postgres.port, user=postgres.user, dbname=name,
                         autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        admin.execute(f"REVOKE TEMPORARY ON DATABASE {name} FROM PUBLIC")
        admin.execute(f"GRANT CREATE, USAGE ON SCHEMA public TO {role}")
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", f"postgres://{role}@{postgres.host}:{postgres.port}/{name}")
    source = make_warehouse("sqlite", tmp_path, None, monkeypatch, conn_id="contacts_db")
    contacts_table(source, SOURCE_ROWS)
    kwargs = {"task_id": "check", "sql": "SELECT contact_id, phone FROM contacts", "source_conn_id": "contacts_db",
              "phone_column": "phone", "key_column": "contact_id", "destination_conn_id": "warehouse"}
    first = CheckWhatsappOperator(**kwargs).execute(context)
    assert first["quota_spent"] == 13
    caplog.clear()
    source.execute("UPDATE contacts SET phone = '+7 900 555-55-55' WHERE contact_id = 4")
    again = CheckWhatsappOperator(**kwargs).execute(context)
    assert (again["inputs"], again["unchanged"], again["quota_spent"]) == (len(SOURCE_ROWS), len(SOURCE_ROWS) - 1, 1)
    assert "could not be copied into a temporary table" in caplog.text and "permission denied" in caplog.text
    assert "holding a copy of the source" not in caplog.text


@pytest.mark.parametrize("source", ["same database", "another database"])
def test_a_parameterised_source_query_binds_its_parameters_wherever_it_runs(greenapi_conn, any_warehouse, emulator,
                                                                            context, source, tmp_path, monkeypatch,
                                                                            caplog):
    """``parameters`` reach every statement the query runs in: the first read, the rerun's cut to the changed rows
    (in the source's database, or a copy of it), its count, and the prune of keys the query no longer returns."""
    source_db, source_conn_id = any_warehouse, "warehouse"
    if source == "another database":
        source_db = make_warehouse("sqlite", tmp_path, None, monkeypatch, conn_id="contacts_db")
        source_conn_id = "contacts_db"
    contacts_table(source_db, SOURCE_ROWS)
    p = source_db.placeholder
    kwargs = {"task_id": "check", "sql": f"SELECT contact_id, phone FROM contacts WHERE contact_id <= {p}",
              "parameters": [10], "source_conn_id": source_conn_id, "phone_column": "phone",
              "key_column": "contact_id", "destination_conn_id": "warehouse"}
    first = CheckWhatsappOperator(**kwargs).execute(context)
    assert first["inputs"] == 10
    stored = sorted(int(r[0]) for r in any_warehouse.fetch_all("SELECT source_key FROM whatsapp_checks"))
    assert stored == list(range(1, 11))
    caplog.clear()
    again = CheckWhatsappOperator(**kwargs).execute(context)
    assert (again["inputs"], again["unchanged"], again["quota_spent"]) == (10, 10, 0)
    engine = any_warehouse.dialect.engine
    in_database = engine.diffs_in_database if source == "same database" else engine.copies_sources
    assert ("found 10 of its rows stored as they are" in caplog.text) == in_database
    pruned = CheckWhatsappOperator(**{**kwargs, "parameters": [7]}, prune_missing=True).execute(context)
    assert (pruned["inputs"], pruned["pruned"], pruned["quota_spent"]) == (7, 3, 0)
    stored = sorted(int(r[0]) for r in any_warehouse.fetch_all("SELECT source_key FROM whatsapp_checks"))
    assert stored == list(range(1, 8))
    assert set(checks_of(emulator).values()) == {1}


def test_parameters_need_a_sql_source():
    with pytest.raises(ValueError, match="parameters, phone_column and key_column only apply to a sql source"):
        CheckWhatsappOperator(task_id="t", phone_numbers=["1"], parameters=[1])
