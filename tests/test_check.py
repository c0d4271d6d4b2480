"""`check`: the diagnosis of each trap on crafted state, then live runs against the simulator."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from genesys_cloud_simulator import SimulatedGenesysCloud
from genesys_cloud_simulator.scenarios import CallEvent

from genesys_sentiment_exporter.app import Exporter
from genesys_sentiment_exporter.audit import Answer
from genesys_sentiment_exporter.check import Finding, ReadingStats, diagnose, run_check, topic_access, topic_families
from genesys_sentiment_exporter.config import Settings
from genesys_sentiment_exporter.ingest import MISSING_SENTIMENT
from genesys_sentiment_exporter.logs import Redactor
from genesys_sentiment_exporter.model import Reading, StateChange
from genesys_sentiment_exporter.oauth import Token
from genesys_sentiment_exporter.sources.notifications_protocol import TopicResult
from tests.live_helpers import wait_for

SimFactory = Callable[..., Awaitable[SimulatedGenesysCloud]]
REPO = Path(__file__).resolve().parent.parent
HEALTHY_TOPICS = [
    "token",
    "stream",
    "heartbeat",
    "events",
    "sentiment field",
    "scores stuck at 0.0",
    "calls without sentiment",
]


@pytest.fixture
async def exporter() -> AsyncIterator[Exporter]:
    settings = Settings(
        api_base_url="http://127.0.0.1:1",
        login_base_url="http://127.0.0.1:1",
        client_id="c",
        client_secret="s",
        web_listen_address="127.0.0.1:0",
        heartbeat_seconds=30,
        grace_seconds=0,
        source="analytics-websocket",
    )
    built = Exporter(settings)
    yield built
    await built.http.aclose()


def with_token(e: Exporter) -> None:
    now = time.time()
    e.tokens.token = Token("token-value-123", 3600.0, now, now + 3600.0)


def subscribed(e: Exporter) -> ReadingStats:
    with_token(e)
    e.stream.connects = 1
    e.stream.connected = True
    stats = ReadingStats()
    stats.watch(e.ingest)
    return stats


def call(
    e: Exporter, agent: str, queue: str, conversation: str, scores: list[float], first_state: str = "connected"
) -> None:
    now = time.time()
    for state in dict.fromkeys((first_state, "connected")):
        e.ingest.conversation(None, StateChange(agent, queue, conversation, state, now))
    for score in scores:
        e.ingest.conversation(Reading(agent, queue, conversation, score, now), None)


def healthy(e: Exporter) -> ReadingStats:
    stats = subscribed(e)
    e.ingest.count("heartbeat")
    call(e, "agent-1", "q-billing", "c1", [0.2, -0.1, 0.4])
    call(e, "agent-2", "q-support", "c2", [0.0, 0.3])
    return stats


def failures(findings: list[Finding]) -> list[str]:
    return [f.topic for f in findings if not f.ok]


def only(findings: list[Finding], topic: str) -> Finding:
    [finding] = [f for f in findings if f.topic == topic]
    return finding


# -- crafted state -----------------------------------------------------------------------------------


def test_healthy_state_has_no_failure(exporter: Exporter) -> None:
    findings = diagnose(exporter, healthy(exporter), 60.0)
    assert [f.topic for f in findings] == HEALTHY_TOPICS
    assert failures(findings) == []
    assert all(f.line().startswith("[ok] ") for f in findings)
    assert "lifetime 3600 s" in only(findings, "token").text
    assert "1 heartbeats received" in only(findings, "heartbeat").text
    assert "5 with a score" in only(findings, "events").text


def test_trap_token(exporter: Exporter) -> None:
    exporter.tokens.last_error = "login host 127.0.0.1:1 rejected OAuth client 'c' (invalid_client)"
    findings = diagnose(exporter, ReadingStats(), 60.0)
    assert len(findings) == 1  # nothing else can be judged without a token
    assert failures(findings) == ["token"]
    assert findings[0].line() == "[FAIL] token: login host 127.0.0.1:1 rejected OAuth client 'c' (invalid_client)"


def test_trap_stream(exporter: Exporter) -> None:
    with_token(exporter)
    exporter.stream.last_error = "WebSocket upgrade refused with HTTP 401"
    findings = diagnose(exporter, ReadingStats(), 60.0)
    assert [f.topic for f in findings] == ["token", "stream"]
    assert failures(findings) == ["stream"]
    assert "HTTP 401" in findings[1].text
    assert findings[1].line().startswith("[FAIL] stream: never subscribed")


def test_trap_heartbeat(exporter: Exporter) -> None:
    stats = subscribed(exporter)
    call(exporter, "agent-1", "q-billing", "c1", [0.2, 0.3, 0.1])
    findings = diagnose(exporter, stats, 60.0)
    assert failures(findings) == ["heartbeat"]
    assert "although 30 s was requested" in only(findings, "heartbeat").text


def test_no_heartbeat_yet_is_fine_for_a_short_run(exporter: Exporter) -> None:
    stats = subscribed(exporter)
    call(exporter, "agent-1", "q-billing", "c1", [0.2, 0.3, 0.1])
    findings = diagnose(exporter, stats, 20.0)
    assert failures(findings) == []
    assert "none yet" in only(findings, "heartbeat").text


def test_trap_no_events(exporter: Exporter) -> None:
    stats = subscribed(exporter)
    exporter.ingest.count("heartbeat")
    findings = diagnose(exporter, stats, 60.0)
    assert failures(findings) == ["events"]
    assert "filters" in only(findings, "events").text


def test_trap_missing_sentiment_field(exporter: Exporter) -> None:
    stats = healthy(exporter)
    now = time.time()
    exporter.ingest.conversation(None, StateChange("agent-3", "q-support", "c3", "connected", now))
    for _ in range(4):
        exporter.ingest.conversation(
            None, StateChange("agent-3", "q-support", "c3", "connected", now), MISSING_SENTIMENT
        )
    findings = diagnose(exporter, stats, 60.0)
    assert failures(findings) == ["sentiment field"]
    text = only(findings, "sentiment field").text
    assert text.startswith("4 events carried no sentiment score")
    assert "NOT zeros" in text


def test_trap_scores_stuck_at_zero(exporter: Exporter) -> None:
    stats = healthy(exporter)
    call(exporter, "agent-fr-1", "q-fr", "c-fr-1", [0.0, 0.0])
    call(exporter, "agent-fr-2", "q-fr", "c-fr-2", [0.0])
    findings = diagnose(exporter, stats, 60.0)
    assert failures(findings) == ["scores stuck at 0.0"]
    text = only(findings, "scores stuck at 0.0").text
    assert text.startswith("queues q-fr:")
    assert "q-support" not in text  # one 0.0 among other scores is not stuck


def test_two_zero_scores_are_not_yet_stuck(exporter: Exporter) -> None:
    stats = healthy(exporter)
    call(exporter, "agent-fr-1", "q-fr", "c-fr-1", [0.0, 0.0])
    assert failures(diagnose(exporter, stats, 60.0)) == []


def test_trap_calls_without_sentiment(exporter: Exporter) -> None:
    stats = healthy(exporter)
    now = time.time()
    for i in range(2):
        agent, conversation = f"agent-legacy-{i}", f"c-legacy-{i}"
        for state in ("alerting", "connected", "ended"):  # seen from its start to its end, never a score
            exporter.ingest.conversation(None, StateChange(agent, "q-legacy", conversation, state, now))
    exporter.expire()  # grace 0: the ended calls are finished now
    findings = diagnose(exporter, stats, 60.0)
    assert failures(findings) == ["calls without sentiment"]
    text = only(findings, "calls without sentiment").text
    assert "q-legacy" in text
    assert "q-billing" not in text
    assert "recording policy" in text


def test_calls_already_running_at_start_are_not_judged(exporter: Exporter) -> None:
    """A call first seen connected (or ending) began before check: its readings may all be behind us."""
    stats = healthy(exporter)
    now = time.time()
    for i, states in enumerate((("connected", "wrapup", "ended"), ("wrapup", "ended"))):
        for state in states:
            exporter.ingest.conversation(None, StateChange(f"agent-masked-{i}", "q-payments", f"c-m-{i}", state, now))
    exporter.expire()
    findings = diagnose(exporter, stats, 60.0)
    assert failures(findings) == []
    text = only(findings, "calls without sentiment").text
    assert text.startswith("every call seen from start to end had a reading")
    assert "(4 calls already running when check started were not judged)" in text  # c1, c2 and the two above


def test_a_call_seen_from_its_start_with_a_score_is_fine(exporter: Exporter) -> None:
    stats = subscribed(exporter)
    exporter.ingest.count("heartbeat")
    call(exporter, "agent-1", "q-billing", "c1", [0.2, 0.1], first_state="alerting")
    exporter.ingest.conversation(None, StateChange("agent-1", "q-billing", "c1", "ended", time.time()))
    findings = diagnose(exporter, stats, 60.0)
    assert failures(findings) == []
    assert "(0 calls already running" in only(findings, "calls without sentiment").text


def test_events_without_a_single_score_fail(exporter: Exporter) -> None:
    """Calls come and go but no event carries a score: "0 with a score" is a failure, not an ok."""
    stats = subscribed(exporter)
    exporter.ingest.count("heartbeat")
    now = time.time()
    for state in ("alerting", "connected"):
        exporter.ingest.conversation(None, StateChange("agent-1", "q-billing", "c1", state, now))
    findings = diagnose(exporter, stats, 60.0)
    assert failures(findings) == ["events"]
    assert only(findings, "events").text.startswith("2 conversation events, none with a score")


def test_invalid_messages_are_reported(exporter: Exporter) -> None:
    stats = healthy(exporter)
    exporter.ingest.count("malformed")
    exporter.ingest.count("invalid_score")
    findings = diagnose(exporter, stats, 60.0)
    assert failures(findings) == ["message validity"]
    assert only(findings, "message validity").text.startswith("2 messages")


# -- live runs ----------------------------------------------------------------------------------------


def sim_settings(sim: SimulatedGenesysCloud, **values: object) -> Settings:
    return Settings(
        api_base_url=sim.base_url,
        login_base_url=sim.base_url,
        client_id="demo-client",
        client_secret="demo-secret",
        web_listen_address="127.0.0.1:0",
        heartbeat_seconds=10,
        **{"source": "analytics-websocket", **values},
    )


async def test_live_check_finds_zero_scores_and_missing_field(
    start_sim: SimFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    # Scenario time runs 10x faster so a 3 s run sees several readings of every lane.
    sim = await start_sim(scenarios=["zero", "missing-field"], speed=10.0, seed=3)
    status = await run_check(Exporter(sim_settings(sim), Redactor()), 3.0)
    out = capsys.readouterr().out
    assert status == 1, out
    lines = out.splitlines()
    assert any(line.startswith("[FAIL] scores stuck at 0.0: queues q-fr:") for line in lines), out
    assert any(line.startswith("[FAIL] sentiment field: ") for line in lines), out
    assert [line for line in lines if line.startswith("[FAIL]")] == [
        line for line in lines if line.startswith(("[FAIL] scores stuck", "[FAIL] sentiment field"))
    ], out
    assert "[ok] token: " in out
    assert "[ok] stream: subscribed" in out
    assert "[ok] heartbeat: none yet" in out  # 3 s is too short for a 10 s heartbeat, and that is not a failure
    assert lines[-1].endswith(", 2 failed")
    assert "demo-secret" not in out


async def test_live_check_ignores_a_call_already_running_at_its_start(
    start_sim: SimFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    # agent-masked's first call: readings for 40 s, then silence until it ends at 247-251 s (scenario time).
    # check starts at 60 s, after the last reading, and reads past the end: that call ended with no
    # reading *during the check*, yet it had readings; it must not be reported as a call without sentiment.
    sim = await start_sim(scenarios=["masking", "steady"], agents=2, speed=40.0, seed=3)
    await wait_for(lambda: sim.scenario_elapsed >= 60.0, timeout=20, what="scenario time 60 s")
    status = await run_check(Exporter(sim_settings(sim, grace_seconds=0), Redactor()), 6.0)
    out = capsys.readouterr().out
    assert sim.scenario_elapsed >= 255.0, f"the check did not read past the masked call's end: {out}"
    assert status == 0, out
    line = next(line for line in out.splitlines() if "calls without sentiment" in line)
    assert line.startswith("[ok] calls without sentiment: every call seen from start to end had a reading"), out
    running = int(line.split("(")[1].split()[0])
    assert running >= 3, out  # agent-masked's call and both steady agents' calls were already running


async def test_live_check_healthy_via_cli(start_sim: SimFactory) -> None:
    sim = await start_sim(scenarios=["steady"], agents=6, speed=2.0, seed=5)
    env = dict(os.environ)
    env["GENESYSCLOUD_OAUTHCLIENT_SECRET"] = "demo-secret"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "genesys_sentiment_exporter",
        "check",
        "--source",
        "analytics-websocket",
        "--api-base-url",
        sim.base_url,
        "--login-base-url",
        sim.base_url,
        "--client-id",
        "demo-client",
        "--heartbeat-seconds",
        "10",
        "--duration",
        "12.5",
        "--log.level",
        "warn",
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=40)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    out = stdout.decode()
    assert process.returncode == 0, out + stderr.decode()
    assert "[FAIL]" not in out
    for topic in HEALTHY_TOPICS:
        assert f"[ok] {topic}: " in out, out
    assert "heartbeats received" in out  # a real heartbeat arrived within the run
    assert out.splitlines()[-1] == f"check: {len(HEALTHY_TOPICS)} ok, 0 failed"
    assert "demo-secret" not in out + stderr.decode()


async def test_live_check_on_transcripts_names_unscorable_queues_and_the_cadence(
    start_sim: SimFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """The notifications source: French calls (the zero scenario) are named as unscorable by queue,
    never stuck-at-0.0; the cadence line says transcripts arrive while calls are live."""
    sim = await start_sim(scenarios=["zero", "sour"], speed=10.0, seed=3, transcript_batch_seconds=2.0)
    settings = sim_settings(sim, source="notifications", queue_id=["q-fr", "q-billing"])
    # check reads for a fixed time by design; 12 s (not 4) so a loaded machine still sees a French
    # utterance and a live transcript batch in it (4 s failed once at load 6).
    status = await run_check(Exporter(settings, Redactor()), 12.0)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert status == 1, out
    assert any(
        line.startswith("[FAIL] language: vader cannot score fr-FR utterances on queues q-fr (") for line in lines
    ), out
    assert not any(line.startswith("[FAIL] scores stuck at 0.0") for line in lines), out
    assert any(
        line.startswith("[ok] cadence: v2.conversations.{id}.transcription: ") and "while the call was live" in line
        for line in lines
    ), out


# -- topic access (availabletopics and the refusals seen while check ran) -----------------------------

FAMILIES = topic_families(["a1"], ["q1"])


def available(*entities: dict[str, object]) -> Answer:
    return Answer(200, {"entities": list(entities)})


def test_topic_access_names_what_each_family_needs() -> None:
    answer = available(
        {"id": "v2.users.{id}.conversations", "requiresCurrentUser": True, "requiresPermissions": ["a:b:c"]},
        {
            "id": "v2.routing.queues.{id}.conversations",
            "requiresPermissions": ["routing:queue:view", "conversation:communication:view"],
            "requiresCurrentUser": False,
        },
        {"id": "v2.conversations.{conversationId}.transcription", "requiresPermissions": []},
    )
    seen = {"v2.routing.queues.q1.conversations": TopicResult("v2.routing.queues.q1.conversations", True)}
    lines = [f.line() for f in topic_access(answer, FAMILIES, seen)]
    assert lines == [
        "[FAIL] topic access: v2.users.{id}.conversations: requires the current user: a client-credentials token "
        "has no user, so it is always refused",
        "[ok] topic access: v2.routing.queues.{id}.conversations: needs permissions routing:queue:view, "
        "conversation:communication:view; permitted while check ran",
        "[ok] topic access: v2.conversations.{id}.transcription: usable",
        "[FAIL] topic access: v2.speechandtextanalytics.conversation.{id}.sentiment: not offered by this org "
        "(absent from availabletopics): licence or region?",
    ]


def test_current_user_or_permission_and_any_validator_leave_the_permissions_as_the_requirement() -> None:
    answer = available(
        {
            "id": "v2.users.{id}.conversations",
            "requiresCurrentUserOrPermission": True,
            "requiresPermissions": ["x:y:z"],
        },
        {
            "id": "v2.conversations.{id}.transcription",
            "requiresCurrentUser": True,
            "requiresAnyValidator": True,
            "requiresPermissions": ["conversation:transcription:view"],
        },
    )
    findings = topic_access(answer, topic_families(["a1"], []), {})
    assert [f.ok for f in findings][:2] == [True, True]
    assert "needs permissions x:y:z (a user's own topic needs none" in findings[0].text
    assert findings[1].text.endswith("needs permissions conversation:transcription:view; not requested while check ran")


def test_a_refusal_seen_while_check_ran_fails_with_its_missing_permissions() -> None:
    answer = available(
        {"id": "v2.conversations.{id}.transcription", "requiresPermissions": ["conversation:transcription:view"]},
        {"id": "v2.speechandtextanalytics.conversation.{id}.sentiment", "requiresPermissions": ["s:d:v"]},
    )
    listing = TopicResult(
        "v2.conversations.c1.transcription", False, "missing_permissions", ("conversation:transcription:view",)
    )
    error = '{"code": "missing.permissions", "messageParams": {"missingPermissions": "s:d:v"}}'
    fallback = TopicResult("v2.speechandtextanalytics.conversation.c1.sentiment", False, "http_400", (), error)
    findings = topic_access(answer, topic_families([], []), {"t": listing, "s": fallback})
    assert [f.ok for f in findings] == [False, False]
    assert findings[0].text.endswith(
        "refused while check ran (missing_permissions); missing permissions: conversation:transcription:view"
    )
    assert findings[1].text.endswith("; missing permissions: s:d:v")  # read from the 4xx answer's body


def test_unreadable_availabletopics_is_a_failure_and_the_analytics_source_has_no_topics() -> None:
    [finding] = topic_access(Answer(403, {"message": "no"}), FAMILIES, {})
    assert not finding.ok and "could not read availabletopics (HTTP 403)" in finding.text
    assert topic_access(None, FAMILIES, {}) == []


async def test_live_check_reports_topics_the_token_may_not_use(
    start_sim: SimFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """The simulated org flags agents' conversation topics as requiring the current user and refuses the
    transcription topic for a permission the client lacks: check names both, and the queue topic as usable
    with the permissions availabletopics lists."""
    sim = await start_sim(
        current_user_topics=("v2.users.*.conversations",),
        forbidden_permissions=("conversation:transcription:view",),
    )
    settings = sim_settings(sim, source="notifications", queue_id=["q-billing"], agent_id=["agent-1"])
    check = asyncio.create_task(run_check(Exporter(settings, Redactor()), 8.0))
    queue_topic = "v2.routing.queues.q-billing.conversations"
    await wait_for(lambda: sim.notifications.subscribed(queue_topic), timeout=60, what="queue topic subscribed")
    for state in ("alerting", "connected"):  # a call starts once the exporter listens: its transcript is asked
        sim.notifications.publish_call(CallEvent(0.0, "c1", "agent-1", "q-billing", state, None, False, None, True))
    status = await asyncio.wait_for(check, 90)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert status == 1, out
    assert (
        "[FAIL] topic access: v2.users.{id}.conversations: requires the current user: a client-credentials "
        "token has no user, so it is always refused; refused while check ran (" in out
    ), out
    assert any(
        line.startswith(
            "[FAIL] topic access: v2.conversations.{id}.transcription: needs permissions "
            "conversation:transcription:view; refused while check ran ("
        )
        and line.endswith("missing permissions: conversation:transcription:view")
        for line in lines
    ), out
    assert (
        "[ok] topic access: v2.routing.queues.{id}.conversations: needs permissions routing:queue:view, "
        "conversation:communication:view; permitted while check ran" in out
    ), out
    assert any(
        line.startswith("[ok] topic access: v2.speechandtextanalytics.conversation.{id}.sentiment: needs permissions")
        for line in lines
    ), out
