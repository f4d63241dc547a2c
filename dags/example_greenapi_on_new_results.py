"""Runs whenever the daily check has updated the results table (an Airflow Asset; a Dataset on Airflow 2.11),
and reads the counts that the check attached to the asset event. Airflow 2.11 passes the events as
``triggering_dataset_events``, 3.x as ``triggering_asset_events``: the task takes both."""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_greenapi.operators.check_whatsapp import results_table_asset

WHATSAPP_CHECKS = results_table_asset("warehouse_default", "whatsapp_checks")

with DAG(
    dag_id="example_greenapi_on_new_results",
    description="React to fresh WhatsApp check results",
    schedule=[WHATSAPP_CHECKS],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["greenapi", "example"],
) as dag:

    @task(inlets=[WHATSAPP_CHECKS])
    def newly_reachable(triggering_asset_events: Any = None, triggering_dataset_events: Any = None) -> int:
        """How many contacts the last check found on WhatsApp (from the asset event's extra)."""
        found = 0
        for event in (triggering_asset_events or triggering_dataset_events or {}).get(WHATSAPP_CHECKS, []):
            found += int(event.extra.get("exists", 0))
            print(f"Check {event.source_run_id}: {event.extra.get('exists')} on WhatsApp, "
                  f"{event.extra.get('not_exists')} not, {event.extra.get('pending')} pending.")
        return found

    newly_reachable()
