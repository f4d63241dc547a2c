"""Numbers from an upstream task's XCom: a @task returns a list, CheckWhatsappOperator checks it.

Without a destination table the per-number results come back in the XCom ``results`` (up to
``max_xcom_results`` numbers; the return value stays a small summary), which suits small ad-hoc lists; for
anything larger give ``destination_conn_id``.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, XComArg, task

from airflow_provider_greenapi.operators.check_whatsapp import RESULTS_XCOM_KEY, CheckWhatsappOperator

with DAG(
    dag_id="example_greenapi_numbers_from_xcom",
    description="Check a list of numbers produced by an upstream task",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["greenapi", "example"],
) as dag:

    # Airflow logs a @task's return value ("Done. Returned value was: [...]"): phone numbers are personal
    # data, so the tasks that return numbers keep them out of the task log.
    @task(show_return_value_in_logs=False)
    def new_signups() -> list[str]:
        """Stands in for any upstream step: an API export, a file drop, a query."""
        return ["+1 (212) 555-0187", "+44 20 7946 0958", "+49 151 2345 6789", "+7 912 345-67-89", "not a phone"]

    check_signups = CheckWhatsappOperator(task_id="check_signups", phone_numbers=new_signups())

    @task(show_return_value_in_logs=False)
    def reachable_on_whatsapp(results: list[dict[str, Any]]) -> list[str]:
        """The numbers to contact on WhatsApp."""
        return [row["phone_number"] for row in results if row["status"] == "exists"]

    reachable_on_whatsapp(XComArg(check_signups, key=RESULTS_XCOM_KEY))  # type: ignore[arg-type]  # resolved at run time
