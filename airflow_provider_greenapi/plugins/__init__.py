"""Airflow plugins the provider ships (loaded through ``get_provider_info()["plugins"]``)."""
