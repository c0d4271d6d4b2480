"""A simulated Genesys Cloud (OAuth, Notifications API, analytics WebSocket) for the demo, the tests and the
benchmarks. A separate distribution: the shipped exporter never imports it."""

from genesys_cloud_simulator.config import SimulatorConfig
from genesys_cloud_simulator.scenarios import SCENARIOS, CallEvent, ScenarioEngine, label_for
from genesys_cloud_simulator.server import SimulatedGenesysCloud, serve_forever
from genesys_cloud_simulator.subscription import wire_event

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
