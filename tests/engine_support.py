"""What the tests and the benchmarks know of the warehouse engines, in one place: their names, their
placeholders, and how to tell the provider's refusal of an engine it does not support from a failure."""

from __future__ import annotations

import importlib.util
import re

ENGINES = ("sqlite", "postgres", "duckdb", "mysql", "snowflake")
PLACEHOLDERS = {"sqlite": "?", "duckdb": "?", "postgres": "%s", "mysql": "%s", "snowflake": "%s"}
_REFUSAL = re.compile(r"supported (?:warehouses|engines) are[^\n]*")


def installed(module: str) -> bool:
    """Whether ``module`` (an engine's driver or provider) can be imported here."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a missing parent package
        return False


def refusal(output: str, engine: str) -> str | None:
    """The provider's refusal of ``engine`` as a warehouse in ``output`` (its message lists the engines it
    supports, and ``engine`` is not among them), or None."""
    found = _REFUSAL.search(output)
    return found.group(0) if found and engine not in found.group(0).split(" are ", 1)[1] else None
