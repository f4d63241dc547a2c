"""What Airflow reads about this provider: hooks, operators and the GREEN-API connection form."""

from __future__ import annotations

from typing import Any

from airflow_provider_greenapi.client import (
    CHECK_WHATSAPP_BODIES,
    DEFAULT_API_URL,
    DEFAULT_CHECK_REQUESTS_PER_SECOND,
    MAX_IN_FLIGHT_LIMIT,
    ClientSettings,
)

_DEFAULTS = ClientSettings()


def _number_field(label: str, description: str, kind: str, default: float | int | None,
                  minimum: float | None = None, maximum: float | None = None) -> dict[str, Any]:
    """An optional extra field. The default is shown in the description, never put in the schema: Airflow's
    form would otherwise save it into every connection's extra, where a later change of the default in the
    hook never reaches. The hook applies the default when the key is absent, empty or null."""
    schema: dict[str, Any] = {"type": [kind, "null"]}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    if default is not None:
        description = f"{description} Default: {default:g}."
    return {"label": label, "description": description, "schema": schema}


CONNECTION_FIELDS: dict[str, dict[str, Any]] = {
    "timeout": _number_field(
        "Timeout (seconds)", "Seconds to wait for each GREEN-API answer before retrying (slow answers are "
        "normal: GREEN-API asks WhatsApp first).",
        "number", _DEFAULTS.timeout, 1, 300),
    "requests_per_second": _number_field(
        "checkWhatsapp requests per second",
        "Pace of checkWhatsapp calls for this instance. GREEN-API allows 10; staying well under it lowers "
        "the risk of a WhatsApp ban.",
        "number", DEFAULT_CHECK_REQUESTS_PER_SECOND, 0.1, 10),
    "max_in_flight": _number_field(
        "Concurrent requests (cap)",
        "Most checkWhatsapp requests waiting for an answer at once. A run keeps as many in flight as the pace "
        "needs at the answer time it observes, up to this cap (64: 5 s answers at 10/s).",
        "integer", _DEFAULTS.max_in_flight, 1, MAX_IN_FLIGHT_LIMIT),
    "max_retries": _number_field(
        "Retries", "Retries of a transient failure (429, 499, 5xx, timeouts) before the number is marked error.",
        "integer", _DEFAULTS.max_retries, 0, 20),
    "retry_backoff": _number_field(
        "Retry backoff (seconds)", "First wait before a retry; it doubles on each retry, up to 30 s.",
        "number", _DEFAULTS.retry_backoff, 0, 60),
    "check_whatsapp_body": {
        "label": "checkWhatsapp request body",
        "description": f"{' or '.join(CHECK_WHATSAPP_BODIES)}. chatId: GREEN-API's current contract (a host "
        "that refuses it is detected and asked with phoneNumber). phoneNumber: the older contract, for old "
        f"hosts. Default: {_DEFAULTS.check_whatsapp_body}.",
        # No enum and no default: Airflow's form would store a value in every saved connection (see _number_field).
        "schema": {"type": ["string", "null"]},
    },
    "monthly_quota": _number_field(
        "Monthly checks quota",
        "checkWhatsapp calls the plan allows a month (Developer: 100, Business: 30000). With a warehouse "
        "usage ledger, runs stop before crossing it. Empty: not enforced.",
        "integer", None, 0, None),
}


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
        "versions": ["0.1.0"],
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
