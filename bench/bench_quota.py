"""Quota efficiency on a messy table: every checkWhatsapp call must be one that was needed.

The ``contacts`` table mixes, in a shuffled order: the same numbers written in several formats
(``+7 920 000-00-07``, ``8 (920) 000-00-07``, ``79200000007@c.us``, ...), values that cannot be phone numbers,
numbers whose stored answer is still fresh (an earlier run checked them), and numbers whose stored answer is
60 days old (stale: they must be checked again). The minimum a run must spend is the number of distinct valid
numbers without a fresh answer, known from how the table was generated. The figure is the calls the emulator
received divided by that minimum (must be exactly 1.00); the baseline is a naive loop, one call per row.

    .venv/bin/python bench/bench_quota.py
"""

from __future__ import annotations

import argparse
import random
import sqlite3
from typing import Any

import common

FORMATS = (
    "+{c} {a} {b}-{d}-{e}", "{c}{a}{b}{d}{e}", "8 ({a}) {b}-{d}-{e}", "+{c}({a}){b}{d}{e}",
    "{c}{a}{b}{d}{e}@c.us", "{a}{b}{d}{e}", "tel:+{c}{a}{b}{d}{e}", "+{c} {a} {b} {d} {e}",
)
INVALID = ("12-34", "abc", "", None, "+7 920", "000", "n/a", "+1 (555) 01", "call me", "7920000000700000000", "++")


def written(number: int, style: str) -> str:
    d = str(number)  # 7 XXX XXX XX XX
    return style.format(c=d[0], a=d[1:4], b=d[4:7], d=d[7:9], e=d[9:11])


def build_rows(distinct: int, fresh: int, stale: int, invalid: int, seed: int) -> tuple[list[Any], dict[str, Any]]:
    rng = random.Random(seed)
    numbers = [79_200_000_000 + 7 * i for i in range(distinct)]
    values: list[object] = []
    for number in numbers:
        for style in rng.sample(FORMATS, rng.choice((1, 1, 2, 3))):
            values.append(written(number, style))
    values += [rng.choice(INVALID) for _ in range(invalid)]
    rng.shuffle(values)
    truth = {
        "distinct_valid": distinct,
        "fresh_numbers": [str(n) for n in numbers[:fresh]],
        "stale_numbers": [str(n) for n in numbers[fresh : fresh + stale]],
        "invalid_rows": invalid,
        "rows": len(values),
    }
    return list(enumerate(values)), truth


def measure(distinct: int, fresh: int, stale: int, invalid: int, seed: int) -> dict[str, Any]:
    common.prepare_airflow_home()
    import airflow_provider_greenapi.operators.check_whatsapp  # noqa: F401  (Airflow's import)

    warehouse = common.workdir("quota") / "warehouse.db"
    rows, truth = build_rows(distinct, fresh, stale, invalid, seed)
    common.create_contacts(warehouse, rows)
    earlier = truth["fresh_numbers"] + truth["stale_numbers"]
    with common.EmulatorProcess(rate_limits=False) as emulator, common.without_pacing():
        common.set_connections(emulator.base_url, warehouse)
        # An earlier run stored answers for some numbers; age part of them by 60 days (stale).
        common.run_operator(phone_numbers=earlier, destination_conn_id=common.WAREHOUSE_CONN_ID)
        connection = sqlite3.connect(warehouse)
        marks = ", ".join("?" * len(truth["stale_numbers"]))
        connection.execute(
            f"UPDATE whatsapp_checks SET checked_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-60 days') "
            f"WHERE phone_number IN ({marks})", truth["stale_numbers"],
        )
        connection.commit()
        connection.close()
        emulator.reset_counters()
        run = common.run_operator(
            sql="SELECT phone FROM contacts ORDER BY contact_id", source_conn_id=common.WAREHOUSE_CONN_ID,
            destination_conn_id=common.WAREHOUSE_CONN_ID,
        )
        counters = emulator.counters()
    checked: dict[str, int] = counters["checked_numbers"]
    needed = truth["distinct_valid"] - len(truth["fresh_numbers"])
    calls = sum(counters["calls"].get("checkWhatsapp", {}).values())
    summary = run.summary
    return {
        "rows": truth["rows"],
        "distinct_valid": truth["distinct_valid"],
        "invalid_rows": truth["invalid_rows"],
        "fresh": len(truth["fresh_numbers"]),
        "stale": len(truth["stale_numbers"]),
        "needed": needed,
        "calls": calls,
        "quota_spent": summary["quota_spent"],
        "efficiency": common.ratio(calls, needed),
        "naive_calls": truth["rows"],
        "naive_efficiency": common.ratio(truth["rows"], needed),
        "each_checked_once": set(checked.values()) <= {1},
        "fresh_rechecked": sum(1 for n in truth["fresh_numbers"] if n in checked),
        "stale_rechecked": sum(1 for n in truth["stale_numbers"] if n in checked),
        "summary_invalid": summary["invalid"],
        "summary_duplicates": summary["duplicates"],
        "summary_fresh": summary["fresh"],
        "summary_distinct": summary["distinct_numbers"],
    }


def describe(r: dict[str, Any]) -> str:
    return (
        f"{r['rows']} rows: {r['distinct_valid']} distinct valid numbers ({r['fresh']} fresh, {r['stale']} stale), "
        f"{r['invalid_rows']} invalid rows; {r['needed']} calls needed.\n"
        f"  provider: {r['calls']} calls ({r['efficiency']:.2f}x the minimum), each number once: "
        f"{r['each_checked_once']}, fresh re-checked: {r['fresh_rechecked']}, stale re-checked: "
        f"{r['stale_rechecked']}/{r['stale']}\n"
        f"  naive loop (one call per row): {r['naive_calls']} calls ({r['naive_efficiency']:.2f}x the minimum)\n"
        f"  summary: {r['summary_invalid']} invalid, {r['summary_duplicates']} duplicates, "
        f"{r['summary_distinct']} distinct, {r['summary_fresh']} fresh, quota_spent {r['quota_spent']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Calls made on a messy table, against the minimum needed.")
    parser.add_argument("--distinct", type=int, default=1000, help="distinct valid numbers in the table")
    parser.add_argument("--fresh", type=int, default=300, help="of them, with a fresh stored answer")
    parser.add_argument("--stale", type=int, default=100, help="of them, with a 60-day-old stored answer")
    parser.add_argument("--invalid", type=int, default=200, help="rows that are not phone numbers")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print one JSON line (for run_all.py)")
    args = parser.parse_args()
    common.emit(measure(args.distinct, args.fresh, args.stale, args.invalid, args.seed), args.json, describe)


if __name__ == "__main__":
    main()
