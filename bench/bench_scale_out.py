"""Scale out: throughput of 1, 2 and 4 GREEN-API instances checking one input in parallel, one shard each.

One emulator (a subprocess) serves 4 instances with their real rate limit (checkWhatsapp 10/s each) and
answers after 200 ms. For each case, ``n`` worker processes (as ``n`` mapped Airflow tasks on ``n``
workers would be) each run the operator with ``greenapi_conn_id=greenapi_<k>, shard_index=k,
shard_count=n`` on the same SQLite contacts table (WAL) and the same results table, at the connection's
``requests_per_second=10``. ``--per-instance`` numbers per instance (default 100, about 10 s of work), so
the input grows with ``n`` and each case should take the same time. The workers start together (they load
Airflow first, then wait for a go); the figure is the numbers checked over the time from the first task's
start to the last task's end.

    .venv/bin/python bench/bench_scale_out.py [--per-instance 100] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

import common
import requests

from airflow_provider_greenapi.emulator import airflow_connection

LATENCY_MS = 200.0
RATE = 10.0
CASES = (1, 2, 4)
SPEEDUP_GOAL = 3.5


def instance(k: int) -> tuple[str, str]:
    """(idInstance, token) of instance ``k`` (0-based); the first is common's."""
    if k == 0:
        return common.ID_INSTANCE, common.TOKEN
    return f"{int(common.ID_INSTANCE) + k}", f"{common.TOKEN}-{k}"


# --- one shard, in its own process -----------------------------------------------------------------------------


def worker(shard: int, shards: int, base_url: str, warehouse: str, max_in_flight: int) -> None:
    common.prepare_airflow_home()
    id_instance, token = instance(shard)
    conn_id = f"greenapi_{shard + 1}"
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = airflow_connection(base_url, id_instance, token, timeout=30)
    os.environ[f"AIRFLOW_CONN_{common.WAREHOUSE_CONN_ID.upper()}"] = json.dumps(
        {"conn_type": "sqlite", "host": warehouse}
    )
    import airflow_provider_greenapi.operators.check_whatsapp  # noqa: F401  (Airflow's import, before the go)

    print("ready", flush=True)
    sys.stdin.readline()  # the go: every shard starts at the same moment
    began = time.time()
    run = common.run_operator(
        sql="SELECT contact_id, phone FROM contacts", source_conn_id=common.WAREHOUSE_CONN_ID,
        phone_column="phone", key_column="contact_id", destination_conn_id=common.WAREHOUSE_CONN_ID,
        greenapi_conn_id=conn_id, shard_index=shard, shard_count=shards,
        requests_per_second=RATE, max_in_flight=max_in_flight,
    )
    print(json.dumps({"began": began, "ended": time.time(), "summary": run.summary}), flush=True)


# --- the parent: one case per number of instances ----------------------------------------------------------------


def counters(base_url: str, id_instance: str) -> dict[str, Any]:
    answer = requests.get(f"{base_url}/__emulator__/instances/{id_instance}/counters", timeout=30)
    answer.raise_for_status()
    return dict(answer.json())


