"""Browser-test fixtures: a real ``airflow api-server`` in a throwaway AIRFLOW_HOME, and headless Chromium.

Chromium is Debian's (``/usr/bin/chromium``, or ``GREENAPI_CHROMIUM``), driven by Python Playwright; nothing
is downloaded at run time. Install both with ``scripts/install-browser-test-deps.sh``. Without them the
tests skip and say why.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_cli import AIRFLOW, free_port, migrate, wait_until_answering

CHROMIUM = os.environ.get("GREENAPI_CHROMIUM", "/usr/bin/chromium")
# Without these Chromium stalls on this closed network (first-run, component updates, sync, QUIC probes).
# Playwright itself adds --headless and a fresh --user-data-dir (it refuses one passed in ``args``).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_TIMEOUT = 120.0  # seconds; about 10-15 s on an idle 2-core machine
UI_TIMEOUT_MS = 20_000  # one UI step (a click's answer, a toast); generous for a loaded CI machine
INSTALL_HINT = "run scripts/install-browser-test-deps.sh"


@dataclass
class ApiServer:
    """A running ``airflow api-server``; ``log`` holds everything it printed."""

    base_url: str
    home: Path
    log: Path
    process: subprocess.Popen[bytes]
    env: dict[str, str]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])


def server_env(home: Path) -> dict[str, str]:
    # Nothing from the developer's own Airflow set-up (another DB, auth manager or AIRFLOW_CONN_*) leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        # No login page: every visitor is an admin (a throwaway server on loopback only).
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        # DEBUG makes urllib3 log every GREEN-API request line, whose URL path carries the token: the
        # "token never in the log" check then has teeth.
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
        "PYTHONUNBUFFERED": "1",
        "NO_COLOR": "1",
    })
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)  # the api-server's own session: its workers go too
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


@pytest.fixture
def airflow_api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """``airflow db migrate`` then ``airflow api-server`` on a free loopback port, test connections enabled.

    The Airflow users get: nothing is patched or preloaded into the server."""
    home = tmp_path_factory.mktemp("airflow-home")
    (home / "dags").mkdir()
    env = server_env(home)
    log = home / "api-server.log"

    migrate(env, timeout=180)

    port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    server = ApiServer(f"http://127.0.0.1:{port}", home, log, process, env)
    try:
        wait_until_answering(f"{server.base_url}/api/v2/monitor/health", process, log, SERVER_START_TIMEOUT)
        yield server
    finally:
        _stop(process)


@pytest.fixture
def chromium_page(tmp_path: Path) -> Iterator[Any]:
    """A Playwright page in Debian's headless Chromium; skips with the reason when either is missing."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"browser test needs Chromium at {CHROMIUM} (or set GREENAPI_CHROMIUM): {INSTALL_HINT}")
    sync_api = pytest.importorskip("playwright.sync_api", reason=f"browser test needs Playwright: {INSTALL_HINT}")
    sync_api.expect.set_options(timeout=UI_TIMEOUT_MS)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                                             timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000}, locale="en-US", timezone_id="UTC")
            page.set_default_timeout(UI_TIMEOUT_MS)
            yield page
        finally:
            browser.close()
