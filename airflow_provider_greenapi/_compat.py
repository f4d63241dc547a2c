"""Every difference between the Airflow lines this provider supports (2.11, 3.0, 3.1, 3.2, 3.3, 3.4), in one place.

Import what differs from here, never from ``airflow`` directly. The task-side names that moved between Airflow 2
and 3 (``BaseHook``, ``BaseOperator``, ``BaseSensorOperator``, ``PokeReturnValue``, ``Context``, ``Asset`` (a
``Dataset`` on 2.x), the task exceptions, ``conf``, ``mask_secret``) come from the community's map,
``apache-airflow-providers-common-compat``'s ``sdk`` module, as the http and common-sql providers import them;
what that map does not cover is below. ``airflow.triggers.base`` is the same path on every line.

- Airflow 2.11 has no ``airflow.sdk``; its assets are ``airflow.datasets.Dataset(uri, extra)`` (no ``name`` or
  ``group``): :func:`make_asset` builds the right one. A task's context names the triggering events
  ``triggering_dataset_events`` there (``triggering_asset_events`` on 3.x).
- A DAG run's ``run_after`` (when a scheduled run is due) exists from 3.0; on 2.11 it is the end of the run's
  data interval: :func:`dag_run_after`.
- Airflow 2.11, 3.0 and 3.1 read the connection form only from the hook methods
  ``get_connection_form_widgets`` / ``get_ui_field_behaviour`` (2.11 renders them with Flask-AppBuilder's
  widgets); 3.2+ reads ``conn-fields`` / ``ui-field-behaviour`` from the provider info (and warns that the
  hook methods are deprecated). :data:`DECLARATIVE_CONNECTION_FORM` tells which.
- The connection list's Test button of Airflow 3.3.1 and 3.3.2 posts ``port: 0`` for a connection without a
  port and the API answers 400 "The host or port to test differs from the stored connection" before the hook
  runs (fixed in apache/airflow#73298, 3.4.0b2): :data:`TEST_BUTTON_REJECTS_PORTLESS` tells where.
- ``DagBag`` moved from ``airflow.models.dagbag`` (2.11-3.1) to ``airflow.dag_processing.dagbag`` (3.2+).
- A DAG's ``timetable`` in a task is Airflow core's ``Timetable`` up to 3.1; from 3.2 it may be the Task SDK's
  definition, which cannot compute runs: :func:`core_timetable` turns it into the core one (as the DAG
  processor does when it serialises the DAG).
- Airflow 2.11 to 3.1 read no CLI commands from a provider's ``get_provider_info()["cli"]`` (3.2+ does):
  :data:`PROVIDER_CLI` tells which; on every line the ``greenapi`` console script (or ``python -m
  airflow_provider_greenapi.cli``) runs the same commands.
- The quota view is a FastAPI app shown through an external view: both exist from 3.1 (:data:`QUOTA_VIEW`);
  on 2.11 and 3.0 the plugin registers no view and the CLI reports the same month.
"""

from __future__ import annotations

from typing import Any

from airflow import __version__ as AIRFLOW_VERSION
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
    AirflowSkipException,
    Asset,
    BaseHook,
    BaseOperator,
    BaseSensorOperator,
    Context,
    PokeReturnValue,
    TaskDeferred,
    conf,
    mask_secret,
)
from packaging.version import Version

AIRFLOW_LINE: tuple[int, int] = tuple(Version(AIRFLOW_VERSION).release[:2])  # type: ignore[assignment]
"""(major, minor) of the running Airflow, pre-releases included: 3.4.0b2 is (3, 4)."""

AIRFLOW_V_3_0_PLUS = AIRFLOW_LINE >= (3, 0)
"""True on Airflow 3 (the Task SDK, Assets, ``run_after``); False on 2.11."""

DECLARATIVE_CONNECTION_FORM = AIRFLOW_LINE >= (3, 2)
"""True where Airflow builds the connection form from the provider info's ``conn-fields``."""

