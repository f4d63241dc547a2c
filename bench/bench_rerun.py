"""A daily run over a contacts table that changed a little (issue 25): what a rerun costs beside what it must.

Per engine (SQLite, DuckDB, PostgreSQL, MariaDB; Snowflake on fakesnow at a smaller size), with the source table
in the same database as the results and in another (a SQLite file), each once with clean data (unique valid
numbers) and once with 2% repeated junk ("", "n/a", ... under many keys):

- first run: the operator stages every row (``max_checks=0``: nothing sent) and commits; rows/s of that run;
  then the answers are seeded fresh in SQL (every queued row answered now), as if the run had checked them;
- rerun with nothing new, then rerun with 0.1% new contacts (pacing lifted: the calls are not the bottleneck):
  wall time, and rows rewritten (rows whose ``staged_by`` is a token the table did not hold before the run);
- the floor: reading the source once (every row fetched), and, in the same database, the engine's own
  anti-join of the source against the results (the diff a rerun needs, as one statement);
- the peak RSS of the engine's process (each engine runs in its own process), beside the same run over
  10,000 contacts in a process of its own (the goal: at most 50 MiB more, whatever the size).

The goals of issue 25 are printed as PASS/FAIL: a rerun with nothing new within 3x reading the source + 1 s,
0 rows rewritten when nothing changed and no more than the new ones otherwise, first-run staging >= 50k rows/s
(5k on fakesnow), repeated junk costing no more than clean data, peak RSS within +50 MiB of the 10k-row run.

    .venv/bin/python bench/bench_rerun.py                         # 100,000 contacts (20,000 on fakesnow)
    .venv/bin/python bench/bench_rerun.py --rows 1000000 --snowflake-rows 100000   # the full size
    .venv/bin/python bench/bench_rerun.py --engine sqlite --rows 5000
    # one case, against another tree's package (a before/after pair; the tree on PYTHONPATH is measured):
    PYTHONPATH=../before .venv/bin/python bench/bench_rerun.py --engine postgres --rows 200000 --case other-clean
    # another staging chunk than the engine's own (Engine.staging_rows):
    .venv/bin/python bench/bench_rerun.py --engine duckdb --rows 1000000 --case same-clean --chunk-size 1000
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import common
from bench_engines import ROOT, Skip, destination

from tests.engine_support import ENGINES

JUNK = ("", "n/a", "-", "none", "0", "unknown", "+", "000", "tbd", "no phone")
JUNK_SHARE = 0.02
NEW_SHARE = 0.001
TABLE = "whatsapp_checks"
SMALL_ROWS = 10_000  # the size whose peak RSS is the baseline of every other size
CHUNK_SIZE: int | None = None  # --chunk-size: the operator's chunk_size (None: the engine's own)
RSS_GOAL_MIB = 50


def contacts(rows: int, junk: bool, first: int = 0) -> Iterator[tuple[str, str]]:
    """``rows`` contacts from number ``first``: ids ``c0000001``, phones as typed; with ``junk``, 2% junk values.
    Made as they are written: the bench's process holds no list of them (its peak RSS is the run's)."""
    step = round(1 / JUNK_SHARE)
    return ((f"c{first + i:09d}", JUNK[(i // step) % len(JUNK)] if junk and i % step == step - 1
             else common.formatted(common.FIRST_NUMBER + first + i)) for i in range(rows))


def _sql(warehouse: Any, statement: str, fetch: bool = True) -> list[tuple[Any, ...]]:
    connection = warehouse.connect()
    try:
        cursor = connection.cursor()
        cursor.execute(statement)
        found = [tuple(r) for r in cursor.fetchall()] if fetch else []
        cursor.close()
        connection.commit()
    finally:
        connection.close()
    return found


def add_contacts(warehouse: Any, rows: Iterable[tuple[str, str]]) -> None:
    engine = warehouse.dialect.engine
    connection = warehouse.connect()
    try:
        engine.create_table(connection, "contacts",
                            f"contact_id {engine.key_text_type(32)} NOT NULL PRIMARY KEY, phone {engine.text_type}")
        cursor = connection.cursor()
        iterator = iter(rows)
        while batch := list(itertools.islice(iterator, 50_000)):
            engine.upsert(cursor, "contacts", ("contact_id", "phone"), ("contact_id",), batch)
        cursor.close()
        connection.commit()
    finally:
        connection.close()


def in_child_process(work: Callable[[], None]) -> None:
    """``work`` in a forked process, so that its memory (a million rows written, an engine's caches of them) is
    not counted in this process's peak RSS, which is the runs'."""
    child = multiprocessing.get_context("fork").Process(target=work)
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"writing the contacts failed in a child process (exit code {child.exitcode})")


def timed(what: Any) -> tuple[float, Any]:
    began = time.perf_counter()
    result = what()
    return time.perf_counter() - began, result


def read_source(warehouse: Any) -> int:
    """Every row of the source, fetched once in batches, streamed as the provider streams a source (a server-side
    cursor on PostgreSQL and MySQL: a plain cursor there holds the whole result in the bench's memory)."""
    connection = warehouse.connect()
    try:
        streams = warehouse.dialect.value in ("postgres", "mysql")
        cursor = warehouse.dialect.engine.source_cursor(None, connection)() if streams else connection.cursor()
        cursor.execute("SELECT contact_id, phone FROM contacts")
        count = 0
        while batch := cursor.fetchmany(10_000):
            count += len(batch)
        cursor.close()
        connection.commit()
    finally:
        connection.close()
    return count


# Source rows the results do not hold as written (new or changed): set-based on every engine (the results'
# key is (phone_number, source_key), so a correlated NOT EXISTS on source_key would scan per row).
ANTI_JOIN = (f"SELECT COUNT(*) FROM (SELECT contact_id, phone FROM contacts EXCEPT "
             f"SELECT source_key, input_value FROM {TABLE}) diff")


def tokens(warehouse: Any) -> dict[str, int]:
    """Rows per ``staged_by`` token (none before the first run made the table)."""
    try:
        found = _sql(warehouse, f"SELECT staged_by, COUNT(*) FROM {TABLE} GROUP BY staged_by")
    except Exception:  # no table yet: each driver has its own error
        return {}
    return {str(t): int(n) for t, n in found}


SOURCE_CONN_ID = "contacts_elsewhere"  # a SQLite file beside the results' database: the source in another database


def run(emulator: common.EmulatorProcess, warehouse: Any, source_conn_id: str, **options: Any) -> dict[str, Any]:
    """One operator run over the source; its wall time, calls and rows rewritten."""
    before, calls = tokens(warehouse), emulator.calls()
    with common.without_pacing():
        done = common.run_operator(sql="SELECT contact_id, phone FROM contacts",
                                   source_conn_id=source_conn_id, phone_column="phone",
                                   key_column="contact_id", destination_conn_id=common.WAREHOUSE_CONN_ID,
                                   max_in_flight=32, **({"chunk_size": CHUNK_SIZE} if CHUNK_SIZE else {}),
                                   **options)
    rewritten = sum(n for t, n in tokens(warehouse).items() if t not in before)
    return {"wall_s": done.wall_s, "calls": emulator.calls() - calls, "rewritten": rewritten}


def measure_case(engine: str, conn: str, rows: int, junk: bool, elsewhere: Path | None) -> dict[str, Any]:
    """One case; ``elsewhere``: the source in this SQLite file, not in the results' database."""
    from airflow_provider_greenapi.warehouse import open_warehouse

    os.environ[f"AIRFLOW_CONN_{common.WAREHOUSE_CONN_ID.upper()}"] = conn
    warehouse = open_warehouse(common.WAREHOUSE_CONN_ID)
    source_conn_id = common.WAREHOUSE_CONN_ID
    if elsewhere is not None:
        source_conn_id = SOURCE_CONN_ID
        os.environ[f"AIRFLOW_CONN_{SOURCE_CONN_ID.upper()}"] = json.dumps({"conn_type": "sqlite",
                                                                           "host": str(elsewhere)})
    source = open_warehouse(source_conn_id)
    in_child_process(lambda: add_contacts(source, contacts(rows, junk)))  # the table's writer is not the run's RSS
    result: dict[str, Any] = {"junk": junk, "rows": rows, "source": "other" if elsewhere else "same"}
    with common.EmulatorProcess(rate_limits=False) as emulator:
        common.set_connections(emulator.base_url)
        first = run(emulator, warehouse, source_conn_id, max_checks=0)
        result["first_s"], result["staging_rows_per_s"] = first["wall_s"], rows / first["wall_s"]
        _sql(warehouse, f"UPDATE {TABLE} SET status = 'exists', exists_whatsapp = TRUE, checked_at = queued_at, "
                        "queued_at = NULL WHERE queued_at IS NOT NULL", fetch=False)
        result["read_s"], _ = timed(lambda: read_source(source))
        result["nothing_new"] = run(emulator, warehouse, source_conn_id)
        new = max(1, round(rows * NEW_SHARE))
        add_contacts(source, contacts(new, False, first=rows))
        result["new"] = new
        if elsewhere is None:  # one statement needs both tables in one database
            result["anti_join_s"], found = timed(lambda: _sql(warehouse, ANTI_JOIN))
            result["anti_join_rows"] = int(found[0][0])
        result["some_new"] = run(emulator, warehouse, source_conn_id)
    return result


CASES = {"same-clean": (False, False), "same-junk": (False, True), "other-clean": (True, False),
         "other-junk": (True, True)}  # name: (source in another database, 2% junk)


def measure_engine(engine: str, rows: int, cases: list[str] | None = None) -> dict[str, Any]:
    common.prepare_airflow_home()
    import airflow_provider_greenapi.operators.check_whatsapp  # noqa: F401  (Airflow's import, before timing)

    folder = common.workdir(f"rerun-{engine}")
    with destination(engine, folder) as databases:
        measured = [measure_case(engine, next(databases), rows, junk,
                                 folder / f"contacts-{junk}.db" if elsewhere else None)
                    for name, (elsewhere, junk) in CASES.items() if cases is None or name in cases]
    from airflow_provider_greenapi.warehouse.engine import Dialect

    return {"engine": engine, "rows": rows, "cases": measured, "peak_rss_mib": common.peak_rss_mib(),
            "write_path": getattr(Dialect(engine).engine, "write_path", "before issue 25: no declared write path")}


def _one(engine: str, rows: int, cases: list[str] | None) -> dict[str, Any]:
    """One engine at one size, in a process of its own (its own peak RSS)."""
    only = [arg for case in cases or () for arg in ("--case", case)]
    only += ["--chunk-size", str(CHUNK_SIZE)] if CHUNK_SIZE else []
    done = subprocess.run([sys.executable, __file__, "--one", engine, "--rows", str(rows), *only],
                          stdout=subprocess.PIPE, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"bench_rerun.py --one {engine} --rows {rows} exited with {done.returncode}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def measure(engines: list[str], rows: int, snowflake_rows: int, cases: list[str] | None = None) -> dict[str, Any]:
    """Each engine in its own process, first over SMALL_ROWS contacts (the baseline of its peak RSS)."""
    measured, skipped = [], {}
    for engine in engines:
        print(f"bench_rerun: {engine} ...", file=sys.stderr, flush=True)
        size = snowflake_rows if engine == "snowflake" else rows
        small = _one(engine, min(SMALL_ROWS, size), cases)
        result = _one(engine, size, cases) if "skipped" not in small and size > SMALL_ROWS else small
        if "skipped" in result:
            skipped[engine] = result["skipped"]
        else:
            measured.append({**result, "small_rss_mib": small["peak_rss_mib"], "small_rows": small["rows"]})
    return {"engines": measured, "skipped": skipped}


def staging_goal(engine: str) -> float:
    return 5_000.0 if engine == "snowflake" else 50_000.0


def goals(e: dict[str, Any]) -> list[tuple[str, str, str, str, bool]]:
    """(case, figure, baseline of the same run, goal, met) of one engine, for this script and run_all.py."""
    out = []
    for c in e["cases"]:
        kind = ("2% junk" if c["junk"] else "clean") + (", source in another database" if c["source"] == "other"
                                                         else "")
        floor = 3 * c["read_s"] + 1
        nothing, some = c["nothing_new"], c["some_new"]
        base = f"read once {c['read_s']:.2f} s" + (f", anti-join {c['anti_join_s']:.2f} s" if "anti_join_s" in c
                                                    else "")
        out += [
            (f"{kind}: first run, staging", f"{c['staging_rows_per_s']:,.0f} rows/s ({c['first_s']:.1f} s)",
             f"read once {c['rows'] / max(c['read_s'], 1e-9):,.0f} rows/s",
             f">= {staging_goal(e['engine']):,.0f} rows/s", c["staging_rows_per_s"] >= staging_goal(e["engine"])),
            (f"{kind}: rerun, nothing new", f"{nothing['wall_s']:.1f} s, {nothing['rewritten']:,} rows rewritten, "
             f"{nothing['calls']} calls", base, f"<= {floor:.1f} s (3 x read + 1 s), 0 rewritten",
             nothing["wall_s"] <= floor and nothing["rewritten"] == 0),
            (f"{kind}: rerun, {c['new']:,} new ({NEW_SHARE:.1%})",
             f"{some['wall_s']:.1f} s, {some['rewritten']:,} rows rewritten, {some['calls']} calls", base,
             f"<= {floor:.1f} s, <= {c['new']:,} rewritten", some["wall_s"] <= floor and some["rewritten"] <= c["new"]),
        ]
    same = {c["junk"]: c for c in e["cases"] if c["source"] == "same"}
    if len(same) == 2:
        clean, junk = same[False], same[True]
        ratio = junk["nothing_new"]["wall_s"] / clean["nothing_new"]["wall_s"]
        out.append(("2% junk vs clean: rerun, nothing new", f"{junk['nothing_new']['wall_s']:.1f} s ({ratio:.2f}x)",
                    f"clean {clean['nothing_new']['wall_s']:.1f} s", "<= 1.2x", ratio <= 1.2))
    if "small_rss_mib" in e:  # a run of this script (run_all.py's older results have none)
        growth = e["peak_rss_mib"] - e["small_rss_mib"]
        out.append(("peak RSS of the process", f"{e['peak_rss_mib']:.0f} MiB ({growth:+.0f})",
                    f"{e['small_rows']:,} contacts: {e['small_rss_mib']:.0f} MiB",
                    f"<= +{RSS_GOAL_MIB} MiB", growth <= RSS_GOAL_MIB))
    else:
        out.append(("peak RSS of the process", f"{e['peak_rss_mib']:.0f} MiB", "-", "(info: one size)", True))
    return out


def describe(result: dict[str, Any]) -> str:
    lines = []
    for e in result["engines"]:
        lines.append(f"{e['engine']}, {e['rows']:,} contacts ({e['write_path']}):")
        lines += [f"  {case}: {figure} ({baseline}) [goal {goal}: {'PASS' if ok else 'FAIL'}]"
                  for case, figure, baseline, goal, ok in goals(e)]
    lines += [f"{engine}: skipped, {why}" for engine, why in result["skipped"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="What a rerun costs per engine, beside reading the source once.")
    parser.add_argument("--engine", choices=ENGINES, action="append", help="default: every engine")
    parser.add_argument("--rows", type=int, default=100_000, help="contacts (the full size: 1000000)")
    parser.add_argument("--snowflake-rows", type=int, default=20_000,
                        help="contacts on fakesnow (the full size: 100000)")
    parser.add_argument("--one", choices=ENGINES, help=argparse.SUPPRESS)  # one engine, in this process
    parser.add_argument("--case", choices=CASES, action="append", help="default: every case")
    parser.add_argument("--json", action="store_true", help="print one JSON line (for run_all.py)")
    parser.add_argument("--chunk-size", type=int, help="the operator's chunk_size (default: the engine's own)")
    args = parser.parse_args()
    global CHUNK_SIZE
    CHUNK_SIZE = args.chunk_size
    if args.one:
        try:
            print(json.dumps(measure_engine(args.one, args.rows, args.case)), flush=True)
        except Skip as why:
            print(json.dumps({"skipped": str(why)}), flush=True)
        return
    result = measure(args.engine or list(ENGINES), args.rows, args.snowflake_rows, args.case)
    common.emit(result, args.json, describe)


if __name__ == "__main__":
    main()
