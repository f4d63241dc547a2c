"""Throughput of the GREEN-API emulator: checkWhatsapp calls a second over keep-alive HTTP.

The emulator runs in this process (rate limits off, no latency). Clients are ``requests.Session`` objects
(or bare ``http.client`` connections with ``--client http.client``), one per thread, spread over
``--processes`` worker processes (``--processes 0`` runs the threads in this process, sharing the
emulator's GIL). One ``requests`` process tops out near 800 calls/s on its own, so several are needed to
approach the emulator's ceiling. Each client sends distinct numbers.

    .venv/bin/python bench/bench_emulator.py --processes 2 --threads 2 --checks 20000
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import threading
import time
from collections.abc import Callable
from multiprocessing.synchronize import Event
from urllib.parse import urlsplit

import requests

from airflow_provider_greenapi.emulator import EmulatedInstance, GreenApiEmulator

ID_INSTANCE = "1101000001"
TOKEN = "bench-token"
FIRST_NUMBER = 79_000_000_000


def _slices(total: int, parts: int) -> list[tuple[int, int]]:
    """(first offset, count) of each part, as even as possible."""
    share, extra = divmod(total, parts)
    slices, first = [], 0
    for index in range(parts):
        count = share + (1 if index < extra else 0)
        slices.append((first, count))
        first += count
    return slices


Caller = Callable[[int], int]


def _requests_caller(url: str) -> tuple[Caller, Callable[[], None]]:
    """A connected keep-alive ``requests.Session``: (check one number -> status, close)."""
    session = requests.Session()
    session.trust_env = False  # no proxy/netrc look-ups on every call
    session.get(url.replace("checkWhatsapp", "getStateInstance")).raise_for_status()  # connect, spend no quota
    return (lambda number: session.post(url, json={"phoneNumber": number}).status_code), session.close


def _http_client_caller(url: str) -> tuple[Caller, Callable[[], None]]:
    """A connected keep-alive ``http.client`` connection, the lightest client of the standard library."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    connection.request("GET", parts.path.replace("checkWhatsapp", "getStateInstance"))
    connection.getresponse().read()
    headers = {"Content-Type": "application/json"}

    def call(number: int) -> int:
        connection.request("POST", parts.path, body=b'{"phoneNumber": %d}' % number, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status

    return call, connection.close


CLIENTS = {"requests": _requests_caller, "http.client": _http_client_caller}


def _client_threads(
    client_kind: str, url: str, first: int, checks: int, threads: int, go: threading.Event | Event
) -> int:
    """Run ``threads`` clients over numbers ``first..first+checks``; return how many answered 200."""
    answered = [0] * threads
    ready = threading.Barrier(threads + 1)

    def client(index: int, offset: int, count: int) -> None:
        call, close = CLIENTS[client_kind](url)
        try:
            ready.wait()
            go.wait()
            for number in range(FIRST_NUMBER + offset, FIRST_NUMBER + offset + count):
                if call(number) == 200:
                    answered[index] += 1
        finally:
            close()

    workers = [
        threading.Thread(target=client, args=(i, first + offset, count))
        for i, (offset, count) in enumerate(_slices(checks, threads))
    ]
    for worker in workers:
        worker.start()
    ready.wait()
    for worker in workers:
        worker.join()
    return sum(answered)


def _client_process(
    client_kind: str, url: str, first: int, checks: int, threads: int, go: Event, results: multiprocessing.Queue
) -> None:
    results.put(_client_threads(client_kind, url, first, checks, threads, go))


def run(processes: int, threads: int, checks: int, client_kind: str = "requests") -> tuple[float, int, float | None]:
    """Make ``checks`` calls; return (seconds, calls answered 200, CPU seconds of the emulator or None).

    The emulator's CPU time is known only when the clients run in other processes.
    """
    instance = EmulatedInstance(ID_INSTANCE, TOKEN, plan="business", monthly_quota=checks)
    with GreenApiEmulator([instance], rate_limits=None) as emulator:
        url = f"{emulator.base_url}/waInstance{ID_INSTANCE}/checkWhatsapp/{TOKEN}"
        if processes == 0:
            go = threading.Event()
            outcome: list[int] = []
            runner = threading.Thread(
                target=lambda: outcome.append(_client_threads(client_kind, url, 0, checks, threads, go))
            )
            runner.start()
            while emulator.counters(ID_INSTANCE).count("getStateInstance") < threads:
                time.sleep(0.01)
            began = time.perf_counter()
            go.set()
            runner.join()
            return time.perf_counter() - began, outcome[0], None
        context = multiprocessing.get_context("spawn")
        go_all, results = context.Event(), context.Queue()
        workers = [
            context.Process(target=_client_process, args=(client_kind, url, first, count, threads, go_all, results))
            for first, count in _slices(checks, processes)
        ]
        for worker in workers:
            worker.start()
        while emulator.counters(ID_INSTANCE).count("getStateInstance") < processes * threads:
            time.sleep(0.01)
        began, cpu_began = time.perf_counter(), time.process_time()
        go_all.set()
        answered = sum(results.get() for _ in workers)
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu_began
        for worker in workers:
            worker.join()
        return elapsed, answered, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description="Throughput of the GREEN-API emulator (checkWhatsapp/s).")
    parser.add_argument("--processes", type=int, default=2, help="client processes (0: threads in this one)")
    parser.add_argument("--threads", type=int, default=2, help="client threads per process, one Session each")
    parser.add_argument("--checks", type=int, default=20_000, help="checkWhatsapp calls in total")
    parser.add_argument("--client", choices=sorted(CLIENTS), default="requests", help="HTTP client library")
    args = parser.parse_args()
    elapsed, answered, cpu = run(args.processes, args.threads, args.checks, args.client)
    clients = f"{args.processes} processes x {args.threads}" if args.processes else f"{args.threads}"
    where = f"{clients} {args.client} clients"
    print(
        f"{answered} of {args.checks} checks answered 200 in {elapsed:.2f} s ({where}): "
        f"{answered / elapsed:,.0f} checks/s"
    )
    if cpu is not None and answered:
        per_check = cpu / answered
        print(
            f"emulator CPU: {per_check * 1e6:,.0f} us a check, so one core serves about {1 / per_check:,.0f} checks/s"
        )


if __name__ == "__main__":
    main()
