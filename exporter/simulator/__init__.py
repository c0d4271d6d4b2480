"""A simulated Genesys Cloud (OAuth + analytics WebSocket) for the demo, the tests and the benchmarks."""

from exporter.simulator.config import SimulatorConfig
from exporter.simulator.scenarios import SCENARIOS, CallEvent, ScenarioEngine, label_for
from exporter.simulator.server import SimulatedGenesysCloud, serve_forever
from exporter.simulator.subscription import wire_event

__all__ = [
    "SCENARIOS",
    "CallEvent",
    "ScenarioEngine",
    "SimulatedGenesysCloud",
    "SimulatorConfig",
    "label_for",
    "serve_forever",
    "wire_event",
]
