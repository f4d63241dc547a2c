"""The provider's UI view of the month (plugins/quota_view.py) in Airflow's real UI, driven by headless Chromium.

A real ``airflow api-server`` loads the plugin from the provider's ``get_provider_info()["plugins"]``; the test
stores a SQLite warehouse connection and a GREEN-API connection (with its monthly_quota) in Airflow's database,
seeds the warehouse's usage ledger and history as runs would, serialises a @daily DAG that ran on the instance,
and opens the view from Airflow's menu: the bar of the month's usage against the quota, checks per day, the
last runs and what ``auto`` would allow the next run. The token never reaches the page or the log; a viewer
cannot point the view at a connection that is not a warehouse, and a request Airflow's auth manager refuses
is refused.

Run: ``.venv/bin/python -m pytest -m browser tests/browser -q``; refresh docs/images/quota-view.png with
``GREENAPI_UPDATE_SCREENSHOT=1``.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_greenapi._compat import AIRFLOW_VERSION, QUOTA_VIEW
from airflow_provider_greenapi.warehouse import Dialect, UsageLedger
from airflow_provider_greenapi.warehouse.usage_history import RunDay, UsageHistory
from tests.airflow_cli import AIRFLOW
from tests.browser.conftest import ApiServer
from tests.conftest import ID_INSTANCE, TOKEN

# Before 3.1 the plugin registers no view (tests/test_airflow_lines.py); 2.11's webserver has the browser
# test of the connection form only.
pytestmark = pytest.mark.skipif(not QUOTA_VIEW, reason=f"no quota view on Airflow {AIRFLOW_VERSION} (3.1+)")

REPO = Path(__file__).resolve().parents[2]
DOCS_SCREENSHOT = REPO / "docs" / "images" / "quota-view.png"
QUOTA = 30000
NOW = datetime.now(timezone.utc)
DAG_FILE = '''
from datetime import datetime, timezone
from airflow.providers.common.compat.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("contacts_daily", schedule="@daily", start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False):
    EmptyOperator(task_id="check")
'''


def cli(server: ApiServer, *args: str) -> None:
    done = subprocess.run([AIRFLOW, *args], env=server.env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"airflow {' '.join(args[:2])}: {done.stdout[-2000:]}{done.stderr[-2000:]}"


SEEDED_DAYS = 20


def seed_month(path: Path) -> int:
    """A ledger and history as 20 daily runs of this month leave them (whatever today's date: the view shows
    what the tables hold); the calls counted."""
    connection = sqlite3.connect(str(path), check_same_thread=False)
    start = NOW.replace(day=1, hour=6, minute=0, second=0, microsecond=0)
    ledger = UsageLedger(connection, Dialect.SQLITE, ID_INSTANCE, QUOTA, clock=lambda: NOW)
    ledger.ensure_table()
    history = UsageHistory(connection, Dialect.SQLITE)
    history.ensure_table()
    total, day = 0, start
    for _ in range(SEEDED_DAYS):
        checks = 600 + 37 * (day.day % 7)
        history.write(RunDay(ID_INSTANCE, f"token-{day.day}", f"{day:%Y-%m-%d}", "contacts_daily",
                             f"scheduled__{day:%Y-%m-%d}T00:00:00+00:00", day, day, checks, checks + 40,
                             "max_checks=auto", "done"))
        total += checks
        day += timedelta(days=1)
    ledger.record_reported(total, None)  # the ledger's count of the same calls
    connection.close()
    return total


@pytest.mark.browser
@pytest.mark.matrix
def test_the_quota_view_in_the_real_ui(chromium_page: Any, airflow_api_server: ApiServer, emulator: Any,
                                       tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page, server = chromium_page, airflow_api_server
    warehouse = server.home / "warehouse.db"
    total = seed_month(warehouse)
    cli(server, "connections", "add", "warehouse", "--conn-type", "sqlite", "--conn-host", str(warehouse))
    cli(server, "connections", "add", "greenapi_default", "--conn-type", "greenapi", "--conn-host", emulator.base_url,
        "--conn-login", ID_INSTANCE, "--conn-password", TOKEN, "--conn-extra", f'{{"monthly_quota": {QUOTA}}}')
    (server.home / "dags" / "contacts_daily.py").write_text(DAG_FILE)
    cli(server, "dags", "reserialize")
    try:
        page.goto(f"{server.base_url}/plugin/greenapi-quota")
        view = page.frame_locator("iframe")
        expect(view.get_by_role("heading", name=f"GREEN-API usage, {NOW:%Y-%m}")).to_be_visible()
        expect(view.get_by_label("Warehouse connection")).to_have_value("warehouse")
        instance = view.locator(f'section[data-instance="{ID_INSTANCE}"]')
        expect(instance.locator(".usage")).to_contain_text(f"{total} of {QUOTA} checkWhatsapp calls used")
        expect(instance.locator(".usage")).to_contain_text(f"{QUOTA - total} left")
        expect(instance.get_by_role("img", name="checks per day")).to_be_visible()
        expect(instance.get_by_role("img", name=f"{total} of {QUOTA} used")).to_be_visible()
        expect(instance.locator("table.runs tbody tr")).to_have_count(10)  # the last 10 of 20 runs
        expect(instance.locator("svg.per-day rect")).to_have_count(_days_in_month())
        expect(instance.locator("table.runs")).to_contain_text("contacts_daily")
        expect(instance.locator(".next-auto")).to_contain_text("Next run of contacts_daily")
        expect(instance.locator(".next-auto")).to_contain_text("runs left")
        page.screenshot(path=str(screenshot_path(tmp_path)), animations="disabled", caret="hide")
        html = view.locator("html").inner_html()
        assert TOKEN not in html and TOKEN not in page.content()

        # Read-only and closed: only warehouse connections can be chosen, and only by a signed-in user.
        page.goto(f"{server.base_url}/greenapi/quota?warehouse=greenapi_default")
        expect(page.get_by_role("alert")).to_contain_text("is not a warehouse connection")
        assert TOKEN not in page.content()
        # This server makes every visitor an admin (no login page), so the check is shown with a credential
        # that Airflow's auth manager refuses: the view is behind it like Airflow's own pages.
        forged = urllib.request.Request(f"{server.base_url}/greenapi/quota",
                                        headers={"Authorization": "Bearer not-a-valid-token"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(forged, timeout=30)
        assert refused.value.code in (401, 403)
        assert TOKEN not in server.output()
    except BaseException:
        page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        print(f"Airflow {AIRFLOW_VERSION}; browser screenshot: {tmp_path / 'failure.png'}\n"
              f"api-server log: {server.log}\n{server.tail()}")
        raise


@pytest.mark.browser
@pytest.mark.matrix
def test_the_view_takes_the_quota_from_any_connection_and_keeps_a_bad_one_to_one_line(
        chromium_page: Any, airflow_api_server: ApiServer, emulator: Any, tmp_path: Path) -> None:
    """A second connection of the instance without monthly_quota (sorting last) does not hide the quota or the
    auto budget; two connections with different quotas show the conflict; a GREEN-API connection that cannot
    be read (the token pasted into monthly_quota) is one alert naming it, and every instance is still shown."""
    import json

    from playwright.sync_api import expect

    page, server = chromium_page, airflow_api_server
    warehouse = server.home / "warehouse.db"
    total = seed_month(warehouse)
    url = emulator.base_url
    connections = {
        "warehouse": {"conn_type": "sqlite", "host": str(warehouse)},
        "greenapi_default": {"conn_type": "greenapi", "host": url, "login": ID_INSTANCE, "password": TOKEN,
                             "extra": {"monthly_quota": QUOTA}},
        "greenapi_zz_second": {"conn_type": "greenapi", "host": url, "login": ID_INSTANCE, "password": TOKEN},
        "greenapi_other_a": {"conn_type": "greenapi", "host": url, "login": "1101000002", "password": TOKEN,
                             "extra": {"monthly_quota": 2000}},
        "greenapi_other_b": {"conn_type": "greenapi", "host": url, "login": "1101000002", "password": TOKEN,
                             "extra": {"monthly_quota": 5000}},
        "greenapi_pasted": {"conn_type": "greenapi", "host": url, "login": "1101000003", "password": TOKEN,
                            "extra": {"monthly_quota": TOKEN}},
    }
    (tmp_path / "connections.json").write_text(json.dumps(connections))
    cli(server, "connections", "import", str(tmp_path / "connections.json"))
    (server.home / "dags" / "contacts_daily.py").write_text(DAG_FILE)
    cli(server, "dags", "reserialize")
    try:
        page.goto(f"{server.base_url}/greenapi/quota?warehouse=warehouse")
        instance = page.locator(f'section[data-instance="{ID_INSTANCE}"]')
        expect(instance.locator(".usage")).to_contain_text(f"{total} of {QUOTA} checkWhatsapp calls used")
        expect(instance.locator(".next-auto")).to_contain_text("Next run of contacts_daily")
        other = page.locator('section[data-instance="1101000002"]')
        expect(other.locator(".quota-conflict")).to_contain_text("'greenapi_other_a' says 2000")
        expect(other.locator(".quota-conflict")).to_contain_text("'greenapi_other_b' says 5000")
        bad = page.locator(".connection-error")
        expect(bad).to_have_count(1)
        expect(bad).to_contain_text("GREEN-API connection 'greenapi_pasted' skipped")
        expect(bad).to_contain_text("monthly_quota")
        assert TOKEN not in page.content()
        assert TOKEN not in server.output()
    except BaseException:
        page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        print(f"Airflow {AIRFLOW_VERSION}; browser screenshot: {tmp_path / 'failure.png'}\n"
              f"api-server log: {server.log}\n{server.tail()}")
        raise


def _days_in_month() -> int:
    import calendar

    return calendar.monthrange(NOW.year, NOW.month)[1]


def screenshot_path(tmp_path: Path) -> Path:
    if os.environ.get("GREENAPI_UPDATE_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        return DOCS_SCREENSHOT
    return tmp_path / "quota-view.png"
