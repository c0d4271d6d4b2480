"""docker-compose.yml against the compose-spec schema, the Dockerfile, and their consistency with the
stack that runs without Docker (stack/)."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no types-jsonschema in the dev extras
import pytest
import yaml

from stack.render import (
    ALERTMANAGER_FLAGS,
    COMPOSE_TARGETS,
    PROMETHEUS_FLAGS,
    demo_secrets,
    render_alertmanager_config,
)

from .support import ALERTMANAGER_CONFIG, COMPOSE_FILE, COMPOSE_SCHEMA, PROMETHEUS_DIR, REPO, load_yaml, run

COMPOSE_PORTS = {"exporter": 8729, "prometheus": 9090, "alertmanager": 9093, "receiver": 9099, "grafana": 3000}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(COMPOSE_FILE)
    return loaded


def interpolate_defaults(text: str) -> str:
    """Compose variable interpolation with nothing set: ${VAR:-default} -> default."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", text)


def test_compose_file_matches_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    assert COMPOSE_SCHEMA.is_file(), f"compose-spec schema not found at {COMPOSE_SCHEMA} (it is kept in the repository)"
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_compose_runs_the_whole_topology_on_loopback(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == set(COMPOSE_PORTS) | {"grafana-secret"}
    assert "ports" not in services["grafana-secret"], "the one-shot password maker serves nothing"
    for name, port in COMPOSE_PORTS.items():
        assert services[name]["ports"] == [f"127.0.0.1:{port}:{port}"], name
    exporter = services["exporter"]
    assert exporter["build"] == {"context": ".", "target": "demo"}, "the stack runs the image that has the simulator"
    assert exporter["command"][0] == "${EXPORTER_MODE:-demo}", "demo mode by default"
    assert exporter["env_file"] == [{"path": "./exporter.env", "required": False}], "real mode through an env file"
    # Alert links go through the exporter's /-/conversation/{agent}: without its external URL they are dropped.
    external = interpolate_defaults(exporter["environment"]["GENESYS_EXPORTER_WEB_EXTERNAL_URL"])
    assert external == f"http://localhost:{COMPOSE_PORTS['exporter']}/", external


def test_compose_uses_the_shipped_configs_and_the_stacks_flags(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    assert "./prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    for flag in PROMETHEUS_FLAGS:
        assert flag in prometheus["command"], flag
    alertmanager = compose["services"]["alertmanager"]
    script = alertmanager["command"][0]
    for flag in ALERTMANAGER_FLAGS:
        assert flag in shlex.split(script), flag
    volumes = [interpolate_defaults(v) for v in alertmanager["volumes"]]
    assert "./alertmanager/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in volumes
    assert "./alertmanager/templates:/alertmanager/templates:ro" in volumes
    assert "./stack/demo-secrets:/alertmanager/secrets:ro" in volumes
    assert alertmanager["working_dir"] == "/alertmanager", "secrets/ resolve against the working directory"


def test_compose_changes_only_the_pagerduty_url_like_the_stack(compose: dict[str, Any], tmp_path: Any) -> None:
    """Run the alertmanager service's own sed on alertmanager.yml: same result as stack/render.py."""
    script = interpolate_defaults(compose["services"]["alertmanager"]["command"][0])
    sed_cmd = script.split(" && ")[0]
    words = shlex.split(sed_cmd)
    assert words[0] == "sed" and words[2] == "/etc/alertmanager/alertmanager.yml" and words[3] == ">"
    result = run(["sed", words[1], str(ALERTMANAGER_CONFIG)])
    assert result.returncode == 0, result.stderr
    expected = render_alertmanager_config(ALERTMANAGER_CONFIG.read_text(), "http://receiver:9099/v2/enqueue")
    assert result.stdout == expected


def test_compose_demo_secrets_point_at_the_receiver() -> None:
    directory = REPO / "stack" / "demo-secrets"
    for name, content in demo_secrets("http://receiver:9099").items():
        assert (directory / name).read_text() == content, name


def test_prometheus_targets_are_compose_services(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    targets = [t for sc in config["scrape_configs"] for s in sc["static_configs"] for t in s["targets"]]
    targets += [t for am in config["alerting"]["alertmanagers"] for s in am["static_configs"] for t in s["targets"]]
    assert set(targets) <= set(COMPOSE_TARGETS), "the stack would not know where to point these"
    for target in targets:
        host, port = target.split(":")
        service = COMPOSE_TARGETS[target]
        assert host in {service, "localhost"} and int(port) == COMPOSE_PORTS[service], target
    (job,) = [sc for sc in config["scrape_configs"] if sc["job_name"] == "genesys-sentiment"]
    assert job["static_configs"][0]["targets"] == ["exporter:8729"]


def test_dockerfile_is_slim_non_root_and_health_checked() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", dockerfile, re.MULTILINE)
    names = {name for _, name in stages if name}
    bases = [image for image, _ in stages if image not in names]
    assert bases and all(re.search(r"-slim(-\w+)?$", b) for b in bases), f"every image on a -slim base: {bases}"
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in {"0", "root"}, "the runtime stage must not run as root"
    healthcheck = re.search(r"^HEALTHCHECK\b.*?(?=^\S|\Z)", dockerfile, re.MULTILINE | re.DOTALL)
    assert healthcheck and "/-/healthy" in healthcheck.group(0)
    assert re.search(r"^EXPOSE\s+8729\b", dockerfile, re.MULTILINE)
    final = dockerfile[dockerfile.rindex("\nFROM ") :]
    assert re.search(r'^CMD \["run"', final, re.MULTILINE), "the default (last) stage runs `run`"
    assert "simulator" not in final.replace("no simulator", ""), "the default image holds no simulator"
    demo = dockerfile[dockerfile.index(" AS demo\n") : dockerfile.rindex("\nFROM ")]
    assert re.search(r'^CMD \["demo"', demo, re.MULTILINE), "`--target demo` runs the demo"
