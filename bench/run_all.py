"""Run every benchmark of bench/ and print one table: case, figure, baseline, ratio, goal, result.

Each case runs in its own subprocess (``bench_*.py --json``) and every figure stands beside a baseline
measured in the same run, because the machine is shared and noisy: compare ratios, not absolute figures.
Logs of the cases go to a file named at the end. ``bench_scale_out.py`` runs when it exists.

    .venv/bin/python bench/run_all.py                            # full sizes: 100,000 numbers of overhead
    .venv/bin/python bench/run_all.py --overhead-numbers 5000    # what `make bench` runs
    .venv/bin/python bench/run_all.py --quick                    # a smoke test of every case, no figures
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PACED_GOAL = 0.95  # of the configured 10/s
LATENCY_GOAL = 0.95  # issue 15: of the configured pace, at every answer time of the sweep
# "The provider's own work should cost a small fraction of the HTTP work": at most +25% CPU per number over
# the bare requests loop, and at least 80% of its throughput.
OVERHEAD_THROUGHPUT_GOAL = 0.9  # issue 15: with the usage ledger, on a default-journal SQLite file
OVERHEAD_CPU_GOAL = 1.25
MEMORY_GOAL_RATIO, MEMORY_GOAL_MIB = 1.25, 50.0
NORMALISING_GOAL = 0.01  # issue 17: normalising a number stays well under 1% of what checking it costs
SCALE_OUT_EFFICIENCY = 0.875  # issue 10: 4 instances reach at least 3.5x the throughput of one


@dataclass
class Row:
    case: str
    figure: str
    baseline: str
    ratio: str
    goal: str
    result: str  # PASS, FAIL, info, ERROR


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# --- the cases: each returns its rows from the JSON of its script --------------------------------------------


def paced_rows(r: dict[str, Any]) -> list[Row]:
    rows = []
    for v in r["variants"]:
        label = "200 ms" if not v["jitter_ms"] else f"{v['latency_ms']:.0f}+-{v['jitter_ms']:.0f} ms"
        goal = PACED_GOAL * v["rate"]
        rows.append(Row(
            f"paced, {label} answers, limit 10/s ({v['numbers']} numbers, {v['max_in_flight']} in flight)",
            f"{v['drain_per_s']:.2f} checks/s, {v['emulator_429']} x 429",
            f"naive SDK loop {v['naive_per_s']:.2f}/s, {v['naive_429']} x 429",
            _ratio(v["drain_per_s"], v["naive_per_s"]),
            f">= {goal:.1f}/s, 0 x 429",
            _verdict(v["drain_per_s"] >= goal and v["emulator_429"] == 0 and v["checked"] == v["numbers"]),
        ))
    return rows


def latency_rows(r: dict[str, Any]) -> list[Row]:
    rows = []
    for c in r["cases"]:
        b, goal = c["baseline"], LATENCY_GOAL * c["pace"]
        rows.append(Row(
            f"latency sweep, {c['latency_s']:g} s +-50% answers, default settings at {c['pace']:g}/s "
            f"({c['numbers']} numbers, up to {c['max_in_flight_seen']} in flight)",
            f"{c['sustained_per_s']:.2f} checks/s, {c['emulator_429']} x 429",
            f"fixed 4 in flight {b['sustained_per_s']:.2f}/s",
            _ratio(c["sustained_per_s"], b["sustained_per_s"]),
            f">= {goal:.2f}/s, 0 x 429",
            _verdict(c["sustained_per_s"] >= goal and c["emulator_429"] == 0 and c["checked"] == c["numbers"]),
        ))
    return rows


def overhead_rows(r: dict[str, Any]) -> list[Row]:
    n = r["numbers"]
    diagnosis = ", usage ledger OFF" if r.get("without_ledger") else ""
    rows = [
        Row(f"overhead, throughput ({n:,} numbers, SQLite -> SQLite, no latency{diagnosis})",
            f"{r['provider_per_s']:.0f} numbers/s",
            f"bare requests loop {r['bare_per_s']:.0f}/s",
            _ratio(r["provider_per_s"], r["bare_per_s"]),
            f">= {OVERHEAD_THROUGHPUT_GOAL:g}x bare",
            _verdict(r["provider_per_s"] >= OVERHEAD_THROUGHPUT_GOAL * r["bare_per_s"] and r["provider_calls"] == n)),
        Row("overhead, CPU per number (provider's process only)",
            f"{r['provider_cpu_us']:.0f} us",
            f"bare requests loop {r['bare_cpu_us']:.0f} us",
            _ratio(r["provider_cpu_us"], r["bare_cpu_us"]),
            f"<= {OVERHEAD_CPU_GOAL:g}x bare",
            _verdict(r["provider_cpu_us"] <= OVERHEAD_CPU_GOAL * r["bare_cpu_us"])),
        Row(f"overhead, the provider's GreenApiClient alone ({r['bare_numbers']:,} calls, no store, no ledger)",
            f"{r['client_per_s']:.0f} calls/s, {r['client_cpu_us']:.0f} us CPU",
            f"bare requests loop {r['bare_per_s']:.0f}/s, {r['bare_cpu_us']:.0f} us",
            _ratio(r["client_cpu_us"], r["bare_cpu_us"]) + " CPU",
            "(splits the overhead)",
            "info"),
        Row(f"freshness, second run over the same {n:,}",
            f"{r['second_wall_s']:.2f} s, {r['second_calls']} calls",
            f"first run {r['provider_wall_s']:.1f} s, {r['provider_calls']} calls",
            _ratio(r["second_wall_s"], r["provider_wall_s"]),
            "0 calls",
            _verdict(r["second_calls"] == 0 and r["second_fresh"] == n)),
    ]
    return rows


def normalising_rows(r: dict[str, Any], check_cpu_us: float | None) -> list[Row]:
    """CPU per normalised number against the overhead run's CPU per checked number (same run)."""
    reference = check_cpu_us or r["check_cpu_us"]
    source = "overhead run" if check_cpu_us else "docs"
    rows = []
    for kind, us in r["us_per_number"].items():
        rows.append(Row(
            f"normalising, {kind}",
            f"{us:.1f} us CPU",
            f"a check, {source} {reference:.0f} us",
            f"{us / reference:.2%}",
            f"< {NORMALISING_GOAL:.0%} of a check" if kind.startswith("mixed") else "(by kind)",
            _verdict(us < NORMALISING_GOAL * reference) if kind.startswith("mixed") else "info",
        ))
    return rows


