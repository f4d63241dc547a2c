"""Scale out: the shard partition, sharded operator runs, PostgreSQL under concurrent writers, and the sharded
example DAG run by Airflow's LocalExecutor with its tasks truly in parallel against four emulated instances."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from airflow_provider_greenapi.client import ClientSettings, GreenApiClient
from airflow_provider_greenapi.emulator import EmulatedInstance, FaultPlan, GreenApiEmulator
from airflow_provider_greenapi.numbers import PhoneNumberNormalizer
from airflow_provider_greenapi.operators.check_whatsapp import CheckWhatsappOperator
from airflow_provider_greenapi.pipeline import BulkChecker, CheckOptions
from airflow_provider_greenapi.results import CheckOutcome, CheckStatus, Freshness, RunContext
from airflow_provider_greenapi.sharding import Shard, greenapi_shards, shard_of
from airflow_provider_greenapi.warehouse import Dialect, ResultsStore, StagedInput, UsageLedger
from tests.airflow_cli import AIRFLOW, free_port, migrate, wait_until_answering
from tests.conftest import _new_pg_database, greenapi_connection, make_warehouse

ROOT = Path(__file__).resolve().parent.parent
INSTANCES = [(f"11010000{i + 1:02d}", f"shard-token-{i + 1}-{uuid.uuid4().hex[:12]}") for i in range(4)]
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def numbers(count: int, first: int = 79_000_000_000) -> list[str]:
    return [str(first + 7919 * i) for i in range(count)]


def multi_emulator(count: int, latency_ms: float = 0.0) -> GreenApiEmulator:
    faults = FaultPlan(latency_ms=latency_ms) if latency_ms else None
    return GreenApiEmulator([EmulatedInstance(i, t, plan="business", faults=faults) for i, t in INSTANCES[:count]])


# --- the partition ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_every_number_belongs_to_exactly_one_shard(count):
    shards = [Shard(i, count) for i in range(count)]
    for number in [*numbers(500), "9999999999999999", "10000000000"]:
        owners = [s.index for s in shards if s.owns(number)]
        assert owners == [int(number) % count] == [shard_of(number, count)]


def test_the_partition_is_on_the_normalised_number():
    normalize = PhoneNumberNormalizer()
    spellings = ["+7 912 345-67-89", "79123456789", "+7 (912) 345 67 89", "79123456789@c.us"]
    digits = {normalize(s).digits for s in spellings}
    assert digits == {"79123456789"}
    assert {shard_of(d, 4) for d in digits if d} == {79123456789 % 4}


def test_invalid_inputs_belong_to_shard_zero_only():
    assert [Shard(i, 3).owns(None) for i in range(3)] == [True, False, False]


@pytest.mark.parametrize(("index", "count", "message"), [
    (0, 0, "at least 1"),
    (2, 2, "from 0 to"),
    (-1, 2, "from 0 to"),
    (True, 2, "integer"),
    (0, "4", "integer"),
    (1, None, "both shard_index and shard_count"),
    (None, 3, "both shard_index and shard_count"),
])
def test_shard_arguments_are_validated_at_construction(index, count, message):
    with pytest.raises(ValueError, match=message):
        CheckWhatsappOperator(task_id="check", phone_numbers=["1"], shard_index=index, shard_count=count)


def test_greenapi_shards_gives_the_mapped_kwargs():
    assert greenapi_shards(["a", "b", "c"]) == [
        {"greenapi_conn_id": "a", "shard_index": 0, "shard_count": 3},
        {"greenapi_conn_id": "b", "shard_index": 1, "shard_count": 3},
        {"greenapi_conn_id": "c", "shard_index": 2, "shard_count": 3},
    ]
    for bad, message in (([], "non-empty"), ("greenapi_1", "non-empty"), (["a", "b", "a"], "more than once")):
        with pytest.raises(ValueError, match=message):
            greenapi_shards(bad)


def test_the_partition_is_the_same_in_sql(warehouse):
    """``CAST(phone_number AS BIGINT) % n`` in the warehouse agrees with the Python rule, up to 16 digits."""
    values = [*numbers(50), "9999999999999999", "1000000000000000", "10000000000"]
    connection = warehouse.connect()
    cursor = connection.cursor()
    cursor.execute("CREATE TABLE t (phone_number TEXT)")
    p = warehouse.dialect.placeholder
    cursor.executemany(f"INSERT INTO t VALUES ({p})", [(v,) for v in values])
    for count in (2, 3, 4):
        cursor.execute(f"SELECT phone_number, CAST(phone_number AS BIGINT) % {count} FROM t")
        assert {n: int(s) for n, s in cursor.fetchall()} == {v: shard_of(v, count) for v in values}
    connection.close()


def test_mapping_the_operator_over_the_shards_builds_one_task_per_connection():
    import pendulum
    from airflow.providers.common.compat.sdk import DAG

    with DAG("sharded", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        mapped = CheckWhatsappOperator.partial(
            task_id="check", sql="SELECT phone FROM contacts", source_conn_id="w", destination_conn_id="w"
        ).expand_kwargs(greenapi_shards(["greenapi_1", "greenapi_2"]))
    assert mapped.partial_kwargs["sql"] == "SELECT phone FROM contacts"
    assert [k["shard_index"] for k in mapped.expand_input.value] == [0, 1]


# --- sharded operator runs, one after the other -------------------------------------------------------------


@pytest.fixture
def context(mocker):
    return {"ti": mocker.MagicMock(), "dag_run": SimpleNamespace(run_id="manual__shards")}


def test_sharded_runs_check_every_number_once_and_count_every_input_once(warehouse, context, monkeypatch):
    valid = numbers(30)
    inputs = {f"k{i}": n for i, n in enumerate(valid)}
    inputs.update({"dup1": valid[0], "dup2": "+" + valid[1], "bad1": "junk", "bad2": "123", "none": None})
    with multi_emulator(3) as emu:
        for i, (instance, token) in enumerate(INSTANCES[:3]):
            monkeypatch.setenv(f"AIRFLOW_CONN_GREENAPI_{i + 1}",
                               greenapi_connection(emu, instance, token, requests_per_second=10))
        summaries = []
        for kwargs in greenapi_shards(["greenapi_1", "greenapi_2", "greenapi_3"]):
            operator = CheckWhatsappOperator(task_id="check", phone_numbers=inputs,
                                             destination_conn_id=warehouse.conn_id, **kwargs)
            summaries.append(operator.execute(context))
        counters = [emu.counters(instance) for instance, _ in INSTANCES[:3]]
    assert {s["inputs"] + s["other_shards"] for s in summaries} == {len(inputs)}
    assert sum(s["inputs"] for s in summaries) == len(inputs)
    assert [s["invalid"] for s in summaries] == [3, 0, 0]  # recorded once, by shard 0
    assert sum(s["duplicates"] for s in summaries) == 2  # dup1, dup2: a seen number, own rows, one check each
    assert sum(s["inputs"] for s in summaries) == sum(
        s["duplicates"] + s["invalid"] + s["distinct_numbers"] for s in summaries)
    assert sum(s["distinct_numbers"] for s in summaries) == len(valid)
    assert sum(s["exists"] + s["not_exists"] for s in summaries) == len(valid)
    for index, (summary, counter) in enumerate(zip(summaries, counters, strict=True)):
        assert summary["instance_id"] == INSTANCES[index][0]
        assert set(counter.checked_numbers.values()) == {1}
        assert {shard_of(n, 3) for n in counter.checked_numbers} == {index}
        assert summary["quota_spent"] == counter.count("checkWhatsapp") == len(counter.checked_numbers)
    assert sum(len(c.checked_numbers) for c in counters) == len(valid)
    connection = warehouse.connect()
    cursor = connection.cursor()
    cursor.execute("SELECT source_key, status, instance_id FROM whatsapp_checks")
    rows = {key: (status, instance) for key, status, instance in cursor.fetchall()}
    cursor.execute("SELECT instance_id, calls FROM greenapi_usage")
    ledger = dict(cursor.fetchall())
    connection.close()
    assert len(rows) == len(inputs)
    assert {rows[k][0] for k in ("bad1", "bad2", "none")} == {"invalid"}
    assert rows["dup1"] == rows["k0"] and rows["dup1"][0] in ("exists", "not_exists")
    instances = [instance for instance, _ in INSTANCES[:3]]
    assert ledger == {i: c.count("checkWhatsapp") for i, c in zip(instances, counters, strict=True)}


def test_a_shard_rerun_finds_its_own_numbers_fresh(warehouse, context, monkeypatch):
    valid = numbers(12)
    with multi_emulator(2) as emu:
        for i, (instance, token) in enumerate(INSTANCES[:2]):
            monkeypatch.setenv(f"AIRFLOW_CONN_GREENAPI_{i + 1}", greenapi_connection(emu, instance, token))
        shards = greenapi_shards(["greenapi_1", "greenapi_2"])
        first = CheckWhatsappOperator(task_id="check", phone_numbers=valid, max_checks=2,
                                      destination_conn_id=warehouse.conn_id, **shards[0]).execute(context)
        second = CheckWhatsappOperator(task_id="check", phone_numbers=valid,
                                       destination_conn_id=warehouse.conn_id, **shards[0]).execute(context)
        calls = emu.counters(INSTANCES[0][0]).checked_numbers
        assert emu.counters(INSTANCES[1][0]).count("checkWhatsapp") == 0
    own = [n for n in valid if shard_of(n, 2) == 0]
    assert first["pending"] == len(own) - 2  # the budget left the rest queued ...
    # ... and the rerun took them; the 2 answered are stored as they are
    assert second["unchanged"] == 2 and second["numbers_sent"] == len(own) - 2
    assert sorted(calls) == sorted(own) and set(calls.values()) == {1}


def test_changing_the_connections_rechecks_nothing_fresh(warehouse, context, monkeypatch):
    valid = numbers(20)
    with multi_emulator(3) as emu:
        for i, (instance, token) in enumerate(INSTANCES[:3]):
            monkeypatch.setenv(f"AIRFLOW_CONN_GREENAPI_{i + 1}", greenapi_connection(emu, instance, token))
        for kwargs in greenapi_shards(["greenapi_1", "greenapi_2"]):
            CheckWhatsappOperator(task_id="check", phone_numbers=valid, destination_conn_id=warehouse.conn_id,
                                  **kwargs).execute(context)
        calls_before = sum(emu.counters(i).count("checkWhatsapp") for i, _ in INSTANCES[:3])
        again = [CheckWhatsappOperator(task_id="check", phone_numbers=valid, destination_conn_id=warehouse.conn_id,
                                       **kwargs).execute(context)
                 for kwargs in greenapi_shards(["greenapi_1", "greenapi_2", "greenapi_3"])]  # numbers move shards
        calls_after = sum(emu.counters(i).count("checkWhatsapp") for i, _ in INSTANCES[:3])
    assert calls_before == len(valid)
    assert calls_after == calls_before  # every moved number found its stored answer fresh
    assert sum(s["unchanged"] + s["fresh"] for s in again) == len(valid)


# --- PostgreSQL under concurrent writers --------------------------------------------------------------------


def run_together(count: int, work) -> list:
    """Run ``work(i)`` in ``count`` threads released at the same instant; re-raise the first error."""
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def pg(request, tmp_path, monkeypatch):
    return make_warehouse("postgres", tmp_path, request, monkeypatch)


@pytest.mark.postgres
def test_many_tasks_creating_the_tables_at_once(pg):
    """Mapped tasks start together, and each creates the results table and the ledger if missing."""
    for attempt in range(5):
        table = f"checks_{attempt}"

        def create(i: int, table: str = table) -> None:
            connection = pg.connect()
            try:
                if i % 2:
                    ResultsStore(connection, Dialect.POSTGRES, table).ensure_table()
                    UsageLedger(connection, Dialect.POSTGRES, str(i), table=f"usage_{table}").ensure_table()
                else:
                    UsageLedger(connection, Dialect.POSTGRES, str(i), table=f"usage_{table}").ensure_table()
                    ResultsStore(connection, Dialect.POSTGRES, table).ensure_table()
            finally:
                connection.close()

        run_together(8, create)


@pytest.mark.postgres
def test_creating_the_table_does_not_wait_for_another_task_writing_it(pg):
    """A task's start (ensure_table) must not queue behind another task's open write transaction."""
    writer = pg.connect()
    store = ResultsStore(writer, Dialect.POSTGRES, "whatsapp_checks")
    store.ensure_table()
    store.stage([StagedInput(PhoneNumberNormalizer()("79001234567"))], RunContext("a"), Freshness(), NOW)
    other = pg.connect()
    other.cursor().execute("SET lock_timeout = '3s'")
    try:
        ResultsStore(other, Dialect.POSTGRES, "whatsapp_checks").ensure_table()  # LockNotAvailable if it waits
    finally:
        other.close()
        writer.rollback()
        writer.close()


@pytest.mark.postgres
def test_the_ledger_never_overshoots_under_concurrent_reservations(pg):
    """Parallel tasks on one instance share its monthly quota exactly; other instances are unaffected."""
    setup = pg.connect()
    UsageLedger(setup, Dialect.POSTGRES, "x").ensure_table()
    setup.close()

    def spend(i: int) -> int:
        connection = pg.connect()
        instance = "shared" if i < 6 else f"own-{i}"
        ledger = UsageLedger(connection, Dialect.POSTGRES, instance, monthly_quota=100)
        granted = 0
        try:
            for _ in range(40):
                try:
                    ledger.reserve_call()
                    granted += 1
                except Exception as error:
                    assert "quota" in str(error)
        finally:
            ledger.close()  # closes the connection, and gives back any call counted and not sent
        return granted

    granted = run_together(8, spend)
    assert sum(granted[:6]) == 100  # 6 x 40 asked, exactly the quota granted
    assert granted[6:] == [40, 40]
    check = pg.connect()
    cursor = check.cursor()
    cursor.execute("SELECT instance_id, calls FROM greenapi_usage")
    assert dict(cursor.fetchall()) == {"shared": 100, "own-6": 40, "own-7": 40}
    check.close()


@pytest.mark.postgres
def test_staging_and_writing_in_parallel_with_different_tokens(pg):
    """Four shards stage the same input and write their answers at once; then runs that overlap entirely
    (unsharded, as two DAGs on one table would) still leave one row per key and no deadlock."""
    normalize = PhoneNumberNormalizer()
    values = numbers(400)
    inputs = [StagedInput(normalize(v), f"c{i}") for i, v in enumerate(values)]
    inputs += [StagedInput(normalize("junk"), "bad")]

    def shard_run(i: int, shard: Shard | None) -> int:
        connection = pg.connect()
        store = ResultsStore(connection, Dialect.POSTGRES, "whatsapp_checks")
        context = RunContext(uuid.uuid4().hex, f"inst{i}")
        try:
            store.ensure_table()
            own = [s for s in inputs if shard is None or shard.owns(s.number.digits)]
            random.Random(i).shuffle(own)
            for start in range(0, len(own), 50):
                store.stage(own[start:start + 50], context, Freshness(None, None), NOW)
                store.commit()
            sent = 0
            for page in store.queued_numbers(context.token, page_size=37):
                outcomes = [CheckOutcome(n, CheckStatus.EXISTS, NOW) for n in page]
                random.Random(i).shuffle(outcomes)
                store.write_outcomes(outcomes, context, NOW)
                store.commit()
                sent += len(page)
            return sent
        finally:
            connection.close()

    sent = run_together(4, lambda i: shard_run(i, Shard(i, 4)))
    assert sum(sent) == len(values)
    run_together(4, lambda i: shard_run(i, None))
    connection = pg.connect()
    cursor = connection.cursor()
    cursor.execute("SELECT source_key, status, queued_at FROM whatsapp_checks")
    rows = cursor.fetchall()
    connection.close()
    assert len(rows) == len(inputs) == len({r[0] for r in rows})
    assert Counter(r[1] for r in rows) == {"exists": len(values), "invalid": 1}
    assert all(r[2] is None for r in rows)


@pytest.mark.postgres
def test_sharded_checkers_in_parallel_on_one_postgres(pg):
    """Four bulk checkers, one per instance, at once on one results table and ledger: each number checked
    once, by the instance of its shard; the ledger equals the emulator's counters; no 429."""
    values = [*numbers(120), *numbers(10), "not a number"]

    def check(i: int):
        instance, token = INSTANCES[i]
        store_connection, ledger_connection = pg.connect(), pg.connect()
        ledger = UsageLedger(ledger_connection, Dialect.POSTGRES, instance, monthly_quota=30_000)
        client = GreenApiClient(emu.base_url, instance, token,
                                ClientSettings(requests_per_second=10, max_in_flight=4, retry_backoff=0.01),
                                ledger=ledger)
        try:
            checker = BulkChecker(
                client, ResultsStore(store_connection, Dialect.POSTGRES, "whatsapp_checks"), PhoneNumberNormalizer(),
                ledger=ledger, options=CheckOptions(shard=Shard(i, 4), chunk_size=25, commit_interval=0.2),
            )
            return checker.run((v, "") for v in values)
        finally:
            client.close()
            store_connection.close()
            ledger_connection.close()

    with multi_emulator(4, latency_ms=20) as emu:
        summaries = run_together(4, check)
        counters = {instance: emu.counters(instance) for instance, _ in INSTANCES}
    assert sum(s.inputs for s in summaries) == len(values)
    assert sum(s.duplicates for s in summaries) == 10 and sum(s.invalid for s in summaries) == 1
    checked = Counter()
    for index, (instance, _) in enumerate(INSTANCES):
        counter = counters[instance]
        assert all(status != 429 for calls in counter.calls.values() for status in calls)
        assert {shard_of(n, 4) for n in counter.checked_numbers} == {index}
        checked.update(counter.checked_numbers)
    assert set(checked) == set(numbers(120)) and set(checked.values()) == {1}
    connection = pg.connect()
    cursor = connection.cursor()
    cursor.execute("SELECT instance_id, calls FROM greenapi_usage")
    assert dict(cursor.fetchall()) == {i: counters[i].count("checkWhatsapp") for i, _ in INSTANCES}
    cursor.execute("SELECT COUNT(*) FROM whatsapp_checks WHERE status IN ('exists', 'not_exists')")
    assert cursor.fetchone()[0] == 120
    connection.close()


