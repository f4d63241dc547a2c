"""Where the provider's own time goes in the overhead case (SQLite -> SQLite, emulator without latency).

Two profilers, because the work is split over threads: pyinstrument samples the main thread (reading the
source, normalising, staging, the drain loop, committing results), and cProfile records each check thread
(``Dispatcher._check``: the usage ledger, the pacer, requests). ``--timer cpu`` makes cProfile count
each thread's CPU time instead of the wall clock.

``--dry-run`` profiles only the staging path (read, normalise, de-duplicate, store) over many more rows.

    .venv/bin/pip install -e '.[dev]'     # pyinstrument is in the dev extra
    .venv/bin/python bench/profile_overhead.py --numbers 3000 [--html profile.html] [--timer cpu]
    .venv/bin/python bench/profile_overhead.py --numbers 100000 --dry-run
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import threading
import time
from typing import Any
from unittest import mock

import common


def main() -> None:
    parser = argparse.ArgumentParser(description="Profile the overhead case (pyinstrument + cProfile).")
    parser.add_argument("--numbers", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--timer", choices=("wall", "cpu"), default="wall", help="cProfile's clock in check threads")
    parser.add_argument("--top", type=int, default=25, help="rows of the check threads' table")
    parser.add_argument("--html", help="also write pyinstrument's main-thread profile to this HTML file")
    parser.add_argument("--dry-run", action="store_true",
                        help="profile only the staging path (read, normalise, de-duplicate, store): no HTTP check")
    args = parser.parse_args()
    try:
        from pyinstrument import Profiler
    except ImportError:
        raise SystemExit("pyinstrument is missing: .venv/bin/pip install pyinstrument (or the dev extra)") from None

    common.prepare_airflow_home()
    warehouse = common.workdir("profile") / "warehouse.db"
    common.create_contacts(
        warehouse, ((i, common.formatted(common.FIRST_NUMBER + i)) for i in range(args.numbers))
    )
    from airflow_provider_greenapi.pipeline.dispatch import Dispatcher

    profiles: dict[int, cProfile.Profile] = {}
    lock = threading.Lock()
    check_one = Dispatcher._check
    timer = time.thread_time if args.timer == "cpu" else time.perf_counter

    def profiled_check_one(self: Dispatcher, number: str) -> Any:
        with lock:
            profile = profiles.setdefault(threading.get_ident(), cProfile.Profile(timer))
        profile.enable()
        try:
            return check_one(self, number)
        finally:
            profile.disable()

    with common.EmulatorProcess(rate_limits=False) as emulator, common.without_pacing(), \
            mock.patch.object(Dispatcher, "_check", profiled_check_one):
        common.set_connections(emulator.base_url, warehouse)
        profiler = Profiler(interval=0.001)
        profiler.start()
        run = common.run_operator(
            sql="SELECT contact_id, phone FROM contacts", source_conn_id=common.WAREHOUSE_CONN_ID,
            phone_column="phone", key_column="contact_id", destination_conn_id=common.WAREHOUSE_CONN_ID,
            requests_per_second=10, max_in_flight=args.concurrency, dry_run=args.dry_run,
        )
        profiler.stop()

    print(f"{args.numbers} numbers in {run.wall_s:.1f} s ({args.numbers / run.wall_s:.0f}/s), "
          f"{run.cpu_s / args.numbers * 1e6:.0f} us CPU per number (profilers included)\n")
    print("=== main thread (pyinstrument, wall clock) ===")
    print(profiler.output_text(show_all=False, short_mode=False))
    if args.html:
        profiler.write_html(args.html)
    if not profiles:
        return
    print(f"=== {len(profiles)} check threads (cProfile, {args.timer} clock, summed over threads) ===")
    out = io.StringIO()
    stats = pstats.Stats(*profiles.values(), stream=out)
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)
    print(out.getvalue())


if __name__ == "__main__":
    main()