def memory_rows(r: dict[str, Any]) -> list[Row]:
    small, large = r["cases"][0], r["cases"][-1]
    grown = large["peak_rss_mib"] - small["peak_rss_mib"]
    ok = (large["peak_rss_mib"] <= MEMORY_GOAL_RATIO * small["peak_rss_mib"] and grown < MEMORY_GOAL_MIB
          and large["inputs"] == large["rows"])
    checked = f"{large['checked']:,} checked" if large.get("checked") else "dry run"
    return [Row(
        f"memory, peak RSS, {large['rows']:,} rows ({checked}, {large['wall_s']:.0f} s)",
        f"{large['peak_rss_mib']:.0f} MiB ({grown:+.0f})",
        f"{small['rows']:,} rows {small['peak_rss_mib']:.0f} MiB",
        _ratio(large["peak_rss_mib"], small["peak_rss_mib"]),
        f"<= {MEMORY_GOAL_RATIO:g}x, < +{MEMORY_GOAL_MIB:.0f} MiB",
        _verdict(ok),
    )]


def quota_rows(r: dict[str, Any]) -> list[Row]:
    ok = (r["calls"] == r["needed"] and r["each_checked_once"] and r["fresh_rechecked"] == 0
          and r["stale_rechecked"] == r["stale"])
    return [Row(
        f"quota efficiency, messy table ({r['rows']:,} rows, {r['needed']} numbers to check)",
        f"{r['efficiency']:.2f}x minimum ({r['calls']} calls)",
        f"naive, a call per row {r['naive_efficiency']:.2f}x ({r['naive_calls']})",
        _ratio(r["naive_calls"], r["calls"]) + " fewer",
        "exactly 1.00x",
        _verdict(ok),
    )]


