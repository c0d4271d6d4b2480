"""Shared fixtures for the exporter tests: a clean environment and simulators on loopback port 0."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from genesys_cloud_simulator import SimulatedGenesysCloud, SimulatorConfig

# Names pydantic-settings could read into Settings (prefixed, credential aliases, bare field aliases).
_SETTINGS_ENV = ("GENESYS_EXPORTER_", "GENESYSCLOUD_")
_BARE_ALIASES = {"CLIENT_ID", "CLIENT_SECRET", "REGION"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting leaks in from the developer's or the CI's environment."""
    for name in list(os.environ):
        upper = name.upper()
        if upper.startswith(_SETTINGS_ENV) or upper in _BARE_ALIASES or "PROXY" in upper:
            monkeypatch.delenv(name)


SimFactory = Callable[..., Awaitable[SimulatedGenesysCloud]]


@pytest.fixture
async def start_sim() -> AsyncIterator[SimFactory]:
    """Start simulators with SimulatorConfig overrides; every one is stopped at teardown."""
    started: list[SimulatedGenesysCloud] = []

    async def factory(**overrides: Any) -> SimulatedGenesysCloud:
        sim = SimulatedGenesysCloud(SimulatorConfig(**overrides))
        await sim.start("127.0.0.1", 0)
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        await sim.stop()
