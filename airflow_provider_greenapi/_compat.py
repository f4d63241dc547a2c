"""Every difference between the Airflow lines this provider supports (3.1, 3.2, 3.3, 3.4), in one place.

Import what differs from here, never from ``airflow`` directly. What every supported line has at the same path
(``airflow.sdk``'s ``BaseHook``, ``BaseOperator``, ``Asset``, ``Context``; ``airflow.sdk.log.mask_secret``;
``airflow.triggers.base``) is imported where it is used.

- Airflow 3.1's ``airflow.sdk.exceptions`` re-exports only ``AirflowException``; the task exceptions live in
  ``airflow.exceptions`` there (3.2+ has both, as the same classes).
- Airflow 3.1 has no ``airflow.sdk.configuration``.
- Airflow 3.1 reads the connection form only from the hook methods ``get_connection_form_widgets`` /
  ``get_ui_field_behaviour``; 3.2+ reads ``conn-fields`` / ``ui-field-behaviour`` from the provider info
  (and warns that the hook methods are deprecated). :data:`DECLARATIVE_CONNECTION_FORM` tells which.
- The connection list's Test button of Airflow 3.3.1 and 3.3.2 posts ``port: 0`` for a connection without a
  port and the API answers 400 "The host or port to test differs from the stored connection" before the hook
  runs (fixed in apache/airflow#73298, 3.4.0b2): :data:`TEST_BUTTON_REJECTS_PORTLESS` tells where.
- ``DagBag`` moved from ``airflow.models.dagbag`` (3.1) to ``airflow.dag_processing.dagbag`` (3.2+).
- A DAG's ``timetable`` in a task is Airflow core's ``Timetable`` on 3.1; from 3.2 it may be the Task SDK's
  definition, which cannot compute runs: :func:`core_timetable` turns it into the core one (as the DAG
  processor does when it serialises the DAG).
- Airflow 3.1 reads no CLI commands from a provider's ``get_provider_info()["cli"]`` (3.2+ does):
  :data:`PROVIDER_CLI` tells which; on 3.1 ``python -m airflow_provider_greenapi.cli`` runs the same commands.
"""

from __future__ import annotations

from typing import Any

from airflow import __version__ as AIRFLOW_VERSION
from packaging.version import Version

try:
    from airflow.sdk.exceptions import (
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSkipException,
        TaskDeferred,
    )
except ImportError:  # Airflow 3.1
    from airflow.exceptions import (  # type: ignore[no-redef]
        AirflowException,
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSkipException,
        TaskDeferred,
    )

try:
    from airflow.sdk.configuration import conf
except ImportError:  # Airflow 3.1
    from airflow.configuration import conf

AIRFLOW_LINE: tuple[int, int] = tuple(Version(AIRFLOW_VERSION).release[:2])  # type: ignore[assignment]
"""(major, minor) of the running Airflow, pre-releases included: 3.4.0b2 is (3, 4)."""

DECLARATIVE_CONNECTION_FORM = AIRFLOW_LINE >= (3, 2)
"""True where Airflow builds the connection form from the provider info's ``conn-fields``."""

TEST_BUTTON_REJECTS_PORTLESS = Version(AIRFLOW_VERSION).release[:3] >= (3, 3, 1) and AIRFLOW_LINE < (3, 4)
"""True where the UI's Test button fails for every GREEN-API connection (no port); the CLI test works."""

PROVIDER_CLI = AIRFLOW_LINE >= (3, 2)
"""True where ``airflow greenapi ...`` exists (Airflow registers the provider's ``cli`` commands)."""

__all__ = [
    "AIRFLOW_LINE",
    "AIRFLOW_VERSION",
    "DECLARATIVE_CONNECTION_FORM",
    "PROVIDER_CLI",
    "TEST_BUTTON_REJECTS_PORTLESS",
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSkipException",
    "TaskDeferred",
    "conf",
    "connection_reader",
    "core_timetable",
    "dag_bag",
    "legacy_connection_form_widgets",
    "legacy_ui_field_behaviour",
]


def dag_bag(dag_folder: str) -> Any:
    """Airflow's ``DagBag`` of ``dag_folder`` (tests and tools; never imported at DAG-parse time)."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    return DagBag(dag_folder=dag_folder)


def connection_reader() -> Any:
    """A FastAPI dependency of the API server: the request's user may read connections (Airflow's auth manager
    decides; 3.1's check is sync, 3.3's async, both take ``GET``). For the provider's UI view."""
    from airflow.api_fastapi.core_api.security import requires_access_connection

    return requires_access_connection("GET")


def core_timetable(timetable: Any) -> Any:
    """Airflow core's timetable for a DAG's ``timetable`` (SDK definition or core), None for None."""
    if timetable is None or hasattr(timetable, "next_dagrun_info"):
        return timetable
    try:
        from airflow.serialization.encoders import coerce_to_core_timetable
    except ImportError:  # a line with SDK timetables but no coerce helper: its (de)serialiser does the same
        from airflow.serialization.serialized_objects import decode_timetable, encode_timetable

        return decode_timetable(encode_timetable(timetable))
    return coerce_to_core_timetable(timetable)


def legacy_ui_field_behaviour(behaviour: dict[str, Any]) -> dict[str, Any]:
    """The provider info's ``ui-field-behaviour`` in the shape of the hook method 3.1 reads."""
    return {
        "hidden_fields": list(behaviour.get("hidden-fields", [])),
        "relabeling": dict(behaviour.get("relabeling", {})),
        "placeholders": dict(behaviour.get("placeholders", {})),
    }


def legacy_connection_form_widgets(conn_fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The provider info's ``conn-fields`` as the WTForms fields 3.1's ``get_connection_form_widgets`` returns.

    Airflow 3.1's form knows string and integer fields but no number type and no bounds: a ``number`` becomes
    a text field, and the hook checks what the user typed (the description says what is allowed). Each field
    stays optional and has no default, as in the declarative form: the hook applies the defaults, so a saved
    connection holds only what the user typed. The import is Airflow's to resolve: in a plain install its API
    server puts stand-ins for WTForms in place first.
    """
    from wtforms import IntegerField, StringField
    from wtforms.validators import Optional

    return {
        name: (IntegerField if "integer" in field["schema"]["type"] else StringField)(
            field["label"], validators=[Optional()], description=field["description"])
        for name, field in conn_fields.items()
    }