# --- the sharded example DAG on real executors: LocalExecutor, and CeleryExecutor with two workers ------------


def executor_env(home: Path, postgres, executor: str, port: int, **extra: str) -> dict[str, str]:
    """An Airflow home whose tasks run in parallel processes: ``executor``, a PostgreSQL metadata database
    (SQLite's single writer would serialise the workers' calls), and the execution API server on ``port``."""
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres.uri(_new_pg_database(postgres)).replace(
            "postgresql://", "postgresql+psycopg2://"),
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex * 2,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        **extra,
    }


@contextlib.contextmanager
def background(command: list[str], env: dict[str, str], log: Path, ready: Callable[[subprocess.Popen], None]):
    """A server process of the test: started, waited for with ``ready``, and stopped at the end."""
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        ready(process)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def execution_api_server(env: dict[str, str], home: Path):
    port = env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].split(":")[2].split("/")[0]
    log = home / "api-server.log"
    return background(
        [AIRFLOW, "api-server", "--apps", "execution", "--host", "127.0.0.1", "--port", port], env, log,
        lambda server: wait_until_answering(f"http://127.0.0.1:{port}/execution/health", server, log))


@pytest.fixture(scope="module")
def local_executor(tmp_path_factory, postgres):
    home = tmp_path_factory.mktemp("airflow-local-executor")
    env = executor_env(home, postgres, "LocalExecutor", free_port())
    migrate(env)
    with execution_api_server(env, home):
        yield env


