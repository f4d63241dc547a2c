"""Sensors of the GREEN-API provider."""

from __future__ import annotations

from airflow_provider_greenapi.sensors.instance_state import (
    GreenApiInstanceStateError,
    GreenApiInstanceStateSensor,
)

__all__ = ["GreenApiInstanceStateError", "GreenApiInstanceStateSensor"]
