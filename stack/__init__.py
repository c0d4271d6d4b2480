"""The genesys-sentiment stack without Docker: `python -m stack up` (see stack/launcher.py).

The launcher (and PyYAML with it) is imported on first use, not here: docker-compose.yml runs
`python -m stack.receiver` in a stock `python:3.11-slim` image that holds the standard library
only, and importing this package must not pull in anything else (tests/bundle/test_compose_services.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stack.launcher import Stack, StackError, StackOptions, running_stack

__all__ = ["Stack", "StackError", "StackOptions", "running_stack"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from stack import launcher

        return getattr(launcher, name)
    raise AttributeError(f"module 'stack' has no attribute {name!r}")
