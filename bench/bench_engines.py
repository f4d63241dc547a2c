"""Per warehouse engine: staging time for 100,000 rows, and paced throughput at 200 ms answers and 10/s.

Each engine is the operator's destination (results table, queue, usage ledger) on a real engine that this
script starts, as the tests do (tests/postgres_server.py, tests/mariadb_server.py, tests/snowflake_server.py;
SQLite and DuckDB are files). The source is the same SQLite file of contacts for every engine, so that the
figures compare the destinations alone; the baseline is SQLite's figure of the same run.

- staging: a dry run over ``--rows`` source rows (read, normalise, look up freshness, stage the queue; rolled
  back at the end, nothing sent): the operator's wall time;
- paced: ``--numbers`` numbers checked against the emulator answering after 200 ms with its real limit
  (checkWhatsapp 10/s), ``requests_per_second=10``, 4 in flight: checks/s while draining (goal >= 9.5/s).

An engine is skipped, with the reason, when its server or provider is missing here, or when the provider
refuses it ("supported warehouses are ..."; the warehouse layer of issue 13 adds DuckDB, MySQL, Snowflake).

    .venv/bin/python bench/bench_engines.py                          # every engine
    .venv/bin/python bench/bench_engines.py --engine sqlite --engine postgres --rows 20000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import common

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))  # the engines' test servers live in tests/; a PYTHONPATH given comes first (A/B)

from tests import mariadb_server, postgres_server, snowflake_server  # noqa: E402
from tests.engine_support import ENGINES, installed, refusal  # noqa: E402

SOURCE_CONN_ID = "contacts_source"
RATE = 10.0
LATENCY_MS = 200.0


class Skip(Exception):
    """This engine cannot be measured here; the message says why."""


def _require(module: str, extra: str) -> None:
    if not installed(module):
        raise Skip(f"{module} is not installed (pip install '.[{extra}]' or scripts/install-engine-test-deps.sh)")


@contextlib.contextmanager
def destination(engine: str, folder: Path) -> Iterator[Iterator[str]]:
    """Yields a factory of fresh databases of ``engine``: each ``next()`` is an ``AIRFLOW_CONN_*`` value."""
    if engine == "sqlite":
        yield (json.dumps({"conn_type": "sqlite", "host": str(folder / f"results-{i}.db")}) for i in range(99))
    elif engine == "duckdb":
        _require("airflow.providers.duckdb", "duckdb")
        yield (json.dumps({"conn_type": "duckdb", "host": str(folder / f"results-{i}.duckdb")}) for i in range(99))
    elif engine == "postgres":
        if reason := postgres_server.why_unavailable():
            raise Skip(reason)
        cluster = postgres_server.PostgresCluster()
        try:
            server = cluster.start()
            yield (server.airflow_conn(server.create_database()) for _ in range(99))
        finally:
            cluster.close()
    elif engine == "mysql":
        if reason := mariadb_server.why_unavailable():
            raise Skip(reason)
        maria = mariadb_server.MariaDBCluster()
        try:
            mserver = maria.start()
            yield (mserver.airflow_conn(mserver.create_database()) for _ in range(99))
        finally:
            maria.close()
    elif engine == "snowflake":
        if reason := snowflake_server.why_unavailable():
            raise Skip(reason)
        with snowflake_server.FakesnowServer() as snow:
            os.environ.update(snow.environ())
            yield (snow.airflow_conn(snow.new_database()) for _ in range(99))
    else:
        raise ValueError(f"unknown engine {engine!r}")


def _operator_run(engine: str, **kwargs: Any) -> common.OperatorRun:
    try:
        return common.run_operator(
            sql="SELECT contact_id, phone FROM contacts", source_conn_id=SOURCE_CONN_ID, phone_column="phone",
            key_column="contact_id", destination_conn_id=common.WAREHOUSE_CONN_ID, **kwargs)
    except Exception as error:
        refused = refusal(str(error), engine)
        if refused:
            raise Skip(f"the provider does not support {engine} yet ({refused[:120]})") from None
        raise


def measure_engine(engine: str, source: Path, paced_source: Path, rows: int, numbers: int,
                   max_in_flight: int) -> dict[str, Any]:
    folder = common.workdir(f"engines-{engine}")
    result: dict[str, Any] = {"engine": engine}
    with destination(engine, folder) as databases:
        with common.EmulatorProcess(rate_limits=False) as emulator:
            common.set_connections(emulator.base_url)
            os.environ[f"AIRFLOW_CONN_{SOURCE_CONN_ID.upper()}"] = json.dumps({"conn_type": "sqlite",
                                                                               "host": str(source)})
            os.environ[f"AIRFLOW_CONN_{common.WAREHOUSE_CONN_ID.upper()}"] = next(databases)
            staging = _operator_run(engine, dry_run=True)
            assert staging.summary["inputs"] == rows, staging.summary
            result.update(rows=rows, staging_s=staging.wall_s, staging_rows_per_s=rows / staging.wall_s,
                          staging_cpu_s=staging.cpu_s, staged_to_check=staging.summary["pending"])
        with common.EmulatorProcess(latency_ms=LATENCY_MS) as emulator:
            common.set_connections(emulator.base_url)
            os.environ[f"AIRFLOW_CONN_{SOURCE_CONN_ID.upper()}"] = json.dumps({"conn_type": "sqlite",
                                                                               "host": str(paced_source)})
            os.environ[f"AIRFLOW_CONN_{common.WAREHOUSE_CONN_ID.upper()}"] = next(databases)
            paced = _operator_run(engine, requests_per_second=RATE, max_in_flight=max_in_flight)
            summary = paced.summary
            result.update(numbers=numbers, rate=RATE, latency_ms=LATENCY_MS, max_in_flight=max_in_flight,
                          drain_per_s=summary["checks_per_second"], paced_wall_s=paced.wall_s,
                          checked=summary["exists"] + summary["not_exists"], calls=emulator.calls(),
                          emulator_429=emulator.count_429())
    return result


def measure(engines: list[str], rows: int, numbers: int, max_in_flight: int) -> dict[str, Any]:
    common.prepare_airflow_home()
    import airflow_provider_greenapi.operators.check_whatsapp  # noqa: F401  (Airflow's import, before timing)

    data = common.workdir("engines-source")
    source, paced_source = data / "contacts.db", data / "paced.db"
    common.create_contacts(source, ((i, common.formatted(common.FIRST_NUMBER + i)) for i in range(rows)))
    common.create_contacts(paced_source, ((i, common.formatted(common.FIRST_NUMBER + 5_000_000 + i))
                                          for i in range(numbers)))
    measured, skipped = [], {}
    for engine in engines:
        print(f"bench_engines: {engine} ...", file=sys.stderr, flush=True)
        try:
            measured.append(measure_engine(engine, source, paced_source, rows, numbers, max_in_flight))
        except Skip as why:
            skipped[engine] = str(why)
    return {"engines": measured, "skipped": skipped}


def describe(result: dict[str, Any]) -> str:
    lines = []
    for r in result["engines"]:
        lines.append(
            f"{r['engine']}: staging {r['rows']:,} rows in {r['staging_s']:.1f} s ({r['staging_rows_per_s']:,.0f} "
            f"rows/s); paced {r['drain_per_s']:.2f} checks/s at {r['latency_ms']:.0f} ms answers and "
            f"{r['rate']:.0f}/s ({r['checked']}/{r['numbers']} checked, {r['emulator_429']} x 429)"
        )
    lines += [f"{engine}: skipped, {why}" for engine, why in result["skipped"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="Staging time and paced throughput per warehouse engine.")
    parser.add_argument("--engine", choices=ENGINES, action="append", help="default: every engine")
    parser.add_argument("--rows", type=int, default=100_000, help="source rows staged in the dry run")
    parser.add_argument("--numbers", type=int, default=200, help="numbers checked in the paced run")
    parser.add_argument("--max-in-flight", type=int, default=4)
    parser.add_argument("--json", action="store_true", help="print one JSON line (for run_all.py)")
    args = parser.parse_args()
    result = measure(args.engine or list(ENGINES), args.rows, args.numbers, args.max_in_flight)
    common.emit(result, args.json, describe)


if __name__ == "__main__":
    main()