def emulator_rows(r: dict[str, Any], provider_per_s: float | None) -> list[Row]:
    baseline = f"provider overhead run {provider_per_s:.0f}/s" if provider_per_s else "n/a"
    per_core = f", 1 core ~{r['per_core']:,.0f}/s" if r.get("per_core") else ""
    return [Row(
        f"emulator capacity (bench_emulator.py, {r['clients']})",
        f"{r['per_s']:.0f} checks/s{per_core}",
        baseline,
        _ratio(r["per_s"], provider_per_s) if provider_per_s else "n/a",
        "> 1x (not the bottleneck)",
        _verdict(r["per_s"] > provider_per_s) if provider_per_s else "info",
    )]


def scale_out_rows(r: dict[str, Any]) -> list[Row]:
    """Rows of bench_scale_out.py: ``{"instances": [{"n": 1, "per_s": ..., "429": 0}, ...], ...}``."""
    entries = sorted(r["instances"], key=lambda e: int(e["n"]))
    one = next((float(e["per_s"]) for e in entries if int(e["n"]) == 1), None)
    pace = f"{r.get('latency_ms', 200):.0f} ms answers, {r.get('rate', 10):.0f}/s each"
    rows = []
    for e in entries:
        n, per_s, limited = int(e["n"]), float(e["per_s"]), int(e.get("429", 0))
        once = bool(e.get("each_checked_once", True))
        numbers = f"{e['numbers']:,} numbers, " if "numbers" in e else ""
        if n == 1 or one is None:
            goal, ok, ratio, baseline = "0 x 429, each once", limited == 0 and once, "1.00x" if n == 1 else "n/a", "-"
        else:
            goal = f">= {SCALE_OUT_EFFICIENCY * n:.2f}x, 0 x 429, each once"
            ok = per_s >= SCALE_OUT_EFFICIENCY * n * one and limited == 0 and once
            ratio, baseline = _ratio(per_s, one), f"1 instance {one:.2f}/s"
        rows.append(Row(f"scale-out, {n} instance{'s' if n > 1 else ''} in parallel ({numbers}{pace})",
                        f"{per_s:.2f} checks/s, {limited} x 429", baseline, ratio, goal, _verdict(ok)))
    return rows


def engines_rows(r: dict[str, Any]) -> list[Row]:
    """Rows of bench_engines.py: per engine, staging time and paced throughput; SQLite's are the baseline."""
    base: dict[str, Any] = next((e for e in r["engines"] if e["engine"] == "sqlite"), r["engines"][0] if r["engines"]
                                else {})
    rows = []
    for e in r["engines"]:
        is_base = e is base
        rows.append(Row(
            f"engines, {e['engine']}: staging {e['rows']:,} rows (dry run, SQLite source)",
            f"{e['staging_s']:.1f} s ({e['staging_rows_per_s']:,.0f} rows/s)",
            "-" if is_base else f"{base['engine']} {base['staging_s']:.1f} s",
            "1.00x" if is_base else _ratio(e["staging_s"], base["staging_s"]),
            "(info)", "info"))
        goal = PACED_GOAL * e["rate"]
        rows.append(Row(
            f"engines, {e['engine']}: paced, {e['latency_ms']:.0f} ms answers, limit {e['rate']:.0f}/s "
            f"({e['numbers']} numbers, {e['max_in_flight']} in flight)",
            f"{e['drain_per_s']:.2f} checks/s, {e['emulator_429']} x 429",
            "-" if is_base else f"{base['engine']} {base['drain_per_s']:.2f}/s",
            "1.00x" if is_base else _ratio(e["drain_per_s"], base["drain_per_s"]),
            f">= {goal:.1f}/s, 0 x 429",
            _verdict(e["drain_per_s"] >= goal and e["emulator_429"] == 0 and e["checked"] == e["numbers"])))
    return rows


def rerun_rows(r: dict[str, Any]) -> list[Row]:
    """Rows of bench_rerun.py: per engine, the first run, the reruns and their floor (issue 25's goals)."""
    from bench_rerun import goals

    rows = []
    for e in r["engines"]:
        for case, figure, baseline, goal, ok in goals(e):
            info = goal.startswith("(info")
            rows.append(Row(f"rerun, {e['engine']} ({e['rows']:,} contacts): {case}", figure, baseline, "-", goal,
                            "info" if info else _verdict(ok)))
    return rows


