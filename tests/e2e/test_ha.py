"""High availability, proven with the real binaries: two exporters on the same (simulated) org, two
Prometheus servers with the project's rules, each scraping both exporters and sending to both
Alertmanagers, and two Debian `prometheus-alertmanager`s clustered over loopback gossip
(--cluster.listen-address / --cluster.peer). The local receiver stands in for Slack and PagerDuty.

One story, in order:
1. agent-sour's first sour call: exactly one Slack message per alert (the sustained-negative warning and
   the severe-negative critical), exactly one PagerDuty trigger, and after the call exactly one
   "resolved" of each: four replicas of the alert (2 exporters x 2 Prometheus) and two Alertmanagers
   make one page, not four.
2. agent-sour's second sour call: once it has paged, one exporter, one Prometheus and the Alertmanager
   that sent the pages are killed (SIGKILL) at the same moment. The survivors carry the incident: no
   duplicate page, no "resolved" before the call really ends (no false resolve), no second firing (no
   re-fire; the surviving Prometheus keeps the alert's activeAt), and exactly one "resolved" of each when
   it does end.
The notifications per incident before and after the kills are printed in every run's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from genesys_cloud_simulator import SimulatedGenesysCloud, SimulatorConfig

from stack.launcher import StackError, free_ports, http_get, prepare_alertmanager_dir, require_binary, tail
from stack.receiver import Receiver
from stack.render import PROMETHEUS_FLAGS, render_prometheus_config

from .support import PYTHON, REPO, wait_until

HOST = "127.0.0.1"
AGENT = "agent-sour"
SUSTAINED = "AgentSentimentSustainedNegative"
SEVERE = "AgentSentimentSevereNegative"
AGENT_ALERTS = (SUSTAINED, SEVERE)
# --cluster.peer-timeout: the second peer waits this long before it sends what the first has not sent
# (according to the gossiped notification log). It must stay BELOW the smallest group_interval of the
# routes (5 s, the supervisors' route): the peers flush a group in step, and with the default 15 s the
# second peer, judging a snapshot taken 15 s earlier, sends a stale FIRING after every RESOLVED the first
# one sent (Alertmanager issue #2447; this test caught it: one extra firing + resolved per call).
# docs/runbook.md "High availability and sharding" says so. A duplicate would arrive within it.
PEER_TIMEOUT = 3.0
# Platform alerts that must not fire while one replica of everything survives.
OUTAGE_ALERTS = ("GenesysSentimentExporterDown", "GenesysStreamDown", "GenesysSentimentDataUnavailable")

T = TypeVar("T")


# -- the pieces --------------------------------------------------------------------------------------


class SimulatorThread:
    """The simulated org in a thread of its own, paused until every replica has subscribed: the first
    sour call must be seen by both exporters from its start, or they would not track it alike."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="simulator", daemon=True)
        self.sim = SimulatedGenesysCloud(config)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=15)

    def start(self) -> None:
        self.sim.pause_scenarios()
        self.thread.start()
        self.run(self.sim.start(HOST, 0))

    def resume(self) -> None:
        self.loop.call_soon_threadsafe(self.sim.resume_scenarios)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.run(self.sim.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@dataclass
class Process:
    name: str
    argv: list[str]
    cwd: Path
    url: str
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    killed_at: float | None = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(
                self.argv, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def get(self, path: str) -> tuple[int, bytes]:
        return http_get(self.url + path, timeout=3.0)

    def ok(self, path: str) -> bool:
        if not self.alive():
            raise StackError(f"{self.name} exited with {self.popen and self.popen.poll()}:\n{tail(self.log)}")
        try:
            return self.get(path)[0] == 200
        except OSError:
            return False

    def json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, f"{self.name} {path}: {status} {body[:300]!r}"
        return json.loads(body)

    def kill(self) -> None:
        """SIGKILL: a crash, not a clean shutdown (no last notification, no goodbye to the cluster)."""
        assert self.popen is not None and self.alive(), f"{self.name} is not running"
        os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)
        self.killed_at = time.time()

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=5)


