"""Airflow plugins the provider ships: ``GreenApiQuotaPlugin``, the ``airflow.plugins`` entry point.

From Airflow 3.1 it is the quota page of quota_view.py (a FastAPI app and an external view, which 3.1 added).
On 2.11 and 3.0 the plugin registers no view (``_compat.QUOTA_VIEW``), so that every Airflow process still
loads it cleanly; ``greenapi usage`` (the console script) reports the same month there (docs/quota.md).
"""

from __future__ import annotations

from airflow_provider_greenapi._compat import QUOTA_VIEW

if QUOTA_VIEW:
    from airflow_provider_greenapi.plugins.quota_view import GreenApiQuotaPlugin
else:
    from airflow.plugins_manager import AirflowPlugin

    class GreenApiQuotaPlugin(AirflowPlugin):  # type: ignore[no-redef]
        """No view before Airflow 3.1: the name shows in ``airflow plugins``; the CLI reports the month."""

        name = "greenapi_quota"


__all__ = ["GreenApiQuotaPlugin"]
