"""Shared constants and the HTTP helper of the emulator suite."""

from __future__ import annotations

from typing import Any

import requests

from airflow_provider_greenapi.emulator import GreenApiEmulator

ID = "1101000001"
TOKEN = "test-token-5f2b9c"


class Api:
    """Calls to one emulated instance through a keep-alive session."""

    def __init__(self, emulator: GreenApiEmulator, id_instance: str = ID, token: str = TOKEN) -> None:
        self.emulator = emulator
        self.id_instance = id_instance
        self.token = token
        self.session = requests.Session()
        self.session.trust_env = False

    def url(self, method: str, *, id_instance: str | None = None, token: str | None = None) -> str:
        id_instance = id_instance or self.id_instance
        token = self.token if token is None else token
        return f"{self.emulator.base_url}/waInstance{id_instance}/{method}/{token}"

    def check(self, payload: Any = None, **kwargs: Any) -> requests.Response:
        """POST checkWhatsapp with ``payload`` as JSON (``data=``/``headers=`` for raw bodies)."""
        if payload is not None:
            kwargs["json"] = payload
        return self.session.post(self.url("checkWhatsapp"), timeout=5, **kwargs)

    def state(self) -> requests.Response:
        return self.session.get(self.url("getStateInstance"), timeout=5)

    def control(self, verb: str, route: str, payload: Any = None) -> requests.Response:
        url = f"{self.emulator.base_url}/__emulator__/{route}"
        return self.session.request(verb, url, json=payload, timeout=5)
