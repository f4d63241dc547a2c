"""The operator's templated arguments rendered by Airflow itself: ``airflow dags test`` with a run's conf picks the
GREEN-API and warehouse connections by name (``"{{ params.warehouse }}"``), as a DAG author switches between a
staging and a production instance without editing the DAG."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import textwrap

import pytest

from airflow_provider_greenapi.operators.check_whatsapp import CheckWhatsappOperator
from tests.airflow_cli import AIRFLOW, migrate
from tests.conftest import ID_INSTANCE, greenapi_connection

TEMPLATED_DAG = textwrap.dedent('''
    import pendulum
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_greenapi.operators.check_whatsapp import CheckWhatsappOperator

    with DAG("greenapi_templated_connections", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
             params={"greenapi": "greenapi_not_this_one", "warehouse": "warehouse_not_this_one"}):
        CheckWhatsappOperator(task_id="check", phone_numbers=["+1 212 555 0187", "+44 20 7946 0958"],
                              greenapi_conn_id="{{ params.greenapi }}", destination_conn_id="{{ params.warehouse }}")
''')


def test_the_connection_ids_are_template_fields():
    assert {"greenapi_conn_id", "source_conn_id", "destination_conn_id"} <= set(CheckWhatsappOperator.template_fields)


def test_emit_asset_needs_a_literal_destination_conn_id():
    with pytest.raises(ValueError, match="emit_asset needs a literal destination_conn_id"):
        CheckWhatsappOperator(task_id="check", phone_numbers=["1"], destination_conn_id="{{ params.warehouse }}",
                              emit_asset=True)


@pytest.mark.slow
def test_airflow_renders_the_connection_ids_from_the_run_conf(tmp_path, emulator):
    home = tmp_path / "airflow"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "greenapi_templated_connections.py").write_text(TEMPLATED_DAG)
    results = tmp_path / "results.db"
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW_CONN_GREENAPI_STAGING": greenapi_connection(emulator),
           "AIRFLOW_CONN_RESULTS_STAGING": json.dumps({"conn_type": "sqlite", "host": str(results)})}
    env.pop("AIRFLOW_CONN_GREENAPI_DEFAULT", None)
    migrate(env)
    done = subprocess.run(
        [AIRFLOW, "dags", "test", "greenapi_templated_connections", "--conf",
         json.dumps({"greenapi": "greenapi_staging", "warehouse": "results_staging"})],
        env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "DagRun failed" not in output, output[-4000:]
    with sqlite3.connect(results) as db:
        stored = sorted(db.execute("SELECT phone_number, status FROM whatsapp_checks").fetchall())
    assert [number for number, _ in stored] == ["12125550187", "442079460958"]
    assert all(status in ("exists", "not_exists") for _, status in stored)
    assert emulator.counters(ID_INSTANCE).count("checkWhatsapp") == 2
