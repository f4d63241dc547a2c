"""Full pace at any answer time, without tuning: a latency sweep of the adaptive in-flight window.

The emulator (a subprocess, its real 10/s limit on) answers checkWhatsapp after L seconds +-50% (uniform
0.5 L .. 1.5 L) for L = 0.05, 0.2, 1, 2 and 3 s. The operator, as a task runs it, checks numbers from a SQLite
table into a SQLite table with the default settings, once with ``requests_per_second=10`` and once with the
default pace (5/s). The figure is the pace the provider sustained, read from the emulator's request journal:
checkWhatsapp requests received per second from the first to the last (a run's last answers take one more
answer time whatever the client does, so the end-to-end rate of a short run would measure the run's length,
not the pace). Beside it, the baseline of the same run: the same case with ``max_in_flight=4``, the fixed
concurrency of earlier versions, which by Little's law reaches only 4 / L checks a second.

    .venv/bin/python bench/bench_latency.py --numbers 200
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import common
import requests

from airflow_provider_greenapi.settings import ClientSettings

LATENCIES_S = (0.05, 0.2, 1.0, 2.0, 3.0)
PACES = (10.0, ClientSettings().requests_per_second)
OLD_FIXED_IN_FLIGHT = 4


def journal(emulator: common.EmulatorProcess) -> list[dict[str, Any]]:
    url = f"{emulator.base_url}/__emulator__/instances/{common.ID_INSTANCE}/journal"
    answer = requests.get(url, timeout=30)
    answer.raise_for_status()
    return [e for e in answer.json()["entries"] if e["method"] == "checkWhatsapp"]


def sustained_per_s(entries: list[dict[str, Any]]) -> float:
    """Requests received per second, first to last arrival."""
    arrivals = sorted(e["arrived"] for e in entries)
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
    return (len(arrivals) - 1) / span if span > 0 else 0.0


def run_case(latency_s: float, pace: float, numbers: int, max_in_flight: int | None) -> dict[str, Any]:
    warehouse = common.workdir("latency") / "warehouse.db"
    first = common.FIRST_NUMBER + int(latency_s * 1000) * 10_000 + int(pace) * 1000
    common.create_contacts(warehouse, ((i, common.formatted(first + i)) for i in range(numbers)))
    latency_ms = latency_s * 1000
    with common.EmulatorProcess(latency_ms=latency_ms / 2, jitter_ms=latency_ms) as emulator:
        # the connection as a user leaves it: every client setting at its default
        common.set_connections(emulator.base_url, warehouse, timeout=ClientSettings().timeout)
        overrides: dict[str, Any] = {}
        if pace != ClientSettings().requests_per_second:
            overrides["requests_per_second"] = pace
        if max_in_flight is not None:
            overrides["max_in_flight"] = max_in_flight
        run = common.run_operator(
            sql="SELECT contact_id, phone FROM contacts", source_conn_id=common.WAREHOUSE_CONN_ID,
            phone_column="phone", key_column="contact_id", destination_conn_id=common.WAREHOUSE_CONN_ID,
            **overrides,
        )
        entries = journal(emulator)
        limited = emulator.count_429()
        max_seen = _max_in_flight(entries)
    summary = run.summary
    return {
        "latency_s": latency_s, "pace": pace, "numbers": numbers, "max_in_flight": max_in_flight,
        "sustained_per_s": sustained_per_s(entries), "drain_per_s": summary["checks_per_second"],
        "wall_s": run.wall_s, "requests": len(entries), "emulator_429": limited,
        "checked": summary["exists"] + summary["not_exists"], "max_in_flight_seen": max_seen,
    }


def _max_in_flight(entries: list[dict[str, Any]]) -> int:
    events = sorted([(e["arrived"], 1) for e in entries] + [(e["answered"], -1) for e in entries])
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most


def measure(numbers_at_10: int, baseline_numbers: int, latencies: tuple[float, ...] = LATENCIES_S,
            paces: tuple[float, ...] = PACES) -> dict[str, Any]:
    common.prepare_airflow_home()
    import airflow_provider_greenapi.operators.check_whatsapp  # noqa: F401  (Airflow's import, before timing)

    cases = []
    for pace in paces:
        numbers = max(20, int(numbers_at_10 * pace / 10))  # about the same duration at each pace
        for latency in latencies:
            began = time.perf_counter()
            case = run_case(latency, pace, numbers, None)
            case["baseline"] = run_case(latency, pace, baseline_numbers, OLD_FIXED_IN_FLIGHT)
            case["case_s"] = time.perf_counter() - began
            cases.append(case)
    return {"cases": cases}


def describe(result: dict[str, Any]) -> str:
    lines = []
    for c in result["cases"]:
        b = c["baseline"]
        lines.append(
            f"{c['latency_s']:g} s +-50% answers at {c['pace']:g}/s: {c['sustained_per_s']:.2f} checks/s sustained "
            f"({c['drain_per_s']:.2f}/s end to end, {c['numbers']} numbers, up to {c['max_in_flight_seen']} in "
            f"flight, {c['emulator_429']} x 429); fixed {OLD_FIXED_IN_FLIGHT} in flight: {b['sustained_per_s']:.2f}/s"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="Latency sweep of the adaptive in-flight window.")
    parser.add_argument("--numbers", type=int, default=200, help="numbers per case at 10/s (half at 5/s)")
    parser.add_argument("--baseline-numbers", type=int, default=24, help="numbers of the fixed-4 baseline")
    parser.add_argument("--latency", type=float, action="append", help="answer time in s (default: the sweep)")
    parser.add_argument("--pace", type=float, action="append", help="requests_per_second (default: 10 and 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON line (for run_all.py)")
    args = parser.parse_args()
    result = measure(args.numbers, args.baseline_numbers, tuple(args.latency or LATENCIES_S), tuple(args.pace or PACES))
    common.emit(result, args.json, describe)


if __name__ == "__main__":
    main()
