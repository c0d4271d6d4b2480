"""Make Grafana's admin password once: a random one, written only when the file is missing or empty.

docker-compose.yml runs this as a one-shot service before Grafana, which reads the file through
GF_SECURITY_ADMIN_PASSWORD__FILE: a fresh stack never serves admin/admin, and a password an operator
wrote there (or a restarted stack's) is kept. Standard library only: it runs in a stock Python image.

    python -m stack.grafana_secret /run/grafana-secrets/admin_password --owner 472:0
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path


def ensure_password(path: Path, owner: tuple[int, int] | None = None) -> bool:
    """Write a random password to `path` unless it already holds one. True when one was written."""
    if path.is_file() and path.read_text().strip():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o400)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(24))
    if owner is not None:
        os.chown(path, *owner)  # Grafana's image runs as 472:0 and must read it
    os.chmod(path, 0o400)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.grafana_secret", description=__doc__)
    parser.add_argument("path", type=Path)
    parser.add_argument("--owner", default=None, help="UID:GID to own the file (Grafana's user)")
    args = parser.parse_args(argv)
    owner = None
    if args.owner:
        uid, _, gid = args.owner.partition(":")
        owner = (int(uid), int(gid or 0))
    try:
        written = ensure_password(args.path, owner)
    except OSError as err:
        print(f"grafana_secret: cannot write {args.path}: {err.strerror}", file=sys.stderr)
        return 1
    # The password itself is never printed: it would land in `docker compose logs`.
    print(f"Grafana admin password {'created' if written else 'kept'} in {args.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
