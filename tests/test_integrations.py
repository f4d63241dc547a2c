"""Assets: what the operator tells Airflow about the table it writes (OpenLineage: test_lineage.py). On Airflow
2.11 the same calls make a Dataset, its events and a DAG scheduled on it (`make test-matrix`)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from airflow_provider_greenapi._compat import AIRFLOW_V_3_0_PLUS
from airflow_provider_greenapi.operators.check_whatsapp import CheckWhatsappOperator, results_table_asset

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk.execution_time.context import OutletEventAccessors
else:  # Airflow 2.11: the task context's accessors of dataset events
    from airflow.utils.context import OutletEventAccessors  # type: ignore[no-redef]

pytestmark = pytest.mark.matrix  # Assets on 3.x, Datasets on 2.11: emitted and scheduled on alike

NUMBERS = [f"7900{i:07d}" for i in range(3)]


def test_emit_asset_declares_the_results_table_as_an_outlet():
    operator = CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS, destination_conn_id="warehouse",
                                     destination_table="checks", emit_asset=True)
    assert operator.outlets == [results_table_asset("warehouse", "checks")]


def test_emit_asset_needs_a_destination_table():
    with pytest.raises(ValueError, match="emit_asset needs a literal destination_conn_id and destination_table"):
        CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS, emit_asset=True)


def test_the_asset_event_carries_the_summary(greenapi_conn, warehouse, mocker):
    operator = CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS, destination_conn_id="warehouse",
                                     emit_asset=True)
    events = OutletEventAccessors()
    summary = operator.execute({"ti": mocker.MagicMock(), "dag_run": SimpleNamespace(run_id="r"),
                                "outlet_events": events})
    extra = events[results_table_asset("warehouse")].extra
    assert extra["exists"] + extra["not_exists"] == 3
    assert extra == summary


def test_a_downstream_dag_is_scheduled_on_the_asset():
    from airflow_provider_greenapi._compat import dag_bag

    bag = dag_bag("dags")
    consumer = bag.dags["example_greenapi_on_new_results"]
    producer = bag.dags["example_greenapi_check_whatsapp"]
    asset = results_table_asset("warehouse_default", "whatsapp_checks")
    assert asset in producer.get_task("check_contacts").outlets
    condition = getattr(consumer.timetable, "asset_condition", None) or consumer.timetable.dataset_condition
    assert asset.uri in str(condition)
