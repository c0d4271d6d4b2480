#!/usr/bin/env bash
# Creates .venv with the project and its dev tools. On a fresh Debian, python3 may lack venv/ensurepip
# (package python3-venv): installed here when running as root.
set -euo pipefail
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  else
    echo "error: $PYTHON has no venv module; install python3-venv" >&2
    exit 1
  fi
fi
"$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]' -e ./simulator
touch .venv/.installed
