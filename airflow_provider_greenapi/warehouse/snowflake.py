"""Snowflake (the snowflake provider): a cloud warehouse, where a statement costs tens to hundreds of
milliseconds, UPDATE and MERGE lock the table, and DML is billed. So nothing is written per number: a chunk's
staging is one MERGE, a chunk's answers are one MERGE, and the usage ledger reserves calls in blocks
(``ledger_block``) with one compare-and-set UPDATE each. The work queue stays in the results table (the
``queued_at`` column), read a page (a SELECT) at a time.

Snowflake folds unquoted names to upper case; table names (validated identifiers) are therefore written
unquoted, so that ``SELECT * FROM whatsapp_checks`` finds the table. Timestamps are ``TIMESTAMP_NTZ`` in UTC.
Primary keys are not enforced by Snowflake: the MERGE on the key is what keeps rows unique.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from airflow_provider_greenapi.warehouse.engine import Dialect, Engine, Row, one_per_key

_ROWS_PER_STATEMENT = 5000  # a chunk's MERGE stays far below Snowflake's 1 MB statement limit


class SnowflakeEngine(Engine):
    dialect = Dialect.SNOWFLAKE
    conn_types = ("snowflake",)
    timestamp_type = "TIMESTAMP_NTZ"
    has_indexes = False  # Snowflake has no secondary indexes (micro-partitions are pruned instead)
    ledger_block = 50
    max_identifier_length = 255
    write_path = "one MERGE per 5,000 rows, the rows as a VALUES list matched on the key"

    def quote(self, identifier: str) -> str:
        return identifier

    def to_db_time(self, value: datetime | None) -> Any:
        return None if value is None else value.astimezone(timezone.utc).replace(tzinfo=None)

    def connect(self, hook: Any) -> Any:
        """The hook's connection with autocommit off: a chunk commits as a whole, and a dry run rolls back."""
        connection = hook.get_conn()
        connection.autocommit(False)
        return connection

    def upsert(self, cursor: Any, table: str, columns: Sequence[str], key: Sequence[str], rows: list[Row]) -> None:
        """One ``MERGE`` per chunk: the rows as a VALUES list, matched on the key (one row per key: a MERGE that
        meets a key twice is refused as nondeterministic)."""
        rows = one_per_key(rows, columns, key)
        on = " AND ".join(f"t.{c} = src.{c}" for c in key)
        updates = ", ".join(f"{c} = src.{c}" for c in columns if c not in key)
        for start in range(0, len(rows), _ROWS_PER_STATEMENT):
            batch = rows[start : start + _ROWS_PER_STATEMENT]
            cursor.execute(
                f"MERGE INTO {self.table_name(table)} t USING ({self._values(len(columns), len(batch))}) "
                f"AS src ({', '.join(columns)}) ON {on} WHEN MATCHED THEN UPDATE SET {updates} "
                f"WHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) "
                f"VALUES ({', '.join(f'src.{c}' for c in columns)})",
                [value for row in batch for value in row],
            )

    def insert_missing(self, cursor: Any, table: str, columns: Sequence[str], key: Sequence[str], row: Row) -> None:
        on = " AND ".join(f"t.{c} = src.{c}" for c in key)
        cursor.execute(
            f"MERGE INTO {self.table_name(table)} t USING ({self._values(len(columns), 1)}) "
            f"AS src ({', '.join(columns)}) ON {on} WHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) "
            f"VALUES ({', '.join(f'src.{c}' for c in columns)})",
            list(row),
        )

    def update_matching(self, cursor: Any, table: str, match: str, not_null: str,
                        groups: Sequence[tuple[Sequence[str], Sequence[str], list[Row]]]) -> None:
        """Every group in one ``MERGE``: a source column ``greenapi_group`` picks each row's WHEN clause."""
        live = [(i, g) for i, g in enumerate(groups) if g[2]]
        if not live:
            return
        columns = list(dict.fromkeys(c for _, (cols, _, _) in live for c in cols))
        values: list[Any] = []
        count = 0
        for index, (cols, _, rows) in live:
            for row in rows:
                given = dict(zip(cols, row[:-1], strict=True))
                values.extend([row[-1], index, *(given.get(c) for c in columns)])
                count += 1
        whens = " ".join(
            f"WHEN MATCHED AND src.greenapi_group = {index} THEN UPDATE SET "
            + ", ".join([*(f"{c} = src.{c}" for c in cols), *constants])
            for index, (cols, constants, _) in live
        )
        cursor.execute(
            f"MERGE INTO {self.table_name(table)} t USING ({self._values(len(columns) + 2, count)}) "
            f"AS src ({', '.join([match, 'greenapi_group', *columns])}) ON t.{match} = src.{match} "
            f"AND t.{not_null} IS NOT NULL {whens}",
            values,
        )

    def _values(self, width: int, count: int) -> str:
        row = "(" + ", ".join([self.placeholder] * width) + ")"
        return "SELECT * FROM VALUES " + ", ".join([row] * count)


ENGINE = SnowflakeEngine()
