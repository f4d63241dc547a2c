"""The UI view's plugin as Airflow loads it (the ``airflow.plugins`` entry point, on every line) and its page's
rendering: escaped values, the read-only form. The page in a real browser: tests/browser/test_quota_view.py."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from airflow_provider_greenapi._compat import QUOTA_VIEW
from airflow_provider_greenapi.emulator import airflow_connection

if not QUOTA_VIEW:  # the view without it: tests/test_airflow_lines.py
    pytest.skip("Airflow 2.11 and 3.0 have no FastAPI plugin apps with external views: the plugin registers no "
                "view there", allow_module_level=True)

from airflow_provider_greenapi.plugins.quota_view import URL_PREFIX, GreenApiQuotaPlugin, _render
from airflow_provider_greenapi.usage_report import InstanceUsage, greenapi_quotas
from airflow_provider_greenapi.warehouse.usage_history import RunUsage

pytestmark = pytest.mark.matrix  # plugin loading differs between Airflow lines


def test_airflow_loads_the_plugin_with_its_app_and_menu_entry():
    """What ``airflow plugins`` lists (the same public call on every line)."""
    from airflow import plugins_manager

    (info,) = [p for p in plugins_manager.get_plugin_info() if p["name"] == GreenApiQuotaPlugin.name]
    assert [a["url_prefix"] for a in info["fastapi_apps"]] == [URL_PREFIX]
    (view,) = info["external_views"]
    assert (view["href"], view["destination"], view["url_route"]) == ("/greenapi/quota", "nav", "greenapi-quota")


def test_the_page_escapes_what_it_shows_and_offers_no_free_text_but_the_month():
    run = RunUsage("1101000001", "<b>dag</b>", "run<script>", datetime(2026, 12, 3, tzinfo=timezone.utc), None,
                   checks=5, budget=9, state="done")
    report = InstanceUsage("1101000001", "2026-12", 5, 100, {"2026-12-03": 5}, [run])
    page = _render(['"><script>alert(1)</script>', "warehouse"], "warehouse", "2026-12", [report], None)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<b>dag</b>" not in page
    assert page.count("<input") == 1 and 'name="month"' in page  # the warehouse is a choice, not a text field
    assert "5</strong> of 100 checkWhatsapp calls used in 2026-12 (95 left)" in page


def test_an_instances_quota_is_the_one_set_on_any_of_its_connections(monkeypatch):
    """Not the one of whichever connection sorts last; different values are a conflict; an unreadable
    connection is one line that names it and not the value it holds."""
    url, token = "http://127.0.0.1:9", "a-token-pasted-where-the-quota-goes-0123456789"
    for conn_id, instance, extra in (("greenapi_a", "1101000001", {"monthly_quota": 300}),
                                     ("greenapi_b", "1101000001", {}),
                                     ("greenapi_c", "1101000002", {"monthly_quota": 100}),
                                     ("greenapi_d", "1101000002", {"monthly_quota": 200}),
                                     ("greenapi_e", "1101000002", {}),
                                     ("greenapi_bad", "1101000003", {"monthly_quota": token})):
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", airflow_connection(url, instance, token, **extra))
    found = greenapi_quotas(["greenapi_a", "greenapi_b", "greenapi_c", "greenapi_bad", "greenapi_d", "greenapi_e"])
    assert found.quotas == {"1101000001": 300, "1101000002": None}
    assert found.conflicts == {"1101000002": {"greenapi_c": 100, "greenapi_d": 200}}
    (error,) = found.errors
    assert error.startswith("GREEN-API connection 'greenapi_bad' skipped: ") and "monthly_quota" in error
    assert token not in error and token[:12] not in error
    assert greenapi_quotas(["greenapi_b", "greenapi_a"]).quotas == {"1101000001": 300}


def test_an_error_line_blanks_a_connections_values_also_when_the_message_shortens_them(monkeypatch):
    from airflow_provider_greenapi.hooks.greenapi import GreenApiHook
    from airflow_provider_greenapi.usage_report import _without_values

    token = "a-token-pasted-where-the-quota-goes-0123456789"
    monkeypatch.setenv("AIRFLOW_CONN_GREENAPI_BAD", airflow_connection("http://127.0.0.1:9", "1101000003", "tok",
                                                                       monthly_quota=token))
    shortened = ValueError(f"monthly_quota must be a number (got {token[:14]!r}…)")
    assert _without_values(shortened, GreenApiHook("greenapi_bad")) == "monthly_quota must be a number (got '***'…)"


def test_the_page_shows_a_conflict_and_each_unreadable_connection():
    conflict = InstanceUsage("1101000002", "2026-12", 5, None, quota_conflict={"greenapi_c": 100, "greenapi_d": 200})
    page = _render(["warehouse"], "warehouse", "2026-12", [conflict], None,
                   ["GREEN-API connection 'greenapi_bad' skipped: <monthly_quota> must be a number"])
    assert "'greenapi_c' says 100, 'greenapi_d' says 200" in page.replace("&#x27;", "'")
    assert page.count('class="error connection-error"') == 1 and "&lt;monthly_quota&gt;" in page
    assert 'data-instance="1101000002"' in page