def _formatted(digits: str) -> str:
    return f"+{digits[0]} ({digits[1:4]}) {digits[4:7]}-{digits[7:9]}-{digits[9:]}"


@dataclass
class ShardedRun:
    """What one ``airflow dags test example_greenapi_sharded --use-executor`` did, and what it took."""

    env: dict[str, str]
    valid: list[str]
    contacts: list[str | None]
    seconds: float

    @property
    def checks_per_second(self) -> float:
        return len(self.valid) / self.seconds


def run_sharded_example(env: dict[str, str], warehouse, count: int = 160, latency_ms: float = 50,
                        workers: Callable[[dict[str, str]], contextlib.AbstractContextManager] | None = None
                        ) -> ShardedRun:
    """Seed ``count`` contacts (mixed spellings, repeats, junk), run the sharded example on ``env``'s executor
    against four emulated instances (``workers(env)``, when given, runs around it: the executor's workers,
    started once the connections are known), and assert what must hold on any executor: every number checked exactly
    once by the instance of its shard, no 429, the ledger equal to the emulator's counts, one row per contact,
    and the four mapped tasks truly in parallel, in four processes."""
    valid = numbers(count)
    contacts: list[str | None] = [_formatted(n) if i % 2 else n for i, n in enumerate(valid)]
    contacts += [_formatted(n) for n in valid[:8]]  # the same numbers under other contacts: one check each
    contacts += ["junk", "123", None]
    connection = warehouse.connect()
    cursor = connection.cursor()
    cursor.execute("CREATE TABLE contacts (contact_id INTEGER PRIMARY KEY, phone TEXT)")
    cursor.executemany("INSERT INTO contacts VALUES (%s, %s)", list(enumerate(contacts, start=1)))
    connection.commit()
    connection.close()

    with multi_emulator(4, latency_ms=latency_ms) as emu:
        env = {**env, "AIRFLOW_CONN_WAREHOUSE_DEFAULT": warehouse.airflow_uri}
        for i, (instance, token) in enumerate(INSTANCES):
            env[f"AIRFLOW_CONN_GREENAPI_{i + 1}"] = greenapi_connection(emu, instance, token)
        with workers(env) if workers else contextlib.nullcontext():
            started = time.monotonic()
            result = subprocess.run([AIRFLOW, "dags", "test", "example_greenapi_sharded", "--use-executor"],
                                    env=env, capture_output=True, text=True, timeout=900)
            seconds = time.monotonic() - started
        counters = {instance: emu.counters(instance) for instance, _ in INSTANCES}
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert not any(token in output for _, token in INSTANCES)
    report_logs = (Path(env["AIRFLOW_HOME"]) / "logs" / "dag_id=example_greenapi_sharded").rglob("*.log")
    reported = output + "".join(log.read_text() for log in report_logs if "task_id=report" in str(log))
    assert "WhatsApp check of the contacts table across 4 GREEN-API instances" in reported  # on a worker: its log

    checked: Counter[str] = Counter()
    for index, (instance, _) in enumerate(INSTANCES):
        counter = counters[instance]
        assert all(429 not in statuses for statuses in counter.calls.values()), counter.calls
        assert counter.count("checkWhatsapp") == counter.count("checkWhatsapp", 200) > 0
        assert {shard_of(n, 4) for n in counter.checked_numbers} == {index}  # each instance its own shard
        checked.update(counter.checked_numbers)
    assert set(checked) == set(valid) and set(checked.values()) == {1}  # every number exactly once

    connection = warehouse.connect()
    cursor = connection.cursor()
    cursor.execute("SELECT instance_id, calls FROM greenapi_usage")
    assert dict(cursor.fetchall()) == {i: counters[i].count("checkWhatsapp") for i, _ in INSTANCES}
    cursor.execute("SELECT status, COUNT(*) FROM whatsapp_checks GROUP BY status")
    statuses = dict(cursor.fetchall())
    connection.close()
    assert statuses.pop("invalid") == 3
    assert sum(statuses.values()) == len(contacts) - 3 and set(statuses) <= {"exists", "not_exists"}

    # Truly in parallel: every mapped task started before any of them finished (read from Airflow's records).
    tasks = mapped_task_records(env)
    assert sorted(t[0] for t in tasks) == [0, 1, 2, 3] and {t[1] for t in tasks} == {"success"}
    assert max(t[2] for t in tasks) < min(t[3] for t in tasks)
    assert len({t[4] for t in tasks}) == 4  # four task processes
    return ShardedRun(env, valid, contacts, seconds)


