"""Strict reading of JSON objects: a typo in a config file or control call is an error, not a no-op."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def reject_unknown_keys(data: Mapping[str, Any], allowed: Iterable[str], what: str) -> None:
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} must be a JSON object")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {what} field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
