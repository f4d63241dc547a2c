"""What Airflow reads about this provider: hooks, operators and the GREEN-API connection form."""

from __future__ import annotations

from typing import Any

from airflow_provider_greenapi._version import __version__
from airflow_provider_greenapi.client import DEFAULT_API_URL
from airflow_provider_greenapi.settings import conn_fields

CONNECTION_FIELDS: dict[str, dict[str, Any]] = conn_fields()
"""The connection form's extra fields, one per setting of settings.py (3.1 gets them from _compat.py)."""

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port"],
    "relabeling": {
        "host": "API URL (apiUrl)",
        "login": "Instance ID (idInstance)",
        "password": "API token (apiTokenInstance)",
    },
    "placeholders": {
        "host": DEFAULT_API_URL,
        "login": "1101000001",
        "password": "the apiTokenInstance from the GREEN-API console",
    },
}


def _core_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-greenapi",
        "name": "GREEN-API",
        "description": "Check which phone numbers have WhatsApp through GREEN-API, safely and fast.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "GREEN-API",
                "external-doc-url": "https://green-api.com/en/docs/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "GREEN-API",
                "python-modules": ["airflow_provider_greenapi.hooks.greenapi"],
            }
        ],
        "operators": [
            {
                "integration-name": "GREEN-API",
                "python-modules": ["airflow_provider_greenapi.operators.check_whatsapp"],
            }
        ],
        "sensors": [
            {
                "integration-name": "GREEN-API",
                "python-modules": ["airflow_provider_greenapi.sensors.instance_state"],
            }
        ],
        "triggers": [
            {
                "integration-name": "GREEN-API",
                "python-modules": ["airflow_provider_greenapi.triggers.instance_state"],
            }
        ],
        "connection-types": [
            {
                "connection-type": "greenapi",
                "hook-class-name": "airflow_provider_greenapi.hooks.greenapi.GreenApiHook",
                "hook-name": "GREEN-API",
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
                "conn-fields": CONNECTION_FIELDS,
            }
        ],
    }


# max_checks="auto"'s companion `airflow greenapi usage` (Airflow 3.2+ reads "cli"; docs/quota.md). The UI view
# is an entry-point plugin (pyproject.toml): Airflow loads a provider's "plugins" only without lazy discovery.
_QUOTA_TOOLS: dict[str, Any] = {
    "cli": ["airflow_provider_greenapi.cli.get_cli_commands"],
}


def get_provider_info() -> dict[str, Any]:
    return {**_core_provider_info(), **_QUOTA_TOOLS}
