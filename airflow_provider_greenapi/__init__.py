"""Apache Airflow provider for GREEN-API, the HTTP gateway to WhatsApp."""

from __future__ import annotations

from airflow_provider_greenapi._version import __version__
from airflow_provider_greenapi.provider_info import get_provider_info

__all__ = ["__version__", "get_provider_info"]
