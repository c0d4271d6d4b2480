"""Each source's session core imports no I/O: no asyncio, aiohttp, httpx or websockets, however deep.

Every module is imported in a fresh interpreter, since this test process has all of them loaded
already. `time` cannot be checked the same way (the standard library's own `logging` loads it), so
the core modules' own imports are read from their source instead: a core is handed `now`, it never
reads a clock.
"""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

CORES = [
    "genesys_sentiment_exporter.sources.notifications_session",
    "genesys_sentiment_exporter.sources.notifications_protocol",
    "genesys_sentiment_exporter.sources.transcription_protocol",
    "genesys_sentiment_exporter.sources.analytics_session",
    "genesys_sentiment_exporter.sources.analytics_protocol",
    "genesys_sentiment_exporter.sources.dedup",
    "genesys_sentiment_exporter.families",
]
IO_MODULES = ("asyncio", "aiohttp", "httpx", "websockets")


def io_loaded_by(module: str) -> list[str]:
    probe = (
        f"import sys, importlib; importlib.import_module({module!r}); "
        f"print(' '.join(m for m in {IO_MODULES!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.split()


def own_imports(module: str) -> set[str]:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", CORES)
def test_core_loads_no_io_library(module: str) -> None:
    assert io_loaded_by(module) == [], f"{module} pulls in an I/O library"


@pytest.mark.parametrize("module", CORES)
def test_core_reads_no_clock(module: str) -> None:
    assert not own_imports(module) & {"time", *IO_MODULES}, module


def test_probe_sees_an_io_import() -> None:
    """Negative control: the probe does report a module that loads asyncio (the shell)."""
    assert "asyncio" in io_loaded_by("genesys_sentiment_exporter.sources.supervisor")
    assert "time" in own_imports("genesys_sentiment_exporter.sources.notifications")
