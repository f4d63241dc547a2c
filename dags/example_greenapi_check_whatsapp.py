"""Daily: which of our contacts have WhatsApp? Reads `contacts` from the warehouse, checks the numbers with
GREEN-API and upserts one row per contact into `whatsapp_checks`, then reports the outcome.

Connections (see docs/connection.md):
- ``greenapi_default``: the GREEN-API instance (type ``greenapi``);
- ``warehouse_default``: the warehouse: a connection of type ``sqlite``, ``postgres``, ``duckdb``, ``mysql``
  or ``snowflake`` (install the engine's extra, e.g. ``pip install "airflow-provider-greenapi[duckdb]"``;
  docs/warehouses.md). The DAG is the same for each: only the connection changes.
``make demo`` runs this DAG against the local emulator and a SQLite file.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_greenapi.operators.check_whatsapp import CheckWhatsappOperator

WAREHOUSE_CONN_ID = "warehouse_default"

with DAG(
    dag_id="example_greenapi_check_whatsapp",
    description="Check which contacts have WhatsApp and keep the answers in the warehouse",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # two runs at once would pace against the same instance twice
    tags=["greenapi", "example"],
) as dag:
    check_contacts = CheckWhatsappOperator(
        task_id="check_contacts",
        sql="SELECT contact_id, phone FROM contacts",
        source_conn_id=WAREHOUSE_CONN_ID,
        phone_column="phone",
        key_column="contact_id",  # join results back: whatsapp_checks.source_key = contacts.contact_id
        # Numbers written without a country code are read as US numbers. One region per task: a national
        # Russian "8 (912) 345-67-89" would be invalid here (wrong length for +1), valid with "RU".
        default_region="US",
        destination_conn_id=WAREHOUSE_CONN_ID,
        destination_table="whatsapp_checks",
        max_age=timedelta(days=30),  # a "has WhatsApp" answer is re-checked after 30 days
        max_age_not_exists=timedelta(days=7),  # people join WhatsApp: re-check a "no" after a week
        emit_asset=True,  # DAGs scheduled on results_table_asset(...) run after each check (see below)
        # Retries cover transient trouble (an outage, the warehouse down) and resume: what was stored is not
        # checked again. Errors a retry cannot fix (wrong token, quota spent, bad table) fail at once.
        retries=2,
        retry_delay=timedelta(minutes=5),
    )

    @task
    def report(summary: dict[str, Any]) -> dict[str, Any]:
        """Print the outcome in the task log (a real pipeline might alert or update a dashboard here)."""
        counts = {k: summary[k] for k in ("exists", "not_exists", "invalid", "rejected", "error", "pending",
                                          "fresh", "unchanged", "duplicates")}
        width = max(len(k) for k in counts)
        print("WhatsApp check of the contacts table")
        for name, value in counts.items():
            print(f"  {name:<{width}}  {value:>6}")
        print(f"  quota spent this run: {summary['quota_spent']} checkWhatsapp calls"
              + (f"; {summary['monthly_left']} left this month" if summary.get("monthly_left") is not None else ""))
        return counts

    report(check_contacts.output)  # type: ignore[arg-type]  # an XComArg resolves to the dict at run time
