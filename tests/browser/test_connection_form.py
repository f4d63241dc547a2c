"""The GREEN-API connection form in Airflow's real UI (3.x's React UI, 2.11's Flask-AppBuilder webserver), driven
by headless Chromium.

A real ``airflow api-server`` (throwaway AIRFLOW_HOME) serves the UI; the GREEN-API emulator runs in this
pytest process and the api-server reaches it over loopback. The test adds a connection through the form,
checks the provider's labels, hidden fields and extra fields (empty, optional, defaults in the description),
saves it and checks that the stored extra holds no default, presses Test with the right token and then a
wrong one, and checks that the token never reaches the api-server's log. Nothing in Airflow is patched: on
3.3.1/3.3.2, whose Test button rejects every connection without a port, the test records that failure as the
user sees it and that ``airflow connections test`` works. `make test-matrix` runs it on 3.4.0b2 too.

On Airflow 2.11 the page is the webserver's /connection/add (an admin logs in first): the same labels, hidden
fields and extra fields, Test with the right token and a wrong one before saving, then the saved connection's
extras (two settings typed into the form) read by the hook. `make test-matrix` runs it on 2.11.2.

Run: ``.venv/bin/python -m pytest -m browser tests/browser -q``. Refresh the screenshot used by
docs/connection.md with ``GREENAPI_UPDATE_SCREENSHOT=1`` (otherwise it goes to the pytest tmp dir only).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_greenapi._compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_VERSION, TEST_BUTTON_REJECTS_PORTLESS
from airflow_provider_greenapi.provider_info import CONNECTION_FIELDS, UI_FIELD_BEHAVIOUR
from tests.airflow_cli import AIRFLOW
from tests.browser.conftest import ApiServer, log_in
from tests.conftest import ID_INSTANCE, TOKEN

REPO = Path(__file__).resolve().parents[2]
DOCS_SCREENSHOT = REPO / "docs" / "images" / "connection-form.png"
CONN_ID = "greenapi_default"
WRONG_TOKEN = "wrong-token-00000000000000000000"

RELABELLED = ["API URL (apiUrl)", "Instance ID (idInstance)", "API token (apiTokenInstance)"]
# Airflow's own labels: replaced by the relabelling (host, login, password) or hidden (port, schema).
NOT_SHOWN = ["Host", "Login", "Password", "Port", "Schema"]
# What Airflow 3.3.1/3.3.2's toast shows for the list's Test button on a connection without a port (the API's
# 400 says "The host or port to test differs from the stored connection"; the toast shows only its reason).
PORT_MISMATCH = "Bad Request"


def screenshot_path(tmp_path: Path) -> Path:
    if os.environ.get("GREENAPI_UPDATE_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        return DOCS_SCREENSHOT
    return tmp_path / "connection-form.png"


def open_section(dialog: Any, name: str) -> None:
    """Open a section of the form: 3.3 folds sections into accordions, 3.4 shows them all under headings."""
    toggle = dialog.get_by_role("button", name=name, exact=True)
    if toggle.count():
        toggle.click()


def airflow_cli(server: ApiServer, *args: str) -> subprocess.CompletedProcess[str]:
    """Airflow's CLI on the api-server's own metadata database."""
    return subprocess.run([AIRFLOW, *args], env=server.env, capture_output=True, text=True, timeout=180)


def stored_extra(server: ApiServer) -> dict[str, Any]:
    got = airflow_cli(server, "connections", "get", CONN_ID, "-o", "json")
    assert got.returncode == 0, got.stderr
    # Airflow's log lines may come first on stdout (2.11's start with "[<time>]"): the JSON list starts on the
    # first line that opens a list of objects.
    lines = got.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"\[\s*(\{|$)", line))
    record = json.JSONDecoder().raw_decode("\n".join(lines[start:]))[0][0]  # log lines may follow it too
    return dict(record["extra_dejson"])


@contextlib.contextmanager
def evidence_on_failure(page: Any, server: ApiServer, tmp_path: Path) -> Iterator[None]:
    """On a failure, a full-page screenshot and the server log's tail, with the Airflow version."""
    try:
        yield
    except BaseException:
        page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        print(f"Airflow {AIRFLOW_VERSION}; browser screenshot: {tmp_path / 'failure.png'}\n"
              f"server log: {server.log}\n{server.tail()}")
        raise


