"""Paced throughput against GREEN-API's real per-instance limit (checkWhatsapp 10/s) and a slow answer.

The emulator (a subprocess) keeps its real rate limits and delays each answer by 200 ms (or 100..300 ms,
i.e. 200 +- 100 ms, in the jittered variant). The operator, as a task runs it, checks ``--numbers`` numbers
from a SQLite table into a SQLite table at ``requests_per_second=10`` with ``max_in_flight`` requests in flight.
Beside it, the naive sequential loop of GREEN-API's SDK: one ``requests.post`` at a time, which manages only
1/latency.

    .venv/bin/python bench/bench_paced.py --numbers 250
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import common
import requests

VARIANTS = {"200ms": (200.0, 0.0), "200+-100ms": (100.0, 200.0)}  # name: (latency_ms, jitter_ms 0..J)
RATE = 10.0


def naive_loop(url: str, numbers: list[int]) -> tuple[float, int]:
    """One ``requests.post`` after the other, as the SDK does: (calls per second, answers with status 200)."""
    ok = 0
    began = time.perf_counter()
    for number in numbers:
        ok += requests.post(url, json={"phoneNumber": number}, timeout=30).status_code == 200
    return len(numbers) / (time.perf_counter() - began), ok


def measure_variant(name: str, numbers: int, naive_numbers: int, max_in_flight: int) -> dict[str, Any]:
    latency, jitter = VARIANTS[name]
    warehouse = common.workdir("paced") / "warehouse.db"
    common.create_contacts(warehouse, ((i, common.formatted(common.FIRST_NUMBER + i)) for i in range(numbers)))
    with common.EmulatorProcess(latency_ms=latency, jitter_ms=jitter) as emulator:
        common.set_connections(emulator.base_url, warehouse)
        run = common.run_operator(
            sql="SELECT contact_id, phone FROM contacts", source_conn_id=common.WAREHOUSE_CONN_ID,
            phone_column="phone", key_column="contact_id", destination_conn_id=common.WAREHOUSE_CONN_ID,
            requests_per_second=RATE, max_in_flight=max_in_flight,
        )
        calls, limited = emulator.calls(), emulator.count_429()
        emulator.reset_counters()
        time.sleep(1.1)  # let the emulator's token bucket refill: the naive loop starts from the same state
        naive_rate, naive_ok = naive_loop(emulator.check_url, [common.FIRST_NUMBER + 50_000_000 + i
                                                                for i in range(naive_numbers)])
        naive_429 = emulator.count_429()
    summary = run.summary
    return {
        "variant": name,
        "latency_ms": latency + jitter / 2,
        "jitter_ms": jitter / 2,
        "numbers": numbers,
        "max_in_flight": max_in_flight,
        "rate": RATE,
        "drain_per_s": summary["checks_per_second"],
        "end_to_end_per_s": numbers / run.wall_s,
        "wall_s": run.wall_s,
        "calls": calls,
        "checked": summary["exists"] + summary["not_exists"],
        "emulator_429": limited,
        "client_rate_limited": summary["rate_limited"],
        "naive_numbers": naive_numbers,
        "naive_per_s": naive_rate,
        "naive_ok": naive_ok,
        "naive_429": naive_429,
    }


def measure(variants: list[str], numbers: int, naive_numbers: int, max_in_flight: int) -> dict[str, Any]:
    common.prepare_airflow_home()
    import airflow_provider_greenapi.operators.check_whatsapp  # noqa: F401  (Airflow's import, before timing)

    return {"variants": [measure_variant(v, numbers, naive_numbers, max_in_flight) for v in variants]}


def describe(result: dict[str, Any]) -> str:
    lines = []
    for r in result["variants"]:
        lines.append(
            f"{r['variant']}: provider {r['drain_per_s']:.2f} checks/s while draining "
            f"({r['end_to_end_per_s']:.2f}/s end to end, {r['numbers']} numbers in {r['wall_s']:.1f} s), "
            f"{r['emulator_429']} x 429; naive loop {r['naive_per_s']:.2f}/s; "
            f"ratio {common.ratio(r['drain_per_s'], r['naive_per_s']):.2f}x; "
            f"goal >= {0.95 * r['rate']:.1f}/s and no 429"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="Paced throughput under GREEN-API's 10/s limit, 200 ms answers.")
    parser.add_argument("--numbers", type=int, default=250, help="numbers the operator checks per variant")
    parser.add_argument("--naive-numbers", type=int, default=30, help="calls of the naive sequential loop")
    parser.add_argument("--max-in-flight", type=int, default=4)
    parser.add_argument("--variant", choices=sorted(VARIANTS), action="append", help="default: both")
    parser.add_argument("--json", action="store_true", help="print one JSON line (for run_all.py)")
    args = parser.parse_args()
    result = measure(args.variant or list(VARIANTS), args.numbers, args.naive_numbers, args.max_in_flight)
    common.emit(result, args.json, describe)


if __name__ == "__main__":
    main()
