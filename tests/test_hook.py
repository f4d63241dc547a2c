"""GreenApiHook: Airflow discovers it, its form reaches the UI, and its Test button works for real."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import warnings
from typing import Any

import pytest

from airflow_provider_greenapi import get_provider_info
from airflow_provider_greenapi._compat import (
    AIRFLOW_LINE,
    AIRFLOW_V_3_0_PLUS,
    AIRFLOW_VERSION,
    DECLARATIVE_CONNECTION_FORM,
)
from airflow_provider_greenapi.errors import GreenApiConnectionError
from airflow_provider_greenapi.hooks.greenapi import GreenApiHook
from airflow_provider_greenapi.provider_info import CONNECTION_FIELDS
from airflow_provider_greenapi.settings import CONNECTION_SETTINGS, ClientSettings
from tests.airflow_cli import AIRFLOW
from tests.conftest import ID_INSTANCE, TOKEN, greenapi_connection

pytestmark = pytest.mark.matrix  # discovery, hook and connection form: the core of every Airflow line


def airflow_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AIRFLOW, *args], capture_output=True, text=True, timeout=180,
                          env={**os.environ, **(env or {})})


def test_provider_info_names_the_distribution():
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-greenapi"
    assert info["connection-types"][0]["hook-class-name"] == "airflow_provider_greenapi.hooks.greenapi.GreenApiHook"


def json_output(result: subprocess.CompletedProcess[str]) -> Any:
    """The JSON an ``airflow ... -o json`` command printed: its last line (3.0 logs alembic's set-up above it)."""
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_airflow_lists_the_provider_and_the_connection_type():
    providers = json_output(airflow_cli("providers", "list", "-o", "json"))
    assert "airflow-provider-greenapi" in {p["package_name"] for p in providers}
    hooks = json_output(airflow_cli("providers", "hooks", "-o", "json"))
    greenapi = [h for h in hooks if h["connection_type"] == "greenapi"]
    assert greenapi and greenapi[0]["class"] == "airflow_provider_greenapi.hooks.greenapi.GreenApiHook"


def hook_meta() -> dict[str, Any]:
    """What ``GET /ui/connections/hook_meta`` answers for the GREEN-API type: the code path of the API server."""
    if not AIRFLOW_V_3_0_PLUS:
        pytest.skip("Airflow 2.11 has no API server: its form is test_the_airflow_2_webserver_builds_the_form")
    if AIRFLOW_LINE == (3, 0) and importlib.util.find_spec("wtforms") is None:
        pytest.skip("a plain Airflow 3.0 install draws no provider's form fields (its provider manager imports "
                    "WTForms): test_a_plain_airflow_3_0_draws_no_provider_form")
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metas = HookMetaService.hook_meta_data()
    deprecated = [str(w.message) for w in caught if "GreenApiHook" in str(w.message)]
    assert not deprecated, f"Airflow {AIRFLOW_VERSION} warns about the hook: {deprecated}"
    return {m.connection_type: m for m in metas}["greenapi"]


def test_the_ui_receives_the_connection_form():
    meta = hook_meta()
    assert meta.hook_name == "GREEN-API"
    fields = meta.standard_fields
    assert fields.host.title == "API URL (apiUrl)" and fields.host.placeholder == "https://api.green-api.com"
    assert fields.login.title == "Instance ID (idInstance)"
    assert fields.password.title == "API token (apiTokenInstance)"
    assert fields.port.hidden and fields.url_schema.hidden
    extras = meta.extra_fields
    # every setting of the client can be set from the connection, and the ledger's quota
    client_settings = {f.name for f in dataclasses.fields(ClientSettings)}
    assert set(extras) == set(CONNECTION_FIELDS) == client_settings | {"monthly_quota"}
    for item in CONNECTION_SETTINGS:
        assert extras[item.name]["schema"]["title"] == item.label
        assert extras[item.name]["description"] == CONNECTION_FIELDS[item.name]["description"]
        if DECLARATIVE_CONNECTION_FORM:
            assert extras[item.name]["schema"].get("minimum") == item.minimum
            assert extras[item.name]["schema"].get("maximum") == item.maximum
        else:  # 3.1's form knows no number type and no bounds: text fields the hook parses
            assert extras[item.name]["schema"]["type"] == ["integer" if item.kind is int else "string", "null"]
    if DECLARATIVE_CONNECTION_FORM:
        assert extras["max_in_flight"]["schema"]["type"] == ["integer", "null"]
        assert extras["timeout"]["schema"]["maximum"] == 180


def test_the_form_shows_defaults_but_stores_none_and_requires_nothing():
    """Airflow's form saves each field's ``value`` into extra and requires a field whose type lacks "null"."""
    defaults = ClientSettings()
    for name, field in hook_meta().extra_fields.items():
        assert field["value"] is None, f"{name}: the form would store {field['value']!r} into every connection"
        assert "null" in field["schema"]["type"], f"{name}: the form would mark it required"
        if name != "monthly_quota":
            default = getattr(defaults, name)
            assert f"Default: {default if isinstance(default, str) else format(default, 'g')}." in field["description"]


@pytest.mark.skipif(AIRFLOW_LINE != (3, 0) or importlib.util.find_spec("wtforms") is not None,
                    reason="a plain Airflow 3.0 install only (without WTForms)")
def test_a_plain_airflow_3_0_draws_no_provider_form():
    """What docs/airflow-versions.md says of 3.0: Airflow's provider manager imports WTForms before it asks any
    hook, so no provider's form (SQLite's neither) has its labels or fields; the Extra field takes the JSON."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    metas = {m.connection_type: m for m in HookMetaService.hook_meta_data()}
    for conn_type in ("greenapi", "sqlite"):
        assert metas[conn_type].standard_fields is None and not metas[conn_type].extra_fields


@pytest.mark.skipif(AIRFLOW_V_3_0_PLUS, reason="Airflow 3 draws the form from hook_meta: the two tests above")
def test_the_airflow_2_webserver_builds_the_form():
    """Airflow 2.11's connection page: the Flask-AppBuilder form its views build (``create_connection_form_class``
    with the fields of ``get_connection_form_widgets``) and the field behaviours its page script applies."""
    from airflow.providers_manager import ProvidersManager
    from airflow.www.forms import create_connection_form_class
    from flask import Flask
    from flask_babel import Babel
    from werkzeug.datastructures import MultiDict

    manager = ProvidersManager()
    behaviour = manager.field_behaviours["greenapi"]
    assert behaviour["relabeling"] == {"host": "API URL (apiUrl)", "login": "Instance ID (idInstance)",
                                       "password": "API token (apiTokenInstance)"}
    assert {"port", "schema"} <= set(behaviour["hidden_fields"])
    assert behaviour["placeholders"]["host"] == "https://api.green-api.com"
    widgets = {name for name in manager.connection_form_widgets if name.startswith("extra__greenapi__")}
    assert widgets == {f"extra__greenapi__{name}" for name in CONNECTION_FIELDS}
    app = Flask(__name__)
    app.config["WTF_CSRF_ENABLED"] = False
    Babel(app)
    with app.test_request_context():
        form = create_connection_form_class()(formdata=MultiDict({"conn_id": "c", "conn_type": "greenapi"}))
        for item in CONNECTION_SETTINGS:
            field = form[f"extra__greenapi__{item.name}"]
            assert str(field.label.text) == item.label
            assert field.description == CONNECTION_FIELDS[item.name]["description"]
            assert field.data in (None, "") and 'class="form-control"' in field()  # Bootstrap's input, empty
        form.validate()
        assert not [name for name in form.errors if "greenapi" in name], form.errors  # nothing is required


def test_hook_reads_the_connection_lazily(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_NOWHERE", raising=False)
    hook = GreenApiHook("nowhere")  # no connection, no network at construction
    assert hook.greenapi_conn_id == "nowhere"


def test_hook_builds_a_client_from_the_connection(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_GREENAPI_DEFAULT",
                       greenapi_connection(emulator, requests_per_second="7", max_in_flight=2, monthly_quota=100))
    hook = GreenApiHook()
    client = hook.get_client(max_in_flight=3)
    assert (client.api_url, client.id_instance) == (emulator.base_url, ID_INSTANCE)
    assert client.settings.requests_per_second == 7.0 and client.settings.max_in_flight == 3
    assert hook.monthly_quota == 100
    assert TOKEN not in repr(client) and TOKEN not in repr(hook.client_settings())


def test_the_older_check_body_is_a_connection_setting(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_GREENAPI_DEFAULT",
                       greenapi_connection(emulator, check_whatsapp_body="phoneNumber"))
    assert GreenApiHook().get_client().check_whatsapp_body == "phoneNumber"
    monkeypatch.setenv("AIRFLOW_CONN_GREENAPI_DEFAULT", greenapi_connection(emulator, check_whatsapp_body="phone"))
    with pytest.raises(GreenApiConnectionError, match="check_whatsapp_body must be 'chatId'"):
        GreenApiHook().get_client()


def test_every_client_setting_comes_from_the_connection(emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_GREENAPI_DEFAULT", greenapi_connection(
        emulator, timeout="12.5", requests_per_second=3, max_in_flight="8", max_retries=2, retry_backoff=1,
        retry_backoff_max=4, check_whatsapp_body="phoneNumber"))
    assert GreenApiHook().get_client().settings == ClientSettings(
        timeout=12.5, requests_per_second=3, max_in_flight=8, max_retries=2, retry_backoff=1, retry_backoff_max=4,
        check_whatsapp_body="phoneNumber")


def test_an_unknown_extra_is_refused_with_the_close_match(emulator, monkeypatch):
    """A typo is not ignored (the default pace would run where the user meant to lower it)."""
    for extras in ({"request_per_second": 2}, {"extra__greenapi__request_per_second": "2"}):
        conn = {**json.loads(greenapi_connection(emulator)), "extra": {"timeout": 5, **extras}}
        monkeypatch.setenv("AIRFLOW_CONN_GREENAPI_DEFAULT", json.dumps(conn))
        for read in (lambda: GreenApiHook().get_client(), lambda: GreenApiHook().monthly_quota):
            with pytest.raises(GreenApiConnectionError, match=r"Connection 'greenapi_default': unknown extra "
                               r"'request_per_second' \(did you mean 'requests_per_second'\?\): correct or remove"):
                read()
    conn["extra"] = {"quota": 5, "colour": "blue"}
    monkeypatch.setenv("AIRFLOW_CONN_GREENAPI_DEFAULT", json.dumps(conn))
    with pytest.raises(GreenApiConnectionError, match=r"unknown extra 'colour', 'quota' \(did you mean "
                       r"'monthly_quota'\?\).* are timeout, requests_per_second, .*monthly_quota\)"):
        GreenApiHook().get_client()


def test_what_airflow_itself_puts_in_the_extra_is_no_unknown_extra(emulator, monkeypatch):
    """Empty form fields (null or empty, of any name), Airflow's own ``__…`` keys and another type's
    ``extra__<type>__…`` keys (Airflow 2's forms) are left alone."""
    conn = json.loads(greenapi_connection(emulator))
    conn["extra"] = {"timeout": None, "max_retries": "", "request_per_second": None, "old_field": "",
                     "__extra__": "{}", "extra__http__endpoint": "/x", "extra__greenapi__max_in_flight": 4}
    monkeypatch.setenv("AIRFLOW_CONN_GREENAPI_DEFAULT", json.dumps(conn))
    assert GreenApiHook().client_settings() == ClientSettings(max_in_flight=4)


def test_prefixed_extras_from_older_forms_are_read(emulator, monkeypatch):
    conn = json.loads(greenapi_connection(emulator))
    conn["extra"] = {"extra__greenapi__timeout": 12}
    monkeypatch.setenv("AIRFLOW_CONN_GREENAPI_DEFAULT", json.dumps(conn))
    assert GreenApiHook().client_settings().timeout == 12


@pytest.mark.parametrize(("change", "message"), [
    ({"login": ""}, "instance ID"),
    ({"login": "abc"}, "digits only"),
    ({"password": ""}, "API token"),
    ({"host": "ftp://x"}, "API URL"),
    ({"conn_type": "http"}, "not 'greenapi'"),
    ({"extra": {"timeout": "soon"}}, "must be a number"),
    ({"extra": {"requests_per_second": 50}}, "at most 10"),
    ({"extra": {"timeout": 300}}, r"extra timeout must be at least 0.1 and at most 180 s; .* \(got 300\)"),
    ({"extra": {"retry_backoff_max": -1}}, "extra retry_backoff_max must be at least 0 and at most 300 s"),
    ({"extra": {"monthly_quota": -1}}, r"extra monthly_quota must be at least 0 \(got -1\)"),
    ({"extra": {"monthly_quota": "lots"}}, "extra monthly_quota must be a number"),
    # A secret pasted in the wrong field is described, never repeated (the token is 38 characters).
    ({"extra": {"monthly_quota": TOKEN}}, r"extra monthly_quota must be a number \(got a text of 38 characters\)"),
    ({"extra": {"timeout": f" {TOKEN} "}}, r"extra timeout must be a number \(got a text of 40 characters\)"),
    ({"extra": {"check_whatsapp_body": TOKEN}}, r"check_whatsapp_body must be .* \(got a text of 38 characters\)"),
    ({"extra": {"max_retries": int("9" * 38)}}, r"extra max_retries must be .* \(got a number of 38 characters\)"),
    ({"login": TOKEN}, r"digits only, e.g. 1101000001 \(got a text of 38 characters: the API token belongs"),
    ({"host": f"https://7103.api.greenapi.com/waInstance1/getStateInstance/{TOKEN}?x=1"},
     r"The API URL \(https://7103.api.greenapi.com\) is not valid"),
])
def test_a_bad_connection_gets_a_clear_error(emulator, monkeypatch, change, message):
    conn = {**json.loads(greenapi_connection(emulator)), **change}
    monkeypatch.setenv("AIRFLOW_CONN_GREENAPI_DEFAULT", json.dumps(conn))
    hook = GreenApiHook()
    read = (lambda: hook.monthly_quota) if "monthly_quota" in conn["extra"] else hook.get_client
    with pytest.raises(GreenApiConnectionError, match=message) as raised:
        read()
    assert TOKEN not in str(raised.value)
    assert str(raised.value).startswith("Connection 'greenapi_default'")


@pytest.mark.parametrize(("setup", "ok", "expected"), [
    ("authorized", True, "is authorized and ready"),
    ("wrong_token", False, "apiTokenInstance"),
    ("unknown_instance", False, "idInstance"),
    ("notAuthorized", False, "scan the QR code"),
    ("starting", False, "starting"),
])
def test_test_connection_through_the_emulator(emulator, monkeypatch, setup, ok, expected):
    token, instance = TOKEN, ID_INSTANCE
    if setup == "wrong_token":
        token = "wrong-token-000000"
    elif setup == "unknown_instance":
        instance = "9999999999"
    elif setup != "authorized":
        emulator.set_state(ID_INSTANCE, setup)
    monkeypatch.setenv("AIRFLOW_CONN_GREENAPI_DEFAULT", greenapi_connection(emulator, instance, token))
    success, message = GreenApiHook().test_connection()
    assert (success, expected in message) == (ok, True), message
    assert TOKEN not in message and token not in message
    assert emulator.counters(instance if setup != "unknown_instance" else ID_INSTANCE).count("checkWhatsapp") == 0


@pytest.mark.parametrize(("setup", "ok", "expected"), [
    ("authorized", True, ""),
    ("wrong_token", False, "apiTokenInstance"),
    ("unknown_instance", False, "idInstance"),
    ("notAuthorized", False, "scan the QR code"),
])
def test_airflow_connections_test_cli(emulator, setup, ok, expected):
    token, instance = TOKEN, ID_INSTANCE
    if setup == "wrong_token":
        token = "wrong-token-000000"
    elif setup == "unknown_instance":
        instance = "9999999999"
    elif setup == "notAuthorized":
        emulator.set_state(ID_INSTANCE, "notAuthorized")
    result = airflow_cli("connections", "test", "greenapi_default", env={
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW_CONN_GREENAPI_DEFAULT": greenapi_connection(emulator, instance, token),
    })
    output = result.stdout + result.stderr
    assert ("Connection success!" in output) is ok, output
    assert ok or expected in output  # the CLI prints the message of a failure only
    assert TOKEN not in output
