"""Triggers of the GREEN-API provider (run in Airflow's triggerer for deferrable sensors)."""

from __future__ import annotations

from airflow_provider_greenapi.triggers.instance_state import GreenApiInstanceStateTrigger

__all__ = ["GreenApiInstanceStateTrigger"]
