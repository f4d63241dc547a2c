"""Browser-test fixtures: a real Airflow UI server in a throwaway AIRFLOW_HOME (``airflow api-server`` on 3.x,
``airflow webserver`` with a logged-in admin on 2.11), and headless Chromium.

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

from airflow_provider_greenapi._compat import AIRFLOW_V_3_0_PLUS
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
SERVER_START_TIMEOUT = 120.0  # seconds; about 10-15 s on an idle 2-core machine (2.11's webserver: about 30 s)
UI_TIMEOUT_MS = 20_000  # one UI step (a click's answer, a toast); generous for a loaded CI machine
INSTALL_HINT = "run scripts/install-browser-test-deps.sh"


# The Airflow 2.11 webserver's admin (``airflow users create``): 2.11 has no all-admins mode, its UI needs a login.
ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin-password"


@dataclass
class ApiServer:
    """A running Airflow UI server (``airflow api-server``; on 2.11 ``airflow webserver``); ``log`` holds
    everything it printed."""

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
        # DEBUG makes urllib3 log every GREEN-API request line, whose URL path carries the token: the
        # "token never in the log" check then has teeth.
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
        "PYTHONUNBUFFERED": "1",
        "NO_COLOR": "1",
    })
    if AIRFLOW_V_3_0_PLUS:  # 2.11 keeps its Flask-AppBuilder auth manager: the fixture logs its admin in
        env.update({
            "AIRFLOW__CORE__AUTH_MANAGER":
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            # No login page: every visitor is an admin (a throwaway server on loopback only).
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
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


def _serve(env: dict[str, str], command: list[str], health_path: str) -> Iterator[ApiServer]:
    """``airflow <command>`` in ``env`` (a migrated home) on a free loopback port until the generator closes."""
    home = Path(env["AIRFLOW_HOME"])
    log = home / "server.log"
    port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [AIRFLOW, *command, "--port", str(port), "--workers", "1"],
            env=env, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    server = ApiServer(f"http://127.0.0.1:{port}", home, log, process, env)
    try:
        wait_until_answering(f"{server.base_url}{health_path}", process, log, SERVER_START_TIMEOUT)
        yield server
    finally:
        _stop(process)


@pytest.fixture
def airflow_api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """``airflow db migrate`` then ``airflow api-server`` (Airflow 3) on a free loopback port, test connections
    enabled. The Airflow users get: nothing is patched or preloaded into the server."""
    home = tmp_path_factory.mktemp("airflow-home")
    (home / "dags").mkdir()
    env = server_env(home)
    migrate(env, timeout=180)
    yield from _serve(env, ["api-server", "--host", "127.0.0.1"], "/api/v2/monitor/health")


@pytest.fixture
def airflow_webserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """Airflow 2.11's UI as its users run it: ``airflow db migrate``, an admin made by ``airflow users create``
    (:data:`ADMIN_USER`), then ``airflow webserver`` (Flask-AppBuilder) on a free loopback port, test
    connections enabled. Nothing is patched."""
    home = tmp_path_factory.mktemp("airflow-home")
    (home / "dags").mkdir()
    env = server_env(home)
    migrate(env, timeout=180)
    made = subprocess.run(
        [AIRFLOW, "users", "create", "--username", ADMIN_USER, "--password", ADMIN_PASSWORD, "--role", "Admin",
         "--firstname", "Browser", "--lastname", "Test", "--email", "admin@example.com"],
        env=env, capture_output=True, text=True, timeout=180)
    assert made.returncode == 0, f"airflow users create failed:\n{made.stdout[-3000:]}\n{made.stderr[-3000:]}"
    yield from _serve(env, ["webserver", "--hostname", "127.0.0.1"], "/health")


def log_in(page: Any, server: ApiServer) -> None:
    """Sign in to Airflow 2.11's webserver as :data:`ADMIN_USER`, through its login page."""
    page.goto(f"{server.base_url}/login/")
    page.get_by_label("Username").fill(ADMIN_USER)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(lambda url: "/login" not in url)


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
