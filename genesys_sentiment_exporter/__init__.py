"""Genesys Cloud CX real-time agent sentiment exporter for Prometheus."""

__version__ = "0.1.0"
