"""Daily, at scale: the contacts of the warehouse checked by four GREEN-API instances at once.

One mapped task per instance (Airflow dynamic task mapping): each reads the same `contacts` query, keeps the
numbers of its shard (``int(number) % 4 == shard_index``, on the normalised number), checks them at its own
instance's pace, charges its own instance's monthly ledger, and upserts into the shared `whatsapp_checks`
table. No number is checked twice, and four instances check four times as many numbers an hour and a month.
A final task adds up the four summaries and emits the results-table Asset once, with the totals.

Connections (see docs/connection.md and docs/scaling.md):
- ``greenapi_1`` .. ``greenapi_4``: four *different* GREEN-API instances (type ``greenapi``);
- ``warehouse_default``: the warehouse, PostgreSQL in production (SQLite works for one worker).

A pool per instance (``GREENAPI_POOL_PER_INSTANCE=1`` in the environment of the DAG processor): Airflow's
scheduler reads a task's pool before it maps the task, so mapped tasks share one pool. With a pool per
instance the DAG therefore declares one task per instance (the loop below), each in the pool named after
its connection, which must exist with 1 slot (``airflow pools set greenapi_1 1 "GREEN-API instance 1"``).
Then no two tasks of any DAG or run use one instance at once. docs/scaling.md explains when that matters.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_greenapi.operators.check_whatsapp import CheckWhatsappOperator, results_table_asset
from airflow_provider_greenapi.sharding import greenapi_shards

WAREHOUSE_CONN_ID = "warehouse_default"
GREENAPI_CONN_IDS = ["greenapi_1", "greenapi_2", "greenapi_3", "greenapi_4"]
POOL_PER_INSTANCE = os.environ.get("GREENAPI_POOL_PER_INSTANCE", "") == "1"
WHATSAPP_CHECKS = results_table_asset(WAREHOUSE_CONN_ID, "whatsapp_checks")
COUNTS = ("exists", "not_exists", "invalid", "rejected", "error", "pending", "fresh", "unchanged", "duplicates",
          "quota_spent")

CHECK_ARGUMENTS: dict[str, Any] = {
    "sql": "SELECT contact_id, phone FROM contacts",
    "source_conn_id": WAREHOUSE_CONN_ID,
    "phone_column": "phone",
    "key_column": "contact_id",  # join results back: whatsapp_checks.source_key = contacts.contact_id
    "default_region": "US",  # for numbers written without a country code
    "destination_conn_id": WAREHOUSE_CONN_ID,
    "destination_table": "whatsapp_checks",
    "max_age": timedelta(days=30),
    "max_age_not_exists": timedelta(days=7),
    "retries": 2,  # for transient trouble; a rerun resumes its shard (errors a retry cannot fix fail at once)
    "retry_delay": timedelta(minutes=5),
}

with DAG(
    dag_id="example_greenapi_sharded",
    description="Check the contacts across four GREEN-API instances in parallel",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # two runs at once would pace against the same instances twice
    tags=["greenapi", "example"],
) as dag:
    if not POOL_PER_INSTANCE:
        # The one line: one mapped task per connection, each with its shard.
        check = CheckWhatsappOperator.partial(task_id="check_contacts", **CHECK_ARGUMENTS).expand_kwargs(
            greenapi_shards(GREENAPI_CONN_IDS)
        )
        summaries: Any = check.output
    else:
        summaries = [
            CheckWhatsappOperator(task_id=f"check_contacts_{shard['greenapi_conn_id']}",
                                  pool=shard["greenapi_conn_id"], **shard, **CHECK_ARGUMENTS).output
            for shard in greenapi_shards(GREENAPI_CONN_IDS)
        ]

    @task(outlets=[WHATSAPP_CHECKS])
    def report(summaries: list[dict[str, Any]], outlet_events: Any = None) -> dict[str, Any]:
        """Add up the shards, print them, and attach the totals to the one Asset event of this run."""
        summaries = list(summaries)
        seen = {s["inputs"] + s["other_shards"] for s in summaries}
        if len(seen) != 1:  # every task reads the whole query: they must agree on its size
            raise ValueError(f"The shards read different inputs ({sorted(seen)}): did the contacts change?")
        totals = {k: sum(int(s[k]) for s in summaries) for k in ("inputs", *COUNTS)}
        print(f"WhatsApp check of the contacts table across {len(summaries)} GREEN-API instances")
        print(f"  {'instance':<12}" + "".join(f"{k:>12}" for k in COUNTS))
        for s in summaries:
            print(f"  {s['instance_id']:<12}" + "".join(f"{int(s[k]):>12}" for k in COUNTS))
        print(f"  {'total':<12}" + "".join(f"{totals[k]:>12}" for k in COUNTS))
        print(f"  {totals['inputs']} contacts, each counted by exactly one shard")
        if outlet_events is not None:
            outlet_events[WHATSAPP_CHECKS].extra.update(totals)
        return totals

    report(summaries)
