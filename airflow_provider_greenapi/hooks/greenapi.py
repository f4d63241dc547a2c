"""GreenApiHook: an Airflow Connection of type ``greenapi`` turned into a :class:`GreenApiClient`."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow_provider_greenapi._compat import (
    DECLARATIVE_CONNECTION_FORM,
    AirflowNotFoundException,
    BaseHook,
    legacy_connection_form_widgets,
    legacy_ui_field_behaviour,
    mask_secret,
)
from airflow_provider_greenapi.client import GreenApiClient, validate_api_url, validate_id_instance
from airflow_provider_greenapi.errors import GreenApiConnectionError, GreenApiError
from airflow_provider_greenapi.models import InstanceState
from airflow_provider_greenapi.provider_info import CONNECTION_FIELDS, UI_FIELD_BEHAVIOUR
from airflow_provider_greenapi.redaction import secret_forms
from airflow_provider_greenapi.settings import (
    ClientSettings,
    QuotaSettings,
    check_extra_names,
    from_extras,
    settings_of,
)

# GreenApiConnectionError lives in errors.py (a ConfigurationError); importable from here too, as it always was.
__all__ = ["GreenApiConnectionError", "GreenApiHook"]

_CLIENT_SETTINGS = frozenset(item.name for item in settings_of(ClientSettings))


class GreenApiHook(BaseHook):
    """Credentials and client settings of one GREEN-API instance, from an Airflow Connection.

    Connection fields: host = apiUrl (default ``https://api.green-api.com``), login = idInstance,
    password = apiTokenInstance; extras: the settings of settings.py (every field of :class:`ClientSettings`
    and ``monthly_quota``). Nothing is read before first use.
    """

    conn_name_attr = "greenapi_conn_id"
    default_conn_name = "greenapi_default"
    conn_type = "greenapi"
    hook_name = "GREEN-API"

    def __init__(self, greenapi_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.greenapi_conn_id = greenapi_conn_id

    if not DECLARATIVE_CONNECTION_FORM:
        # Airflow 2.11 to 3.1 build the connection form from these two methods only; 3.2+ reads the same definition
        # from the provider info (provider_info.py) and would warn that the methods are deprecated.
        @classmethod
        def get_connection_form_widgets(cls) -> dict[str, Any]:
            return legacy_connection_form_widgets(CONNECTION_FIELDS)

        @classmethod
        def get_ui_field_behaviour(cls) -> dict[str, Any]:
            return legacy_ui_field_behaviour(UI_FIELD_BEHAVIOUR)

    @cached_property
    def _connection(self) -> Any:
        try:
            conn = self.get_connection(self.greenapi_conn_id)
        except AirflowNotFoundException:
            raise GreenApiConnectionError(
                f"Connection {self.greenapi_conn_id!r} is not defined: create it with the GREEN-API connection "
                "type (Admin > Connections, `airflow connections add`, or an AIRFLOW_CONN_* variable)."
            ) from None
        if conn.conn_type and conn.conn_type != self.conn_type:
            raise GreenApiConnectionError(
                f"Connection {self.greenapi_conn_id!r} has type {conn.conn_type!r}, not 'greenapi': "
                "create it with the GREEN-API connection type."
            )
        if conn.password:
            for form in secret_forms(conn.password):  # as stored, stripped as sent, percent-encoded
                mask_secret(form)
        return conn

    @cached_property
    def extras(self) -> dict[str, Any]:
        """The connection's extras, accepting both plain names and the ``extra__greenapi__`` prefix; an extra
        that is no setting is refused (settings.check_extra_names)."""
        raw = self._connection.extra_dejson or {}
        prefix = f"extra__{self.conn_type}__"
        extras = {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in raw.items()}
        self._checked(check_extra_names, extras)
        return extras

    @cached_property
    def api_url(self) -> str:
        return self._checked(validate_api_url, self._connection.host)

    @cached_property
    def id_instance(self) -> str:
        return self._checked(validate_id_instance, self._connection.login)

    @cached_property
    def monthly_quota(self) -> int | None:
        """The plan's checkWhatsapp calls a month as set on the connection, or None when not set."""
        quota: int | None = self._checked(from_extras, QuotaSettings, self.extras).monthly_quota
        return quota

    def client_settings(self, **overrides: Any) -> ClientSettings:
        """Settings from the connection's extras, then ``overrides`` (None values are ignored)."""
        settings: ClientSettings = self._checked(from_extras, ClientSettings, self.extras, overrides)
        return settings

    def get_client(self, **overrides: Any) -> GreenApiClient:
        """A new client for this instance (one per task run: it owns a connection pool)."""
        settings = self.client_settings(**{k: v for k, v in overrides.items() if k in _CLIENT_SETTINGS})
        extra_args = {k: v for k, v in overrides.items() if k not in _CLIENT_SETTINGS}
        token = self._connection.password
        if not token:
            raise GreenApiConnectionError(
                f"Connection {self.greenapi_conn_id!r} has no password: put the instance's API token "
                "(apiTokenInstance) there."
            )
        return GreenApiClient(self.api_url, self.id_instance, token, settings, **extra_args)

    @cached_property
    def client(self) -> GreenApiClient:
        return self.get_client()

    def get_conn(self) -> GreenApiClient:
        return self.client

    def test_connection(self) -> tuple[bool, str]:
        """Ask getStateInstance (free of quota); only an authorized instance passes. One retry at most, so
        that the UI's Test button answers within seconds."""
        try:
            with self.get_client(max_retries=1, timeout=10) as client:
                state = client.get_state_instance()
        except (GreenApiError, GreenApiConnectionError) as error:
            return False, str(error)
        if state is InstanceState.AUTHORIZED:
            return True, f"GREEN-API instance {self.id_instance} is authorized and ready."
        return False, f"GREEN-API instance {self.id_instance} is {state.value!r}. {state.advice}"

    def _checked(self, validator: Any, *args: Any) -> Any:
        try:
            return validator(*args)
        except ValueError as error:
            raise GreenApiConnectionError(f"Connection {self.greenapi_conn_id!r}: {error}") from None
