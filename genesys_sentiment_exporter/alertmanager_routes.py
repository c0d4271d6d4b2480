"""Per-queue Alertmanager routing from a small file, instead of editing routes by hand.

`alertmanager/queues.yml` says which supervisors' Slack channel hears about which Genesys queues,
by queue id and/or by a regular expression on the queue's name (the exporter exports names and the
rules put `queue_name` on every queue alert; while a name is unknown it equals the id). This module
writes the matching routes and receivers into `alertmanager/alertmanager.yml` between two marker
comments, leaving every other line as it is:

    python -m genesys_sentiment_exporter.alertmanager_routes            # rewrite alertmanager.yml
    python -m genesys_sentiment_exporter.alertmanager_routes --check    # exit 1 if it is stale

tests/bundle checks that the committed alertmanager.yml is what the committed queues.yml gives, and
routes every listed queue with amtool.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROUTES_BEGIN = "# BEGIN queue routes"
ROUTES_END = "# END queue routes"
RECEIVERS_BEGIN = "# BEGIN queue receivers"
RECEIVERS_END = "# END queue receivers"
NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
SLACK_TEMPLATES = ("title", "title_link", "text", "fallback", "color")


@dataclass(frozen=True)
class Team:
    receiver: str
    channel: str
    slack_url_file: str
    queue_ids: tuple[str, ...] = ()
    queue_name_regex: str = ""


@dataclass(frozen=True)
class QueueRouting:
    default: Team
    teams: tuple[Team, ...]


def _team(raw: Any, where: str, default: bool = False) -> Team:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping")
    allowed = {"receiver", "channel", "slack_url_file"} | (set() if default else {"queue_ids", "queue_name_regex"})
    unknown = set(raw) - allowed
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    receiver = str(raw.get("receiver", ""))
    if not NAME.match(receiver):
        raise ValueError(f"{where}: receiver {receiver!r} must be lower-case letters, digits and dashes")
    url_file = str(raw.get("slack_url_file", ""))
    if not url_file.startswith("secrets/") or ".." in url_file:
        raise ValueError(f"{where}: slack_url_file must be a file under secrets/ (webhook URLs are secrets)")
    ids = tuple(str(q) for q in raw.get("queue_ids") or ())
    regex = str(raw.get("queue_name_regex") or "")
    if regex:
        re.compile(regex)  # Alertmanager uses RE2; the common subset is checked by amtool in the tests
    if not default and not ids and not regex:
        raise ValueError(f"{where}: give queue_ids and/or queue_name_regex")
    return Team(receiver, str(raw.get("channel", "")), url_file, ids, regex)


def load(text: str) -> QueueRouting:
    raw = yaml.safe_load(text)
    if not isinstance(raw, dict) or "default" not in raw:
        raise ValueError("queues.yml: expected a mapping with `default` and `teams`")
    default = _team(raw["default"], "default", default=True)
    teams = tuple(_team(t, f"teams[{i}]") for i, t in enumerate(raw.get("teams") or ()))
    receivers = [default.receiver, *(t.receiver for t in teams)]
    if len(set(receivers)) != len(receivers):
        raise ValueError("queues.yml: receiver names must be unique")
    seen: dict[str, str] = {}
    for team in teams:
        for queue_id in team.queue_ids:
            if queue_id in seen:
                raise ValueError(f"queues.yml: queue {queue_id!r} is listed for {seen[queue_id]} and {team.receiver}")
            seen[queue_id] = team.receiver
    return QueueRouting(default, teams)


def _literal(value: str) -> str:
    """A queue id as an RE2 literal (ids are GUIDs; only regex metacharacters are escaped)."""
    return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", value)


def _quote(value: str) -> str:
    return json.dumps(value)  # a YAML double-quoted scalar


def _matcher(name: str, op: str, value: str) -> str:
    # Alertmanager's matcher syntax inside a YAML single-quoted string: name=~"value".
    inner = f"{name}{op}{_quote(value)}"
    return "'" + inner.replace("'", "''") + "'"


def routes_block(routing: QueueRouting, indent: str) -> list[str]:
    lines = []
    for team in routing.teams:
        if team.queue_ids:
            ids = "|".join(_literal(q) for q in team.queue_ids)
            lines += [
                f"{indent}- matchers: [{_matcher('queue_id', '=~', ids)}]",
                f"{indent}  receiver: {team.receiver}",
            ]
        if team.queue_name_regex:
            lines += [
                f"{indent}- matchers: [{_matcher('queue_name', '=~', team.queue_name_regex)}]",
                f"{indent}  receiver: {team.receiver}",
            ]
    lines += [
        f"{indent}# Every other queue: the shared supervisors channel. (Needed explicitly: once the",
        f"{indent}# PagerDuty route above has matched, the parent's receiver is no longer the fallback.)",
        f"{indent}- receiver: {routing.default.receiver}",
    ]
    return lines


def receivers_block(routing: QueueRouting, indent: str) -> list[str]:
    lines = []
    for team in (routing.default, *routing.teams):
        lines += [
            f"{indent}- name: {team.receiver}",
            f"{indent}  slack_configs:",
            f"{indent}    - api_url_file: {team.slack_url_file}",
        ]
        if team.channel:
            lines.append(f"{indent}      channel: {_quote(team.channel)}")
        lines.append(f"{indent}      send_resolved: true")
        for field in SLACK_TEMPLATES:
            lines.append(f"{indent}      {field}: '{{{{ template \"genesys.slack.{field}\" . }}}}'")
        lines.append("")
    return lines[:-1]


def _splice(text: str, begin: str, end: str, make: Any) -> str:
    pattern = re.compile(rf"^([ \t]*){re.escape(begin)}.*?\n(.*?)^[ \t]*{re.escape(end)}.*?$", re.M | re.S)
    match = pattern.search(text)
    if match is None:
        raise ValueError(f"alertmanager.yml has no '{begin}' ... '{end}' block")
    indent = match.group(1)
    head = text[: match.start()] + text[match.start() : match.start(2)]
    body = "\n".join(make(indent)) + "\n"
    return head + body + text[match.end(2) :]


def render(alertmanager_yml: str, queues_yml: str) -> str:
    routing = load(queues_yml)
    text = _splice(alertmanager_yml, ROUTES_BEGIN, ROUTES_END, lambda i: routes_block(routing, i))
    return _splice(text, RECEIVERS_BEGIN, RECEIVERS_END, lambda i: receivers_block(routing, i))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--queues", type=Path, default=Path("alertmanager/queues.yml"))
    parser.add_argument("--config", type=Path, default=Path("alertmanager/alertmanager.yml"))
    parser.add_argument("--check", action="store_true", help="exit 1 if the config is not what the queues give")
    args = parser.parse_args(argv)
    try:
        current = args.config.read_text(encoding="utf-8")
        rendered = render(current, args.queues.read_text(encoding="utf-8"))
    except (OSError, ValueError, re.error, yaml.YAMLError) as exc:
        print(f"alertmanager_routes: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if rendered != current:
            print(
                f"{args.config} is stale: run python -m genesys_sentiment_exporter.alertmanager_routes", file=sys.stderr
            )
            return 1
        return 0
    args.config.write_text(rendered, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
