"""Which hosts count as this machine: the rule behind plain `http://`/`ws://` and the proxy bypass.

Its own module so the session cores can apply it without importing the settings (pydantic-settings
loads asyncio).
"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
