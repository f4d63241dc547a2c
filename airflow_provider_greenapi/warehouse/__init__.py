"""The warehouse layer: everything that speaks SQL.

- ``engine.py``: the engines (:class:`Dialect`) and the generic :class:`Engine`; one module per engine
  (``sqlite``, ``postgres``, ``duckdb``, ``mysql``, ``snowflake``) holds only what differs for it;
- ``store.py``: the results table (:class:`ResultsStore`): its schema and the staging of a run's inputs, over
  ``results_table.py`` (its rows as every part reads them), ``changes.py`` (what changed since a source was
  read, what a source no longer returns) and ``queue.py`` (the run's work queue and the answers written back);
- ``ledger.py``: the monthly usage ledger;
- ``connections.py``: Airflow connection ids -> hooks, engines, connections, streamed source queries;
- ``lineage.py``: the OpenLineage datasets of a task (the source query's tables, the results table).

The checker and the operator use these through their public names and never learn which engine they
talk to. docs/warehouses.md describes each engine.
"""

from airflow_provider_greenapi.warehouse.connections import (
    Warehouse,
    dialect_of,
    get_db_hook,
    in_memory_store,
    open_warehouse,
    source_inputs,
)
from airflow_provider_greenapi.warehouse.engine import Dialect, Engine, check_distinct_tables, check_table_name
from airflow_provider_greenapi.warehouse.ledger import DEFAULT_USAGE_TABLE, MonthlyUsage, UsageLedger
from airflow_provider_greenapi.warehouse.lineage import task_lineage
from airflow_provider_greenapi.warehouse.store import (
    COLUMN_NAMES,
    ResultsStore,
    StageCounts,
    StagedInput,
)

__all__ = [
    "COLUMN_NAMES",
    "DEFAULT_USAGE_TABLE",
    "Dialect",
    "Engine",
    "MonthlyUsage",
    "ResultsStore",
    "StageCounts",
    "StagedInput",
    "UsageLedger",
    "Warehouse",
    "check_distinct_tables",
    "check_table_name",
    "dialect_of",
    "get_db_hook",
    "in_memory_store",
    "open_warehouse",
    "source_inputs",
    "task_lineage",
]