# --- running ------------------------------------------------------------------------------------------------


def run_case(script: str, args: list[str], log: Any, timeout: float) -> dict[str, Any]:
    """Run ``bench/script --json args``; its last stdout line is the result. stderr and other lines: log."""
    command = [sys.executable, str(HERE / script), *args, "--json"]
    log.write(f"\n===== {' '.join(command)}\n")
    log.flush()
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=log, text=True, timeout=timeout, check=False)
    log.write(done.stdout)
    log.flush()
    if done.returncode != 0:
        raise RuntimeError(f"{script} exited with {done.returncode}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def run_emulator_bench(checks: int, log: Any, timeout: float) -> dict[str, Any]:
    """bench_emulator.py as it is (its own CLI, its own output line)."""
    command = [sys.executable, str(HERE / "bench_emulator.py"), "--checks", str(checks)]
    log.write(f"\n===== {' '.join(command)}\n")
    log.flush()
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=log, text=True, timeout=timeout, check=True)
    log.write(done.stdout)
    found = re.search(r"answered 200 in [\d.]+ s \((.+?)\): ([\d,]+) checks/s", done.stdout)
    if not found:
        raise RuntimeError(f"unexpected output of bench_emulator.py: {done.stdout!r}")
    core = re.search(r"one core serves about ([\d,]+) checks/s", done.stdout)
    return {"clients": found.group(1), "per_s": float(found.group(2).replace(",", "")),
            "per_core": float(core.group(1).replace(",", "")) if core else None}


def machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} CPUs ({model}), {memory:.0f} GiB RAM, Python {platform.python_version()}, "
            f"load average {load}")


