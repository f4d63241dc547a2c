"""Airflow's retries, for real: a task run by ``airflow dags test`` with ``retries=2`` ends failed on its first
try when a retry cannot fix the error, and is retried (up_for_retry, three tries) when the trouble may pass."""

from __future__ import annotations

import os
import subprocess
import textwrap

import pytest

from airflow_provider_greenapi.emulator import FaultPlan, airflow_connection
from tests.airflow_cli import AIRFLOW, migrate, task_tries
from tests.conftest import ID_INSTANCE, greenapi_connection
from tests.scripted_server import ScriptedServer

PROBE_DAG = textwrap.dedent('''
    from datetime import timedelta

    import pendulum
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_greenapi.operators.check_whatsapp import CheckWhatsappOperator

    with DAG("greenapi_retry_probe", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        CheckWhatsappOperator(task_id="check", phone_numbers=["+1 212 555 0187", "+44 20 7946 0958"],
                              retries=2, retry_delay=timedelta(seconds=1))
''')

SENSOR_PROBE_DAG = textwrap.dedent('''
    from datetime import timedelta

    import pendulum
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_greenapi.sensors import GreenApiInstanceStateSensor

    with DAG("greenapi_sensor_retry_probe", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        GreenApiInstanceStateSensor(task_id="wait", poke_interval=1, timeout=60, retries=2,
                                    retry_delay=timedelta(seconds=1))
''')


@pytest.fixture(scope="module")
def probe_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-retries")
    (home / "dags").mkdir()
    (home / "dags" / "greenapi_retry_probe.py").write_text(PROBE_DAG)
    (home / "dags" / "greenapi_sensor_retry_probe.py").write_text(SENSOR_PROBE_DAG)
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    migrate(env)
    return env


def dags_test(env: dict[str, str], dag_id: str, timeout: float = 300) -> str:
    """Run the DAG; its run fails in every scenario here, so only the output is returned."""
    result = subprocess.run([AIRFLOW, "dags", "test", dag_id], env=env, capture_output=True, text=True,
                            timeout=timeout)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "DagRun failed" in output, output[-4000:]
    return output


@pytest.mark.slow
def test_a_wrong_token_fails_on_the_first_try_despite_retries(probe_home, emulator):
    env = {**probe_home, "AIRFLOW_CONN_GREENAPI_DEFAULT": greenapi_connection(emulator, token="not-the-token")}
    output = dags_test(env, "greenapi_retry_probe")
    assert task_tries(env, "greenapi_retry_probe", "check") == ("failed", 1, [])
    assert "AirflowFailException" in output and "apiTokenInstance" in output  # the same clear message
    assert emulator.counters(ID_INSTANCE).count("checkWhatsapp") == 0


@pytest.mark.slow
def test_a_tls_certificate_error_fails_on_the_first_try_despite_retries(probe_home):
    """A self-signed certificate answers every try alike: 1 Airflow try of 1 request (was 3 tries x 6)."""
    with ScriptedServer(tls=True) as server:
        env = {k: v for k, v in probe_home.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
        env["AIRFLOW_CONN_GREENAPI_DEFAULT"] = airflow_connection(server.url, ID_INSTANCE, "a-token-0123456789")
        output = dags_test(env, "greenapi_retry_probe")
        assert server.connections == 1
    assert task_tries(env, "greenapi_retry_probe", "check") == ("failed", 1, []), output[-4000:]
    assert "AirflowFailException" in output and "its TLS certificate is not trusted here" in output


@pytest.mark.slow
def test_an_outage_is_retried_by_airflow(probe_home, emulator):
    emulator.inject_faults(ID_INSTANCE, FaultPlan(methods=("getStateInstance",), error_rate=1.0, errors=("503",)))
    env = {**probe_home, "AIRFLOW_CONN_GREENAPI_DEFAULT": greenapi_connection(emulator, max_retries=0)}
    output = dags_test(env, "greenapi_retry_probe")
    state, try_number, earlier = task_tries(env, "greenapi_retry_probe", "check")
    assert (state, try_number) == ("failed", 3), output[-4000:]
    assert earlier == ["failed", "failed"]  # the two tries before, each followed by up_for_retry
    assert "up_for_retry" in output and "AirflowFailException" not in output


@pytest.mark.slow
def test_a_blocked_instance_fails_the_sensor_on_the_first_try_despite_retries(probe_home, emulator):
    emulator.set_state(ID_INSTANCE, "blocked")
    env = {**probe_home, "AIRFLOW_CONN_GREENAPI_DEFAULT": greenapi_connection(emulator)}
    output = dags_test(env, "greenapi_sensor_retry_probe")
    assert task_tries(env, "greenapi_sensor_retry_probe", "wait") == ("failed", 1, []), output[-4000:]
    assert "GreenApiInstanceStateError" in output and "'blocked', a fail state" in output
