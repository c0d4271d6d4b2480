"""python -m stack {up,down,status}: the docker-compose topology on loopback ports, without Docker."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from stack.launcher import (
    DEFAULT_PORTS,
    DEFAULT_RUN_DIR,
    DEMO_UI_URL,
    START_ORDER,
    Stack,
    StackError,
    StackOptions,
    http_get,
)


def useful_urls(stack: Stack) -> list[str]:
    """The pages to open, as they exist on Debian's builds: Debian's prometheus serves only the
    classic UI (`/alerts` is a 404 there, `/classic/alerts` works) and Debian's alertmanager has no
    web UI at all (its `/` says so): its API and amtool stand in."""
    am = stack.alertmanager_url
    return [
        f"  what Slack and PagerDuty received: {stack.receiver_url}/messages",
        f"  exporter metrics:                  {stack.exporter_url}/metrics",
        f"  Prometheus alerts:                 {stack.prometheus_url}/classic/alerts",
        f"  Prometheus graph:                  {stack.prometheus_url}/classic/graph",
        f"  Alertmanager (no web UI in Debian's package): {am}/api/v2/alerts",
        f"      or: amtool --alertmanager.url={am} alert query",
    ]


def _up(args: argparse.Namespace) -> int:
    ports = dict(DEFAULT_PORTS)
    for name in START_ORDER:
        value = getattr(args, f"{name}_port")
        if value is not None:
            ports[name] = value
    options = StackOptions(
        run_dir=args.run_dir,
        ports=ports,
        seed=args.seed,
        ui_url=args.ui_url,
        exporter_command=args.exporter_command.split() if args.exporter_command else None,
        exporter_args=args.exporter_args,
        start_timeout=args.timeout,
    )
    stack = Stack(options)
    try:
        stack.start()
    except StackError as err:
        print(f"stack: {err}", file=sys.stderr)
        return 1

    print("genesys-sentiment stack is up:")
    for name in START_ORDER:
        print(f"  {name:<13} {stack.url(name)}   (log: {stack.components[name].log_path})")
    for line in useful_urls(stack):
        print(line)

    if args.detach:
        stack.detach()
        print(f"Running in the background. Stop it with: python -m stack down --run-dir {stack.run_dir}")
        return 0

    print("Ctrl-C stops everything.")
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    try:
        while not stopping:
            dead = stack.dead_components()
            if dead:
                print(
                    f"stack: {', '.join(dead)} exited; stopping the rest (see logs in {stack.run_dir / 'logs'})",
                    file=sys.stderr,
                )
                code = 1
                break
            time.sleep(0.5)
    finally:
        stack.stop()
        print("stack stopped.")
    return code


def _down(args: argparse.Namespace) -> int:
    stopped = Stack.stop_detached(args.run_dir)
    print("stopped: " + ", ".join(stopped) if stopped else f"nothing running from {args.run_dir}")
    return 0


def _status(args: argparse.Namespace) -> int:
    state = Stack.read_state(args.run_dir)
    running = Stack.running_state(args.run_dir)
    if not state or not running:
        print(f"no stack running from {args.run_dir}")
        return 1
    health = {}
    for name, url in state["urls"].items():
        path = "/-/healthy"
        try:
            health[name] = {"url": url, "pid": running.get(name), "healthy": http_get(url + path)[0] == 200}
        except OSError:
            health[name] = {"url": url, "pid": running.get(name), "healthy": False}
    print(json.dumps(health, indent=2))
    return 0 if all(h["healthy"] and h["pid"] for h in health.values()) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the stack (foreground unless --detach)")
    up.add_argument("--detach", action="store_true", help="leave it running in the background")
    up.add_argument("--seed", type=int, default=None, help="demo seed passed to the exporter")
    up.add_argument(
        "--ui-url",
        default=DEMO_UI_URL,
        help=f"Genesys Cloud web app the demo's alerts link agents and calls to (default {DEMO_UI_URL}; "
        "your region's https://apps.{{domain}})",
    )
    for name in START_ORDER:
        up.add_argument(
            f"--{name}-port",
            type=int,
            default=None,
            help=f"port for {name} (default {DEFAULT_PORTS[name]}; 0 = any free port)",
        )
    up.add_argument(
        "--exporter-command",
        default=None,
        help="replace `python -m genesys_sentiment_exporter demo` (split on spaces; --web.listen-address is appended)",
    )
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each component")
    up.add_argument("exporter_args", nargs="*", help="extra exporter arguments (after --)")

    for name, helptext in (("down", "stop a stack started with up --detach"), ("status", "show a detached stack")):
        sub.add_parser(name, help=helptext)

    for action in sub.choices.values():
        action.add_argument(
            "--run-dir",
            type=Path,
            default=DEFAULT_RUN_DIR,
            help=f"where configs, data, logs and state.json go (default {DEFAULT_RUN_DIR})",
        )

    args = parser.parse_args(argv)
    args.run_dir = args.run_dir.resolve()
    handlers = {"up": _up, "down": _down, "status": _status}
    return handlers[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