TEST_BUTTON_REJECTS_PORTLESS = Version(AIRFLOW_VERSION).release[:3] >= (3, 3, 1) and AIRFLOW_LINE < (3, 4)
"""True where the UI's Test button fails for every GREEN-API connection (no port); the CLI test works."""

PROVIDER_CLI = AIRFLOW_LINE >= (3, 2)
"""True where ``airflow greenapi ...`` exists (Airflow registers the provider's ``cli`` commands)."""

QUOTA_VIEW = AIRFLOW_LINE >= (3, 1)
"""True where the plugin's quota page exists (FastAPI apps and external views: 3.1+)."""

TRIGGERING_EVENTS = "triggering_asset_events" if AIRFLOW_V_3_0_PLUS else "triggering_dataset_events"
"""The context key of the asset (2.x: dataset) events that triggered a run."""

__all__ = [
    "AIRFLOW_LINE",
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3_0_PLUS",
    "DECLARATIVE_CONNECTION_FORM",
    "PROVIDER_CLI",
    "QUOTA_VIEW",
    "TEST_BUTTON_REJECTS_PORTLESS",
    "TRIGGERING_EVENTS",
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSkipException",
    "Asset",
    "BaseHook",
    "BaseOperator",
    "BaseSensorOperator",
    "Context",
    "PokeReturnValue",
    "TaskDeferred",
    "conf",
    "connection_reader",
    "core_timetable",
    "dag_bag",
    "dag_run_after",
    "legacy_connection_form_widgets",
    "legacy_ui_field_behaviour",
    "make_asset",
    "mask_secret",
]


def make_asset(*, name: str, uri: str, group: str) -> Any:
    """An ``Asset`` (3.x) named ``name`` in ``group``; on 2.11 the ``Dataset`` of ``uri`` (2.x datasets have
    only a URI, so ``name`` and ``group`` are dropped there). Scheduling on it and its events work alike."""
    if AIRFLOW_V_3_0_PLUS:
        return Asset(name=name, uri=uri, group=group)
    return Asset(uri)


def dag_run_after(dag_run: Any) -> Any:
    """When ``dag_run`` was due to run: its ``run_after`` (3.x); on 2.11 a scheduled run is due at the end of
    its data interval, which is what 3.x calls ``run_after``. None without a run."""
    if dag_run is None:
        return None
    run_after = getattr(dag_run, "run_after", None)
    if run_after is not None:
        return run_after
    return getattr(dag_run, "data_interval_end", None) or getattr(dag_run, "logical_date", None)


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
    """The provider info's ``conn-fields`` as the WTForms fields ``get_connection_form_widgets`` returns on
    2.11-3.1.

    Those forms know string and integer fields but no number type and no bounds: a ``number`` becomes a text
    field, and the hook checks what the user typed (the description says what is allowed). Each field stays
    optional and has no default, as in the declarative form: the hook applies the defaults, so a saved
    connection holds only what the user typed. Airflow 2.11's Flask-AppBuilder form draws a field with the
    widget it names (Bootstrap's text input, as the http provider's fields); 3.1's React form ignores widgets.
    The import is Airflow's to resolve: in a plain 3.1 install its API server puts stand-ins for WTForms in
    place first. A plain 3.0 install has neither, and 3.0's provider manager imports WTForms itself before it
    asks any hook: there no provider's form has its fields or labels until ``pip install wtforms``.
    """
    from wtforms import IntegerField, StringField
    from wtforms.validators import Optional

    widget: dict[str, Any] = {}
    if not AIRFLOW_V_3_0_PLUS:
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget

        widget = {"widget": BS3TextFieldWidget()}
    return {
        name: (IntegerField if "integer" in field["schema"]["type"] else StringField)(
            field["label"], validators=[Optional()], description=field["description"], **widget)
        for name, field in conn_fields.items()
    }
