"""Fixtures that start real simulators on loopback port 0 and talk to them like a client would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from genesys_cloud_simulator import SimulatedGenesysCloud, SimulatorConfig
from sim_helpers import SimFactory


@pytest.fixture
async def make_sim() -> AsyncIterator[SimFactory]:
    started: list[SimulatedGenesysCloud] = []

    async def factory(**overrides: Any) -> SimulatedGenesysCloud:
        # A low heartbeat floor so cadence tests take fractions of a second.
        overrides.setdefault("min_heartbeat_seconds", 0.05)
        sim = SimulatedGenesysCloud(SimulatorConfig(**overrides))
        await sim.start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        await sim.stop()


@pytest.fixture
async def sim(make_sim: SimFactory) -> SimulatedGenesysCloud:
    return await make_sim()
