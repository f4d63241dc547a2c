"""The GREEN-API methods the emulator serves, and the HTTP verb each answers to."""

from __future__ import annotations

CHECK_WHATSAPP = "checkWhatsapp"
GET_STATE_INSTANCE = "getStateInstance"
GET_SETTINGS = "getSettings"
API_METHODS: dict[str, str] = {CHECK_WHATSAPP: "POST", GET_STATE_INSTANCE: "GET", GET_SETTINGS: "GET"}
"""Method name -> the HTTP verb it answers to; any other verb is a 404."""


def canonical_method(name: str) -> str:
    """GREEN-API spells method names both ways (``CheckWhatsapp``/``checkWhatsapp``); keep one."""
    return name[:1].lower() + name[1:]