def measure_case(n: int, per_instance: int, max_in_flight: int, base_url: str) -> dict[str, Any]:
    numbers = n * per_instance
    first = common.FIRST_NUMBER + 10_000_000 * n  # fresh numbers for every case: nothing is stored yet
    requests.post(f"{base_url}/__emulator__/counters/reset", timeout=30).raise_for_status()
    warehouse = common.workdir(f"scale-{n}") / "warehouse.db"
    common.create_contacts(warehouse, ((i, common.formatted(first + i)) for i in range(numbers)), journal_mode="wal")
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", str(k), str(n), base_url, str(warehouse), str(max_in_flight)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        for k in range(n)
    ]
    for process in workers:
        assert process.stdout is not None
        while (line := process.stdout.readline()).strip() != "ready":
            if not line:
                raise RuntimeError(f"a worker failed to start (exit code {process.wait()})")
    for process in workers:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    results = []
    for process in workers:
        out, _ = process.communicate(timeout=600)
        if process.returncode != 0:
            raise RuntimeError(f"a worker failed (exit code {process.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    wall = max(r["ended"] for r in results) - min(r["began"] for r in results)
    checked = sum(r["summary"]["exists"] + r["summary"]["not_exists"] for r in results)
    emulator = [counters(base_url, instance(k)[0]) for k in range(n)]
    limited = sum(int(s.get("429", 0)) for c in emulator for s in c["calls"].values())
    calls = sum(sum(c["calls"].get("checkWhatsapp", {}).values()) for c in emulator)
    seen: dict[str, int] = {}
    for c in emulator:
        for number, times in c["checked_numbers"].items():
            seen[number] = seen.get(number, 0) + times
    return {
        "n": n,
        "numbers": numbers,
        "checked": checked,
        "calls": calls,
        "each_checked_once": len(seen) == numbers and set(seen.values()) == {1},
        "wall_s": wall,
        "per_s": checked / wall if wall > 0 else 0.0,
        "per_instance_per_s": [r["summary"]["checks_per_second"] for r in results],
        "429": limited,
        "client_rate_limited": sum(r["summary"]["rate_limited"] for r in results),
    }


def measure(per_instance: int, max_in_flight: int) -> dict[str, Any]:
    emulator = common.EmulatorProcess(latency_ms=LATENCY_MS)
    for k in range(1, max(CASES)):
        id_instance, token = instance(k)
        emulator.args += ["--instance", f"{id_instance}:{token}:10000000"]
    with emulator:
        cases = []
        for n in CASES:
            cases.append(measure_case(n, per_instance, max_in_flight, emulator.base_url))
            time.sleep(1.1)  # let the instances' token buckets refill between cases
    one = cases[0]["per_s"]
    result: dict[str, Any] = {
        "latency_ms": LATENCY_MS, "rate": RATE, "per_instance": per_instance, "max_in_flight": max_in_flight,
        "instances": cases,
    }
    for case in cases[1:]:
        result[f"speedup_{case['n']}"] = common.ratio(case["per_s"], one)
    return result


def describe(result: dict[str, Any]) -> str:
    lines = [
        f"Scale out: {result['per_instance']} numbers per instance, answers after {result['latency_ms']:.0f} ms, "
        f"each instance paced at {result['rate']:.0f}/s (its limit), {result['max_in_flight']} in flight",
        f"{'instances':>9}  {'numbers':>7}  {'wall s':>7}  {'checks/s':>8}  {'speedup':>7}  {'429':>4}  once",
    ]
    one = result["instances"][0]["per_s"]
    for c in result["instances"]:
        lines.append(
            f"{c['n']:>9}  {c['numbers']:>7}  {c['wall_s']:>7.1f}  {c['per_s']:>8.2f}  "
            f"{common.ratio(c['per_s'], one):>6.2f}x  {c['429']:>4}  {'yes' if c['each_checked_once'] else 'NO'}"
        )
    speedup = result.get("speedup_4")
    if speedup is not None:
        verdict = "PASS" if speedup >= SPEEDUP_GOAL else "FAIL"
        lines.append(f"4 instances: {speedup:.2f}x one instance; goal >= {SPEEDUP_GOAL}x: {verdict}")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        shard, shards, base_url, warehouse, max_in_flight = sys.argv[2:7]
        worker(int(shard), int(shards), base_url, warehouse, int(max_in_flight))
        return
    parser = argparse.ArgumentParser(description="Throughput of 1, 2 and 4 GREEN-API instances in parallel.")
    parser.add_argument("--per-instance", type=int, default=100, help="numbers per instance in each case")
    parser.add_argument("--max-in-flight", type=int, default=4)
    parser.add_argument("--json", action="store_true", help="print one JSON line last (for run_all.py)")
    args = parser.parse_args()
    result = measure(args.per_instance, args.max_in_flight)
    common.emit(result, args.json, describe)


if __name__ == "__main__":
    main()
