"""warehouse/changes.py, what changed since a source was read, on all five engines: an input stored as it is
stays unchanged; a source's copy holds what it can compare."""

from __future__ import annotations

from airflow_provider_greenapi.results import Freshness, RunContext
from airflow_provider_greenapi.warehouse import StagedInput
from tests.store_support import NOW, invalid, run, valid


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