@pytest.mark.browser
@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="Airflow 2.11's UI is the webserver's: the test below")
def test_connection_form_add_and_test_in_the_real_ui(chromium_page: Any, airflow_api_server: ApiServer,
                                                     emulator: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page, server = chromium_page, airflow_api_server
    with evidence_on_failure(page, server, tmp_path):
        # 1. Connections page -> Add -> connection type "GREEN-API" (the provider's hook-name).
        page.goto(f"{server.base_url}/connections")
        page.get_by_role("button", name="Add Connection").click()
        dialog = page.get_by_role("dialog")
        expect(dialog.get_by_role("heading", name="Add Connection")).to_be_visible()
        dialog.get_by_label("Connection ID").fill(CONN_ID)
        dialog.get_by_role("combobox", name="Connection Type").fill("GREEN-API")
        page.get_by_role("option", name="GREEN-API", exact=True).click()

        # 2. The provider's form: relabelled standard fields, port and schema hidden, extra fields with defaults.
        for label in RELABELLED:
            expect(dialog.get_by_label(label, exact=True)).to_be_visible()
        for label in NOT_SHOWN:
            expect(dialog.get_by_label(label, exact=True)).to_have_count(0)
        expect(dialog.get_by_label("API URL (apiUrl)")).to_have_attribute("placeholder", "https://api.green-api.com")

        # Extra fields: empty and optional, each default told in its description (the hook applies it).
        open_section(dialog, "Extra Fields")
        for field in CONNECTION_FIELDS.values():
            if {"number", "integer"} & set(field["schema"]["type"]):
                box = dialog.get_by_role("spinbutton", name=field["label"], exact=True)
            else:  # Airflow's text field is not tied to its label (no accessible name): find it by its group
                group = dialog.get_by_role("group").filter(has=page.get_by_text(field["label"], exact=True))
                box = group.get_by_role("textbox")
            expect(box).to_be_visible()
            expect(box).to_have_value("")
            expect(dialog.get_by_text(field["description"], exact=True)).to_be_visible()

        # 3. Fill in the emulator's instance, screenshot the filled form, save.
        open_section(dialog, "Standard Fields")
        dialog.get_by_label("API URL (apiUrl)").fill(emulator.base_url)
        dialog.get_by_label("Instance ID (idInstance)").fill(ID_INSTANCE)
        dialog.get_by_label("API token (apiTokenInstance)").fill(TOKEN)
        expect(dialog.get_by_label("API token (apiTokenInstance)")).to_have_attribute("type", "password")
        dialog.screenshot(path=str(screenshot_path(tmp_path)), animations="disabled", caret="hide")
        dialog.get_by_role("button", name="Save").click()
        expect(dialog).to_be_hidden()

        row = page.get_by_role("row").filter(has_text=CONN_ID)
        expect(row).to_contain_text("greenapi")
        expect(row).to_contain_text(emulator.base_url)

        # The form stored only what the user set: no defaults (3.3's form writes untouched fields as null).
        extra = stored_extra(server)
        assert {k: v for k, v in extra.items() if v is not None} == {}, extra

        if TEST_BUTTON_REJECTS_PORTLESS:
            # What users of 3.3.1/3.3.2 see: the list's Test button fails before the hook runs ...
            row.get_by_role("button", name="Test Connection").click()
            failure = page.get_by_role("status").filter(has_text="Test Connection Failed")
            expect(failure).to_be_visible()
            expect(failure).to_contain_text(PORT_MISMATCH)
            assert any("path=/api/v2/connections/test" in line and "status_code=400" in line
                       for line in server.output().splitlines()), "the Test button's 400 is not in the log"
            # ... while the CLI test of the same stored connection works (docs/troubleshooting.md).
            cli = airflow_cli(server, "connections", "test", CONN_ID)
            assert cli.returncode == 0 and "Connection success!" in cli.stdout, cli.stdout + cli.stderr
            return

        # 4a. Test with the right token: getStateInstance says "authorized".
        row.get_by_role("button", name="Test Connection").click()
        success = page.get_by_role("status").filter(has_text="Test Connection Successful")
        expect(success).to_be_visible()
        expect(success).to_contain_text(f"GREEN-API instance {ID_INSTANCE} is authorized")

        # 4b. Edit the token to a wrong one, Test again: a clear failure that names apiTokenInstance.
        row.get_by_role("button", name="Edit Connection").click()
        edit = page.get_by_role("dialog")
        expect(edit.get_by_role("heading", name="Edit Connection")).to_be_visible()
        edit.get_by_label("API token (apiTokenInstance)").fill(WRONG_TOKEN)
        edit.get_by_role("button", name="Save").click()
        expect(edit).to_be_hidden()
        row.get_by_role("button", name="Test Connection").click()
        failure = page.get_by_role("status").filter(has_text="Test Connection Failed")
        expect(failure).to_be_visible()
        expect(failure).to_contain_text("401")
        expect(failure).to_contain_text("apiTokenInstance")
        assert_no_token_in_log(server)


def assert_no_token_in_log(server: ApiServer) -> None:
    """The hook ran inside the UI server (at DEBUG, so its request lines were logged): no token in clear."""
    log = server.output()
    assert "getStateInstance" in log, "the server log shows no GREEN-API request: the check below is void"
    assert TOKEN not in log
    assert WRONG_TOKEN not in log


# Airflow 2.11: two settings typed into the form; it stores them as typed (text), the hook parses them.
TYPED_EXTRAS = {"monthly_quota": "1000", "requests_per_second": "5"}


@pytest.mark.browser
@pytest.mark.skipif(AIRFLOW_V_3_0_PLUS, reason="Airflow 3's UI: the test above")
def test_connection_form_on_the_airflow_2_webserver(chromium_page: Any, airflow_webserver: ApiServer,
                                                    emulator: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    page, server = chromium_page, airflow_webserver
    with evidence_on_failure(page, server, tmp_path):
        # 1. Log in, Admin > Connections > "+", connection type "GREEN-API" (the select's search box).
        log_in(page, server)
        page.goto(f"{server.base_url}/connection/list/")
        page.locator("a[href*='/connection/add']").click()  # the list's "+" ("Add a new record")
        form = page.locator("form#model_form")
        form.get_by_label("Connection Id").fill(CONN_ID)
        choose_connection_type(page, "GREEN-API")

        # 2. The provider's form: relabelled standard fields, port and schema hidden, extra fields empty.
        for label in RELABELLED:
            expect(form.get_by_label(label, exact=True)).to_be_visible()
        for label in NOT_SHOWN:  # relabelled (no such label left) or hidden (its row has Bootstrap's "hide")
            expect(form.get_by_label(label, exact=True)).to_be_hidden()
        for name in UI_FIELD_BEHAVIOUR["hidden-fields"]:  # hidden, not gone: the page hides the field's row
            expect(form.locator(f"#{name}")).to_have_count(1)
        expect(form.get_by_label("API URL (apiUrl)")).to_have_attribute("placeholder", "https://api.green-api.com")
        for field in CONNECTION_FIELDS.values():
            box = form.get_by_label(field["label"], exact=True)
            expect(box).to_be_visible()
            expect(box).to_have_value("")
            expect(form.get_by_text(field["description"], exact=True)).to_be_visible()

        # 3. Fill in the emulator's instance and two settings; Test: getStateInstance says "authorized".
        form.get_by_label("API URL (apiUrl)").fill(emulator.base_url)
        form.get_by_label("Instance ID (idInstance)").fill(ID_INSTANCE)
        token = form.get_by_label("API token (apiTokenInstance)")
        token.fill(TOKEN)
        expect(token).to_have_attribute("type", "password")
        for name, typed in TYPED_EXTRAS.items():
            form.get_by_label(CONNECTION_FIELDS[name]["label"], exact=True).fill(typed)
        alert = page.locator(".container .row .alert")
        page.get_by_role("button", name="Test").click()
        expect(alert).to_contain_text(f"GREEN-API instance {ID_INSTANCE} is authorized")

        # 4. A wrong token: the hook's failure names apiTokenInstance. 2.11's page shows every answer of the
        #    test endpoint in the same green "success" alert, a failure too: only the text tells (Airflow's).
        token.fill(WRONG_TOKEN)
        page.get_by_role("button", name="Test").click()
        expect(alert).to_contain_text("apiTokenInstance")
        expect(alert).to_contain_text("401")
        expect(alert).to_have_class(re.compile(r"\balert-success\b"))

        # 5. The right token again, save: the list shows the connection.
        token.fill(TOKEN)
        page.get_by_role("button", name="Save").click()
        page.wait_for_url(re.compile(r"/connection/list/"))
        expect(page.locator(".alert-success")).to_contain_text("Added Row")
        expect(page.get_by_role("row").filter(has_text=CONN_ID)).to_contain_text("greenapi")

        # 6. The saved extras, as the form stored them (what was typed, and the integer fields left empty as
        #    null), are what the hook reads: it refuses unknown extras, and takes null as "the default".
        extra = stored_extra(server)
        assert {k: v for k, v in extra.items() if v is not None} == TYPED_EXTRAS, extra
        cli = airflow_cli(server, "connections", "test", CONN_ID)
        assert cli.returncode == 0 and "Connection success!" in cli.stdout, cli.stdout + cli.stderr
        read = subprocess.run(
            [sys.executable, "-c", "from airflow_provider_greenapi.hooks.greenapi import GreenApiHook as H; "
             f"h = H({CONN_ID!r}); print('read:', h.monthly_quota, h.client_settings().requests_per_second)"],
            env=server.env, capture_output=True, text=True, timeout=180)
        assert "read: 1000 5.0" in read.stdout.splitlines(), read.stdout[-3000:] + read.stderr[-3000:]
        assert_no_token_in_log(server)


def choose_connection_type(page: Any, name: str) -> None:
    """Pick ``name`` in 2.11's connection type select (Select2 4): open it, type in its search box, choose."""
    page.get_by_role("combobox").filter(has=page.locator("#select2-conn_type-container")).click()
    page.locator(".select2-search__field").fill(name)
    page.locator(".select2-results__option").get_by_text(name, exact=True).click()
