"""The provider's own cost per number, and the second run that finds every answer fresh.

The emulator runs in a subprocess with no latency and no rate limit, so what is left is the provider's work:
the operator (as a task runs it) reads ``contacts`` from a SQLite file, normalises, stages, checks every
number over HTTP and upserts the results into ``whatsapp_checks`` in the same SQLite file (the usage ledger
``greenapi_usage`` too). Beside it, a bare loop: ``requests.Session`` per thread, the same concurrency,
the same emulator, nothing stored. The client's 10/s pacing is lifted for this case only (see
``common.without_pacing``). Then a second operator run over the same table: every answer is fresh, so it
must make no call.

Two baselines, measured in the same run against the same emulator on other numbers: the bare ``requests``
loop (what a data engineer would write) and the provider's own ``GreenApiClient`` in the same threads (so
the table can tell the client's cost from the checker's, the store's and the usage ledger's).
``--without-ledger`` turns the usage ledger's per-call reservation into a no-op: a diagnosis of its share,
not a way to run the provider.

    .venv/bin/python bench/bench_overhead.py --numbers 100000
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

import common
import requests


def _timed_threads(work: Callable[[int], None], threads: int) -> tuple[float, float]:
    """Run ``work(index)`` in ``threads`` threads: (wall seconds, CPU seconds of this process)."""
    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    wall, cpu = time.perf_counter(), time.process_time()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - wall, time.process_time() - cpu


def bare_loop(url: str, numbers: list[int], threads: int) -> tuple[float, float, int]:
    """``threads`` threads, one ``requests.Session`` each, POSTing checkWhatsapp for their share of
    ``numbers``: (wall seconds, CPU seconds of this process, answers with status 200)."""
    answered = [0] * threads
    sessions = [requests.Session() for _ in range(threads)]
    for session in sessions:  # connect first, as the provider's health gate does
        session.get(url.replace("checkWhatsapp", "getStateInstance"), timeout=30).raise_for_status()

    def work(index: int) -> None:
        session = sessions[index]
        for number in numbers[index::threads]:
            if session.post(url, json={"phoneNumber": number}, timeout=30).status_code == 200:
                answered[index] += 1

    wall, cpu = _timed_threads(work, threads)
    for session in sessions:
        session.close()
    return wall, cpu, sum(answered)


def client_loop(base_url: str, numbers: list[int], threads: int) -> tuple[float, float, int]:
    """The provider's ``GreenApiClient`` alone (pacing lifted, no store, no ledger), shared by ``threads``
    threads as the checker shares it: (wall seconds, CPU seconds, answers)."""
    from airflow_provider_greenapi.client import CHECK_WHATSAPP, ClientSettings, GreenApiClient
    from airflow_provider_greenapi.rate_limit import shared_limiter

    answered = [0] * threads
    settings = ClientSettings(requests_per_second=10, max_in_flight=threads)
    with GreenApiClient(base_url, common.ID_INSTANCE, common.TOKEN, settings) as client:
        shared_limiter(client.api_url, client.id_instance, CHECK_WHATSAPP, common.UNPACED_RATE)

        def work(index: int) -> None:
            for number in numbers[index::threads]:
                client.check_whatsapp(str(number))
                answered[index] += 1

        wall, cpu = _timed_threads(work, threads)
    return wall, cpu, sum(answered)


@contextlib.contextmanager
def ledger_off(enabled: bool) -> Any:
    """With ``enabled``, the usage ledger reserves nothing (a diagnosis of its share of the time)."""
    if not enabled:
        yield
        return
    from airflow_provider_greenapi.warehouse import UsageLedger

    with mock.patch.object(UsageLedger, "reserve_call", lambda self, method="checkWhatsapp": None):
        yield


def measure(
    numbers: int, baseline_numbers: int, concurrency: int, without_ledger: bool = False,
    journal_mode: str | None = None,
) -> dict[str, Any]:
    common.prepare_airflow_home()
    warehouse = common.workdir("overhead") / "warehouse.db"
    rows = ((i, common.formatted(common.FIRST_NUMBER + i)) for i in range(numbers))
    common.create_contacts(warehouse, rows, journal_mode=journal_mode)
    import airflow_provider_greenapi.operators.check_whatsapp  # noqa: F401  (Airflow's import, before timing)

    operator_args = {
        "sql": "SELECT contact_id, phone FROM contacts", "source_conn_id": common.WAREHOUSE_CONN_ID,
        "phone_column": "phone", "key_column": "contact_id", "destination_conn_id": common.WAREHOUSE_CONN_ID,
        "requests_per_second": 10, "max_in_flight": concurrency,
    }
    with common.EmulatorProcess(rate_limits=False) as emulator:
        common.set_connections(emulator.base_url, warehouse)
        others = [common.FIRST_NUMBER + 50_000_000 + i for i in range(baseline_numbers)]
        bare_wall, bare_cpu, bare_ok = bare_loop(emulator.check_url, others, concurrency)
        client_wall, client_cpu, client_ok = client_loop(
            emulator.base_url, [n + baseline_numbers for n in others], concurrency
        )
        emulator.reset_counters()
        emulator_cpu = emulator.cpu_seconds()
        with common.without_pacing(), ledger_off(without_ledger):
            first = common.run_operator(**operator_args)
            emulator_cpu = emulator.cpu_seconds() - emulator_cpu
            first_calls, first_429 = emulator.calls(), emulator.count_429()
            emulator.reset_counters()
            second = common.run_operator(**operator_args)
            second_calls = emulator.calls()
    return {
        "numbers": numbers,
        "concurrency": concurrency,
        "source": "SQLite table contacts(contact_id, phone), same file as the destination",
        "bare_numbers": baseline_numbers,
        "bare_ok": bare_ok,
        "bare_per_s": baseline_numbers / bare_wall,
        "bare_cpu_us": bare_cpu / baseline_numbers * 1e6,
        "client_ok": client_ok,
        "client_per_s": baseline_numbers / client_wall,
        "client_cpu_us": client_cpu / baseline_numbers * 1e6,
        "without_ledger": without_ledger,
        "journal_mode": journal_mode or "delete",
        "provider_wall_s": first.wall_s,
        "provider_per_s": numbers / first.wall_s,
        "provider_cpu_us": first.cpu_s / numbers * 1e6,
        "provider_calls": first_calls,
        "provider_429": first_429,
        "provider_summary": first.summary,
        "emulator_cpu_us": emulator_cpu / numbers * 1e6,
        "second_wall_s": second.wall_s,
        "second_cpu_s": second.cpu_s,
        "second_calls": second_calls,
        "second_fresh": second.summary["fresh"],
        "second_quota_spent": second.summary["quota_spent"],
        "peak_rss_mib": common.peak_rss_mib(),
    }


def describe(r: dict[str, Any]) -> str:
    return (
        f"{r['numbers']} numbers, SQLite ({r['journal_mode']} journal) -> SQLite, {r['concurrency']} in flight, "
        f"emulator without latency or limit:\n"
        f"  provider (operator.execute{', usage ledger OFF' if r['without_ledger'] else ''}): "
        f"{r['provider_per_s']:.0f} numbers/s, {r['provider_cpu_us']:.0f} us CPU "
        f"per number, {r['provider_calls']} calls, {r['provider_429']} x 429\n"
        f"  bare requests loop ({r['bare_numbers']} calls): {r['bare_per_s']:.0f} calls/s, "
        f"{r['bare_cpu_us']:.0f} us CPU per call\n"
        f"  provider's GreenApiClient alone ({r['bare_numbers']} calls): {r['client_per_s']:.0f} calls/s, "
        f"{r['client_cpu_us']:.0f} us CPU per call\n"
        f"  ratio provider/bare: {common.ratio(r['provider_per_s'], r['bare_per_s']):.2f}x throughput, "
        f"{common.ratio(r['provider_cpu_us'], r['bare_cpu_us']):.2f}x CPU per number\n"
        f"  second run: {r['second_wall_s']:.1f} s (first {r['provider_wall_s']:.1f} s), "
        f"{r['second_calls']} calls, {r['second_fresh']} fresh\n"
        f"  peak RSS {r['peak_rss_mib']:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=100_000, help="rows of the source table (default 100000)")
    parser.add_argument("--baseline-numbers", type=int, default=5_000, help="calls of the bare loop")
    parser.add_argument("--concurrency", type=int, default=4, help="max_in_flight, and the bare loop's threads")
    parser.add_argument("--without-ledger", action="store_true",
                        help="diagnosis: the usage ledger reserves nothing (shows its share of the time)")
    parser.add_argument("--journal-mode", default=None,
                        help="SQLite journal mode of the warehouse file (default: SQLite's own, delete; e.g. wal)")
    parser.add_argument("--json", action="store_true", help="print one JSON line (for run_all.py)")
    args = parser.parse_args()
    result = measure(args.numbers, args.baseline_numbers, args.concurrency, args.without_ledger, args.journal_mode)
    common.emit(result, args.json, describe)


if __name__ == "__main__":
    main()
