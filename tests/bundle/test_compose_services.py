"""Every docker-compose service's command, run with only what its image holds (no Docker engine needed).

The compose stack once could not start: the receiver ran `python -m stack.receiver` in a stock Python
image, which imported PyYAML through stack/__init__.py; nothing had run that command without the dev
venv. Here each service's own command (from docker-compose.yml, compose defaults interpolated) runs in
a stand-in for its image:

- `python:*-slim` services: a bare venv made with `--without-pip` (the standard library and nothing
  else), the service's bind mounts laid out under a temporary root, no PYTHONPATH;
- `prom/prometheus`, `prom/alertmanager`: Debian's binaries of the same versions (the images' own
  programs), the shell script run by `sh` with a minimal PATH, paths mapped to the temporary root;
- the exporter image: every module the shipped packages import is the standard library, the package
  itself, or a dependency its distribution declares (what `pip install .` puts in the image);
- grafana: runs the image's own command; what we give it (the password file) must come from a volume.

Servers bind 127.0.0.1 on free ports instead of the images' 0.0.0.0.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from stack.launcher import free_port

from .support import COMPOSE_FILE, REPO, load_yaml, require

# What each image holds that a service's command or health check may use. Busybox in the prom/*
# images provides sh, sed and wget; the Python image has python and its standard library.
IMAGE_PROGRAMS: Mapping[str, frozenset[str]] = {
    "python": frozenset({"python", "python3"}),
    "prom/prometheus": frozenset({"/bin/prometheus", "prometheus", "promtool", "sh", "/bin/sh", "sed", "wget"}),
    "prom/alertmanager": frozenset({"/bin/alertmanager", "alertmanager", "amtool", "sh", "/bin/sh", "sed", "wget"}),
}
# The image's program -> the same program here (Debian's packages of the same versions).
DEBIAN_BINARIES: Mapping[str, str] = {"/bin/alertmanager": "prometheus-alertmanager", "/bin/prometheus": "prometheus"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(COMPOSE_FILE)
    return loaded


def interpolate_defaults(value: str) -> str:
    """Compose interpolation with nothing set in the environment: ${VAR:-default} -> default."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def image_family(image: str) -> str:
    name = image.split("@")[0].rsplit(":", 1)[0]
    return "python" if name == "python" else name


class ContainerRoot:
    """A service's filesystem view, laid out under a temporary directory: bind mounts copied in
    (read-only ones as copies, so the checkout is never written), named volumes as empty dirs."""

    def __init__(self, service: Mapping[str, Any], root: Path) -> None:
        self.root = root
        self.targets: list[str] = []
        for volume in service.get("volumes", []):
            source, target, *_ = interpolate_defaults(volume).split(":")
            host = self.path(target)
            if source.startswith("."):
                src = (REPO / source).resolve()
                if src.is_dir():
                    shutil.copytree(src, host, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    host.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, host)
            else:
                host.mkdir(parents=True, exist_ok=True)
            self.targets.append(target)
        workdir = service.get("working_dir")
        if workdir:
            self.path(workdir).mkdir(parents=True, exist_ok=True)
            self.targets.append(workdir)

    def path(self, container_path: str) -> Path:
        return self.root / container_path.lstrip("/")

    def translate(self, text: str) -> str:
        """Container paths in a command -> the same paths under the root (longest mount first; a
        mount path only matches at the start of a path, so /alertmanager is not /bin/alertmanager)."""
        for target in sorted(set(self.targets), key=len, reverse=True):
            text = re.sub(rf"(?<![\w/.-]){re.escape(target)}(?=/|\b|$)", str(self.path(target)), text)
        return text