def mapped_task_records(env: dict[str, str]) -> list[tuple]:
    """(map_index, state, start_date, end_date, pid, hostname) of the sharded example's mapped tasks."""
    import psycopg2

    metadata = psycopg2.connect(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("+psycopg2", ""))
    cursor = metadata.cursor()
    cursor.execute("SELECT map_index, state, start_date, end_date, pid, hostname FROM task_instance "
                   "WHERE dag_id = 'example_greenapi_sharded' AND task_id = 'check_contacts'")
    tasks = cursor.fetchall()
    metadata.close()
    return tasks


@pytest.mark.slow
@pytest.mark.postgres
def test_the_sharded_example_runs_its_tasks_in_parallel(local_executor, tmp_path, request, monkeypatch):
    warehouse = make_warehouse("postgres", tmp_path, request, monkeypatch, conn_id="warehouse_default")
    run = run_sharded_example(local_executor, warehouse)
    print(f"LocalExecutor: {len(run.valid)} numbers in {run.seconds:.1f} s, {run.checks_per_second:.1f} checks/s")


# CeleryExecutor: Redis as the broker (Debian's redis-server, a private one on a free port: never the
# machine's shared 6379), PostgreSQL as result backend and metadata database, two `airflow celery worker`s.
CELERY_WORKERS = 2


