"""The UI view's plugin as Airflow loads it (the ``airflow.plugins`` entry point, on every line) and its page's
rendering: escaped values, the read-only form. The page in a real browser: tests/browser/test_quota_view.py."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from airflow_provider_greenapi._compat import QUOTA_VIEW

if not QUOTA_VIEW:  # the view without it: tests/test_airflow_lines.py
    pytest.skip("Airflow 2.11 and 3.0 have no FastAPI plugin apps with external views: the plugin registers no "
                "view there", allow_module_level=True)

from airflow_provider_greenapi.plugins.quota_view import URL_PREFIX, GreenApiQuotaPlugin, _render
from airflow_provider_greenapi.usage_report import InstanceUsage
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
