"""Pytest fixtures for the emulator.

Enable them with ``pytest_plugins = ["airflow_provider_greenapi.emulator.pytest_plugin"]`` in a conftest.py.

``greenapi_emulator``: a running emulator with the default instance and GREEN-API's real rate limits.
``make_greenapi_emulator(**kwargs)``: start emulators with any :class:`GreenApiEmulator` arguments; all
are stopped at the end of the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_greenapi.emulator.server import GreenApiEmulator


@pytest.fixture
def make_greenapi_emulator() -> Iterator[Callable[..., GreenApiEmulator]]:
    started: list[GreenApiEmulator] = []

    def make(**kwargs: Any) -> GreenApiEmulator:
        emulator = GreenApiEmulator(**kwargs).start()
        started.append(emulator)
        return emulator

    yield make
    for emulator in started:
        emulator.stop()


@pytest.fixture
def greenapi_emulator(make_greenapi_emulator: Callable[..., GreenApiEmulator]) -> GreenApiEmulator:
    return make_greenapi_emulator()
