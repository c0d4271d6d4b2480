"""The genesys-sentiment stack without Docker: `python -m stack up` (see stack/launcher.py)."""

from stack.launcher import Stack, StackError, StackOptions, running_stack

__all__ = ["Stack", "StackError", "StackOptions", "running_stack"]