def why_celery_unavailable() -> str | None:
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (Debian: apt-get install redis-server)"
    if importlib.util.find_spec("airflow.providers.celery") is None:
        return "apache-airflow-providers-celery is not installed (it is in the dev extra: pip install -e '.[dev]')"
    return None


def wait_for_redis(port: int, process: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"redis-server exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            if sock.recv(16).startswith(b"+PONG"):
                return
        time.sleep(0.2)
    raise AssertionError(f"redis-server did not answer on port {port}:\n{log.read_text()[-2000:]}")


def wait_for_workers(env: dict[str, str], count: int, workers: list[subprocess.Popen], logs: list[Path],
                     timeout: float = 180) -> None:
    """Until ``count`` Celery workers answer a ping through the broker."""
    from celery import Celery

    app = Celery(broker=env["AIRFLOW__CELERY__BROKER_URL"])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for worker, log in zip(workers, logs, strict=True):
                if worker.poll() is not None:
                    raise AssertionError(f"a Celery worker exited with {worker.returncode}:\n"
                                         f"{log.read_text()[-3000:]}")
            if len(app.control.ping(timeout=1.0) or []) >= count:
                return
            time.sleep(0.5)
    finally:
        app.close()
    raise AssertionError("the Celery workers did not come up:\n" + "\n".join(log.read_text()[-2000:] for log in logs))


@pytest.fixture(scope="module")
def celery_executor(tmp_path_factory, postgres):
    reason = why_celery_unavailable()
    if reason:
        pytest.skip(f"CeleryExecutor test skipped: {reason}")
    home = tmp_path_factory.mktemp("airflow-celery-executor")
    redis_port = free_port()
    env = executor_env(home, postgres, "CeleryExecutor", free_port(),
                       AIRFLOW__CELERY__BROKER_URL=f"redis://127.0.0.1:{redis_port}/0",
                       AIRFLOW__CELERY__WORKER_CONCURRENCY="2")
    env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace(
        "+psycopg2", "")
    migrate(env)
    redis_log = home / "redis.log"
    with contextlib.ExitStack() as stack:
        stack.enter_context(background(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(home)], env, redis_log, lambda p: wait_for_redis(redis_port, p, redis_log)))
        stack.enter_context(execution_api_server(env, home))
        yield env


