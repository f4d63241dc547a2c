"""Airflow's real CLI from the tests: this virtualenv's ``airflow``, a migrated metadata database, a free
loopback port, and waiting for a server the tests started to answer."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def example_dags_home(home: Path) -> dict[str, str]:
    """The environment of a migrated throwaway Airflow home in ``home`` whose DAG folder is the examples'."""
    dags = Path(__file__).resolve().parent.parent / "dags"
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    migrate(env)
    from airflow_provider_greenapi._compat import AIRFLOW_LINE

    if AIRFLOW_LINE == (3, 0):
        # Airflow 3.0's `dags test` registers no asset: a task with outlets fails with "inactive assets" unless the
        # DAGs were parsed into the database first, as the DAG processor does (docs/troubleshooting.md).
        done = subprocess.run([AIRFLOW, "dags", "reserialize"], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return env


def migrate(env: dict[str, str], timeout: float = 600) -> None:
    """``airflow db migrate`` in ``env`` (its AIRFLOW_HOME and metadata database), or fail with its output."""
    done = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"airflow db migrate failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def wait_until_answering(url: str, process: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    """Wait until ``url`` answers 200, failing early with the log's tail if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def task_tries(env: dict[str, str], dag_id: str, task_id: str) -> tuple[str, int, list[str]]:
    """(final state, try number, states of the earlier tries) of the task's last run, from Airflow's records."""
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        run_id = db.execute("SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1",
                            (dag_id,)).fetchone()[0]
        state, try_number = db.execute(
            "SELECT state, try_number FROM task_instance WHERE dag_id = ? AND task_id = ? AND run_id = ?",
            (dag_id, task_id, run_id)).fetchone()
        earlier = [row[0] for row in db.execute(
            "SELECT state FROM task_instance_history WHERE dag_id = ? AND task_id = ? AND run_id = ? "
            "ORDER BY try_number", (dag_id, task_id, run_id))]
    return state, try_number, earlier


@contextlib.contextmanager
def api_server(env: dict[str, str], log: Path, timeout: float = 180.0) -> Iterator[str]:
    """``airflow api-server`` in ``env`` on a free loopback port, for as long as the block runs: its base URL.
    Tasks run by an executor (``airflow dags test --use-executor``) need it: set ``env``'s
    ``AIRFLOW__CORE__EXECUTION_API_SERVER_URL`` to ``<base URL>/execution/`` and one JWT secret for both."""
    port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until_answering(f"http://127.0.0.1:{port}/api/v2/monitor/health", process, log, timeout)
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # its own session: its workers go too
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
