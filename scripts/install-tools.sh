#!/usr/bin/env bash
# Installs the real programs the test suite drives: Debian's prometheus (prometheus, promtool),
# prometheus-alertmanager (prometheus-alertmanager, amtool), espeak-ng (the simulator speaks AudioHook
# audio with it), and Node.js with npm (the dashboards are
# type-checked against Grafana's published @grafana/schema with TypeScript). Packages only as root;
# otherwise it says what is missing, and the tests that need those programs fail loudly, never skip.
#
#   scripts/install-tools.sh          everything the test suite needs
#   scripts/install-tools.sh stack    only what `make stack` runs: prometheus and prometheus-alertmanager
set -euo pipefail
cd "$(dirname "$0")/.."
scope="${1:-all}"
pairs="prometheus:prometheus promtool:prometheus prometheus-alertmanager:prometheus-alertmanager amtool:prometheus-alertmanager"
case "$scope" in
  stack) ;;
  all) pairs="$pairs node:nodejs npm:npm espeak-ng:espeak-ng" ;;
  *) echo "usage: $0 [all|stack]" >&2; exit 2 ;;
esac
missing=()
packages=()
for pair in $pairs; do
  bin=${pair%%:*}
  package=${pair#*:}
  if ! command -v "$bin" >/dev/null 2>&1; then
    missing+=("$bin")
    case " ${packages[*]-} " in *" $package "*) ;; *) packages+=("$package") ;; esac
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages ${packages[*]} (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  else
    echo "warning: missing ${missing[*]}; as root run: apt-get install ${packages[*]}" >&2
  fi
fi
[ "$scope" = stack ] && exit 0
# The TypeScript project that checks the dashboards: installed once from the lock file.
schema=tests/bundle/grafana_schema
if command -v npm >/dev/null 2>&1 && [ ! -d "$schema/node_modules/@grafana/schema" ]; then
  (cd "$schema" && npm ci --no-audit --no-fund --loglevel=error)
fi
# The Prometheus Operator schemas the Kubernetes objects are validated against (tests/deploy).
operator_schema=tests/deploy/operator_schema
if command -v npm >/dev/null 2>&1 && [ ! -d "$operator_schema/node_modules/@kubernetes-models/prometheus-operator" ]; then
  (cd "$operator_schema" && npm ci --no-audit --no-fund --loglevel=error)
fi
