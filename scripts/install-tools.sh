#!/usr/bin/env bash
# Installs the real programs the test suite drives: Debian's prometheus (prometheus, promtool) and
# prometheus-alertmanager (prometheus-alertmanager, amtool). Only as root; otherwise it says what is
# missing and the tests that need those programs fail loudly instead of skipping.
set -euo pipefail
missing=()
for bin in prometheus promtool prometheus-alertmanager amtool; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages prometheus and prometheus-alertmanager (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null
else
  echo "warning: missing ${missing[*]}; run as root or: sudo apt-get install prometheus prometheus-alertmanager" >&2
fi
