"""Fixtures of the emulator suite: a running emulator (rate limits off) and a small HTTP helper."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_greenapi.emulator import EmulatedInstance, GreenApiEmulator
from tests.emulator.support import ID, TOKEN, Api


@pytest.fixture
def emu() -> Iterator[GreenApiEmulator]:
    """A business-plan instance with the rate limits off, so tests can call as fast as they like."""
    with GreenApiEmulator([EmulatedInstance(ID, TOKEN, plan="business")], rate_limits=None) as emulator:
        yield emulator


@pytest.fixture
def api(emu: GreenApiEmulator) -> Iterator[Api]:
    helper = Api(emu)
    yield helper
    helper.session.close()
