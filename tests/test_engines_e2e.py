"""The daily example DAG end to end on every warehouse engine, through Airflow's real CLI (`airflow dags test`):
its contacts table (the source) and its results table (the destination) on the same engine, the engine's real
server or file, the GREEN-API emulator over HTTP.

Engines the provider does not support yet are skipped, not failed, when the provider refuses them with its
"supported warehouses are ..." message that does not name them (detected from the run's output).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.airflow_cli import AIRFLOW, example_dags_home
from tests.conftest import ID_INSTANCE, TOKEN, engine_params, make_warehouse
from tests.engine_support import ENGINES, refusal

ROOT = Path(__file__).resolve().parent.parent
DAG_ID = "example_greenapi_check_whatsapp"
NUMBERS = [f"+1 212 555 {i:04d}" for i in range(12)]
# 15 contacts: 12 numbers, one duplicate of the first, one that is not a number, one without a phone.
CONTACTS = [(i + 1, f"c{i}", n) for i, n in enumerate([*NUMBERS, NUMBERS[0], "junk", None])]


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory):
    return example_dags_home(tmp_path_factory.mktemp("airflow-engines-e2e"))


def dags_test(env: dict[str, str], engine: str, log: Path, timeout: float = 420) -> str:
    """``airflow dags test`` of the example; its output. Skips the test as soon as the provider refuses the
    engine: the example's task has retries (5 minutes apart), which `dags test` would wait out."""
    with open(log, "w") as out:
        process = subprocess.Popen([AIRFLOW, "dags", "test", DAG_ID], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None:
            refused = refusal(log.read_text(errors="replace"), engine)
            if refused:
                pytest.skip(f"needs the warehouse layer: the provider does not support {engine} yet "
                            f"({refused[:160]})")
            if time.monotonic() > deadline:
                # On Snowflake, SQL fakesnow cannot run is answered with HTTP 500, retried for minutes.
                raise AssertionError(f"airflow dags test on {engine} did not finish within {timeout:.0f} s:\n"
                                     f"{log.read_text(errors='replace')[-4000:]}")
            time.sleep(0.5)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output = log.read_text(errors="replace")
    assert process.returncode == 0, output[-6000:]
    return output


@pytest.mark.slow
@pytest.mark.parametrize("engine", engine_params(*ENGINES))
def test_the_daily_example_on_each_engine(engine, airflow_home, emulator, tmp_path, request, monkeypatch):
    warehouse = make_warehouse(engine, tmp_path, request, monkeypatch, conn_id="warehouse_default")
    warehouse.execute("CREATE TABLE contacts (contact_id INTEGER PRIMARY KEY, full_name VARCHAR(64), "
                      "phone VARCHAR(32))")
    p = warehouse.placeholder
    values = ", ".join([f"({p}, {p}, {p})"] * len(CONTACTS))
    warehouse.execute(f"INSERT INTO contacts (contact_id, full_name, phone) VALUES {values}",
                      [x for row in CONTACTS for x in row])
    env = {**airflow_home, **{k: v for k, v in os.environ.items() if k.startswith(("AIRFLOW_CONN_", "REQUESTS_"))},
           "AIRFLOW_CONN_GREENAPI_DEFAULT": emulator.airflow_connection(requests_per_second=10)}

    output = dags_test(env, engine, tmp_path / "dags-test-1.log")
    assert TOKEN not in output
    assert "WhatsApp check of the contacts table" in output
    statuses = {str(key): status for key, status in
                warehouse.fetch_all("SELECT source_key, status FROM whatsapp_checks")}
    assert len(statuses) == 15
    assert statuses["14"] == statuses["15"] == "invalid"
    assert statuses["1"] == statuses["13"] in ("exists", "not_exists")
    assert {statuses[str(i)] for i in range(1, 13)} <= {"exists", "not_exists"}
    assert emulator.counters(ID_INSTANCE).count("checkWhatsapp") == 12

    # A second run: every answer is fresh, nothing is spent, no row is duplicated.
    dags_test(env, engine, tmp_path / "dags-test-2.log")
    assert emulator.counters(ID_INSTANCE).count("checkWhatsapp") == 12
    assert warehouse.fetch_all("SELECT COUNT(*) FROM whatsapp_checks") == [(15,)]


def test_a_refusal_is_told_apart_from_a_failure():
    old = "ValueError: The results table cannot live in connection 'w' of type 'duckdb': supported warehouses " \
          "are sqlite and postgres."
    new = "ValueError: ... supported warehouses are sqlite, postgres, duckdb, mysql, snowflake, each through ..."
    assert refusal(old, "duckdb") and refusal(old, "snowflake")
    assert not refusal(old, "postgres")
    assert not refusal(new, "duckdb")
    assert not refusal("Traceback ... duplicate key", "mysql")
