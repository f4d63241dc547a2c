"""Peak memory of a run over 10,000 and over 1,000,000 source rows: it must stay flat (streaming, not loading).

Each size runs in a fresh child process, which reports its peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``)
after importing Airflow and the provider, and again after ``operator.execute``. Every size runs the whole
staging path (read the SQLite source in chunks, normalise, de-duplicate, look up fresh answers, write and
commit the queue rows), then drains the same ``--checks`` numbers from the queue over HTTP (``max_checks``;
emulator without latency or limit, pacing lifted), so that the queue, the check threads and the result
writes are in the figure too while a million rows still fit in the time of ``make bench``.
``--checks 0`` makes it a dry run (staging only, rolled back). The destination is the source's SQLite file.

    .venv/bin/python bench/bench_memory.py --sizes 10000 1000000 --journal-mode wal
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import common


def child(warehouse: Path, emulator_url: str, checks: int) -> dict[str, Any]:
    """Runs in the child process: import, then one run over the whole table (``checks`` of them sent)."""
    common.prepare_airflow_home()
    import airflow_provider_greenapi.operators.check_whatsapp  # noqa: F401  (Airflow's import)

    common.set_connections(emulator_url, warehouse)
    before = common.peak_rss_mib()
    with common.without_pacing():
        run = common.run_operator(
            sql="SELECT contact_id, phone FROM contacts", source_conn_id=common.WAREHOUSE_CONN_ID,
            phone_column="phone", key_column="contact_id", destination_conn_id=common.WAREHOUSE_CONN_ID,
            requests_per_second=10, dry_run=checks == 0, max_checks=checks or None,
        )
    return {
        "rss_after_import_mib": before,
        "peak_rss_mib": common.peak_rss_mib(),
        "wall_s": run.wall_s,
        "inputs": run.summary["inputs"],
        "checked": run.summary["exists"] + run.summary["not_exists"],
        "pending": run.summary["pending"],
    }


def measure(sizes: list[int], journal_mode: str | None, checks: int) -> dict[str, Any]:
    cases = []
    with common.EmulatorProcess(rate_limits=False) as emulator:
        for size in sizes:
            warehouse = common.workdir("memory") / "warehouse.db"
            numbers = (common.FIRST_NUMBER + i for i in range(size))
            rows = ((i, common.formatted(n)) for i, n in enumerate(numbers))
            common.create_contacts(warehouse, rows, journal_mode=journal_mode)
            began = time.perf_counter()
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(warehouse), emulator.base_url, "--checks", str(checks)],
                stdout=subprocess.PIPE, text=True, check=True, env=os.environ.copy(),
            )
            case = json.loads(done.stdout.strip().splitlines()[-1])
            case.update(rows=size, child_wall_s=time.perf_counter() - began)
            warehouse.unlink()
            cases.append(case)
    return {"checks": checks, "cases": cases}


def describe(result: dict[str, Any]) -> str:
    lines = []
    for case in result["cases"]:
        grown = case["peak_rss_mib"] - case["rss_after_import_mib"]
        lines.append(
            f"{case['rows']:>9} rows ({case['checked']} checked): peak RSS {case['peak_rss_mib']:.0f} MiB "
            f"({case['rss_after_import_mib']:.0f} MiB after imports, +{grown:.0f} MiB for the run), "
            f"{case['wall_s']:.1f} s, {case['inputs']} inputs staged, {case['pending']} pending"
        )
    if len(result["cases"]) >= 2:
        small, large = result["cases"][0], result["cases"][-1]
        lines.append(f"ratio {common.ratio(large['peak_rss_mib'], small['peak_rss_mib']):.2f}x, "
                     f"difference {large['peak_rss_mib'] - small['peak_rss_mib']:+.0f} MiB")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="Peak RSS of a run over a small and a large source table.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000], help="source rows (a child each)")
    parser.add_argument("--child", nargs=2, metavar=("WAREHOUSE", "EMULATOR_URL"), help=argparse.SUPPRESS)
    parser.add_argument("--journal-mode", default=None, help="SQLite journal mode of the warehouse file (e.g. wal)")
    parser.add_argument("--checks", type=int, default=1000, help="numbers each size sends (0: a dry run)")
    parser.add_argument("--json", action="store_true", help="print one JSON line (for run_all.py)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), args.child[1], args.checks)), flush=True)
        return
    common.emit(measure(args.sizes, args.journal_mode, args.checks), args.json, describe)


if __name__ == "__main__":
    main()
