"""Turn the shipped configuration files into the ones the stack runs, changing as little as possible.

docker-compose.yml runs prometheus/prometheus.yml and alertmanager/alertmanager.yml as they are,
except one line (global.pagerduty_url, which PagerDuty offers no *_file for), rewritten by `sed`
in the alertmanager service. The stack without Docker (`python -m stack up`) does the same with
the functions below, and also has to replace the compose service names by loopback addresses.
tests/bundle checks that nothing else differs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

# Compose service addresses written in prometheus/prometheus.yml -> the stack component they mean.
COMPOSE_TARGETS: Mapping[str, str] = {
    "exporter:8729": "exporter",
    "alertmanager:9093": "alertmanager",
    "localhost:9090": "prometheus",
}

# Flags both docker-compose.yml and the stack give the binaries (tests/bundle checks compose).
PROMETHEUS_FLAGS: tuple[str, ...] = (
    # Re-send firing alerts every 10 s (default 1 m): an Alertmanager that missed the first send
    # (restarting, or not up yet) learns about a paging alert within 10 s.
    "--rules.alert.resend-delay=10s",
)
ALERTMANAGER_FLAGS: tuple[str, ...] = (
    # A single Alertmanager: no gossip port (it would listen on 0.0.0.0:9094 otherwise).
    "--cluster.listen-address=",
)

# The Slack webhook / PagerDuty key files alertmanager/alertmanager.yml reads, and what the demo
# puts in them: Slack files hold the receiver URL of a channel, PagerDuty files a routing key.
SLACK_SECRET_CHANNELS: Mapping[str, str] = {
    "slack_oncall_url": "genesys-sentiment-oncall",
    "slack_supervisors_url": "cx-supervisors",
    "slack_billing_supervisors_url": "cx-billing-supervisors",
    "slack_support_supervisors_url": "cx-support-supervisors",
    # Not a Slack channel: the dead man's switch's heartbeat URL, posted through slack_configs
    # (alertmanager.yml explains why); the receiver records it as channel "heartbeat".
    "heartbeat_url": "heartbeat",
}
PAGERDUTY_SECRET_KEYS: Mapping[str, str] = {
    "pagerduty_platform_routing_key": "demo-platform-routing-key",
    "pagerduty_contact_centre_routing_key": "demo-contact-centre-routing-key",
}
SECRETS_DIR = "secrets"

# The one line of alertmanager.yml the demo changes (docker-compose.yml uses the same pattern in sed).
PAGERDUTY_URL_LINE = re.compile(r"^  pagerduty_url: .*$", re.MULTILINE)


class RenderError(ValueError):
    """The shipped configuration no longer has the shape the stack expects."""


def render_prometheus_config(
    text: str,
    addresses: Mapping[str, str | Sequence[str]],
    config_dir: Path,
) -> dict[str, Any]:
    """prometheus.yml with compose targets replaced and rule_files made absolute.

    `config_dir` is the directory of the shipped prometheus.yml (rule_files are relative to it).

    `addresses` maps a component name ("exporter", "alertmanager", "prometheus") to HOST:PORT, or to
    several (replicas: two exporters, a clustered Alertmanager pair), each becoming a target.
    Any target that is not a known compose address is an error: a new target in prometheus.yml
    must be taught to the stack, not silently scraped at a compose host name that does not resolve.
    """
    config = yaml.safe_load(text)
    if not isinstance(config, dict):
        raise RenderError("prometheus.yml is not a mapping")

    def local(target: str) -> list[str]:
        component = COMPOSE_TARGETS.get(target)
        if component is None:
            raise RenderError(f"prometheus.yml target {target!r} is not one the stack knows: {sorted(COMPOSE_TARGETS)}")
        address = addresses[component]
        return [address] if isinstance(address, str) else list(address)

    for scrape in config.get("scrape_configs") or []:
        for static in scrape.get("static_configs") or []:
            static["targets"] = [a for t in static.get("targets") or [] for a in local(t)]
    for am in (config.get("alerting") or {}).get("alertmanagers") or []:
        for static in am.get("static_configs") or []:
            static["targets"] = [a for t in static.get("targets") or [] for a in local(t)]

    rule_files = config.get("rule_files") or []
    config["rule_files"] = [str(config_dir / pattern) for pattern in rule_files]
    return config


def render_alertmanager_config(text: str, pagerduty_url: str) -> str:
    """alertmanager.yml with global.pagerduty_url replaced (text substitution, like the compose sed)."""
    rendered, count = PAGERDUTY_URL_LINE.subn(f"  pagerduty_url: {pagerduty_url}", text)
    if count != 1:
        raise RenderError(f"expected exactly one global pagerduty_url line in alertmanager.yml, found {count}")
    return rendered


def demo_secrets(receiver_url: str) -> dict[str, str]:
    """File name -> content of the demo secrets, for a receiver reachable at `receiver_url`."""
    base = receiver_url.rstrip("/")
    files = {name: f"{base}/slack/{channel}\n" for name, channel in SLACK_SECRET_CHANNELS.items()}
    files.update({name: f"{key}\n" for name, key in PAGERDUTY_SECRET_KEYS.items()})
    return files
