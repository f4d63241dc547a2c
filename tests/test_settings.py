"""settings.py: one definition feeds the form, the checks and the docs, so they accept the same values."""

from __future__ import annotations

import math
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from airflow_provider_greenapi.settings import (
    CONNECTION_SETTINGS,
    ClientSettings,
    QuotaSettings,
    Setting,
    conn_fields,
    from_extras,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "connection.md"
OWNERS = {item.name: owner for owner in (ClientSettings, QuotaSettings) for item in CONNECTION_SETTINGS
          if item.name in {f.name for f in fields(owner)}}  # found apart from Setting.owner, to test it


def probes(item: Setting) -> list[Any]:
    """Values at, just inside and just outside every bound, of the wrong type, and as form text."""
    if item.kind is str:
        return [value for value, _ in item.choices] + ["chat_id", "CHATID", " chatId", "", "phone"]
    assert item.minimum is not None, f"{item.name}: a number needs a lower bound"
    edges = [item.minimum] + ([item.maximum] if item.maximum is not None else [10**9])
    values: list[Any] = []
    for edge in edges:
        values += [edge, edge - 1, edge + 1, edge - 0.001, edge + 0.001]
    values += [(edges[0] + edges[1]) / 2, math.inf, -math.inf, math.nan, True, "7", "soon", [5]]
    return values


def form_accepts(item: Setting, value: Any) -> bool:
    """What the connection form's JSON schema (Airflow's ``conn-fields``) says of a value typed into it."""
    try:
        jsonschema.validate(value, conn_fields()[item.name]["schema"])
    except jsonschema.ValidationError:
        return False
    return True


def code_accepts(item: Setting, value: Any) -> bool:
    owner = OWNERS[item.name]
    try:
        from_extras(owner, {item.name: value})
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("item", CONNECTION_SETTINGS, ids=lambda item: item.name)
def test_the_form_and_the_code_accept_the_same_values(item):
    for value in probes(item):
        if value == "" or (item.kind is not str and (isinstance(value, (str, list)) or math.isnan(value))):
            continue  # what a number field never sends (text is parsed: test_form_text_is_read_as_the_settings_type)
        assert form_accepts(item, value) == code_accepts(item, value), f"{item.name} = {value!r}"


@pytest.mark.parametrize("item", CONNECTION_SETTINGS, ids=lambda item: item.name)
def test_values_built_in_code_are_checked_as_the_connection_is(item):
    for value in probes(item):
        if isinstance(value, str) and (item.kind is not str or value != value.strip()):
            continue  # the dataclass takes typed values; text is the connection's (from_extras parses it)
        try:
            OWNERS[item.name](**{item.name: value})
        except (ValueError, TypeError):
            direct = False
        else:
            direct = True
        if value == "":
            continue  # empty in a connection means the default; in code it is a value
        assert direct == code_accepts(item, value), f"{item.name} = {value!r}"


def test_every_field_of_the_settings_is_on_the_connection():
    names = [item.name for item in CONNECTION_SETTINGS]
    assert names == [f.name for f in fields(ClientSettings)] + [f.name for f in fields(QuotaSettings)]
    assert list(conn_fields()) == names
    assert all(item.owner is OWNERS[item.name] for item in CONNECTION_SETTINGS)
    assert "retry_backoff_max" in names and "max_in_flight" in names and "requests_per_second" in names


def test_defaults_are_the_dataclasses_and_the_form_tells_them():
    defaults = {**vars(ClientSettings()), **vars(QuotaSettings())}
    for item in CONNECTION_SETTINGS:
        assert item.default == defaults[item.name]
        field = conn_fields()[item.name]
        assert "default" not in field["schema"], "the form would store the default into every connection"
        assert "null" in field["schema"]["type"], "the form would mark the field required"
        if item.default is not None:
            shown = item.default if isinstance(item.default, str) else format(item.default, "g")
            assert field["description"].endswith(f"Default: {shown}.")
        assert f"Allowed: {item.allowed}." in field["description"]


def test_form_text_is_read_as_the_settings_type():
    """Airflow 3.1's form sends decimals as text fields; JSON extras may hold strings too."""
    settings = from_extras(ClientSettings, {"timeout": "12.5", "max_in_flight": "8", "retry_backoff_max": "5.0",
                                            "check_whatsapp_body": " phoneNumber "})
    assert (settings.timeout, settings.max_in_flight, settings.retry_backoff_max) == (12.5, 8, 5.0)
    assert isinstance(settings.max_in_flight, int) and settings.check_whatsapp_body == "phoneNumber"


def test_empty_and_null_extras_take_the_defaults():
    assert from_extras(ClientSettings, dict.fromkeys(f.name for f in fields(ClientSettings))) == ClientSettings()
    assert from_extras(ClientSettings, dict.fromkeys((f.name for f in fields(ClientSettings)), "")) == ClientSettings()
    assert from_extras(QuotaSettings, {"monthly_quota": ""}).monthly_quota is None


def test_overrides_win_over_the_connection_and_none_is_no_override():
    settings = from_extras(ClientSettings, {"max_in_flight": 8, "timeout": 9},
                           {"max_in_flight": 2, "timeout": None})
    assert (settings.max_in_flight, settings.timeout) == (2, 9)


def test_one_error_names_every_bad_value_and_what_is_allowed():
    with pytest.raises(ValueError) as raised:
        from_extras(ClientSettings, {"timeout": 300, "max_in_flight": 2.5, "check_whatsapp_body": "chat_id"},
                    {"requests_per_second": 50})
    message = str(raised.value)
    assert "extra timeout must be at least 0.1 and at most 180 s; 180: what GREEN-API's own SDK waits" in message
    assert "(got 300)" in message
    assert "extra max_in_flight must be a whole number (got 2.5)" in message
    assert "extra check_whatsapp_body must be 'chatId' (GREEN-API's current contract) or 'phoneNumber'" in message
    assert "the task's requests_per_second must be at least 0.1 and at most 10" in message


def doc_table_rows() -> list[str]:
    """docs/connection.md's table of extras as the settings define it."""
    rows = []
    for item in CONNECTION_SETTINGS:
        default = "not set" if item.default is None else f"`{item.shown_default}`"
        allowed = item.allowed + (f" ({item.bounds})" if item.bounds else "")
        feeds = f"`{item.owner.__name__}`" + (" (the usage ledger)" if item.owner is QuotaSettings else "")
        rows.append(f"| `{item.name}` | {item.label} | {default} | {allowed} | {feeds} | {item.help} |")
    return rows


def test_the_docs_table_is_the_settings():
    text = DOC.read_text()
    table = [line for line in text.splitlines() if re.match(r"\| `[a-z_]+` \| ", line)
             and line.split("`")[1] in {item.name for item in CONNECTION_SETTINGS}]
    expected = doc_table_rows()
    assert table == expected, "docs/connection.md's table of extras should read:\n" + "\n".join(expected)
