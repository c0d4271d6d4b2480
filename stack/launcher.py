"""The docker-compose topology without Docker: Debian's prometheus and prometheus-alertmanager,
the exporter in demo mode and the local Slack/PagerDuty receiver, all on loopback ports.

From a shell (see `python -m stack --help`):

    python -m stack up            # foreground, Ctrl-C stops everything
    python -m stack up --detach   # background; `python -m stack down` stops it

From Python (a pytest fixture, for instance):

    with Stack(StackOptions(run_dir=tmp_path)) as stack:    # every port picked free
        stack.wait_for_receiver(lambda m: m["kind"] == "slack", timeout=90)

Everything the stack writes lives in its run directory (default <repo>/run/stack): rendered
configuration, secrets pointing at the receiver, TSDB / Alertmanager data, one log per process,
and state.json (pids, ports, URLs) for `down` and `status`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stack.render import (
    ALERTMANAGER_FLAGS,
    PROMETHEUS_FLAGS,
    SECRETS_DIR,
    demo_secrets,
    render_alertmanager_config,
    render_prometheus_config,
)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RUN_DIR = REPO / "run" / "stack"
STATE_FILE = "state.json"

# Fixed ports of `python -m stack up` (the compose ports); 0 means "any free port".
DEFAULT_PORTS: dict[str, int] = {"receiver": 9099, "alertmanager": 9093, "exporter": 8729, "prometheus": 9090}
# Start order: whoever receives comes up before whoever sends.
START_ORDER: tuple[str, ...] = ("receiver", "alertmanager", "exporter", "prometheus")

# The simulated org has no web app of its own: the demo's agent and call links open the Genesys Cloud
# web app of this region (a real page; the simulated conversations are not in it). `--ui-url` changes it.
DEMO_UI_URL = "https://apps.mypurecloud.com"

INSTALL_HINTS: dict[str, str] = {
    "prometheus": "apt-get install -y --no-install-recommends prometheus",
    "prometheus-alertmanager": "apt-get install -y --no-install-recommends prometheus-alertmanager",
}


class StackError(RuntimeError):
    """The stack could not be started (or stopped) as asked."""


@dataclass
class StackOptions:
    """How to run the stack. Every field has a default that works from a checkout."""

    repo: Path = REPO
    run_dir: Path = DEFAULT_RUN_DIR
    host: str = "127.0.0.1"
    # Port per component ("receiver", "alertmanager", "exporter", "prometheus"); 0 = a free port.
    # Missing entries are 0: the Python API picks free ports unless told otherwise.
    ports: dict[str, int] = field(default_factory=dict)
    # The exporter: `<python> -m genesys_sentiment_exporter demo --web.listen-address HOST:PORT [--seed N] [args...]`.
    # `exporter_command`, when given, replaces everything before the listen address flag, e.g. a
    # fake exporter in a test: ["python", "fake_exporter.py"] (it must accept --web.listen-address).
    python: str | None = None
    exporter_command: Sequence[str] | None = None
    exporter_args: Sequence[str] = ()
    seed: int | None = None
    # Links in the demo's alerts (`demo` only; a custom exporter_command gets its own flags): the
    # call link goes to the exporter's /-/conversation/{agent} (--web.external-url, this stack's
    # exporter URL), which redirects to the call in this Genesys Cloud web app (--ui-url).
    ui_url: str = DEMO_UI_URL
    prometheus_bin: str = "prometheus"
    alertmanager_bin: str = "prometheus-alertmanager"
    start_timeout: float = 60.0
    # Wipe the Prometheus and Alertmanager data of a previous run (the default: a fresh demo).
    fresh: bool = True


@dataclass
class Component:
    name: str
    argv: list[str]
    cwd: Path
    url: str
    ready_path: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None


def ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for the local ports of outgoing connections (Linux; its default elsewhere)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports free now, below the ephemeral range when it leaves room.

    A port the kernel hands out for `bind(0)` comes from the ephemeral range, so any outgoing
    connection (the exporters', Prometheus' scrapes) can take it before the server it was meant
    for binds: the HA test lost Prometheus that way ("bind: address already in use") when the
    servers start a minute after their ports are picked. Below the range only a server can take it.
    """
    low, _high = ephemeral_ports()
    rng = random.SystemRandom()
    ports: list[int] = []
    tries = 0
    while len(ports) < count:
        tries += 1
        candidate = rng.randrange(10000, low) if low > 11000 and tries < 200 * count else 0
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, candidate))
            except OSError:
                continue
            port: int = sock.getsockname()[1]
        if port not in ports:
            ports.append(port)
    return ports


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as err:
        return int(err.code), err.read()


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        hint = INSTALL_HINTS.get(name, "")
        raise StackError(f"{name!r} is not on PATH. Install it: {hint}" if hint else f"{name!r} is not on PATH")
    return path