def render(rows: list[Row]) -> str:
    header = Row("case", "figure", "baseline (same run)", "ratio", "goal", "result")
    table = [header, *rows]
    widths = [max(len(getattr(r, f)) for r in table) for f in Row.__dataclass_fields__]
    lines = []
    for index, row in enumerate(table):
        cells = [getattr(row, f).ljust(w) for f, w in zip(Row.__dataclass_fields__, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(rows: list[Row]) -> str:
    fields = list(Row.__dataclass_fields__)
    out = ["| case | figure | baseline (same run) | ratio | goal | result |", "|---|---|---|---|---|---|"]
    out += ["| " + " | ".join(getattr(r, f).replace("|", "/") for f in fields) + " |" for r in rows]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description="Run every benchmark and print one table.")
    parser.add_argument("--overhead-numbers", type=int, default=100_000,
                        help="numbers of the overhead and freshness case (default: the issue's 100000; "
                             "`make bench` passes 5000 to finish in a few minutes)")
    parser.add_argument("--memory-checks", type=int, default=1000, help="numbers the memory case sends per size")
    parser.add_argument("--paced-numbers", type=int, default=200, help="numbers per paced variant")
    parser.add_argument("--latency-numbers", type=int, default=200,
                        help="numbers per case of the latency sweep at 10/s (half at 5/s)")
    parser.add_argument("--memory-sizes", type=int, nargs=2, default=[10_000, 1_000_000], metavar=("SMALL", "LARGE"))
    parser.add_argument("--emulator-checks", type=int, default=6_000, help="calls of bench_emulator.py")
    parser.add_argument("--normalising-numbers", type=int, default=100_000,
                        help="inputs per kind of bench_numbers.py")
    parser.add_argument("--engine-rows", type=int, default=100_000, help="rows staged per engine (bench_engines.py)")
    parser.add_argument("--rerun-rows", type=int, default=100_000,
                        help="contacts per engine of bench_rerun.py (the full size: 1000000)")
    parser.add_argument("--rerun-snowflake-rows", type=int, default=20_000,
                        help="contacts of bench_rerun.py on fakesnow (the full size: 100000)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test of the benches, not figures")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown to this file")
    parser.add_argument("--json-out", type=Path, help="also write every case's raw result as JSON to this file")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed (default: only on errors)")
    args = parser.parse_args()
    if args.quick:
        args.overhead_numbers, args.paced_numbers, args.emulator_checks = 500, 30, 1000
        args.latency_numbers = 30
        args.memory_sizes, args.memory_checks = [1000, 20000], 100
        args.engine_rows = 2000
        args.rerun_rows, args.rerun_snowflake_rows = 2000, 200
        args.normalising_numbers = 2000

    baseline = min(5_000, args.overhead_numbers)
    began = time.perf_counter()
    log_path = Path(tempfile.gettempdir()) / "greenapi-bench.log"
    rows: list[Row] = []
    raw: dict[str, Any] = {}
    provider_per_s: float | None = None
    provider_cpu_us: float | None = None
    notes: list[str] = []
    plan: list[tuple[str, Callable[[Any], dict[str, Any]], Callable[[dict[str, Any]], list[Row]]]] = [
        ("paced", lambda log: run_case("bench_paced.py", ["--numbers", str(args.paced_numbers)], log, 300),
         paced_rows),
        ("latency sweep", lambda log: run_case(
            "bench_latency.py", ["--numbers", str(args.latency_numbers)], log, 1200), latency_rows),
        ("quota", lambda log: run_case("bench_quota.py", [], log, 300), quota_rows),
        ("overhead", lambda log: run_case(
            "bench_overhead.py", ["--numbers", str(args.overhead_numbers), "--baseline-numbers", str(baseline)],
            log, 600 + args.overhead_numbers / 10),
         overhead_rows),
        ("memory", lambda log: run_case(
            "bench_memory.py", ["--sizes", *map(str, args.memory_sizes), "--journal-mode", "wal",
                                "--checks", str(args.memory_checks)], log, 600 + args.memory_sizes[-1] / 1000),
         memory_rows),
        ("emulator", lambda log: run_emulator_bench(args.emulator_checks, log, 300),
         lambda r: emulator_rows(r, provider_per_s)),
        ("normalising", lambda log: run_case(
            "bench_numbers.py", ["--numbers", str(args.normalising_numbers)], log, 900),
         lambda r: normalising_rows(r, provider_cpu_us)),
    ]
    plan.append(("engines", lambda log: run_case(
        "bench_engines.py", ["--rows", str(args.engine_rows), "--numbers", str(args.paced_numbers)], log,
        1800 + args.engine_rows / 20),
        engines_rows))
    plan.append(("rerun", lambda log: run_case(
        "bench_rerun.py", ["--rows", str(args.rerun_rows), "--snowflake-rows", str(args.rerun_snowflake_rows)], log,
        3600 + args.rerun_rows / 20),
        rerun_rows))
    if (HERE / "bench_scale_out.py").exists():
        scale_args = ["--per-instance", "30"] if args.quick else []
        plan.append(("scale-out", lambda log: run_case("bench_scale_out.py", scale_args, log, 1200), scale_out_rows))
    else:
        notes.append("scale-out: skipped, bench/bench_scale_out.py does not exist yet (issue 10)")
    print(f"machine: {machine()}", flush=True)
    failed = False
    with open(log_path, "w") as log:
        for name, run, to_rows in plan:
            started = time.perf_counter()
            print(f"  running {name} ...", end="", flush=True)
            try:
                result = run(log)
            except Exception as error:  # one broken case must not hide the others' figures
                failed = True
                print(f" ERROR ({error})", flush=True)
                rows.append(Row(name, "-", "-", "-", "-", "ERROR"))
                continue
            raw[name] = result
            notes += [f"engines: {engine} skipped, {why}" for engine, why in result.get("skipped", {}).items()]
            if name == "overhead":
                provider_per_s, provider_cpu_us = result["provider_per_s"], result["provider_cpu_us"]
            rows += to_rows(result)
            print(f" {time.perf_counter() - started:.0f} s", flush=True)
    total = time.perf_counter() - began
    print()
    print(render(rows))
    for note in notes:
        print(f"note: {note}")
    print(f"\ntotal {total:.0f} s; logs of the cases: {log_path}")
    if args.markdown:
        args.markdown.write_text(markdown(rows) + "\n" + "".join(f"\nNote: {note}\n" for note in notes))
    if args.json_out:
        everything = {"machine": machine(), "total_s": total, "notes": notes, "cases": raw}
        args.json_out.write_text(json.dumps(everything, indent=2))
    if failed or (args.strict and any(r.result == "FAIL" for r in rows)):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
