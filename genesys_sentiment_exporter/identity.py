"""How an agent is named in what leaves the process: `plain`, `pseudonymous` or `none`.

Works councils and data-protection officers in Europe often accept live sentiment monitoring only
if the monitoring system does not name employees. The exporter still needs the real user id in
memory (it subscribes to `v2.users.{id}.conversations` and attributes calls by it), so the mode is
applied where an agent's series get their labels, once per agent, not per message:

- `plain`: the Genesys user id, as the platform gives it.
- `pseudonymous`: `p-` + the first 20 hex digits of HMAC-SHA256(key, user id). The key comes from a
  file the operator keeps (a Kubernetes Secret), so the pseudonym is stable across restarts and
  replicas (same key, same pseudonym: the rules fold replicas together and alerts keep their
  identity), and cannot be turned back into a user id without the key: the id space is not
  enumerable from the outside and a keyed hash cannot be brute-forced without the key. Whoever
  holds the key (HR, the works council) can re-identify an agent by hashing a known id.
- `none`: no per-agent series at all; the exporter serves per-queue aggregates only.

Agent names are never exported unless the mode is `plain` (a name would undo the pseudonym).
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Literal

IdentityMode = Literal["plain", "pseudonymous", "none"]

MIN_KEY_BYTES = 16
PSEUDONYM_PREFIX = "p-"
PSEUDONYM_HEX_DIGITS = 20  # 80 bits: no collision among any realistic number of agents


def read_key(path: Path) -> bytes:
    """The pseudonymisation key: the file's bytes, surrounding whitespace removed.

    Raises ValueError with a message that names the file's problem but never its content.
    """
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ValueError(f"agent_identity_key_file: cannot read it ({exc.strerror})") from None
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(
            f"agent_identity_key_file: the key must be at least {MIN_KEY_BYTES} bytes "
            "(e.g. `head -c 32 /dev/urandom | base64 > key`)"
        )
    return key


class AgentIdentity:
    """Maps a platform user id to the value of the `agent_id` label."""

    def __init__(self, mode: IdentityMode = "plain", key: bytes = b"") -> None:
        if mode == "pseudonymous" and len(key) < MIN_KEY_BYTES:
            raise ValueError(f"pseudonymous identities need a key of at least {MIN_KEY_BYTES} bytes")
        self.mode: IdentityMode = mode
        self._key = key

    @property
    def per_agent_series(self) -> bool:
        """False in `none` mode: only per-queue aggregates are exported."""
        return self.mode != "none"

    @property
    def names_allowed(self) -> bool:
        """Agent names may be exported only next to plain ids."""
        return self.mode == "plain"

    def label(self, agent_id: str) -> str:
        if self.mode == "plain":
            return agent_id
        digest = hmac.new(self._key, agent_id.encode("utf-8"), hashlib.sha256).hexdigest()
        return PSEUDONYM_PREFIX + digest[:PSEUDONYM_HEX_DIGITS]

    def __repr__(self) -> str:  # the key never shows in a traceback or a log line
        return f"AgentIdentity(mode={self.mode!r})"
