"""What every benchmark of bench/ shares: the emulator in a subprocess, SQLite warehouses, Airflow connections
as ``AIRFLOW_CONN_*`` variables, the operator run as a task would run it, and the one pacing bypass.

Each ``bench_*.py`` script measures one case and, with ``--json``, prints one JSON object as its last line
of stdout; ``run_all.py`` runs them as subprocesses and prints the table.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import requests

from airflow_provider_greenapi.emulator import airflow_connection

ID_INSTANCE = "1101000001"
TOKEN = "bench-token-5f0c1a9e"
GREENAPI_CONN_ID = "greenapi_default"
WAREHOUSE_CONN_ID = "warehouse"
UNPACED_RATE = 1e9  # requests/s given to the pacer when a case must measure the provider, not the 10/s limit
FIRST_NUMBER = 79_100_000_000


def prepare_airflow_home() -> str:
    """A throwaway AIRFLOW_HOME (removed at exit), set before anything imports Airflow, as tests do."""
    home = tempfile.mkdtemp(prefix="greenapi-bench-airflow-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    os.environ["AIRFLOW_HOME"] = home
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    return home


def workdir(prefix: str) -> Path:
    """A temporary folder for a case's SQLite files, removed at exit."""
    path = tempfile.mkdtemp(prefix=f"greenapi-bench-{prefix}-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return Path(path)


def formatted(number: int) -> str:
    """``79101234567`` as a person types it in a CRM: ``+7 910 123-45-67``."""
    d = str(number)
    return f"+{d[0]} {d[1:4]} {d[4:7]}-{d[7:9]}-{d[9:11]}"


# --- the emulator, in its own process ----------------------------------------------------------------------


class EmulatorProcess:
    """``python -m airflow_provider_greenapi.emulator`` in a subprocess, so that its CPU time is not counted
    in the provider's process. Counters come from the emulator's control API."""

    def __init__(
        self,
        *,
        rate_limits: bool = True,
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
        monthly_quota: int = 10_000_000,
    ) -> None:
        self.args = ["--port", "0", "--quiet", "--instance", f"{ID_INSTANCE}:{TOKEN}:{monthly_quota}"]
        if not rate_limits:
            self.args.append("--no-rate-limit")
        if latency_ms:
            self.args += ["--latency", f"{latency_ms:g}"]
        if jitter_ms:
            self.args += ["--jitter", f"{jitter_ms:g}"]
        self.process: subprocess.Popen[bytes] | None = None
        self.base_url = ""
        self._dir = tempfile.TemporaryDirectory(prefix="greenapi-bench-emulator-")
        self._session = requests.Session()
        self._session.trust_env = False

    def __enter__(self) -> EmulatorProcess:
        ready = Path(self._dir.name) / "ready"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_greenapi.emulator", *self.args, "--ready-file", str(ready)],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not (ready.exists() and ready.read_text().strip()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the emulator did not start (exit code {self.process.poll()})")
            time.sleep(0.05)
        self.base_url = ready.read_text().strip()
        return self

    def __exit__(self, *exc: object) -> None:
        self._session.close()
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._dir.cleanup()

    @property
    def check_url(self) -> str:
        return f"{self.base_url}/waInstance{ID_INSTANCE}/checkWhatsapp/{TOKEN}"

    def counters(self) -> dict[str, Any]:
        """``{"calls": {method: {status: n}}, "checked_numbers": {...}, "quota_used": ...}`` (JSON form)."""
        answer = self._session.get(f"{self.base_url}/__emulator__/instances/{ID_INSTANCE}/counters", timeout=30)
        answer.raise_for_status()
        return dict(answer.json())

    def calls(self, method: str = "checkWhatsapp", status: int | None = None) -> int:
        statuses = self.counters()["calls"].get(method, {})
        return int(sum(statuses.values()) if status is None else statuses.get(str(status), 0))

    def count_429(self) -> int:
        return sum(int(s.get("429", 0)) for s in self.counters()["calls"].values())

    def reset_counters(self) -> None:
        self._session.post(f"{self.base_url}/__emulator__/counters/reset", timeout=30).raise_for_status()

    def cpu_seconds(self) -> float:
        """User + system CPU time of the emulator process so far (Linux /proc)."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- Airflow connections and the operator ------------------------------------------------------------------


def set_connections(emulator_url: str, warehouse: Path | None = None, **greenapi_extra: Any) -> None:
    """``AIRFLOW_CONN_GREENAPI_DEFAULT`` for the emulator and ``AIRFLOW_CONN_WAREHOUSE`` for a SQLite file."""
    extra = {"timeout": 30, **greenapi_extra}
    os.environ[f"AIRFLOW_CONN_{GREENAPI_CONN_ID.upper()}"] = airflow_connection(emulator_url, ID_INSTANCE, TOKEN,
                                                                               **extra)
    if warehouse is not None:
        os.environ[f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}"] = json.dumps(
            {"conn_type": "sqlite", "host": str(warehouse)}
        )


@contextlib.contextmanager
def without_pacing() -> Iterator[None]:
    """Lift the client's 10/s pacing for this process, without editing the package.

    ``ClientSettings`` refuses more than 10 requests/s (GREEN-API's limit), and every client built for an
    instance resets the process-wide pacer of (api_url, instance, method) to its own rate. So the bench wraps
    ``GreenApiHook.get_client``: the client is built and validated as usual, then the same shared pacer is
    raised through the package's own ``shared_limiter`` (which calls ``RateLimiter.set_rate``). Nothing else
    of the operator's wiring changes: validation, retries, the usage ledger, the state watch are all real.
    """
    from unittest import mock

    from airflow_provider_greenapi.client import CHECK_WHATSAPP, GreenApiClient
    from airflow_provider_greenapi.hooks.greenapi import GreenApiHook
    from airflow_provider_greenapi.rate_limit import shared_limiter

    original = GreenApiHook.get_client

    def get_client(self: GreenApiHook, **overrides: Any) -> GreenApiClient:
        client = original(self, **overrides)
        shared_limiter(client.api_url, client.id_instance, CHECK_WHATSAPP, UNPACED_RATE)
        return client

    with mock.patch.object(GreenApiHook, "get_client", get_client):
        yield


class _TaskInstance:
    """The only part of a task context the operator touches: ``ti.xcom_push`` (when a run stops early)."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


@dataclass
class OperatorRun:
    summary: dict[str, Any]
    wall_s: float
    cpu_s: float


def run_operator(**kwargs: Any) -> OperatorRun:
    """Build ``CheckWhatsappOperator(**kwargs)`` and call ``execute(context)`` as a task would; time it
    (wall clock and this process's CPU time, which excludes the emulator's own process)."""
    from airflow_provider_greenapi.operators.check_whatsapp import CheckWhatsappOperator

    operator = CheckWhatsappOperator(task_id=kwargs.pop("task_id", "check_whatsapp"), **kwargs)
    context: Any = {"ti": _TaskInstance(), "dag_run": SimpleNamespace(run_id="bench__run")}
    wall, cpu = time.perf_counter(), time.process_time()
    summary = operator.execute(context)
    return OperatorRun(summary, time.perf_counter() - wall, time.process_time() - cpu)


# --- data ---------------------------------------------------------------------------------------------------


def create_contacts(
    path: Path, rows: Iterable[tuple[int, object]], table: str = "contacts", journal_mode: str | None = None
) -> int:
    """A source table ``contacts(contact_id, phone)`` in the SQLite file ``path``; returns the row count.
    ``journal_mode`` (e.g. ``"wal"``) is a setting of the file, kept by every later connection."""
    connection = sqlite3.connect(path)
    try:
        if journal_mode is not None:
            connection.execute(f"PRAGMA journal_mode={journal_mode}")
        connection.execute(f"CREATE TABLE {table} (contact_id INTEGER PRIMARY KEY, phone TEXT)")
        connection.executemany(f"INSERT INTO {table} VALUES (?, ?)", rows)
        connection.commit()
        (count,) = connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
    finally:
        connection.close()
    return int(count)


def peak_rss_mib() -> float:
    """This process's peak resident set size so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- reporting ----------------------------------------------------------------------------------------------


def emit(result: dict[str, Any], as_json: bool, describe: Callable[[dict[str, Any]], str]) -> None:
    """Print the result for a person, or as one JSON line for run_all.py."""
    if as_json:
        print(json.dumps(result), flush=True)
    else:
        print(describe(result), flush=True)


def ratio(figure: float, baseline: float) -> float:
    return figure / baseline if baseline else float("inf")