def prepare_alertmanager_dir(am_dir: Path, repo: Path, receiver_url: str) -> Path:
    """Make `am_dir` a working directory an Alertmanager can run from, sending to the receiver.

    The shipped alertmanager.yml (only global.pagerduty_url changed), a link to the shipped
    templates (resolved next to the config file) and the demo secrets (resolved against the
    working directory). Returns the config file's path. The HA test runs two of these.
    """
    am_dir.mkdir(parents=True, exist_ok=True)
    config = am_dir / "alertmanager.yml"
    am_text = (repo / "alertmanager" / "alertmanager.yml").read_text()
    config.write_text(render_alertmanager_config(am_text, f"{receiver_url}/v2/enqueue"))
    templates = am_dir / "templates"
    if templates.is_symlink() or templates.exists():
        if templates.is_symlink() or templates.is_file():
            templates.unlink()
        else:
            shutil.rmtree(templates)
    templates.symlink_to((repo / "alertmanager" / "templates").resolve(), target_is_directory=True)
    secrets = am_dir / SECRETS_DIR
    secrets.mkdir(exist_ok=True)
    for name, content in demo_secrets(receiver_url).items():
        path = secrets / name
        path.write_text(content)
        path.chmod(0o600)
    return config


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _pid_is(pid: int, argv0: str) -> bool:
    """True if `pid` is alive and still runs `argv0` (guards against a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    same = bool(cmdline) and os.path.basename(cmdline[0].decode(errors="replace")) == os.path.basename(argv0)
    return same and process_running(pid)


def _terminate_group(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process group led by `pid` (each component has its own), SIGKILL if it lingers.

    For processes of a detached stack (not our children: init reaps them). Our own children are
    stopped in Stack.stop(), which waits on them instead (a zombie child would look alive here).
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_running(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def process_running(pid: int) -> bool:
    """Alive and not a zombie (an exited process waiting for whoever adopted it to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Field 3, after the parenthesised command name (which may itself contain spaces or parentheses).
    return stat.rpartition(")")[2].split()[0] not in {"Z", "X"}


class Stack:
    """Start, query and stop the stack. Usable as a context manager."""

    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.run_dir = self.options.run_dir.resolve()
        self.ports: dict[str, int] = {}
        self.components: dict[str, Component] = {}
        self._lock_fd: int | None = None

    # -- addresses -------------------------------------------------------------------------------
    def url(self, component: str) -> str:
        return f"http://{self.options.host}:{self.ports[component]}"

    @property
    def exporter_url(self) -> str:
        return self.url("exporter")

    @property
    def prometheus_url(self) -> str:
        return self.url("prometheus")

    @property
    def alertmanager_url(self) -> str:
        return self.url("alertmanager")

    @property
    def receiver_url(self) -> str:
        return self.url("receiver")

    # -- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Stack:
        """Render the configuration, start every component in order and wait until each is ready."""
        opts = self.options
        prometheus_bin = require_binary(opts.prometheus_bin)
        alertmanager_bin = require_binary(opts.alertmanager_bin)
        self._lock()
        try:
            self._allocate_ports()
            self._prepare_run_dir()
        except BaseException:
            self._unlock()
            raise
        self.components = self._components(prometheus_bin, alertmanager_bin)
        try:
            for name in START_ORDER:
                self._start(self.components[name])
            self.write_state()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every component this object started, newest first. Safe to call twice."""
        for name in reversed(START_ORDER):
            component = self.components.get(name)
            if component is None or component.process is None:
                continue
            process = component.process
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=5)
            component.process = None
        state = self.run_dir / STATE_FILE
        with contextlib.suppress(FileNotFoundError):
            state.unlink()
        self._unlock()

    def _lock(self) -> None:
        """One stack per run directory: two would overwrite each other's configs and secrets."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.run_dir / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StackError(f"another stack is starting or running from {self.run_dir}") from None
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def detach(self) -> None:
        """Forget the processes without stopping them (they keep running; `down` stops them).

        The run directory lock goes with this process; state.json's pids guard the directory then.
        """
        for component in self.components.values():
            component.process = None
        self._unlock()

    def dead_components(self) -> list[str]:
        return [
            name
            for name, component in self.components.items()
            if component.process is not None and component.process.poll() is not None
        ]

    # -- queries for tests -----------------------------------------------------------------------
    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query against the stack's Prometheus; the `result` list of the API answer."""
        status, body = http_get(f"{self.prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
        answer = json.loads(body)
        if status != 200 or answer.get("status") != "success":
            raise StackError(f"query {expr!r} failed: {status} {body[:300]!r}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def receiver_messages(
        self, kind: str | None = None, channel: str | None = None, since: float | None = None
    ) -> list[dict[str, Any]]:
        """What the receiver recorded (oldest first): kind, channel, path, received_at, body, status."""
        params = {k: str(v) for k, v in {"kind": kind, "channel": channel, "since": since}.items() if v is not None}
        status, body = http_get(f"{self.receiver_url}/messages?{urllib.parse.urlencode(params)}")
        if status != 200:
            raise StackError(f"receiver answered {status}")
        messages: list[dict[str, Any]] = json.loads(body)["messages"]
        return messages

    def wait_for_receiver(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float, poll: float = 0.5
    ) -> dict[str, Any]:
        """The first recorded message for which `predicate` is true, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.receiver_messages():
                if predicate(message):
                    return message
            dead = self.dead_components()
            if dead:
                raise StackError(f"components died while waiting: {dead}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no matching receiver message within {timeout} s")
            time.sleep(poll)

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        status, body = http_get(f"{self.alertmanager_url}/api/v2/alerts")
        if status != 200:
            raise StackError(f"alertmanager answered {status}")
        alerts: list[dict[str, Any]] = json.loads(body)
        return alerts

    # -- state file (for `python -m stack down|status`) ---------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "urls": {name: self.url(name) for name in START_ORDER},
            "processes": {
                name: {"pid": c.process.pid, "argv": c.argv, "log": str(c.log_path)}
                for name, c in self.components.items()
                if c.process is not None
            },
        }

    def write_state(self) -> None:
        (self.run_dir / STATE_FILE).write_text(json.dumps(self.state(), indent=2) + "\n")

    # -- internals -------------------------------------------------------------------------------
    def _allocate_ports(self) -> None:
        host = self.options.host
        for name in START_ORDER:
            port = self.options.ports.get(name, 0)
            if port == 0:
                port = free_port(host)
            elif port_in_use(host, port):
                raise StackError(f"{name}: {host}:{port} is already in use (pass port 0 for a free one)")
            self.ports[name] = port

    def _prepare_run_dir(self) -> None:
        opts = self.options
        run = self.run_dir
        existing = self.running_state(run)
        if existing:
            raise StackError(f"a stack is already running from {run} (pids {existing}); stop it first")
        for sub in ("prometheus", "alertmanager", "logs"):
            (run / sub).mkdir(parents=True, exist_ok=True)
        if opts.fresh:
            for data in (run / "prometheus" / "data", run / "alertmanager" / "data"):
                shutil.rmtree(data, ignore_errors=True)

        addresses = {name: f"{opts.host}:{port}" for name, port in self.ports.items()}
        prom_dir = opts.repo / "prometheus"
        prom_config = render_prometheus_config(
            (prom_dir / "prometheus.yml").read_text(), addresses, config_dir=prom_dir.resolve()
        )
        (run / "prometheus" / "prometheus.yml").write_text(
            "# Rendered by `python -m stack` from prometheus/prometheus.yml: only targets and\n"
            "# rule_files paths differ. Edit the original, not this file.\n"
            + yaml.safe_dump(prom_config, sort_keys=False)
        )

        prepare_alertmanager_dir(run / "alertmanager", opts.repo, self.url("receiver"))

    def _components(self, prometheus_bin: str, alertmanager_bin: str) -> dict[str, Component]:
        opts = self.options
        run = self.run_dir
        host = opts.host
        python = opts.python or self._default_python()

        def listen(name: str) -> str:
            return f"{host}:{self.ports[name]}"

        exporter_head = (
            list(opts.exporter_command)
            if opts.exporter_command
            else [python, "-m", "genesys_sentiment_exporter", "demo"]
        )
        exporter_argv = [*exporter_head, "--web.listen-address", listen("exporter")]
        if not opts.exporter_command:
            if opts.seed is not None:
                exporter_argv += ["--seed", str(opts.seed)]
            given = {arg.split("=", 1)[0] for arg in opts.exporter_args}
            if "--web.external-url" not in given:
                exporter_argv += ["--web.external-url", self.url("exporter")]
            if "--ui-url" not in given and opts.ui_url:
                exporter_argv += ["--ui-url", opts.ui_url]
        exporter_argv += list(opts.exporter_args)

        logs = run / "logs"
        return {
            "receiver": Component(
                "receiver",
                [python, "-m", "stack.receiver", "--listen", listen("receiver")],
                opts.repo,
                self.url("receiver"),
                "/-/healthy",
                logs / "receiver.log",
            ),
            "alertmanager": Component(
                "alertmanager",
                [
                    alertmanager_bin,
                    f"--config.file={run / 'alertmanager' / 'alertmanager.yml'}",
                    f"--storage.path={run / 'alertmanager' / 'data'}",
                    f"--web.listen-address={listen('alertmanager')}",
                    f"--web.external-url={self.url('alertmanager')}/",
                    *ALERTMANAGER_FLAGS,
                ],
                run / "alertmanager",  # secrets/*_file paths resolve against the working directory
                self.url("alertmanager"),
                "/-/ready",
                logs / "alertmanager.log",
            ),
            "exporter": Component(
                "exporter", exporter_argv, opts.repo, self.url("exporter"), "/-/healthy", logs / "exporter.log"
            ),
            "prometheus": Component(
                "prometheus",
                [
                    prometheus_bin,
                    f"--config.file={run / 'prometheus' / 'prometheus.yml'}",
                    f"--storage.tsdb.path={run / 'prometheus' / 'data'}",
                    f"--web.listen-address={listen('prometheus')}",
                    f"--web.external-url={self.url('prometheus')}/",
                    "--web.enable-lifecycle",
                    *PROMETHEUS_FLAGS,
                ],
                run / "prometheus",
                self.url("prometheus"),
                "/-/ready",
                logs / "prometheus.log",
            ),
        }

    def _default_python(self) -> str:
        venv = self.options.repo / ".venv" / "bin" / "python"
        return str(venv) if venv.exists() else sys.executable

    def _start(self, component: Component) -> None:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        # `python -m stack.receiver` and `python -m genesys_sentiment_exporter` import from the checkout.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.options.repo), env.get("PYTHONPATH")]))
        with component.log_path.open("ab") as log:
            component.process = subprocess.Popen(
                component.argv,
                cwd=component.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # own process group: stopped by pid, survives `up --detach`
            )
        self._wait_ready(component)

    def _wait_ready(self, component: Component) -> None:
        assert component.process is not None
        deadline = time.monotonic() + self.options.start_timeout
        last = ""
        while time.monotonic() < deadline:
            code = component.process.poll()
            if code is not None:
                raise StackError(
                    f"{component.name} exited with {code} before it was ready. "
                    f"Command: {' '.join(component.argv)}\nLast lines of {component.log_path}:\n"
                    f"{tail(component.log_path)}"
                )
            try:
                status, _ = http_get(component.url + component.ready_path, timeout=1.0)
                if status == 200:
                    return
                last = f"HTTP {status}"
            except OSError as err:
                last = str(err)
            time.sleep(0.1)
        raise StackError(
            f"{component.name} not ready at {component.url}{component.ready_path} after "
            f"{self.options.start_timeout} s ({last}).\nLast lines of {component.log_path}:\n{tail(component.log_path)}"
        )

    # -- detached stacks -------------------------------------------------------------------------
    @staticmethod
    def read_state(run_dir: Path) -> dict[str, Any] | None:
        try:
            state: dict[str, Any] = json.loads((run_dir / STATE_FILE).read_text())
        except (FileNotFoundError, ValueError):
            return None
        return state

    @classmethod
    def running_state(cls, run_dir: Path) -> dict[str, int]:
        """name -> pid of the processes recorded in run_dir/state.json that are still ours and alive."""
        state = cls.read_state(run_dir)
        if not state:
            return {}
        return {
            name: int(proc["pid"])
            for name, proc in state.get("processes", {}).items()
            if _pid_is(int(proc["pid"]), proc["argv"][0])
        }

    @classmethod
    def stop_detached(cls, run_dir: Path) -> list[str]:
        """Stop a stack started with `up --detach` from its state file. Returns what was stopped."""
        state = cls.read_state(run_dir) or {}
        processes: dict[str, Any] = state.get("processes", {})
        stopped: list[str] = []
        for name in reversed(START_ORDER):
            proc = processes.get(name)
            if proc and _pid_is(int(proc["pid"]), proc["argv"][0]):
                _terminate_group(int(proc["pid"]))
                stopped.append(f"{name} (pid {proc['pid']})")
        with contextlib.suppress(FileNotFoundError):
            (run_dir / STATE_FILE).unlink()
        return stopped


@contextlib.contextmanager
def running_stack(options: StackOptions | None = None) -> Iterator[Stack]:
    """`with running_stack(StackOptions(run_dir=tmp_path)) as stack: ...`"""
    stack = Stack(options)
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