def bare_python(tmp_path: Path) -> str:
    """A Python with the standard library only: what the stock python:3.11-slim image holds."""
    venv = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    probe = subprocess.run(
        [str(python), "-c", "import importlib.util as u; print(u.find_spec('yaml') is None)"],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=True,
    )
    assert probe.stdout.strip() == "True", "the bare venv is not bare: PyYAML is importable"
    return str(python)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """No PYTHONPATH, no venv: only a minimal PATH (the image's own programs are passed by path)."""
    return {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8", **(extra or {})}


def wait_http(url: str, process: subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"the service's command exited with {process.returncode} before serving:\n{out}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError) as err:
            last = str(err)
        time.sleep(0.1)
    raise AssertionError(f"{url} not answering after {timeout} s: {last}")


def start(argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        list(argv), cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture
def running() -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        stop(process)


def test_every_image_is_pinned_and_every_service_is_covered_here(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service.get("image", "")
        if "build" in service:
            continue  # built from this repository's Dockerfile (its base is pinned there)
        tag = image.rsplit(":", 1)[-1] if ":" in image else "latest"
        assert re.match(r"v?\d+\.\d+\.\d+", tag), f"{name}: image {image!r} is not pinned to an exact version"
    dockerfile = (REPO / "Dockerfile").read_text()
    (version,) = re.findall(r"^ARG PYTHON_VERSION=(\S+)$", dockerfile, re.MULTILINE)
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"Dockerfile's Python {version!r} is not a patch release"
    covered = {"exporter", "receiver", "grafana-secret", "prometheus", "alertmanager", "grafana"}
    assert set(compose["services"]) == covered, "a new service needs its command tested here"


def test_health_checks_use_only_what_the_image_holds(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        check = service.get("healthcheck", {}).get("test")
        if not check:
            continue
        assert check[0] == "CMD", f"{name}: exec-form health check expected"
        family = image_family(service["image"])
        assert check[1] in IMAGE_PROGRAMS[family], f"{name}: {check[1]!r} is not in {service['image']}"


def test_receiver_and_its_health_check_run_on_the_standard_library_alone(
    compose: dict[str, Any], tmp_path: Path, running: list[subprocess.Popen[str]]
) -> None:
    service = compose["services"]["receiver"]
    assert image_family(service["image"]) == "python"
    root = ContainerRoot(service, tmp_path / "root")
    python = bare_python(tmp_path)
    port = free_port()
    command = [root.translate(word) for word in service["command"]]
    assert command[0] == "python"
    command = [python, *command[1:]]
    command[command.index("--listen") + 1] = f"127.0.0.1:{port}"
    env = clean_env({k: str(v) for k, v in service.get("environment", {}).items()})
    process = start(command, root.path(service["working_dir"]), env)
    running.append(process)
    wait_http(f"http://127.0.0.1:{port}/-/healthy", process, timeout=30)

    health = [word.replace("9099", str(port)) for word in service["healthcheck"]["test"][1:]]
    assert health[0] == "python"
    result = subprocess.run(
        [python, *health[1:]], cwd=root.path(service["working_dir"]), env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_grafana_secret_makes_a_password_once_on_the_standard_library_alone(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    service = compose["services"]["grafana-secret"]
    assert image_family(service["image"]) == "python"
    root = ContainerRoot(service, tmp_path / "root")
    python = bare_python(tmp_path)
    command = [root.translate(word) for word in service["command"]]
    assert command[0] == "python"
    if os.geteuid() != 0:  # chown to Grafana's uid needs root (the one-shot runs as root in the image)
        command = command[: command.index("--owner")]
    env = clean_env({k: str(v) for k, v in service.get("environment", {}).items()})
    cwd = root.path(service["working_dir"])
    first = subprocess.run([python, *command[1:]], cwd=cwd, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stdout + first.stderr
    secret = root.path("/run/grafana-secrets/admin_password")
    password = secret.read_text()
    assert len(password) >= 24 and password not in first.stdout + first.stderr, "never printed"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o400
    second = subprocess.run([python, *command[1:]], cwd=cwd, env=env, capture_output=True, text=True)
    assert second.returncode == 0 and secret.read_text() == password, "a restart keeps the password"

    grafana = compose["services"]["grafana"]
    password_file = grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"]
    assert any(v.split(":")[1] == str(Path(password_file).parent) for v in grafana["volumes"])
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana["environment"], "no password in the compose file"
    assert grafana["depends_on"]["grafana-secret"]["condition"] == "service_completed_successfully"


def test_prometheus_command_loads_the_rules(
    compose: dict[str, Any], tmp_path: Path, running: list[subprocess.Popen[str]]
) -> None:
    service = compose["services"]["prometheus"]
    binary = require(DEBIAN_BINARIES["/bin/prometheus"])
    root = ContainerRoot(service, tmp_path / "root")
    port = free_port()
    flags = [root.translate(interpolate_defaults(flag)) for flag in service["command"]]
    process = start([binary, *flags, f"--web.listen-address=127.0.0.1:{port}"], tmp_path, clean_env())
    running.append(process)
    wait_http(f"http://127.0.0.1:{port}/-/ready", process)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules", timeout=5) as response:
        groups = json.loads(response.read())["data"]["groups"]
    expected = sum(len(load_yaml(p)["groups"]) for p in (REPO / "prometheus" / "rules").glob("*.rules.yml"))
    assert len(groups) == expected and expected > 0


def test_alertmanager_entrypoint_script_runs_with_sh_and_sed(
    compose: dict[str, Any], tmp_path: Path, running: list[subprocess.Popen[str]]
) -> None:
    service = compose["services"]["alertmanager"]
    binary = require(DEBIAN_BINARIES["/bin/alertmanager"])
    entrypoint = service["entrypoint"]
    assert entrypoint[0] in IMAGE_PROGRAMS["prom/alertmanager"]
    root = ContainerRoot(service, tmp_path / "root")
    port = free_port()
    script = root.translate(interpolate_defaults(service["command"][0])).replace("/bin/alertmanager", binary)
    for program in re.findall(r"(?:^|&&\s*)(?:exec\s+)?(\S+)", interpolate_defaults(service["command"][0])):
        assert program in IMAGE_PROGRAMS["prom/alertmanager"], f"{program!r} is not in {service['image']}"
    script += f" --web.listen-address=127.0.0.1:{port}"
    process = start(["/bin/sh", "-c", script], root.path(service["working_dir"]), clean_env())
    running.append(process)
    wait_http(f"http://127.0.0.1:{port}/-/ready", process)
    rendered = root.path("/alertmanager/alertmanager.yml").read_text()
    assert "pagerduty_url: http://receiver:9099/v2/enqueue" in rendered


# Modules that run only with an optional extra installed: their imports are checked against the base
# dependencies plus that extra, and nothing may import them at module level (only the factory that
# needs them, inside a function, so the image without the extra still starts and says what is missing).
EXTRA_MODULES = {"genesys_sentiment_exporter/analysis/onnx_text.py": "onnx"}


def imported_top_levels(package: Path, exclude: frozenset[Path] = frozenset()) -> set[str]:
    """Top-level modules imported anywhere in `package`, except under `if TYPE_CHECKING:`."""
    names: set[str] = set()
    for path in package.rglob("*.py") if package.is_dir() else [package]:
        if path in exclude:
            continue
        tree = ast.parse(path.read_text(), str(path))
        skip: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skip.update(id(child) for stmt in node.body for child in ast.walk(stmt))
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; (]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def installed_with(pyproject: Path, extra: str | None = None) -> set[str]:
    """The distributions `pip install` of this pyproject brings: its dependencies and theirs
    (extras excluded unless `extra` is named), as installed here."""
    project = tomllib.loads(pyproject.read_text())["project"]
    pending = [requirement_name(dep) for dep in project["dependencies"]]
    if extra is not None:
        pending += [requirement_name(dep) for dep in project["optional-dependencies"][extra]]
    found: set[str] = set()
    while pending:
        name = pending.pop()
        if name in found:
            continue
        found.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        pending += [requirement_name(r) for r in requires if "extra ==" not in r]
    return found


@pytest.mark.parametrize(
    ("package", "pyprojects"),
    [
        ("genesys_sentiment_exporter", ["pyproject.toml"]),
        ("simulator/genesys_cloud_simulator", ["pyproject.toml", "simulator/pyproject.toml"]),
    ],
)
def test_exporter_image_modules_import_only_declared_dependencies(package: str, pyprojects: list[str]) -> None:
    """The image installs the distributions with `pip install .` (and `./simulator` for the demo
    target): an import of anything undeclared works in the dev venv and fails in the image."""
    first_party = {"genesys_sentiment_exporter", "genesys_cloud_simulator"}
    declared: set[str] = set()
    for pyproject in pyprojects:
        declared |= installed_with(REPO / pyproject)
    providers = importlib.metadata.packages_distributions()
    extra_files = frozenset(REPO / path for path in EXTRA_MODULES)
    checks = [(REPO / package, extra_files, declared)]
    if package == "genesys_sentiment_exporter":
        checks += [
            (REPO / path, frozenset(), declared | installed_with(REPO / "pyproject.toml", extra))
            for path, extra in EXTRA_MODULES.items()
        ]
    undeclared = {}
    for where, exclude, allowed in checks:
        for name in sorted(imported_top_levels(where, exclude) - first_party - set(sys.stdlib_module_names)):
            distributions = {d.lower().replace("_", "-") for d in providers.get(name, [])}
            if not distributions & allowed:
                undeclared[name] = sorted(distributions) or ["(not installed)"]
    assert not undeclared, f"imported but not installed by {pyprojects}: {undeclared}"


def test_modules_of_an_extra_are_imported_only_inside_functions() -> None:
    """The image installs no extra: a module-level import of an extra's module would stop it starting."""
    dotted = {path.removesuffix(".py").replace("/", ".") for path in EXTRA_MODULES}
    offenders = []
    for path in (REPO / "genesys_sentiment_exporter").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            module = None
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                module = node.module
            elif isinstance(node, ast.Import):
                module = next((a.name for a in node.names if a.name in dotted), None)
            if module in dotted:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, f"module-level import of an optional extra's module: {offenders}"
