"""Command line: `run`, `simulate`, `demo`, `check`, `audit`.

Flags are parsed with argparse (Prometheus-style dotted names) and handed to
pydantic-settings as init values, so a flag beats its environment variable and
both go through the same validation. A bad setting is one line and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import importlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from genesys_sentiment_exporter import __version__, logs
from genesys_sentiment_exporter.config import ENV_PREFIX, ConfigError, Settings, parse_listen_address
from genesys_sentiment_exporter.hosts import is_loopback
from genesys_sentiment_exporter.lifecycle import TaskCrashed, until_signalled

if TYPE_CHECKING:
    from types import ModuleType

    from genesys_sentiment_exporter.app import Exporter

EXIT_CONFIG = 2
# Errors of bind(): the address is taken, not on this machine, or a privileged port.
LISTEN_ERRNOS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})

# field -> (flag, argparse options). Every flag is also ENV_PREFIX + FIELD (credentials: GENESYSCLOUD_*).
FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "client_id": ("--client-id", {"help": "OAuth client id [GENESYSCLOUD_OAUTHCLIENT_ID]"}),
    "client_secret_file": (
        "--client-secret-file",
        {"help": "file holding the OAuth client secret (else GENESYSCLOUD_OAUTHCLIENT_SECRET)"},
    ),
    "region": ("--region", {"help": "region name or domain, e.g. eu-west-1 [GENESYSCLOUD_REGION]"}),
    "api_base_url": ("--api-base-url", {"help": "API base URL override (gateway, simulator)"}),
    "login_base_url": ("--login-base-url", {"help": "login base URL override"}),
    "source": (
        "--source",
        {
            "help": "stream to read: notifications (default) or analytics-websocket; add audiohook to also serve "
            "AudioHook Monitor on /audiohook (comma-separated, e.g. notifications,audiohook)"
        },
    ),
    "queue_id": ("--queue-id", {"action": "append", "help": "only this queue (repeatable)"}),
    "agent_id": ("--agent-id", {"action": "append", "help": "only this agent (repeatable)"}),
    "heartbeat_seconds": ("--heartbeat-seconds", {"help": "stream heartbeat interval, >= 10 (default 30)"}),
    "rollover_max_overlap_seconds": (
        "--rollover-max-overlap-seconds",
        {"help": "a rollover's old socket closes once it caught up with its replacement, after this at most (30)"},
    ),
    "window_size": ("--window-size", {"help": "readings per agent rolling window (default 5)"}),
    "grace_seconds": ("--grace-seconds", {"help": "keep a window this long after a call ends (default 5)"}),
    "idle_seconds": ("--idle-seconds", {"help": "drop agents silent this long (default 900)"}),
    "max_agents": ("--max-agents", {"help": "cap on tracked agents (default 20000)"}),
    "token_refresh_margin_seconds": (
        "--token-refresh-margin-seconds",
        {"help": "renew the token when this little lifetime remains (default 300)"},
    ),
    "sentiment_scale": (
        "--sentiment-scale",
        {"help": "notifications: score scale unit (-1..1), percent (-100..100) or auto (default)"},
    ),
    "notifications_max_channels": (
        "--notifications-max-channels",
        {"help": "notifications: channels to spread topics over, at most 20 (default 20)"},
    ),
    "notifications_topics_per_channel": (
        "--notifications-topics-per-channel",
        {"help": "notifications: topics per channel, at most 1000 (default 1000)"},
    ),
    "notifications_channel_probe_seconds": (
        "--notifications-channel-probe-seconds",
        {"help": "notifications: HEAD each channel this often to detect a lost one (default 60)"},
    ),
    "api_requests_per_minute": (
        "--api-requests-per-minute",
        {"help": "notifications: REST request budget, a token bucket (default 300)"},
    ),
    "resolve_agent_names": (
        "--resolve-agent-names",
        {
            "action": argparse.BooleanOptionalAction,
            "help": "export genesys_agent_info and genesys_queue_info names (default on; agent names only "
            "with --agent-identity plain)",
        },
    ),
    "audit_all_queues": (
        "--all-queues",
        {
            "action": argparse.BooleanOptionalAction,
            "help": "audit every queue of the org, not only the --queue-id ones (audit, check, coverage metric)",
        },
    ),
    "audit_interval_seconds": (
        "--audit.interval-seconds",
        {"help": "run: re-audit the configuration this often for the coverage metric; 0 = off (default 3600)"},
    ),
    "agent_identity": (
        "--agent-identity",
        {"help": "plain (user ids, default), pseudonymous (keyed hash) or none (per-queue aggregates only)"},
    ),
    "agent_identity_key_file": (
        "--agent-identity-key-file",
        {"help": "file holding the key of --agent-identity pseudonymous (at least 16 bytes)"},
    ),
    "ui_url": (
        "--ui-url",
        {"help": "Genesys Cloud web app for links in alerts (default https://apps.{region domain})"},
    ),
    "sentiment_analyzer": (
        "--sentiment-analyzer",
        {"help": "what scores transcript utterances: vader (default, English) or onnx (a local model)"},
    ),
    "sentiment_model_dir": (
        "--sentiment-model-dir",
        {"help": "onnx: directory with model.onnx, tokenizer.json and config.json (id2label)"},
    ),
    "sentiment_languages": (
        "--sentiment-languages",
        {"action": "append", "help": "languages the analyzer scores, e.g. en,de (default: the analyzer's own)"},
    ),
    "score_parties": (
        "--score-parties",
        {
            "action": "append",
            "help": "whose words are scored: customer (default), agent, or customer,agent (agent scoring is "
            "workplace monitoring: read the README first)",
        },
    ),
    "postcall_hold_seconds": (
        "--postcall-hold-seconds",
        {"help": "keep a call's post-call sentiment topic this long after the call (default 600)"},
    ),
    "web_listen_address": ("--web.listen-address", {"help": "address to serve on (default :8729)"}),
    "web_telemetry_path": ("--web.telemetry-path", {"help": "metrics path (default /metrics)"}),
    "web_config_file": ("--web.config.file", {"help": "exporter-toolkit web config (TLS, basic auth)"}),
    "web_external_url": (
        "--web.external-url",
        {"help": "URL supervisors reach this exporter at; alerts then link the live call through it"},
    ),
    "web_max_requests": (
        "--web.max-requests",
        {"help": "concurrent scrapes; more are answered 503 at once (default 40)"},
    ),
    "web_max_connections": (
        "--web.max-connections",
        {"help": "open HTTP connections; more are closed as they open (default 512)"},
    ),
    "web_read_timeout": (
        "--web.read-timeout",
        {"help": "seconds before an idle or half-sent HTTP connection is closed (default 15)"},
    ),
    "audiohook_api_key_file": (
        "--audiohook.api-key-file",
        {"help": "file holding the AudioHook integration's API key (else GENESYS_EXPORTER_AUDIOHOOK_API_KEY)"},
    ),
    "audiohook_client_secret_file": (
        "--audiohook.client-secret-file",
        {"help": "file holding its client secret (else GENESYS_EXPORTER_AUDIOHOOK_CLIENT_SECRET); empty: unsigned"},
    ),
    "audiohook_workers": ("--audiohook.workers", {"help": "recognition worker processes (default 0: one per core)"}),
    "audiohook_engine": (
        "--audiohook.engine",
        {"help": "speech-to-text engine: pocketsphinx (default) or module:factory"},
    ),
    "audiohook_model_dir": ("--audiohook.model-dir", {"help": "local model directory for the engine"}),
    "audiohook_max_lag_seconds": (
        "--audiohook.max-lag-seconds",
        {"help": "drop audio (counted) while recognition is this far behind (default 10)"},
    ),
    "log_level": ("--log.level", {"help": "debug, info, warn or error"}),
    "log_format": ("--log.format", {"help": "logfmt or json"}),
}

ENV_NAMES = {
    "client_id": "GENESYSCLOUD_OAUTHCLIENT_ID",
    "client_secret": "GENESYSCLOUD_OAUTHCLIENT_SECRET",
    "region": "GENESYSCLOUD_REGION",
}

WEB_FLAGS = (
    "web_listen_address",
    "web_telemetry_path",
    "web_config_file",
    "web_external_url",
    "web_max_requests",
    "web_max_connections",
    "web_read_timeout",
    "log_level",
    "log_format",
)


class StartError(Exception):
    """The exporter could not start (e.g. its port is taken): one line, exit status 1."""


def _add_flags(parser: argparse.ArgumentParser, fields: tuple[str, ...] | None = None) -> None:
    for name, (flag, options) in FLAGS.items():
        if fields is None or name in fields:
            parser.add_argument(flag, dest=name, default=argparse.SUPPRESS, **options)


def describe(field: str) -> str:
    flag = FLAGS.get(field, ("", {}))[0]
    env = ENV_NAMES.get(field, ENV_PREFIX + field.upper())
    return f"{flag} ({env})" if flag else env


def load_settings(values: dict[str, Any]) -> Settings:
    """Settings from flags and environment, or ConfigError with one line naming the setting."""
    try:
        return Settings(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, ConfigError):  # a check that names its field itself
            raise named(cause) from None
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        loc = error.get("loc")
        if not loc:  # a whole-model check: its message starts with the field it is about
            raise setting_error(message, "settings") from None
        field = str(loc[0])
        for name, env in ENV_NAMES.items():
            if field == env:
                field = name
        if error.get("type") == "extra_forbidden":
            message = "unknown setting"
        raise ConfigError(field, message, describe(field)) from None


def named(error: ConfigError) -> ConfigError:
    """The same error, its setting named as the operator sets it: flag and environment variable."""
    return ConfigError(error.field, error.reason, describe(error.field))


def setting_error(message: str, default_field: str) -> ConfigError:
    """A `"field: why"` message (from code that raises plain ValueError) as a ConfigError."""
    field, sep, why = message.partition(": ")
    if sep and field in Settings.model_fields:
        return ConfigError(field, why, describe(field))
    return ConfigError(default_field, message, describe(default_field))


def build_exporter(settings: Settings, redactor: logs.Redactor) -> Exporter:
    from genesys_sentiment_exporter.app import Exporter

    try:
        return Exporter(settings, redactor)
    except ValueError as exc:
        raise setting_error(str(exc), "web_config_file") from None


def check_web_config(settings: Settings) -> None:
    """Load --web.config.file before anything starts, so `demo` refuses a bad one in one line like `run`."""
    if settings.web_config_file is None:
        return
    from genesys_sentiment_exporter.web_config import load_web_config

    try:
        load_web_config(settings.web_config_file)
    except ValueError as exc:
        raise setting_error(str(exc), "web_config_file") from None


@contextlib.contextmanager
def listen_errors_explained(address: str) -> Iterator[None]:
    """A port that is taken (or not ours to bind) is an operator's problem, said in one line, not a
    traceback from deep inside the event loop (`run` does the same in serve)."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in LISTEN_ERRNOS:
            raise
        raise StartError(f"cannot listen on {address}: {exc.strerror or exc}") from None


