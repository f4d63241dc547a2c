"""warehouse/queue.py, the run's work queue on all five engines: the queue in number order, what the table
still owes whatever the run named (carry_over), the answers written back, the rows for the XCom."""

from __future__ import annotations

from datetime import timedelta

from airflow_provider_greenapi.results import CheckOutcome, CheckStatus, Freshness
from airflow_provider_greenapi.warehouse import StagedInput
from tests.store_support import NOW, answer, invalid, rows, run, valid


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
