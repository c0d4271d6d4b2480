"""`audit`: the pure core on crafted answers, then the command against the simulated org, trap by trap."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import SimFactory
from genesys_cloud_simulator import SimulatedGenesysCloud
from hypothesis import given, settings
from hypothesis import strategies as st

from genesys_sentiment_exporter.app import Exporter
from genesys_sentiment_exporter.audit import (
    Analyzer,
    Answer,
    Finding,
    Report,
    evaluate,
    first_reads,
    merge_pages,
    program_reads,
)
from genesys_sentiment_exporter.audit_shell import (
    _next_path,
    audit_command,
    first_token,
    missing_permissions,
)
from genesys_sentiment_exporter.check import run_check
from genesys_sentiment_exporter.config import Settings
from genesys_sentiment_exporter.logs import Redactor
from genesys_sentiment_exporter.metrics import render
from genesys_sentiment_exporter.model import StateChange

REPO = Path(__file__).resolve().parent.parent
STA = "/api/v2/speechandtextanalytics"

# -- crafted answers ---------------------------------------------------------------------------------


def queue(queue_id: str, name: str, language: str | None = "en-US", transcription: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"id": queue_id, "name": name, "enableTranscription": transcription}
    if language is not None:
        body["defaultMediaLanguage"] = language
    return body


def org(**changes: Any) -> dict[str, Answer]:
    """A healthy org with two queues in one program; `changes` replace answers by key (None removes)."""
    answers = {
        "transcription": Answer(200, {"transcription": "EnabledQueueFlow", "pciDssRedactionEnabled": False}),
        "sta_settings": Answer(200, {"expectedDialects": ["en-US"]}),
        "programs": Answer(200, {"entities": [{"id": "p1", "name": "Care", "published": True}]}),
        "mappings": Answer(
            200, {"entities": [{"program": {"id": "p1"}, "queues": [{"id": "q1"}, {"id": "q2"}], "flows": []}]}
        ),
        "dialects": Answer(200, {"entities": [{"engine": "Genesys", "dialects": ["en-US", "fr-FR"]}]}),
        "sentiment_dialects": Answer(200, {"entities": [{"dialect": "en-US"}, {"dialect": "fr-FR"}]}),
        "policies": Answer(200, {"entities": []}),
        "flows_inqueue": Answer(200, {"entities": []}),
        "flows_secure": Answer(200, {"entities": []}),
        "trunks": Answer(200, {"entities": []}),
        "queues": Answer(200, {"entities": [queue("q1", "Billing"), queue("q2", "Support")]}),
        "engines:p1": Answer(200, {"transcriptionEngines": [{"engine": "Genesys", "dialects": ["en-US"]}]}),
        "processing:p1": Answer(200, {"sentimentAnalysisEnabled": True}),
    }
    for key, value in changes.items():
        if value is None:
            answers.pop(key, None)
        else:
            answers[key] = value
    return answers


def audit(answers: dict[str, Answer], analyzer: Analyzer | None = None) -> Report:
    if analyzer is None:
        return evaluate(answers, [], True)
    return evaluate(answers, [], True, analyzer)


def not_ok(report: Report) -> list[Finding]:
    return [f for f in report.findings if f.level != "ok"]


def verdicts(report: Report) -> dict[str, tuple[str, str]]:
    return {q.queue_id: (q.verdict, q.reason) for q in report.queues}


def test_a_healthy_org_has_no_warning_and_every_queue_ok() -> None:
    report = audit(org())
    assert not_ok(report) == []
    assert verdicts(report) == {"q1": ("ok", ""), "q2": ("ok", "")}
    lines = [f.line() for f in report.findings if f.check == "coverage"]
    assert lines[0].startswith('ok   coverage         queue "Billing" (q1): will be analysed: ')
    assert 'program "Care" (p1)' in lines[0] and "sentiment on" in lines[0] and "en-US transcribed" in lines[0]
    assert not report.failed


def test_org_transcription_disabled_fails_every_queue_and_says_so_is_inferred() -> None:
    report = audit(org(transcription=Answer(200, {"transcription": "Disabled"})))
    fails = [f for f in report.findings if f.level == "FAIL"]
    assert {f.id for f in fails} == {"q1", "q2"}
    assert all(f.check == "transcription" and f.inferred and "EnabledGlobally" in f.fix for f in fails)
    assert fails[0].line().endswith("[inferred mapping]")
    assert verdicts(report)["q1"] == ("lost", "transcription_disabled")


def test_queue_without_transcription_fails_only_under_queue_flow_mode() -> None:
    queues = Answer(200, {"entities": [queue("q1", "Billing", transcription=False), queue("q2", "Support")]})
    report = audit(org(queues=queues))
    [fail] = [f for f in report.findings if f.level == "FAIL"]
    assert (fail.check, fail.name, fail.id) == ("transcription", "Billing", "q1")
    assert "enableTranscription=true" in fail.fix
    assert verdicts(report) == {"q1": ("lost", "queue_transcription_off"), "q2": ("ok", "")}
    globally = audit(org(queues=queues, transcription=Answer(200, {"transcription": "EnabledGlobally"})))
    assert not_ok(globally) == []


def test_unmapped_queue_fails_and_names_the_policy_that_only_records_it() -> None:
    mappings = Answer(200, {"entities": [{"program": {"id": "p1"}, "queues": [{"id": "q2"}]}]})
    policy = {
        "id": "pol-1",
        "name": "Legacy recording",
        "enabled": True,
        "mediaPolicies": {
            "callPolicy": {"conditions": {"forQueues": [{"id": "q1"}]}, "actions": {"retainRecording": True}}
        },
    }
    report = audit(org(mappings=mappings, policies=Answer(200, {"entities": [policy]})))
    [fail] = [f for f in report.findings if f.level == "FAIL"]
    assert (fail.check, fail.id) == ("program", "q1")
    assert '"Legacy recording" (pol-1)' in fail.text and "cannot turn analysis on" in fail.text
    assert "mappings" in fail.fix
    assert not fail.inferred
    assert verdicts(report)["q1"] == ("lost", "no_program")


def test_unmapped_queue_with_a_default_program_warns_as_inferred() -> None:
    mappings = Answer(200, {"entities": [{"program": {"id": "p1"}, "queues": [{"id": "q2"}]}]})
    settings = Answer(200, {"defaultProgram": {"id": "p1"}, "expectedDialects": ["en-US"]})
    report = audit(org(mappings=mappings, sta_settings=settings))
    [warn] = not_ok(report)
    assert (warn.level, warn.check, warn.id, warn.inferred) == ("WARN", "program", "q1", True)
    assert verdicts(report)["q1"] == ("degraded", "default_program")


def test_unpublished_program_and_sentiment_off_fail() -> None:
    programs = Answer(200, {"entities": [{"id": "p1", "name": "Care", "published": False}]})
    report = audit(org(programs=programs, **{"processing:p1": Answer(200, {"sentimentAnalysisEnabled": False})}))
    checks = sorted({(f.check, f.level) for f in not_ok(report)})
    assert checks == [("program", "FAIL"), ("sentiment", "FAIL")]
    assert verdicts(report)["q1"] == ("lost", "program_unpublished")
    sentiment = next(f for f in report.findings if f.check == "sentiment")
    assert '"Care" (p1)' in sentiment.text and "sentimentAnalysisEnabled=true" in sentiment.fix


def test_processing_settings_missing_on_an_older_org_is_a_warning_not_a_pass() -> None:
    report = audit(org(**{"processing:p1": Answer(404, {"code": "not.found"})}))
    warns = [f for f in not_ok(report) if f.check == "sentiment"]
    assert len(warns) == 2 and all(f.level == "WARN" and "cannot tell" in f.text for f in warns)


def test_dialect_mismatch_fails_with_the_dialects_and_the_fix() -> None:
    queues = Answer(200, {"entities": [queue("q1", "French desk", "fr-fr"), queue("q2", "Support")]})
    report = audit(org(queues=queues))
    [fail] = [f for f in report.findings if f.level == "FAIL"]
    assert (fail.check, fail.id, fail.inferred) == ("language", "q1", True)
    assert "fr-fr" in fail.text and "en-US only" in fail.text and "the org's engines offer it" in fail.text
    assert "add fr-fr" in fail.fix
    assert verdicts(report)["q1"] == ("lost", "dialect_not_transcribed")


def test_language_comes_from_the_in_queue_flow_when_the_queue_has_none() -> None:
    q = queue("q1", "Billing", language=None) | {"queueFlow": {"id": "f1"}}
    flows = Answer(200, {"entities": [{"id": "f1", "supportedLanguages": [{"language": "de-de", "isDefault": True}]}]})
    report = audit(org(queues=Answer(200, {"entities": [q]}), flows_inqueue=flows))
    fails = [f.text for f in report.findings if f.level == "FAIL"]
    assert len(fails) == 2, fails  # not transcribed in de-de, and Genesys sentiment does not cover it
    assert "de-de (its in-queue flow's default language)" in fails[0]
    assert "Genesys sentiment is not available for de-de" in fails[1]
    no_language = audit(org(queues=Answer(200, {"entities": [queue("q1", "Billing", language=None)]})))
    [warn] = not_ok(no_language)
    assert (warn.check, warn.level) == ("language", "WARN")
    assert verdicts(no_language)["q1"] == ("degraded", "language_unknown")


def test_a_language_genesys_sentiment_does_not_cover_fails() -> None:
    report = audit(org(sentiment_dialects=Answer(200, {"entities": ["fr-FR"]})))
    fails = [f for f in report.findings if f.level == "FAIL"]
    assert {f.id for f in fails} == {"q1", "q2"} and all("Genesys sentiment is not available" in f.text for f in fails)
    assert verdicts(report)["q1"] == ("lost", "language_not_scored")


def test_the_exporters_own_analyzer_is_asked_about_the_queue_language() -> None:
    english_only = Analyzer("lexicon", can_score=lambda dialect: dialect.lower().startswith("en"))
    assert not_ok(audit(org(), english_only)) == []
    queues = Answer(200, {"entities": [queue("q1", "Billing", "de-DE")]})
    engines = Answer(200, {"transcriptionEngines": [{"engine": "Genesys", "dialects": ["de-DE"]}]})
    report = audit(org(queues=queues, **{"engines:p1": engines}), english_only)
    [fail] = [f for f in report.findings if f.level == "FAIL"]
    assert "the exporter's analyzer (lexicon) cannot score de-DE" in fail.text
    undecided = Analyzer("lexicon", can_score=lambda dialect: None)
    assert [
        f for f in audit(org(queues=queues, **{"engines:p1": engines}), undecided).findings if f.level == "FAIL"
    ] == []


def test_audiohook_needs_audio_monitoring_on_each_queue() -> None:
    analyzer = Analyzer("Genesys", native=True, audio_monitoring=True)
    queues = Answer(
        200, {"entities": [queue("q1", "Billing") | {"enableAudioMonitoring": True}, queue("q2", "Support")]}
    )
    report = audit(org(queues=queues), analyzer)
    [warn] = not_ok(report)
    assert (warn.check, warn.id) == ("audiohook", "q2") and "enableAudioMonitoring=true" in warn.fix
    assert verdicts(report) == {"q1": ("ok", ""), "q2": ("degraded", "audio_monitoring_off")}
    assert not_ok(audit(org(queues=queues))) == []  # without AudioHook the flag does not matter


def test_redaction_and_secure_flows_warn_and_mark_queues_degraded() -> None:
    settings = Answer(200, {"transcription": "EnabledGlobally", "pciDssRedactionEnabled": True})
    flows = Answer(200, {"entities": [{"id": "s1", "name": "Card capture", "type": "SECURECALL"}]})
    report = audit(org(transcription=settings, flows_secure=flows))
    warns = not_ok(report)
    assert [(f.check, f.kind) for f in warns] == [("masking", "org"), ("masking", "flow")]
    assert "PCI (card numbers)" in warns[0].text and "PII" not in warns[0].text
    assert '"Card capture" (s1)' in warns[1].text
    assert verdicts(report)["q1"] == ("degraded", "redaction")
    assert not report.failed


def test_a_403_names_the_permission_the_platform_gives_and_leaves_queues_unknown() -> None:
    denied = Answer(403, {}, "", ("speechAndTextAnalytics:program:view",))
    report = audit(org(mappings=denied, programs=denied))
    fails = [f for f in report.findings if f.level == "FAIL"]
    assert [f.id for f in fails] == [f"GET {STA}/programs", f"GET {STA}/programs/mappings"]
    assert all("lacks speechAndTextAnalytics:program:view" in f.text for f in fails)
    assert verdicts(report) == {"q1": ("unknown", "permission_missing"), "q2": ("unknown", "permission_missing")}


def test_a_403_without_names_falls_back_to_the_documented_permission_and_flags_inferred_ones() -> None:
    report = audit(org(**{"processing:p1": Answer(403, {"message": "denied"})}))
    [fail] = [f for f in report.findings if f.check == "permission"]
    assert "speechAndTextAnalytics:program:view" in fail.text and fail.inferred
    optional = audit(org(trunks=Answer(403, {})))
    [warn] = not_ok(optional)
    assert warn.level == "WARN" and "telephony:plugin:all" in warn.text and "optional read" in warn.text


def test_a_watched_queue_named_twice_is_read_once_and_a_body_that_is_no_queue_is_unreadable() -> None:
    assert [r.key for r in first_reads(["q1", "q1"], False)].count("queue:q1") == 1
    answers = org(**{"queue:q1": Answer(200, queue("q1", "Billing")), "queue:q2": Answer(200, ["not", "a", "queue"])})
    report = evaluate(answers, ["q1", "q1", "q2"], False)
    assert [(q.queue_id, q.verdict, q.reason) for q in report.queues] == [
        ("q1", "ok", ""),
        ("q2", "unknown", "unreadable"),
    ]
    assert [(f.level, f.id) for f in not_ok(report)] == [("WARN", "q2")]


def test_a_watched_queue_that_does_not_exist_fails() -> None:
    answers = org(**{"queue:q9": Answer(404, {}), "queue:q1": Answer(200, queue("q1", "Billing"))})
    report = evaluate(answers, ["q1", "q9"], False)
    [fail] = [f for f in report.findings if f.level == "FAIL"]
    assert (fail.check, fail.id) == ("coverage", "q9") and "--queue-id" in fail.fix
    assert verdicts(report) == {"q1": ("ok", ""), "q9": ("lost", "queue_not_found")}


def test_deleting_policies_warn_and_trunks_without_recording_warn() -> None:
    policy = {
        "id": "pol-d",
        "name": "Delete all",
        "enabled": True,
        "mediaPolicies": {"callPolicy": {"conditions": {}, "actions": {"alwaysDelete": True}}},
    }
    chat_only = {"id": "pol-c", "name": "Chats", "mediaPolicies": {"chatPolicy": {"actions": {"alwaysDelete": True}}}}
    trunk = {"id": "t1", "name": "Carrier", "trunkType": "EXTERNAL", "properties": {}}
    policies = Answer(200, {"entities": [policy, chat_only]})
    report = audit(org(policies=policies, trunks=Answer(200, {"entities": [trunk]})))
    kinds = sorted((f.kind, f.id) for f in not_ok(report))
    assert kinds == [("policy", "pol-d"), ("policy", "pol-d"), ("trunk", "t1")]  # the policy applies to both queues


def test_reads_follow_the_queues_and_their_programs() -> None:
    keys = [r.key for r in first_reads(["q1", "q 2"], False)]
    assert "queue:q1" in keys and "queues" not in keys
    assert next(r.path for r in first_reads(["q 2"], False) if r.key == "queue:q 2").endswith("/queues/q%202")
    assert "queues" in [r.key for r in first_reads([], True)]
    reads = program_reads(org(), [], True)
    assert [r.key for r in reads] == ["engines:p1", "processing:p1"]
    assert reads[1].permission_confirmed is False


def test_json_report_and_paging_helpers() -> None:
    report = audit(org(transcription=Answer(200, {"transcription": "Disabled"})))
    document = json.loads(json.dumps(report.as_json()))
    assert document["summary"]["FAIL"] == 2
    assert {q["verdict"] for q in document["queues"]} == {"lost"}
    assert merge_pages([{"entities": [1], "total": 2}, {"entities": [2]}]) == {"entities": [1, 2], "total": 2}
    assert _next_path({"nextUri": "https://api.x/api/v2/flows?pageNumber=2"}, "/api/v2/flows") == (
        "/api/v2/flows?pageNumber=2"
    )
    assert _next_path({"nextUri": "/elsewhere"}, "/api/v2/flows") is None
    assert missing_permissions({"messageParams": {"missingPermissions": "a:b:view"}}) == ("a:b:view",)
    assert missing_permissions({"message": "You are missing the following permission(s): x:y:view"}) == ("x:y:view",)


# -- against the simulated org ---------------------------------------------------------------------


def settings_for(sim: SimulatedGenesysCloud, **values: Any) -> Settings:
    return Settings(
        api_base_url=sim.base_url,
        login_base_url=sim.base_url,
        client_id="demo-client",
        client_secret="demo-secret",
        **values,
    )


async def run_audit_on(
    start_sim: SimFactory, capsys: pytest.CaptureFixture[str], source: str = "analytics-websocket", **sim: Any
) -> tuple[int, str]:
    """`audit --all-queues`; by default as for the analytics stream, whose live scores are Genesys' own
    (the Notifications source scores transcripts with the exporter's analyzer: its own test below)."""
    simulated = await start_sim(org_max_page_size=2, **sim)  # small pages: every listing is paged
    status = await audit_command(settings_for(simulated, audit_all_queues=True, source=source), "text")
    return status, capsys.readouterr().out


def lines_at(out: str, level: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(level)]


@pytest.mark.parametrize(
    ("source", "scenarios", "queues"),
    [("analytics-websocket", [], 5), ("notifications", ["steady", "sour", "flapping"], 2)],
    ids=["genesys-sentiment-all-five-queues", "exporter-analyzer-english-queues"],
)
async def test_clean_org_no_false_alarm(
    start_sim: SimFactory, capsys: pytest.CaptureFixture[str], source: str, scenarios: list[str], queues: int
) -> None:
    status, out = await run_audit_on(start_sim, capsys, source=source, scenarios=scenarios)
    assert status == 0, out
    assert lines_at(out, "WARN") == [] and lines_at(out, "FAIL") == [], out
    coverage = [line for line in out.splitlines() if " coverage " in line]
    assert len(coverage) == queues and all("will be analysed" in line for line in coverage), out
    assert out.splitlines()[-1] == f"audit: {queues + 2} ok, 0 warnings, 0 failed; queues: {queues} ok"


async def test_the_exporters_analyzer_is_checked_against_each_queue_language(
    start_sim: SimFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    # The Notifications source scores transcripts with --sentiment-analyzer (vader: English only).
    status, out = await run_audit_on(start_sim, capsys, source="notifications")  # all five queues
    assert status == 1, out
    [fail] = lines_at(out, "FAIL")
    assert fail.startswith(
        'FAIL language         queue "French" (q-fr): the exporter\'s analyzer (vader) cannot score fr-FR'
    )
    assert "--sentiment-analyzer onnx" in fail
    english = [line for line in out.splitlines() if " coverage " in line]
    assert len(english) == 4 and all("en-US scored by vader" in line for line in english), out


TRAPS: list[tuple[str, str, list[str]]] = [
    (
        "no-transcription",
        'FAIL transcription    queue "Legacy" (q-legacy): org transcription is EnabledQueueFlow',
        ["enableTranscription=true", "[inferred mapping]"],
    ),
    (
        "legacy-policy",
        'FAIL program          queue "Legacy" (q-legacy): in no speech and text analytics program',
        ['"Legacy call recording" (policy-legacy)', "fix: Speech and Text Analytics > Programs"],
    ),
    (
        "sentiment-off",
        'FAIL sentiment        queue "Legacy" (q-legacy): program "Legacy desk" (prog-legacy) has sentiment',
        ["sentimentAnalysisEnabled=true"],
    ),
    (
        "dialect-mismatch",
        'FAIL language         queue "French" (q-fr): calls are in fr-FR',
        ['program "French desk" (prog-fr) transcribes en-US only', "add fr-FR"],
    ),
]


@pytest.mark.parametrize(("trap", "first", "more"), TRAPS, ids=[t[0] for t in TRAPS])
async def test_each_trap_is_found_named_and_fixed(
    start_sim: SimFactory, capsys: pytest.CaptureFixture[str], trap: str, first: str, more: list[str]
) -> None:
    status, out = await run_audit_on(start_sim, capsys, org_traps=[trap])
    assert status == 1, out
    [line] = lines_at(out, "FAIL")
    assert line.startswith(first), out
    for text in more:
        assert text in line, line
    assert lines_at(out, "WARN") == [], out  # nothing else is blamed


async def test_masking_warns_without_failing(start_sim: SimFactory, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = await run_audit_on(start_sim, capsys, scenarios=["masking"])  # the scenario implies the trap
    assert status == 0, out
    warns = lines_at(out, "WARN")
    assert len(warns) == 2, out
    assert warns[0].startswith('WARN masking          org "transcription settings"') and "PCI" in warns[0]
    assert '"Card capture (secure)" (flow-secure-card)' in warns[1]
    assert out.splitlines()[-1].endswith("queues: 1 degraded")  # the scenario's queue, q-payments


async def test_trunk_without_recording_warns(start_sim: SimFactory, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = await run_audit_on(start_sim, capsys, org_traps=["trunk-recording-off"])
    assert status == 0
    [warn] = lines_at(out, "WARN")
    assert warn.startswith('WARN trunk            trunk "Carrier SIP trunk" (trunk-carrier)')


async def test_a_missing_permission_is_named_exactly(start_sim: SimFactory, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = await run_audit_on(start_sim, capsys, forbidden_permissions=["speechAndTextAnalytics:program:view"])
    assert status == 1, out
    fails = lines_at(out, "FAIL")
    assert [line.split(":")[0] for line in fails] == [
        f"FAIL permission       read GET {STA}/programs",
        f"FAIL permission       read GET {STA}/programs/mappings",
    ], out
    assert all("the OAuth client lacks speechAndTextAnalytics:program:view" in line for line in fails)
    assert "queues: 5 unknown" in out.splitlines()[-1]


async def test_cli_exit_status_and_json(start_sim: SimFactory) -> None:
    sim = await start_sim(scenarios=["zero"])  # zero scores: the dialect mismatch behind them

    async def cli(*extra: str) -> tuple[int, str, str]:
        env = dict(os.environ, GENESYSCLOUD_OAUTHCLIENT_SECRET="demo-secret")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "genesys_sentiment_exporter",
            "audit",
            "--api-base-url",
            sim.base_url,
            "--login-base-url",
            sim.base_url,
            "--client-id",
            "demo-client",
            *extra,
            cwd=REPO,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
        assert process.returncode is not None
        return process.returncode, stdout.decode(), stderr.decode()

    status, out, err = await cli("--all-queues", "--output", "json")
    assert status == 1, out + err
    document = json.loads(out)
    fails = [f for f in document["findings"] if f["level"] == "FAIL"]
    # The dialect the program transcribes (inferred mapping), and the exporter's English-only analyzer.
    assert [(f["check"], f["id"], f["inferred"]) for f in fails] == [
        ("language", "q-fr", True),
        ("language", "q-fr", False),
    ]
    assert "transcribes en-US only" in fails[0]["text"] and "(vader) cannot score fr-FR" in fails[1]["text"]
    assert {q["queue_id"]: q["verdict"] for q in document["queues"]}["q-fr"] == "lost"
    status, out, err = await cli("--queue-id", "q-billing,q-support")
    assert status == 0, out + err
    assert out.splitlines()[-1] == "audit: 4 ok, 0 warnings, 0 failed; queues: 2 ok"
    assert "demo-secret" not in out + err
    status, out, err = await cli()  # neither queues nor --all-queues
    assert status == 0 and "pass --queue-id (repeatable) or --all-queues" in out, out + err


async def test_bad_credentials_are_one_line_and_exit_1(
    start_sim: SimFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = await start_sim()
    settings = settings_for(sim, audit_all_queues=True).model_copy(update={"client_id": "nobody"})
    status = await audit_command(settings, "text")
    out = capsys.readouterr().out
    assert status == 1
    assert out.startswith("FAIL token") and "invalid_client" in out and len(out.splitlines()) == 1


async def test_check_opens_with_the_audit(start_sim: SimFactory, capsys: pytest.CaptureFixture[str]) -> None:
    sim = await start_sim(scenarios=["steady"], agents=2, org_traps=["no-transcription"])
    settings = settings_for(
        sim, source="analytics-websocket", queue_id=["q-legacy"], web_listen_address="127.0.0.1:0", heartbeat_seconds=10
    )
    status = await run_check(Exporter(settings, Redactor()), 1.0)
    out = capsys.readouterr().out
    assert status == 1, out
    lines = out.splitlines()
    assert lines[0].startswith("ok   masking"), out
    audit_end = next(i for i, line in enumerate(lines) if line.startswith("audit: "))
    assert any(line.startswith('FAIL transcription    queue "Legacy" (q-legacy)') for line in lines[:audit_end])
    assert lines[audit_end + 1].startswith("[ok] token: "), out  # then the check itself


async def test_the_coverage_metric_shows_a_queue_that_lost_analysis(start_sim: SimFactory) -> None:
    sim = await start_sim(org_traps=["no-transcription"])
    # A large REST budget: the timer takes a tenth of it, and the default would pace this test to a minute.
    settings = settings_for(
        sim, queue_id=["q-legacy", "q-billing"], web_listen_address="127.0.0.1:0", api_requests_per_minute=60_000
    )
    exporter = Exporter(settings, Redactor())
    try:
        assert exporter.audit is not None
        text = render(exporter.registry).decode()
        assert "genesys_queue_sentiment_coverage_info{" not in text  # nothing known yet: no series, not "ok"
        assert await first_token(exporter.tokens) is None
        await exporter.audit.step()
        text = render(exporter.registry).decode()
        assert (
            'genesys_queue_sentiment_coverage_info{queue_id="q-legacy",queue_name="Legacy",'
            'reason="queue_transcription_off",verdict="lost"} 1.0'
        ) in text
        assert (
            'genesys_queue_sentiment_coverage_info{queue_id="q-billing",queue_name="Billing",reason="",'
            'verdict="ok"} 1.0' in text
        )
        assert 'genesys_audit_runs_total{result="success"} 1.0' in text
        assert 'genesys_audit_findings{level="FAIL"} 1.0' in text
        # Someone fixes the queue: the next run says so.
        sim.org.traps.discard("no-transcription")
        await exporter.audit.step()
        text = render(exporter.registry).decode()
        assert 'queue_id="q-legacy",queue_name="Legacy",reason="",verdict="ok"' in text
        # A call in a queue nobody named with --queue-id (an --agent-id deployment): audited from then on.
        assert 'queue_id="q-support"' not in text
        exporter.ingest.conversation(None, StateChange("agent-9", "q-support", "c9", "connected", time.time()))
        await exporter.audit.step()
        text = render(exporter.registry).decode()
        assert 'queue_id="q-support",queue_name="Support",reason="",verdict="ok"' in text
    finally:
        await exporter.http.aclose()


def test_the_audit_timer_can_be_turned_off() -> None:
    settings = Settings(
        api_base_url="http://127.0.0.1:1",
        login_base_url="http://127.0.0.1:1",
        client_id="c",
        client_secret="s",
        queue_id=["q1"],
        audit_interval_seconds=0,
    )
    exporter = Exporter(settings, Redactor())
    assert exporter.audit is None
    asyncio.run(exporter.http.aclose())


def test_simulate_refuses_an_unknown_org_trap_in_one_line() -> None:
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "genesys_sentiment_exporter", "simulate", "--listen-address", "127.0.0.1:0",
         "--org-trap", "bogus"],
        cwd=REPO, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "unknown org trap(s) ['bogus']" in line and "no-transcription" in line


FIELDS = [
    "id", "name", "entities", "transcription", "pciDssRedactionEnabled", "piiRedactionEnabled", "program", "queues",
    "published", "defaultProgram", "expectedDialects", "dialects", "transcriptionEngines", "sentimentAnalysisEnabled",
    "enableTranscription", "defaultMediaLanguage", "queueFlow", "supportedLanguages", "language", "isDefault",
    "mediaPolicies", "callPolicy", "conditions", "forQueues", "actions", "retainRecording", "alwaysDelete",
    "enabled", "trunkType", "properties", "trunk_recording_enabled", "value", "instance", "dialect",
]  # fmt: skip
# Any JSON whose objects mostly carry the field names the audit reads: shaped like an answer, holding anything.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(["q1", "p1", "f1", "en-US", "Disabled", ""]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=4), inner, max_size=5)
    ),
    max_leaves=25,
)

RECORD = st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=8)
LISTING = st.builds(lambda entities, rest: {**rest, "entities": entities}, st.lists(RECORD | JSON, max_size=4), RECORD)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([*org().keys(), "queue:q1"]),
        st.builds(Answer, st.sampled_from([200, 200, 200, 403, 404, 500, 0]), JSON | LISTING),
    ),
    st.booleans(),
)
def test_any_answer_shape_yields_a_report_never_an_exception(answers: dict[str, Answer], all_queues: bool) -> None:
    report = evaluate(answers, ["q1"], all_queues, Analyzer("x", can_score=lambda d: None))
    json.dumps(report.as_json())
    for finding in report.findings:
        assert finding.level in ("ok", "WARN", "FAIL")
        finding.line()
    assert all(q.verdict in ("ok", "degraded", "lost", "unknown") for q in report.queues)