def simulator_package() -> ModuleType:
    """The simulator, a separate distribution: `demo` and `simulate` need it, `run` and `check` do not."""
    try:
        return importlib.import_module("genesys_cloud_simulator")
    except ModuleNotFoundError:
        raise ConfigError(
            "command",
            "`demo` and `simulate` need the simulated Genesys Cloud: pip install ./simulator "
            "(the package genesys-cloud-simulator)",
        ) from None


def simulator_config(args: argparse.Namespace) -> Any:
    """The simulator's typed config from the `--scenario`/`--seed`/... flags (unknown scenarios refused)."""
    simulator = simulator_package()
    unknown = [name for name in args.scenarios or [] if name not in simulator.SCENARIOS]
    if unknown:
        known = ", ".join(simulator.SCENARIOS)
        raise ConfigError("scenarios", f"unknown {', '.join(unknown)}; known: {known}", "--scenario")
    options: dict[str, Any] = {"scenarios": tuple(args.scenarios or ["demo"]), "seed": args.seed}
    if args.agents is not None:
        options["agents"] = args.agents
    if args.transcript_batch_seconds is not None:
        options["transcript_batch_seconds"] = args.transcript_batch_seconds
    if args.command == "demo":  # Genesys' post-call score sooner than a real org's minutes, to be seen
        options["postcall_sentiment_seconds"] = importlib.import_module("genesys_cloud_simulator.demo").DEMO_POSTCALL

    options["org_traps"] = tuple(args.org_traps or ())  # what `audit` finds (simulator org_config.py)
    options["forbidden_permissions"] = tuple(args.forbidden_permissions or ())
    options["current_user_topics"] = tuple(args.current_user_topics or ())
    if args.token_lifetime_seconds is not None:
        options["token_lifetime_seconds"] = float(args.token_lifetime_seconds)
    elif args.command == "demo":
        options["token_lifetime_seconds"] = float(
            importlib.import_module("genesys_cloud_simulator.demo").DEMO_TOKEN_LIFETIME
        )
    try:
        return simulator.SimulatorConfig(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError("simulator", str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genesys-sentiment-exporter",
        description="Prometheus exporter for Genesys Cloud CX real-time agent sentiment.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="connect to a Genesys Cloud org (or --api-base-url) and export")
    _add_flags(run)

    check = sub.add_parser("check", help="diagnose a deployment: authenticate, subscribe, read, report")
    _add_flags(check)
    check.add_argument("--duration", type=float, default=60.0, help="seconds to read (default 60)")

    audit = sub.add_parser("audit", help="audit the org's configuration: will each queue's calls get sentiment?")
    _add_flags(audit)
    audit.add_argument("--output", choices=("text", "json"), default="text", help="text lines (default) or json")

    demo = sub.add_parser("demo", help="simulated Genesys Cloud and exporter in one process")
    demo_flags = (
        "source",
        "sentiment_scale",
        "resolve_agent_names",
        "agent_identity",
        "agent_identity_key_file",
        "ui_url",
        "window_size",
        "grace_seconds",
        "sentiment_analyzer",
        "sentiment_model_dir",
        "sentiment_languages",
        "score_parties",
        "postcall_hold_seconds",
    )
    _add_flags(demo, (*demo_flags, "heartbeat_seconds", *WEB_FLAGS))
    _add_simulator_flags(demo)

    simulate = sub.add_parser("simulate", help="only the simulated Genesys Cloud (OAuth + stream)")
    _add_flags(simulate, ("log_level", "log_format"))
    simulate.add_argument(
        "--listen-address", default="127.0.0.1:8730", help="simulator address (default 127.0.0.1:8730)"
    )
    _add_simulator_flags(simulate)
    return parser


def _add_simulator_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=1, help="scenario random seed (default 1)")
    parser.add_argument(
        "--scenario", action="append", dest="scenarios", help="scenario to run (repeatable; default demo)"
    )
    parser.add_argument("--agents", type=int, default=None, help="agents in the steady population")
    parser.add_argument("--token-lifetime-seconds", type=int, default=None, help="lifetime of simulated tokens")
    parser.add_argument(
        "--org-trap",
        action="append",
        dest="org_traps",
        help="configuration trap for `audit` (repeatable): no-transcription, legacy-policy, sentiment-off, "
        "dialect-mismatch, masking, trunk-recording-off",
    )
    parser.add_argument(
        "--forbid-permission",
        action="append",
        dest="forbidden_permissions",
        help="a permission the simulated OAuth client lacks (repeatable): its reads answer 403 and the topics "
        "that need it are rejected with missingPermissions, e.g. routing:queue:view",
    )
    parser.add_argument(
        "--current-user-topic",
        action="append",
        dest="current_user_topics",
        help="an fnmatch pattern of topics that require the current user (repeatable): availabletopics flags "
        "them requiresCurrentUser and subscriptions refuse them, as for a user-less client-credentials token, "
        "e.g. 'v2.users.*.conversations'",
    )
    parser.add_argument(
        "--transcript-batch-seconds",
        type=float,
        default=None,
        help="how the simulated transcription groups utterances (default 2, low latency; the platform's default "
        "is about 35)",
    )


def _settings_values(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in FLAGS if hasattr(args, name)}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"genesys-sentiment-exporter: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StartError as exc:
        print(f"genesys-sentiment-exporter: {exc}", file=sys.stderr)
        return 1
    except TaskCrashed:
        return 1  # already logged, in one line
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "simulate":
        return _simulate(args)
    if args.command == "demo":
        config = simulator_config(args)
        settings = load_settings(_settings_values(args))
        redactor = logs.setup(settings.log_level, settings.log_format)
        check_web_config(settings)
        demo = importlib.import_module("genesys_cloud_simulator.demo")
        with listen_errors_explained(settings.web_listen_address or "the demo address"):
            asyncio.run(until_signalled(lambda: demo.demo(settings, config, redactor)))
        return 0
    settings = load_settings(_settings_values(args))
    if args.command == "audit":
        return _audit(args, settings)
    try:
        settings.require_endpoints_and_credentials()
    except ConfigError as exc:
        raise named(exc) from None
    redactor = logs.setup(settings.log_level, settings.log_format)
    exporter = build_exporter(settings, redactor)
    if args.command == "check":
        from genesys_sentiment_exporter.check import run_check

        return asyncio.run(run_check(exporter, args.duration))

    asyncio.run(until_signalled(lambda: serve(exporter)))
    return 0


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    """`audit` needs credentials and queues (or --all-queues), not the stream's agent/queue rule."""
    try:
        settings.model_copy(update={"source": ["analytics-websocket"]}).require_endpoints_and_credentials()
    except ValueError as exc:
        raise setting_error(str(exc), "settings") from None
    redactor = logs.setup(settings.log_level, settings.log_format)
    redactor.add(settings.client_secret.get_secret_value())
    from genesys_sentiment_exporter.audit_shell import audit_command

    return asyncio.run(audit_command(settings, args.output, redactor))


async def serve(exporter: Exporter) -> None:
    """The exporter's life cycle; a port that cannot be bound is one line, not a traceback.

    The process is the exporter's alone here, so it also tunes the process's garbage collector."""
    from genesys_sentiment_exporter.app import HeapPolicy

    try:
        await exporter.run(heap=HeapPolicy())
    except OSError as exc:
        address = exporter.settings.web_listen_address
        raise StartError(f"cannot listen on {address}: {exc.strerror or exc}") from None


def _simulate(args: argparse.Namespace) -> int:
    values = _settings_values(args)
    settings = load_settings(values)
    logs.setup(settings.log_level, settings.log_format)
    try:
        host, port = parse_listen_address(args.listen_address)
    except ValueError as exc:
        raise ConfigError("listen_address", str(exc), "--listen-address") from None
    if host and not is_loopback(host):
        raise ConfigError("listen_address", f"the simulator listens on loopback only, not {host!r}", "--listen-address")
    config = simulator_config(args)
    simulator = simulator_package()

    def announce(sim: Any) -> None:
        print(
            f"simulated Genesys Cloud on {sim.base_url} "
            f"(client id {config.client_id!r}; scenarios {', '.join(config.scenarios)})",
            flush=True,
        )

    with listen_errors_explained(args.listen_address):
        asyncio.run(
            until_signalled(lambda: simulator.serve_forever(config, host or "127.0.0.1", port, on_ready=announce))
        )
    return 0