@dataclass
class Topology:
    run_dir: Path
    simulator: SimulatorThread
    receiver: Receiver
    exporters: list[Process] = field(default_factory=list)
    alertmanagers: list[Process] = field(default_factory=list)
    prometheus: list[Process] = field(default_factory=list)

    def processes(self) -> list[Process]:
        return [*self.prometheus, *self.exporters, *self.alertmanagers]

    def messages(self, since: float = 0.0, until: float = float("inf")) -> list[dict[str, Any]]:
        return [m.to_json() for m in self.receiver.store.list() if since <= m.received_at < until]

    def query(self, server: Process, expr: str) -> list[dict[str, Any]]:
        answer = server.json(f"/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result


def start_topology(run_dir: Path) -> Topology:
    prometheus_bin = require_binary("prometheus")  # a missing binary fails loudly, with how to install it
    alertmanager_bin = require_binary("prometheus-alertmanager")
    simulator = SimulatorThread(
        SimulatorConfig(
            scenarios=("sour",),
            seed=7,
            # 120 s sour calls (75 s by default): on a loaded machine the page comes late in a 75 s call, and
            # the kills need time left in the call to show no false resolve and no re-fire.
            sour_seconds=120.0,
        )
    )
    receiver = Receiver(HOST, 0).start()
    topology = Topology(run_dir, simulator, receiver)
    simulator.start()
    sim_url = simulator.sim.base_url
    secret = run_dir / "client-secret"
    secret.write_text(simulator.sim.config.client_secret)
    (run_dir / "logs").mkdir()

    # Two Alertmanagers, each the other's gossip peer.
    # Every port of the topology at once, distinct, below the ephemeral range (stack.launcher.free_ports):
    # the Prometheus servers bind theirs a minute later, after the others made many connections.
    ports = free_ports(8)
    web_ports, gossip_ports, exporter_ports, prometheus_ports = ports[0:2], ports[2:4], ports[4:6], ports[6:8]
    for index, name in enumerate(("alertmanager-a", "alertmanager-b")):
        am_dir = run_dir / name
        config = prepare_alertmanager_dir(am_dir, REPO, receiver.url)
        url = f"http://{HOST}:{web_ports[index]}"
        argv = [
            alertmanager_bin,
            f"--config.file={config}",
            f"--storage.path={am_dir / 'data'}",
            f"--web.listen-address={HOST}:{web_ports[index]}",
            f"--web.external-url={url}/",
            f"--cluster.listen-address={HOST}:{gossip_ports[index]}",
            f"--cluster.peer={HOST}:{gossip_ports[1 - index]}",
            f"--cluster.peer-timeout={PEER_TIMEOUT:.0f}s",
        ]
        topology.alertmanagers.append(Process(name, argv, am_dir, url, run_dir / "logs" / f"{name}.log"))

    # Two exporters on the same org and queue, as two replicas of one Deployment would be.
    for name, port in zip(("exporter-a", "exporter-b"), exporter_ports, strict=True):
        url = f"http://{HOST}:{port}"
        argv = [
            PYTHON,
            "-m",
            "genesys_sentiment_exporter",
            "run",
            "--web.listen-address",
            f"{HOST}:{port}",
            "--api-base-url",
            sim_url,
            "--login-base-url",
            sim_url,
            "--client-id",
            simulator.sim.config.client_id,
            "--client-secret-file",
            str(secret),
            "--queue-id",
            "q-billing",
            "--region",
            "eu-west-1",
            "--web.external-url",
            url,
        ]
        topology.exporters.append(Process(name, argv, REPO, url, run_dir / "logs" / f"{name}.log"))

    # Two Prometheus servers with the shipped configuration and rules, both replicas as targets.
    for name, port in zip(("prometheus-a", "prometheus-b"), prometheus_ports, strict=True):
        url = f"http://{HOST}:{port}"
        prom_dir = run_dir / name
        prom_dir.mkdir()
        addresses: dict[str, str | list[str]] = {
            "exporter": [p.url.removeprefix("http://") for p in topology.exporters],
            "alertmanager": [p.url.removeprefix("http://") for p in topology.alertmanagers],
            "prometheus": f"{HOST}:{port}",
        }
        shipped = REPO / "prometheus"
        rendered = render_prometheus_config((shipped / "prometheus.yml").read_text(), addresses, shipped.resolve())
        (prom_dir / "prometheus.yml").write_text(yaml.safe_dump(rendered, sort_keys=False))
        argv = [
            prometheus_bin,
            f"--config.file={prom_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={prom_dir / 'data'}",
            f"--web.listen-address={HOST}:{port}",
            f"--web.external-url={url}/",
            *PROMETHEUS_FLAGS,
        ]
        topology.prometheus.append(Process(name, argv, prom_dir, url, run_dir / "logs" / f"{name}.log"))

    try:
        for process in [*topology.alertmanagers, *topology.exporters]:
            process.start()
        for am in topology.alertmanagers:

            def clustered(am: Process = am) -> bool:
                if not am.ok("/-/ready"):
                    return False
                cluster = am.json("/api/v2/status")["cluster"]
                return bool(cluster["status"] == "ready" and len(cluster["peers"]) == 2)

            wait_until(clustered, 90, f"{am.name} to settle in a two-peer cluster")
        for exporter in topology.exporters:

            def subscribed(exporter: Process = exporter) -> bool:
                if not exporter.ok("/-/ready"):
                    return False
                metrics = exporter.get("/metrics")[1].decode()
                found = re.search(r"^genesys_notifications_topics_subscribed (\S+)$", metrics, re.MULTILINE)
                return found is not None and float(found.group(1)) >= 1

            wait_until(subscribed, 60, f"{exporter.name} to subscribe to the queue")
        for server in topology.prometheus:
            server.start()
        for server in topology.prometheus:
            wait_until(lambda server=server: server.ok("/-/ready"), 60, f"{server.name} to be ready")

            def both_targets_and_both_alertmanagers(server: Process = server) -> bool:
                up = topology.query(server, 'count(up{job="genesys-sentiment"} == 1)')
                managers = server.json("/api/v1/alertmanagers")["data"]["activeAlertmanagers"]
                return bool(up and up[0]["value"][1] == "2" and len(managers) == 2)

            wait_until(both_targets_and_both_alertmanagers, 60, f"{server.name} to scrape both exporters")
    except BaseException:
        stop_topology(topology)
        raise
    simulator.resume()  # scenario time starts now: the first sour call connects 4 s later
    return topology


def stop_topology(topology: Topology) -> None:
    # What Slack and PagerDuty received, for whoever reads a failure (the processes' logs are there too).
    (topology.run_dir / "logs" / "receiver.json").write_text(json.dumps(topology.messages(), indent=1))
    for process in topology.processes():
        process.stop()
    topology.receiver.stop()
    topology.simulator.stop()


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    topology = start_topology(tmp_path_factory.mktemp("ha"))
    try:
        yield topology
    finally:
        stop_topology(topology)


# -- reading the receiver ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Notification:
    kind: str  # "slack" or "pagerduty"
    status: str  # "firing" or "resolved"
    alertname: str
    received_at: float


def classify(message: dict[str, Any]) -> Notification | None:
    """What a recorded POST was about: the agent alerts of agent-sour; None for anything else."""
    body = message["body"]
    text = json.dumps(body)
    if AGENT not in text:
        return None
    if message["kind"] == "slack" and message["channel"] != "heartbeat":
        names = set(re.findall(r"`(\w+)`", text)) & set(AGENT_ALERTS)
        status = "resolved" if "[RESOLVED]" in text else "firing"
    elif message["kind"] == "pagerduty":
        runbook = str(body.get("payload", {}).get("custom_details", {}).get("runbook", ""))
        names = {name for name in AGENT_ALERTS if runbook.endswith("#" + name.lower())}
        status = "resolved" if body.get("event_action") == "resolve" else "firing"
    else:
        return None
    assert len(names) == 1, f"one alert per notification (grouped by alert name), got {names}: {text[:500]}"
    return Notification(message["kind"], status, names.pop(), message["received_at"])


def counts(notifications: list[Notification]) -> Counter[tuple[str, str, str]]:
    return Counter((n.kind, n.alertname, n.status) for n in notifications)


# One of each: the page the policy asks for (PagerDuty only for the severe alert), and its resolution.
EXPECTED = Counter(
    {
        ("slack", SUSTAINED, "firing"): 1,
        ("slack", SEVERE, "firing"): 1,
        ("pagerduty", SEVERE, "firing"): 1,
        ("slack", SUSTAINED, "resolved"): 1,
        ("slack", SEVERE, "resolved"): 1,
        ("pagerduty", SEVERE, "resolved"): 1,
    }
)


def figure(counted: Counter[tuple[str, str, str]]) -> str:
    return ", ".join(
        f"{kind} {name.removeprefix('AgentSentiment')} {status} x{n}"
        for (kind, name, status), n in sorted(counted.items())
    )


def notified(topology: Topology, since: float) -> list[Notification]:
    found = [classify(m) for m in topology.messages(since)]
    return [n for n in found if n is not None]


def wait_for_notifications(
    topology: Topology, since: float, wanted: list[tuple[str, str, str]], timeout: float
) -> list[Notification]:
    def complete() -> list[Notification] | None:
        dead = [p.name for p in topology.processes() if p.killed_at is None and not p.alive()]
        if dead:
            raise StackError(
                f"died: {dead}: " + "\n".join(tail(p.log, 10) for p in topology.processes() if p.name in dead)
            )
        seen = notified(topology, since)
        have = {(n.kind, n.alertname, n.status) for n in seen}
        return seen if all(w in have for w in wanted) else None

    return wait_until(complete, timeout, f"notifications {wanted}")


def metric_value(exporter: Process, metric: str) -> float | None:
    text = exporter.get("/metrics")[1].decode()
    # Any further labels (queue_id, party) may follow the agent's id.
    found = re.search(rf'^{metric}{{agent_id="{AGENT}"(?:,[^}}]*)?}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else None


def active_at(topology: Topology, server: Process) -> dict[str, str]:
    """alertname -> activeAt of agent-sour's firing agent alerts on one Prometheus."""
    alerts = server.json("/api/v1/alerts")["data"]["alerts"]
    return {
        a["labels"]["alertname"]: a["activeAt"]
        for a in alerts
        if a["labels"].get("agent_id") == AGENT and a["labels"]["alertname"] in AGENT_ALERTS and a["state"] == "firing"
    }


def notifications_sent(am: Process) -> float:
    text = am.get("/metrics")[1].decode()
    return sum(
        float(v)
        for v in re.findall(r'^alertmanager_notifications_total\{integration="pagerduty"\} (\S+)$', text, re.MULTILINE)
    )


# -- the story ---------------------------------------------------------------------------------------


def test_two_of_everything_page_once_and_survive_losing_one_of_each(
    ha: Topology, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.time()
    firing = [("slack", SUSTAINED, "firing"), ("slack", SEVERE, "firing"), ("pagerduty", SEVERE, "firing")]
    resolved = [("slack", SUSTAINED, "resolved"), ("slack", SEVERE, "resolved"), ("pagerduty", SEVERE, "resolved")]

    # 1. The first sour call, everything running.
    first = wait_for_notifications(ha, started, firing, timeout=180)
    first_page = min(n.received_at for n in first)
    first = wait_for_notifications(ha, first_page, resolved, timeout=240)

    # 2. The second sour call pages...
    first_resolved = max(n.received_at for n in first if n.status == "resolved")
    second = wait_for_notifications(ha, first_resolved + 1, firing, timeout=240)
    second_start = min(n.received_at for n in second)
    incident_1 = counts([n for n in notified(ha, started) if n.received_at < second_start])
    survivor_prometheus = ha.prometheus[1]
    before_kill = active_at(ha, survivor_prometheus)
    assert set(before_kill) == set(AGENT_ALERTS), f"not both agent alerts firing on the survivor: {before_kill}"

    # ... then one exporter, one Prometheus and the Alertmanager that sent the pages die together, once the
    # other Alertmanager has had its turn (its peer timeout) to learn of the pages through gossip and not
    # send them again. (A sender that dies within a gossip interval of a send cannot have told its peer:
    # the peer then sends the page a second time, Alertmanager's at-least-once; docs/runbook.md.)
    last_page = max(n.received_at for n in second)
    time.sleep(max(0.0, last_page + PEER_TIMEOUT + 2 - time.time()))
    sent = [notifications_sent(am) for am in ha.alertmanagers]
    assert max(sent) > 0 and sent[0] != sent[1], f"PagerDuty notifications per Alertmanager: {sent}"
    sender = ha.alertmanagers[sent.index(max(sent))]
    survivor_exporter = ha.exporters[1]
    # The call must be seen live before the kills, or "ended" below would hold from the start.
    assert metric_value(survivor_exporter, "genesys_agent_conversation_active") == 1.0, "the sour call is not live"
    for process in (ha.exporters[0], ha.prometheus[0], sender):
        process.kill()
    killed_at = time.time()

    # The call goes on for a while: the surviving Prometheus keeps the same alert (no reset, no re-fire).
    def call_ended() -> float | None:
        active = metric_value(survivor_exporter, "genesys_agent_conversation_active")
        now = time.time()
        firing_now = active_at(ha, survivor_prometheus)
        for name, since in firing_now.items():
            assert since == before_kill[name], (
                f"{name} restarted on the surviving Prometheus: {since} != {before_kill[name]}"
            )
        return now if not active else None

    ended_at = wait_until(call_ended, 200, "agent-sour's second call to end", poll=1.0)
    assert ended_at - killed_at >= 10, "the kills came too late in the call to prove anything"

    second = wait_for_notifications(ha, second_start, resolved, timeout=120)
    last = max(n.received_at for n in second)
    # A duplicate (a survivor not knowing what the dead one sent) would come within the peer timeout.
    time.sleep(max(0.0, last + PEER_TIMEOUT + 10 - time.time()))  # + group_interval 5 s, with margin
    second = notified(ha, second_start)
    incident_2 = counts(second)

    with capsys.disabled():
        print(
            f"\nHA: incident 1 (2 exporters, 2 Prometheus, 2 Alertmanagers): {figure(incident_1)}"
            f"\nHA: incident 2 (one of each SIGKILLed {killed_at - second_start:.0f} s after its page, "
            f"{ended_at - killed_at:.0f} s before the call ended): {figure(incident_2)}"
            f"\nHA: heartbeats (watchdog, repeat 1 m) over {time.time() - started:.0f} s: "
            f"{len([m for m in ha.messages(started) if m['channel'] == 'heartbeat'])}"
        )
    assert incident_1 == EXPECTED, f"before the kills: {figure(incident_1)}"
    assert incident_2 == EXPECTED, f"after the kills: {figure(incident_2)}"
    # No duplicate and no re-fire: every firing of the second incident came before the kills ...
    assert all(n.received_at < killed_at for n in second if n.status == "firing")
    # ... and no false resolve: nothing resolved before the call really ended.
    early = [n for n in second if n.status == "resolved" and n.received_at < ended_at]
    assert not early, f"resolved while the call was still sour: {early}"
    # One replica of everything was left: no platform alert about an outage reached anyone.
    outage = [m for m in ha.messages(started) if any(name in json.dumps(m["body"]) for name in OUTAGE_ALERTS)]
    assert not outage, f"an outage was reported although one replica of each survived: {outage}"
