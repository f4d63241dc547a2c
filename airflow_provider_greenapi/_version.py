"""The provider's version, read from its installed distribution: pyproject.toml's ``version`` is the one place
it is written (the release workflow checks that the tag matches it)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("airflow-provider-greenapi")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
