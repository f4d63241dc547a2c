"""The example DAGs import cleanly and run end to end with Airflow's real CLI against the emulator."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from airflow_provider_greenapi.emulator import EmulatedInstance, GreenApiEmulator
from airflow_provider_greenapi.numbers import PhoneNumberNormalizer
from tests.airflow_cli import AIRFLOW, example_dags_home, task_tries
from tests.conftest import ID_INSTANCE, TOKEN, greenapi_connection

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_DAGS = sorted(p.stem for p in (ROOT / "dags").glob("example_*.py"))


@pytest.mark.matrix
def test_dag_bag_has_no_import_errors():
    from airflow_provider_greenapi._compat import dag_bag

    bag = dag_bag(str(ROOT / "dags"))
    assert bag.import_errors == {}
    assert {"example_greenapi_check_whatsapp", "example_greenapi_numbers_from_xcom"} <= set(bag.dag_ids)


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory):
    return example_dags_home(tmp_path_factory.mktemp("airflow-e2e"))


def dags_test(env: dict[str, str], dag_id: str) -> str:
    """``airflow dags test``'s output followed by every task log file it wrote."""
    result = subprocess.run([AIRFLOW, "dags", "test", dag_id], env=env, capture_output=True, text=True,
                            timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    logs = sorted((Path(env["AIRFLOW_HOME"]) / "logs").rglob("*.log"))
    return "\n".join([output, *(log.read_text(errors="replace") for log in logs)])


def without_airflows_mask_requests(output: str) -> str:
    """``output`` less Airflow's own log lines of its ``MaskSecret(value=...)`` requests: Airflow 3.0's
    ``airflow dags test`` logs every supervisor request at DEBUG, the secret it is asked to mask included
    (Airflow's code; real workers do not; docs/troubleshooting.md). Every other line must hold no token."""
    return "\n".join(line for line in output.splitlines() if "MaskSecret(value=" not in line)


def full_numbers(values) -> set[str]:
    """Every spelling of the valid numbers in ``values`` that would identify a person: as written, and as
    the digits GREEN-API gets (with and without a plus)."""
    normalize = PhoneNumberNormalizer()
    found = set()
    for value in values:
        number = normalize(value)
        if number.digits:
            found.update({str(value).strip(), number.digits, f"+{number.digits}"})
    return found


def demo_contacts(count: int) -> list[tuple[int, str, str | None]]:
    """The contacts `make demo` seeds (scripts/demo.py): many countries and formats, duplicates, junk."""
    spec = importlib.util.spec_from_file_location("greenapi_demo", ROOT / "scripts" / "demo.py")
    assert spec is not None and spec.loader is not None
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return list(demo.contacts(count))


def xcom_example_numbers() -> list[str]:
    """The list the XCom example's upstream task returns, read from the DAG itself."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags" / "example_greenapi_numbers_from_xcom.py")).dags[
        "example_greenapi_numbers_from_xcom"]
    return dag.task_dict["new_signups"].python_callable()


@pytest.mark.slow
@pytest.mark.matrix
def test_the_daily_example_writes_the_warehouse(airflow_home, emulator, tmp_path):
    warehouse = tmp_path / "warehouse.db"
    numbers = [f"+1 212 555 {i:04d}" for i in range(12)]
    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE contacts (contact_id INTEGER PRIMARY KEY, full_name TEXT, phone TEXT)")
        db.executemany("INSERT INTO contacts VALUES (?, ?, ?)",
                       [(i + 1, f"c{i}", n) for i, n in enumerate([*numbers, numbers[0], "junk", None])])
    env = {**airflow_home,
           "AIRFLOW_CONN_GREENAPI_DEFAULT": emulator.airflow_connection(requests_per_second=10),
           "AIRFLOW_CONN_WAREHOUSE_DEFAULT": json.dumps({"conn_type": "sqlite", "host": str(warehouse)})}
    output = dags_test(env, "example_greenapi_check_whatsapp")
    assert TOKEN not in without_airflows_mask_requests(output)
    assert "WhatsApp check of the contacts table" in output
    with sqlite3.connect(warehouse) as db:
        rows = db.execute("SELECT source_key, status FROM whatsapp_checks").fetchall()
    statuses = dict(rows)
    assert len(rows) == 15
    assert statuses["14"] == statuses["15"] == "invalid"
    assert statuses["1"] == statuses["13"] in ("exists", "not_exists")
    assert emulator.counters(ID_INSTANCE).count("checkWhatsapp") == 12
    dags_test(env, "example_greenapi_check_whatsapp")  # a second run: everything is fresh
    assert emulator.counters(ID_INSTANCE).count("checkWhatsapp") == 12


@pytest.mark.slow
def test_the_xcom_example_checks_the_upstream_list(airflow_home, emulator):
    env = {**airflow_home, "AIRFLOW_CONN_GREENAPI_DEFAULT": emulator.airflow_connection()}
    output = dags_test(env, "example_greenapi_numbers_from_xcom")
    assert TOKEN not in output
    counters = emulator.counters(ID_INSTANCE)
    assert counters.count("checkWhatsapp") == 4  # five inputs, one of them not a phone number


@pytest.mark.slow
@pytest.mark.parametrize("dag_id", EXAMPLE_DAGS)
def test_no_example_dag_puts_a_full_phone_number_into_its_logs(airflow_home, tmp_path, dag_id):
    """Examples are copied: what they log must be safe to copy. Each runs on the demo's contacts (the XCom
    example on its own list); its output and task log files hold no full number, only masked ones."""
    contacts = demo_contacts(80)
    warehouse = tmp_path / "warehouse.db"
    with sqlite3.connect(warehouse) as db:
        db.execute("CREATE TABLE contacts (contact_id INTEGER PRIMARY KEY, full_name TEXT, phone TEXT)")
        db.executemany("INSERT INTO contacts VALUES (?, ?, ?)", contacts)
    instances = [(f"11010000{i:02d}", f"examples-token-{i}") for i in range(1, 5)]
    env = {**airflow_home,
           "AIRFLOW_CONN_WAREHOUSE_DEFAULT": json.dumps({"conn_type": "sqlite", "host": str(warehouse)})}
    with GreenApiEmulator([EmulatedInstance(i, t, plan="business") for i, t in instances]) as emu:
        env["AIRFLOW_CONN_GREENAPI_DEFAULT"] = greenapi_connection(emu, *instances[0], requests_per_second=10)
        for n, (instance, token) in enumerate(instances, start=1):
            env[f"AIRFLOW_CONN_GREENAPI_{n}"] = greenapi_connection(emu, instance, token, requests_per_second=10)
        logs = dags_test(env, dag_id)
        checked = sum(emu.counters(i).count("checkWhatsapp") for i, _ in instances)
    if dag_id != "example_greenapi_on_new_results":  # the one example that checks nothing itself
        assert checked > 0, "the example checked no number: this test would prove nothing"
    numbers = full_numbers(xcom_example_numbers() if dag_id.endswith("_from_xcom") else [c[2] for c in contacts])
    leaked = sorted(n for n in numbers if n in logs)
    assert not leaked, f"{dag_id} logs full phone numbers: {leaked[:5]}"


@pytest.mark.slow
def test_the_daily_example_does_not_retry_a_wrong_token(airflow_home, emulator, tmp_path):
    """The example declares retries=2, five minutes apart, for outages; a wrong token fails on the first try
    (before, the run retried it twice and ended ten minutes later with the same error)."""
    env = {**airflow_home,
           "AIRFLOW_CONN_GREENAPI_DEFAULT": greenapi_connection(emulator, token="wrong-token"),
           "AIRFLOW_CONN_WAREHOUSE_DEFAULT": json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "w.db")})}
    result = subprocess.run([AIRFLOW, "dags", "test", "example_greenapi_check_whatsapp"], env=env,
                            capture_output=True, text=True, timeout=240)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "apiTokenInstance" in output, output[-4000:]
    assert task_tries(env, "example_greenapi_check_whatsapp", "check_contacts") == ("failed", 1, [])