@contextlib.contextmanager
def celery_workers(env: dict[str, str]):
    """``CELERY_WORKERS`` ``airflow celery worker`` processes, each running up to 2 tasks; ready when they all
    answer a ping through Redis. Yields their log files."""
    home = Path(env["AIRFLOW_HOME"])
    logs = [home / f"worker-{i}.log" for i in range(CELERY_WORKERS)]
    with contextlib.ExitStack() as stack:
        workers = [stack.enter_context(background(
            [AIRFLOW, "celery", "worker", "--concurrency", "2", "--celery-hostname", f"greenapi-w{i}@%h",
             "--skip-serve-logs", "--without-mingle", "--without-gossip"], env, log, lambda p: None))
            for i, log in enumerate(logs)]
        wait_for_workers(env, CELERY_WORKERS, workers, logs)
        yield logs


@pytest.mark.slow
@pytest.mark.postgres
def test_the_sharded_example_on_celery_workers(celery_executor, tmp_path, request, monkeypatch):
    """A real distributed run: two Celery workers take the four mapped tasks from Redis; every number is
    checked exactly once, with no 429, and both workers did part of the work."""
    warehouse = make_warehouse("postgres", tmp_path, request, monkeypatch, conn_id="warehouse_default")
    logs: list[Path] = []

    @contextlib.contextmanager
    def workers(env):
        with celery_workers(env) as worker_logs:
            logs.extend(worker_logs)
            yield

    run = run_sharded_example(celery_executor, warehouse, workers=workers)
    received = [log.read_text().count("execute_workload") for log in logs]
    assert all(received), f"a worker took no task: {received}"  # both workers took part
    print(f"CeleryExecutor, {CELERY_WORKERS} workers: {len(run.valid)} numbers in {run.seconds:.1f} s, "
          f"{run.checks_per_second:.1f} checks/s (airflow dags test --use-executor, start to end)")
