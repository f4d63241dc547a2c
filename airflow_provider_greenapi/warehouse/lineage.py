"""OpenLineage datasets of a task: the tables a source query reads, found by the OpenLineage provider's SQL
parser, and the results table, named with the same rules.

Names follow the database's own hook: its ``get_openlineage_database_info`` (namespace, database, upper
case), ``get_openlineage_database_dialect`` and default schema, so a table gets the name the database's own
operators (common-sql's ``SQLExecuteQueryOperator``) give it. Hooks that offer no database info (SQLite,
DuckDB) get a namespace from their engine module (``Engine.lineage_namespace``).

OpenLineage is optional: every import of it happens inside :func:`task_lineage`, which returns None without
it. docs/integrations.md lists the names.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from airflow_provider_greenapi.warehouse.connections import engine_of, get_db_hook
from airflow_provider_greenapi.warehouse.engine import check_table_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LineageNaming:
    """How OpenLineage names the tables of one connection."""

    database_info: Any  # airflow.providers.openlineage.sqlparser.DatabaseInfo
    dialect: str  # the SQL parser's dialect
    default_schema: str | None  # the schema of a table named without one

    @classmethod
    def of(cls, conn_id: str, role: str) -> LineageNaming:
        from airflow.providers.openlineage.sqlparser import DatabaseInfo

        from airflow_provider_greenapi._compat import BaseHook

        hook = get_db_hook(conn_id, role)
        conn = BaseHook.get_connection(conn_id)
        engine = engine_of(hook, conn_id)
        info = hook.get_openlineage_database_info(conn)
        if info is None:
            scheme, authority = engine.lineage_namespace(conn)
            info = DatabaseInfo(scheme=scheme, authority=authority)
        return cls(info, engine.lineage_dialect(hook, conn), engine.lineage_default_schema(hook, conn))

    def datasets(self, tables: list[Any]) -> list[Any]:
        """OpenLineage datasets of parsed tables (``DbTableMeta``), by the provider's own naming rules."""
        from airflow.providers.openlineage.sqlparser import SQLParser
        from openlineage.common.sql import DbTableMeta

        # The parser is given no default schema (with one, openlineage-sql 1.54 drops the tables a CTE reads):
        # it is filled in here instead, as the parser would.
        qualified = [DbTableMeta(".".join(p for p in (t.database, t.schema or self.default_schema, t.name) if p))
                     for t in tables]
        inputs, _ = SQLParser.get_metadata_from_parser(
            inputs=qualified, outputs=[], database_info=self.database_info,
            namespace=SQLParser.create_namespace(self.database_info))
        return list(inputs)


def source_datasets(conn_id: str, sql: str) -> list[Any]:
    """The tables ``sql`` reads on connection ``conn_id``, as OpenLineage datasets (CTE names excluded)."""
    from airflow.providers.openlineage.sqlparser import SQLParser

    naming = LineageNaming.of(conn_id, "source")
    parsed = SQLParser(dialect=naming.dialect).parse(SQLParser.split_sql_string(sql))
    if parsed is None:
        return []
    for error in parsed.errors:
        log.warning("OpenLineage could not parse the source query for lineage: %s", error.message)
    return naming.datasets(parsed.in_tables)


def table_dataset(conn_id: str, table: str) -> Any:
    """The OpenLineage dataset of ``table`` (``table`` or ``schema.table``) of connection ``conn_id``."""
    from openlineage.common.sql import DbTableMeta

    (dataset,) = LineageNaming.of(conn_id, "destination").datasets([DbTableMeta(".".join(check_table_name(table)))])
    return dataset


def task_lineage(sql: str | None, source_conn_id: str | None, destination_conn_id: str | None,
                 destination_table: str | None) -> Any:
    """The ``OperatorLineage`` of a check: inputs the tables of ``sql`` (none for a list or XCom input),
    output the results table (none without a destination), the query as the job's SQL facet. None when
    OpenLineage is not installed."""
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage
        from airflow.providers.openlineage.sqlparser import SQLParser
        from openlineage.client.facet_v2 import sql_job
    except ImportError:
        return None
    inputs, job_facets = [], {}
    if sql and source_conn_id:
        inputs = source_datasets(source_conn_id, sql)
        job_facets["sql"] = sql_job.SQLJobFacet(query=SQLParser.normalize_sql(sql))
    outputs = []
    if destination_conn_id and destination_table:
        outputs.append(table_dataset(destination_conn_id, destination_table))
    return OperatorLineage(inputs=inputs, outputs=outputs, job_facets=job_facets)
