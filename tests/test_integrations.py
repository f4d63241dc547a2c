"""Assets: what the operator tells Airflow about the table it writes (OpenLineage: test_lineage.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk.execution_time.context import OutletEventAccessors

from airflow_provider_greenapi.operators.check_whatsapp import CheckWhatsappOperator, results_table_asset

NUMBERS = [f"7900{i:07d}" for i in range(3)]


def test_emit_asset_declares_the_results_table_as_an_outlet():
    operator = CheckWhatsappOperator(task_id="check", phone_numbers=NUMBERS, destination_conn_id="warehouse",
                                     destination_table="checks", emit_asset=True)
    assert operator.outlets == [results_table_asset("warehouse", "checks")]


def test_emit_asset_needs_a_destination_table():
    with pytest.raises(ValueError, match="emit_asset needs destination_conn_id"):
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
    assert asset.uri in str(consumer.timetable.asset_condition)
