"""CheckWhatsappOperator: check which phone numbers have WhatsApp, from an XCom list or a SQL table."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_greenapi._compat import AirflowFailException, Asset, BaseOperator, Context, make_asset
from airflow_provider_greenapi.errors import BulkCheckStopped, WarehouseTimeoutError, retry_can_fix
from airflow_provider_greenapi.hooks.greenapi import GreenApiHook
from airflow_provider_greenapi.numbers import NumberRule, PhoneNumberNormalizer
from airflow_provider_greenapi.operators.runs_left import runs_left_for
from airflow_provider_greenapi.pipeline import CheckOptions
from airflow_provider_greenapi.pipeline.wiring import DEFAULT_DESTINATION_TABLE, RunTables, WiredRun, wire_run
from airflow_provider_greenapi.quota_plan import AUTO, AutoBudget, MaxChecks, QuotaReserve, parse_max_checks
from airflow_provider_greenapi.results import Freshness, RunContext
from airflow_provider_greenapi.sharding import Shard
from airflow_provider_greenapi.sources import InputRow, numbers_from_value
from airflow_provider_greenapi.warehouse import (
    DEFAULT_USAGE_TABLE,
    Warehouse,
    check_table_name,
    open_warehouse,
    task_lineage,
)
from airflow_provider_greenapi.warehouse.usage_history import DEFAULT_HISTORY_TABLE

DEFAULT_STATEMENT_TIMEOUT = timedelta(minutes=5)  # far above any statement of a healthy run (a chunk's write)
RESULTS_XCOM_KEY = "results"  # per-number rows, pushed only when there is no destination table


def results_table_asset(destination_conn_id: str, destination_table: str = DEFAULT_DESTINATION_TABLE) -> Asset:
    """The Asset of a results table, for ``emit_asset=True`` and for DAGs scheduled on it."""
    return make_asset(
        name=f"greenapi_results.{destination_conn_id}.{destination_table}",
        uri=f"x-greenapi-results://{destination_conn_id}/{destination_table}",
        group="greenapi",
    )


def _as_timedelta(value: timedelta | float | None, name: str) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    raise ValueError(f"{name} must be a timedelta, a number of seconds or None, got {value!r}")


class CheckWhatsappOperator(BaseOperator):
    """Check phone numbers with GREEN-API's checkWhatsapp and store one typed result per number.

    Numbers are normalised locally (invalid ones cost no quota), de-duplicated, skipped while their stored
    answer is fresh, checked at the connection's pace, and upserted into ``destination_table``; a rerun costs
    what changed in the source. Returns a small summary as the XCom. docs/operator.md describes every parameter
    at length.

    :param phone_numbers: the numbers to check: a list, or a dict of source key -> number (templated, so an
        upstream XCom works). Give this or ``sql``.
    :param sql: a query whose rows hold the numbers, run on ``source_conn_id`` and streamed (templated; a
        ``.sql`` file works).
    :param parameters: values for ``sql``'s placeholders, bound by the source's driver wherever the query runs
        (templated).
    :param source_conn_id: the common-sql connection ``sql`` runs on (templated).
    :param phone_column: the query's column holding the number; default its first column.
    :param key_column: the query's column identifying a source row, stored as ``source_key``.
    :param default_region: ISO 3166-1 alpha-2 code for numbers written in national format (``"US"``).
    :param number_rules: which of GREEN-API's country quirks apply (``NumberRule`` members or names); ``[]``: none.
    :param greenapi_conn_id: the GREEN-API connection (templated).
    :param destination_conn_id: the warehouse holding the results table, the usage ledger and the usage history
        (templated); without it results go to the ``results`` XCom and nothing is remembered between runs.
    :param destination_table: the results table, ``table`` or ``schema.table`` (templated); default
        ``whatsapp_checks``.
    :param usage_table: the monthly usage ledger's table, in the same warehouse.
    :param usage_history_table: the usage history's table (one row per run, instance and day).
    :param requests_per_second: the pace of checkWhatsapp calls, at most 10; default the connection's.
    :param max_in_flight: the most requests waiting for an answer at once; default the connection's.
    :param max_age: how long an ``exists`` answer stays fresh (timedelta or seconds; None: never).
    :param max_age_not_exists: how long a ``not_exists`` answer stays fresh.
    :param max_checks: the most numbers sent in this run, or ``"auto"``: this run's share of the month's quota
        over the DAG's schedule (templated; docs/quota.md).
    :param quota_reserve: with ``max_checks="auto"``: checks a month kept back, a number or a share (``"10%"``).
    :param dry_run: do everything but send and store; report what a real run would spend.
    :param chunk_size: rows per chunk (the source's fetch, a staging statement, a commit of results); default
        the results engine's own.
    :param max_xcom_results: without ``destination_conn_id``, the most result rows the run accepts.
    :param emit_asset: add the results table's asset (``results_table_asset``) to ``outlets``, with the run's
        counts on its event; needs a literal ``destination_conn_id``.
    :param state_poll_interval: seconds between the mid-run instance-state polls that stop a run on a
        ``yellowCard``.
    :param shard_index: this task's shard, with ``shard_count``: mapped tasks on several instances split one
        input (docs/scaling.md).
    :param shard_count: the number of shards.
    :param statement_timeout: the longest a warehouse statement may run before the server cancels it
        (timedelta or seconds; None: no limit).
    :param wait_for_other_runs: how long a run waits for another run sending on the same instance (timedelta
        or seconds; 0: never); one run works per instance at a time (docs/reliability.md).
    :param prune_missing: delete the results of source keys that the source, read whole, no longer returns.
    """

    template_fields: Sequence[str] = ("phone_numbers", "sql", "parameters", "destination_table", "max_checks",
                                      "greenapi_conn_id", "source_conn_id", "destination_conn_id")
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"sql": "sql"}
    ui_color = "#25d366"

    def __init__(
        self,
        *,
        phone_numbers: Any = None,
        sql: str | None = None,
        parameters: Sequence[Any] | Mapping[str, Any] | None = None,
        source_conn_id: str | None = None,
        phone_column: str | None = None,
        key_column: str | None = None,
        default_region: str | None = None,
        number_rules: Sequence[NumberRule | str] | None = None,
        greenapi_conn_id: str = GreenApiHook.default_conn_name,
        destination_conn_id: str | None = None,
        destination_table: str | None = None,
        usage_table: str = DEFAULT_USAGE_TABLE,
        usage_history_table: str = DEFAULT_HISTORY_TABLE,
        requests_per_second: float | None = None,
        max_in_flight: int | None = None,
        max_age: timedelta | float | None = timedelta(days=30),
        max_age_not_exists: timedelta | float | None = timedelta(days=7),
        max_checks: int | str | None = None,
        quota_reserve: int | float | str | None = None,
        dry_run: bool = False,
        chunk_size: int | None = None,
        max_xcom_results: int = 1000,
        emit_asset: bool = False,
        state_poll_interval: float = 5.0,
        shard_index: int | None = None,
        shard_count: int | None = None,
        statement_timeout: timedelta | float | None = DEFAULT_STATEMENT_TIMEOUT,
        wait_for_other_runs: timedelta | float = timedelta(hours=1),
        prune_missing: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        try:
            self.shard = Shard.from_arguments(shard_index, shard_count)
        except ValueError as error:
            raise ValueError(f"{self.task_id}: {error}") from None
        if (phone_numbers is None) == (sql is None):
            raise ValueError(
                f"{self.task_id}: give exactly one source of numbers: phone_numbers (a list or an upstream "
                "XCom) or sql with source_conn_id."
            )
        if sql is not None and not source_conn_id:
            raise ValueError(f"{self.task_id}: sql needs source_conn_id, the connection to run it on.")
        if sql is None and (source_conn_id or phone_column or key_column or parameters is not None):
            raise ValueError(
                f"{self.task_id}: source_conn_id, parameters, phone_column and key_column only apply to a sql source."
            )
        if prune_missing and (not destination_conn_id or shard_index is not None or (sql and not key_column)):
            raise ValueError(
                f"{self.task_id}: prune_missing deletes the results of source keys the source no longer returns: "
                "it needs destination_conn_id, a source with keys (sql with key_column, or phone_numbers as a dict "
                "of key -> number) read whole by one task (no shard_index), and a query that returns every row "
                "(not only recent ones)."
            )
        if not state_poll_interval > 0:
            raise ValueError(f"{self.task_id}: state_poll_interval must be a number of seconds above 0.")
        if destination_table is not None and not destination_conn_id:
            raise ValueError(f"{self.task_id}: destination_table needs destination_conn_id.")
        for name in (destination_table, usage_table, usage_history_table):
            if name is not None and "{{" not in name:
                check_table_name(name)
        if destination_conn_id and not any("{{" in (n or "") for n in (destination_table, usage_table,
                                                                          usage_history_table)):
            RunTables(destination_table or DEFAULT_DESTINATION_TABLE, usage_table,
                      usage_history_table).check()  # a templated name is checked once rendered
        try:
            if not (isinstance(max_checks, str) and "{{" in max_checks):
                parse_max_checks(max_checks)  # a templated value is checked once rendered
            self.quota_reserve = QuotaReserve.parse(quota_reserve)
        except ValueError as error:
            raise ValueError(f"{self.task_id}: {error}") from None
        # Fail at parse time on a bad region or rule, not after the run has started.
        PhoneNumberNormalizer(default_region, _rules(number_rules))
        self.phone_numbers = phone_numbers
        self.sql = sql
        self.parameters = parameters
        self.source_conn_id = source_conn_id
        self.phone_column = phone_column
        self.key_column = key_column
        self.default_region = default_region
        self.number_rules = number_rules
        self.greenapi_conn_id = greenapi_conn_id
        self.destination_conn_id = destination_conn_id
        self.destination_table = destination_table or (DEFAULT_DESTINATION_TABLE if destination_conn_id else None)
        self.usage_table = usage_table
        self.usage_history_table = usage_history_table
        self.requests_per_second = requests_per_second
        self.max_in_flight = max_in_flight
        self.max_age = _as_timedelta(max_age, "max_age")
        self.max_age_not_exists = _as_timedelta(max_age_not_exists, "max_age_not_exists")
        self.statement_timeout = _as_timedelta(statement_timeout, "statement_timeout")
        if self.statement_timeout is not None and self.statement_timeout <= timedelta(0):
            raise ValueError(f"{self.task_id}: statement_timeout must be above 0 seconds, or None for no limit.")
        try:
            wait = _as_timedelta(wait_for_other_runs, "wait_for_other_runs")
        except ValueError:
            wait = None
        if wait is None or wait < timedelta(0):
            raise ValueError(f"{self.task_id}: wait_for_other_runs must be a timedelta or a number of seconds, 0 or "
                             f"more (0: never wait for another run on the instance), got {wait_for_other_runs!r}.")
        self.wait_for_other_runs = wait
        self.prune_missing = prune_missing
        self._warehouse: Warehouse | None = None
        self.max_checks = max_checks
        self.dry_run_mode = dry_run  # BaseOperator.dry_run() is a method: keep the flag under another name
        self.chunk_size = chunk_size
        self.max_xcom_results = max_xcom_results
        self.state_poll_interval = state_poll_interval
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.emit_asset = emit_asset
        if emit_asset:
            if (not destination_conn_id or "{{" in destination_conn_id or self.destination_table is None
                    or "{{" in self.destination_table):
                raise ValueError(
                    f"{self.task_id}: emit_asset needs a literal destination_conn_id and destination_table (the "
                    "asset is named when the DAG is parsed, before templates are rendered)."
                )
            self.outlets = [*self.outlets, results_table_asset(destination_conn_id, self.destination_table)]

    def execute(self, context: Context) -> dict[str, Any]:
        """Run the check. A failure that running again cannot fix (errors.retry_can_fix) fails the task at once,
        without its ``retries``, with the same message; any other failure lets Airflow retry."""
        self._warehouse = None  # the destination warehouse, once opened (_open_store)
        try:
            return self._check(context)
        except Exception as error:
            warehouse = self._warehouse
            if warehouse is not None and warehouse.statement_timeout is not None and warehouse.timed_out(error):
                raise WarehouseTimeoutError(
                    f"A statement on the warehouse connection {warehouse.conn_id!r} ran longer than "
                    f"statement_timeout ({warehouse.statement_timeout:g} s) and was cancelled: the server is frozen "
                    "or overloaded, or another session holds a lock on the table. Airflow retries the task; if "
                    "the statement needs longer, raise statement_timeout (None: no limit)."
                ) from error
            if retry_can_fix(error):
                raise
            raise AirflowFailException(str(error)) from error

    def _check(self, context: Context) -> dict[str, Any]:
        map_index = getattr(context.get("ti"), "map_index", None)
        if self.emit_asset and isinstance(map_index, int) and map_index >= 0:
            self.log.warning(
                "emit_asset=True on a mapped task: Airflow learns a mapped task's outlets only when it runs, so "
                "the scheduler may drop the event, and every mapped task would emit its own. Put outlets="
                "[results_table_asset(...)] on one task downstream of the mapped ones (see docs/scaling.md)."
            )
        hook = GreenApiHook(self.greenapi_conn_id)
        normalizer = PhoneNumberNormalizer(self.default_region, _rules(self.number_rules))
        max_checks: MaxChecks = None
        parsed = parse_max_checks(self.max_checks)  # rendered: "auto" may come from a template
        if parsed == AUTO:
            if not self.destination_conn_id:
                raise ValueError(
                    f"{self.task_id}: max_checks=\"auto\" needs destination_conn_id: the usage ledger that counts the "
                    "month's checks lives in the warehouse. Nothing was checked."
                )
            max_checks = AutoBudget(runs_left_for(context, datetime.now(timezone.utc)), self.quota_reserve)
        elif isinstance(parsed, int):
            max_checks = parsed
        options = CheckOptions(
            freshness=Freshness(self.max_age, self.max_age_not_exists),
            max_checks=max_checks,
            dry_run=self.dry_run_mode,
            chunk_size=self.chunk_size,
            results_limit=None if self.destination_conn_id else self.max_xcom_results,
            state_poll_interval=self.state_poll_interval,
            shard=self.shard,
            wait_for_other_runs=self.wait_for_other_runs,
            prune_missing=self.prune_missing,
        )
        dag_run = context.get("dag_run")
        run_context = RunContext(token=uuid.uuid4().hex, instance_id=hook.id_instance, dag_id=self.dag_id,
                                 run_id=getattr(dag_run, "run_id", None))
        with ExitStack() as stack:
            run = wire_run(
                stack, self._open_warehouse(), instance_id=hook.id_instance, monthly_quota=hook.monthly_quota,
                make_client=lambda ledger: hook.get_client(  # it counts every checkWhatsapp call before sending it
                    requests_per_second=self.requests_per_second, max_in_flight=self.max_in_flight, ledger=ledger),
                normalizer=normalizer, options=options, context=run_context,
                tables=RunTables(self.destination_table or DEFAULT_DESTINATION_TABLE, self.usage_table,
                                 self.usage_history_table),
            )
            inputs = self._inputs(stack, run, normalizer)
            try:
                summary = run.run(inputs)
            except BulkCheckStopped as stopped:
                context["ti"].xcom_push(key="summary", value=stopped.summary.to_dict())
                raise
        if summary.results is not None:
            # Kept out of return_value: Airflow logs a task's return value, and these rows are personal data.
            context["ti"].xcom_push(key=RESULTS_XCOM_KEY, value=summary.results)
        result = summary.to_dict()
        self._attach_to_asset_events(context, result)
        return result

    def _attach_to_asset_events(self, context: Context, summary: dict[str, Any]) -> None:
        """Each outlet's asset event carries the run's counts, so consumers see what changed."""
        if not self.outlets:
            return
        events = context["outlet_events"]
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                events[outlet].extra.update(summary)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage for OpenLineage: the tables the source query reads (by OpenLineage's SQL parser) and the
        results table (warehouse/lineage.py). OpenLineage is optional: without it this returns None."""
        return task_lineage(self.sql, self.source_conn_id, self.destination_conn_id, self.destination_table)

    def _open_warehouse(self) -> Warehouse | None:
        """The destination warehouse (None: results go to the XCom), kept for execute()'s timeout message."""
        if not self.destination_conn_id:
            return None
        timeout = None if self.statement_timeout is None else self.statement_timeout.total_seconds()
        self._warehouse = open_warehouse(self.destination_conn_id, statement_timeout=timeout)
        return self._warehouse

    def _inputs(self, stack: ExitStack, run: WiredRun, normalizer: PhoneNumberNormalizer) -> Iterable[InputRow]:
        if self.sql is None:
            if self.prune_missing and not isinstance(self.phone_numbers, Mapping):
                raise ValueError(
                    f"{self.task_id}: prune_missing needs source keys: give phone_numbers as a dict of key -> number "
                    f"(got a {type(self.phone_numbers).__name__}). Nothing was checked or deleted."
                )
            return numbers_from_value(self.phone_numbers)
        assert self.source_conn_id is not None
        return run.query_inputs(stack, self.source_conn_id, self.sql, self.phone_column, self.key_column,
                                changed_only=normalizer.settings if self.shard is None else None,
                                prune_missing=self.prune_missing, parameters=self.parameters)


def _rules(rules: Sequence[NumberRule | str] | None) -> list[NumberRule] | None:
    if rules is None:
        return None
    try:
        return [r if isinstance(r, NumberRule) else NumberRule[str(r).upper()] for r in rules]
    except KeyError as error:
        known = ", ".join(r.name for r in NumberRule)
        raise ValueError(f"Unknown number rule {error.args[0]!r}; known rules: {known}.") from None

