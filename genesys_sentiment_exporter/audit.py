"""Pre-deployment audit of the org's configuration: will each watched queue's calls get sentiment?

The design document's costliest trap is a queue whose calls are recorded but never analysed: its
escalations bypass monitoring and supervisors trust a silence that means nothing. Its language-model
mismatch (scores stuck at neutral) and compliance masking are in the configuration too. This module
reads the answers of the platform's REST API (shared/org-audit-notes.md) and says, queue by queue,
what will happen and which setting to change.

Pure: it is fed REST answers and returns findings; the I/O shell is `audit_shell.py`. The audit runs
in two rounds because some reads depend on others: `first_reads()` (org-wide settings, the queues,
programs and their mappings), then `program_reads()` for the programs that cover the audited queues
(transcription engines and processing settings exist only per program), then `evaluate()`.

Where a finding rests on an inferred mapping (a field exists and is confirmed, but that it decides
the outcome is our reading or a third party's), the finding says so (`inferred=True`): the
platform's own model and help texts confirm some mappings and not others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

Level = Literal["ok", "WARN", "FAIL"]
Verdict = Literal["ok", "degraded", "lost", "unknown"]
VERDICTS: tuple[Verdict, ...] = ("ok", "degraded", "lost", "unknown")
# Why a queue is not "ok": a bounded set, so it can be a metric label.
REASONS: tuple[str, ...] = (
    "",
    "queue_not_found",
    "transcription_disabled",
    "queue_transcription_off",
    "no_program",
    "default_program",
    "program_unpublished",
    "sentiment_disabled",
    "dialect_not_transcribed",
    "language_not_scored",
    "language_unknown",
    "redaction",
    "audio_monitoring_off",
    "permission_missing",
    "unreadable",
)

QUEUES_PAGE_SIZE = 100
ORG = "org"

STA = "/api/v2/speechandtextanalytics"


@dataclass(frozen=True)
class Read:
    """One GET the audit needs. `required`: a 403 on it leaves queues unjudged (FAIL); optional reads WARN."""

    key: str
    path: str
    permission: str  # "" = the platform documents none
    permission_confirmed: bool = True
    required: bool = True
    paged: bool = False  # the shell follows nextUri and merges `entities`


@dataclass(frozen=True)
class Answer:
    """What the platform said: HTTP status (0 = no answer at all) and the JSON body (merged pages)."""

    status: int
    body: Any = None
    error: str = ""  # for status 0 or a body that is not JSON; never holds a secret
    missing_permissions: tuple[str, ...] = ()  # as named by the platform's 403 body, when it names them


@dataclass(frozen=True)
class Finding:
    level: Level
    check: str  # transcription, program, sentiment, language, masking, recording-policy, trunk, permission, coverage
    kind: str  # queue, program, policy, flow, trunk, org, read
    name: str
    id: str
    text: str
    fix: str = ""
    inferred: bool = False
    queue_id: str = ""

    def line(self) -> str:
        subject = (
            f'{self.kind} "{self.name}" ({self.id})' if self.name and self.name != self.id else f"{self.kind} {self.id}"
        )
        text = f"{self.level:<4} {self.check:<16} {subject}: {self.text}"
        if self.fix:
            text += f"; fix: {self.fix}"
        if self.inferred:
            text += " [inferred mapping]"
        return text

    def as_json(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "check": self.check,
            "kind": self.kind,
            "name": self.name,
            "id": self.id,
            "text": self.text,
            "fix": self.fix,
            "inferred": self.inferred,
            "queue_id": self.queue_id,
        }


@dataclass(frozen=True)
class QueueCoverage:
    queue_id: str
    queue_name: str
    verdict: Verdict
    reason: str  # one of REASONS: the worst problem found
    language: str = ""
    program_id: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "queue_id": self.queue_id,
            "queue_name": self.queue_name,
            "verdict": self.verdict,
            "reason": self.reason,
            "language": self.language,
            "program_id": self.program_id,
        }


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    queues: list[QueueCoverage] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(f.level == "FAIL" for f in self.findings)

    def counts(self) -> dict[Level, int]:
        out: dict[Level, int] = {"ok": 0, "WARN": 0, "FAIL": 0}
        for finding in self.findings:
            out[finding.level] += 1
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "findings": [f.as_json() for f in self.findings],
            "queues": [q.as_json() for q in self.queues],
            "summary": self.counts(),
        }


@dataclass(frozen=True)
class Analyzer:
    """Who turns the transcript into a score, and which languages it can score.

    `can_score(dialect)` answers True/False, or None when it cannot tell. `native=True` is Genesys'
    own sentiment (the Notifications source reads its scores): its languages are the platform's
    `sentiment/dialects` listing, so `can_score` is not used.
    """

    name: str
    can_score: Callable[[str], bool | None] | None = None
    native: bool = False
    audio_monitoring: bool = False  # the exporter also runs an AudioHook Monitor server (--source ...,audiohook)


GENESYS_NATIVE = Analyzer("Genesys speech and text analytics sentiment", native=True)


# -- the reads --------------------------------------------------------------------------------------


def first_reads(queue_ids: Sequence[str], all_queues: bool) -> list[Read]:
    """Org-wide settings and the queues to audit: every queue (`all_queues`) or each watched one."""
    reads = [
        Read("transcription", "/api/v2/routing/settings/transcription", "routing:transcriptionSettings:view"),
        Read("sta_settings", f"{STA}/settings", "speechAndTextAnalytics:settings:view"),
        Read("programs", f"{STA}/programs?pageSize=100", "speechAndTextAnalytics:program:view", paged=True),
        Read("mappings", f"{STA}/programs/mappings?pageSize=100", "speechAndTextAnalytics:program:view", paged=True),
        Read("dialects", f"{STA}/programs/transcriptionengines/dialects", ""),
        # Its permission and the meaning of its untyped items are unconfirmed: a refusal only skips that check.
        Read(
            "sentiment_dialects",
            f"{STA}/sentiment/dialects",
            "speechAndTextAnalytics:settings:view",
            permission_confirmed=False,
            required=False,
        ),
        Read(
            "policies",
            "/api/v2/recording/mediaretentionpolicies?pageSize=100&enabled=true",
            "recording:retentionPolicy:view",
            required=False,
            paged=True,
        ),
        Read(
            "flows_inqueue",
            "/api/v2/flows?type=inqueuecall&pageSize=100",
            "architect:flow:view",
            required=False,
            paged=True,
        ),
        Read(
            "flows_secure",
            "/api/v2/flows?type=securecall&pageSize=100",
            "architect:flow:view",
            required=False,
            paged=True,
        ),
        Read(
            "trunks",
            "/api/v2/telephony/providers/edges/trunkbasesettings?recordingEnabled=false&expand=properties&pageSize=100",
            "telephony:plugin:all",
            required=False,
            paged=True,
        ),
    ]
    if all_queues:
        reads.append(
            Read("queues", f"/api/v2/routing/queues?pageSize={QUEUES_PAGE_SIZE}", "routing:queue:view", paged=True)
        )
    else:
        reads.extend(
            Read(f"queue:{q}", f"/api/v2/routing/queues/{quote(q, safe='')}", "routing:queue:view")
            for q in dict.fromkeys(queue_ids)
        )
    return reads


def program_reads(answers: Mapping[str, Answer], queue_ids: Sequence[str], all_queues: bool) -> list[Read]:
    """Per-program reads for the programs that cover the audited queues (and the default program)."""
    queues = _queues(answers, queue_ids, all_queues)
    mapping = _program_of_queue(answers)
    wanted: list[str] = []
    for queue in queues:
        wanted.extend(mapping.get(queue["id"], []))
    default = _default_program(answers)
    if default:
        wanted.append(default)
    reads = []
    for program_id in dict.fromkeys(wanted):
        q = quote(program_id, safe="")
        reads.append(
            Read(
                f"engines:{program_id}",
                f"{STA}/programs/{q}/transcriptionengines",
                "speechAndTextAnalytics:program:view",
            )
        )
        reads.append(
            Read(
                f"processing:{program_id}",
                f"{STA}/programs/{q}/settings/processing",
                "speechAndTextAnalytics:program:view",
                permission_confirmed=False,
            )
        )
    return reads


def all_reads(answers: Mapping[str, Answer], queue_ids: Sequence[str], all_queues: bool) -> list[Read]:
    return first_reads(queue_ids, all_queues) + program_reads(answers, queue_ids, all_queues)


# -- helpers over answers ---------------------------------------------------------------------------


def _ok(answers: Mapping[str, Answer], key: str) -> Any:
    answer = answers.get(key)
    return answer.body if answer is not None and answer.status == 200 else None


def _entities(body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("entities"), list):
        return []
    return [e for e in body["entities"] if isinstance(e, dict)]


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _actions(policy: dict[str, Any]) -> dict[str, Any]:
    return _dict(_dict(_dict(policy.get("mediaPolicies")).get("callPolicy")).get("actions"))


def _ref_id(value: Any) -> str:
    return _str(value.get("id")) if isinstance(value, dict) else ""


def norm_language(code: str) -> str:
    """`en_US`, `en-us`, `EN-US` are one dialect (notes b5: compare case-insensitively)."""
    return code.strip().replace("_", "-").lower()


def _queues(answers: Mapping[str, Answer], queue_ids: Sequence[str], all_queues: bool) -> list[dict[str, Any]]:
    if all_queues:
        return [q for q in _entities(_ok(answers, "queues")) if _str(q.get("id"))]
    out = []
    for queue_id in dict.fromkeys(queue_ids):
        body = _ok(answers, f"queue:{queue_id}")
        if isinstance(body, dict) and _str(body.get("id")):
            out.append(body)
    return out


def _program_of_queue(answers: Mapping[str, Answer]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for mapping in _entities(_ok(answers, "mappings")):
        program = _ref_id(mapping.get("program"))
        queues = mapping.get("queues")
        if not program or not isinstance(queues, list):
            continue
        for queue in queues:
            if queue_id := _ref_id(queue):
                out.setdefault(queue_id, []).append(program)
    return out


def _default_program(answers: Mapping[str, Answer]) -> str:
    body = _ok(answers, "sta_settings")
    return _ref_id(body.get("defaultProgram")) if isinstance(body, dict) else ""


def _dialect_of(item: Any) -> str:
    """`sentiment/dialects` items are untyped in the SDK (notes b3): accept a string or a small object."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        for key in ("dialect", "id", "language", "name"):
            if isinstance(item.get(key), str):
                return str(item[key])
    return ""


# -- evaluation -------------------------------------------------------------------------------------


@dataclass
class _QueueState:
    findings: list[Finding] = field(default_factory=list)
    reasons_fail: list[str] = field(default_factory=list)
    reasons_warn: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    good: list[str] = field(default_factory=list)


class _Evaluation:
    def __init__(
        self, answers: Mapping[str, Answer], queue_ids: Sequence[str], all_queues: bool, analyzer: Analyzer
    ) -> None:
        self.answers = answers
        self.queue_ids = queue_ids
        self.all_queues = all_queues
        self.analyzer = analyzer
        self.report = Report()
        self.reads = {r.key: r for r in all_reads(answers, queue_ids, all_queues)}
        self.denied: set[str] = set()  # keys answered 403/401
        self.program_names = {
            _str(p.get("id")): _str(p.get("name")) for p in _entities(_ok(answers, "programs")) if p.get("id")
        }
        self.published = {
            _str(p.get("id")): p.get("published") for p in _entities(_ok(answers, "programs")) if p.get("id")
        }

    def add(self, finding: Finding) -> None:
        self.report.findings.append(finding)

    # -- reads that failed ------------------------------------------------------------------------
    def read_findings(self) -> None:
        for key, read in self.reads.items():
            answer = self.answers.get(key)
            if answer is None or answer.status == 200:
                continue
            method_path = f"GET {read.path.split('?')[0]}"
            if answer.status in (401, 403):
                self.denied.add(key)
                named = [p for p in answer.missing_permissions if p]
                permission = ", ".join(named) if named else read.permission or "(the platform documents none)"
                guessed = not named and not read.permission_confirmed
                self.add(
                    Finding(
                        "FAIL" if read.required else "WARN",
                        "permission",
                        "read",
                        "",
                        method_path,
                        f"HTTP {answer.status}: the OAuth client lacks {permission}"
                        + ("" if read.required else " (optional read; the checks that need it are skipped)"),
                        f"grant the OAuth client's role {permission} (Admin > Roles/Permissions)",
                        inferred=guessed,
                    )
                )
            elif answer.status == 404 and key.startswith("queue:"):
                queue_id = key.removeprefix("queue:")
                self.add(
                    Finding(
                        "FAIL",
                        "coverage",
                        "queue",
                        "",
                        queue_id,
                        "no such queue in this org (HTTP 404): nothing will be monitored for it",
                        "correct --queue-id (Admin > Contact Center > Queues shows each queue's id)",
                        queue_id=queue_id,
                    )
                )
            elif answer.status == 404 and key.startswith("processing:"):
                continue  # older orgs lack the endpoint: reported per queue as "cannot tell"
            else:
                what = answer.error or f"HTTP {answer.status}"
                self.add(
                    Finding(
                        "FAIL" if read.required else "WARN",
                        "read",
                        "read",
                        "",
                        method_path,
                        f"could not be read ({what}); the checks that need it are skipped",
                        "run the audit again; if it persists, check the platform's status page",
                    )
                )

    # -- org-wide -----------------------------------------------------------------------------------
    def org_findings(self) -> None:
        settings = _ok(self.answers, "transcription")
        if isinstance(settings, dict):
            pci = settings.get("pciDssRedactionEnabled") is True
            pii = settings.get("piiRedactionEnabled") is True
            if pci or pii:
                kinds = " and ".join(k for k, on in (("PCI (card numbers)", pci), ("PII", pii)) if on)
                self.add(
                    Finding(
                        "WARN",
                        "masking",
                        ORG,
                        "transcription settings",
                        "routing/settings/transcription",
                        f"automatic redaction of {kinds} is on: transcripts carry placeholders such as "
                        "[card number] instead of the words, and sentiment over those stretches is weaker",
                        "keep it if compliance needs it (expect weaker scores on payment talk); otherwise turn "
                        "off pciDssRedactionEnabled/piiRedactionEnabled (Admin > Speech and Text Analytics)",
                        inferred=True,
                    )
                )
            else:
                self.add(
                    Finding(
                        "ok",
                        "masking",
                        ORG,
                        "transcription settings",
                        "routing/settings/transcription",
                        "no PCI/PII redaction of transcripts",
                    )
                )
        secure = _entities(_ok(self.answers, "flows_secure"))
        if secure:
            names = ", ".join(f'"{_str(f.get("name"))}" ({_str(f.get("id"))})' for f in secure[:5])
            more = f" and {len(secure) - 5} more" if len(secure) > 5 else ""
            self.add(
                Finding(
                    "WARN",
                    "masking",
                    "flow",
                    "secure call flows",
                    f"{len(secure)} flow(s)",
                    f"secure call flows exist ({names}{more}): while a call is in one, or in a secure pause, "
                    "nothing is recorded, transcribed or scored; those gaps are expected, not outages",
                    "none needed; expect sentiment to stop during card capture",
                )
            )
        if "transcription" in self.answers:
            self.add(
                Finding(
                    "ok",
                    "masking",
                    ORG,
                    "secure pause",
                    "-",
                    "secure pause has no org-wide setting; it shows per call (recordingState paused) and "
                    "stops sentiment for its span",
                )
            )
        trunks = [
            t
            for t in _entities(_ok(self.answers, "trunks"))
            if _str(t.get("trunkType")).upper() in ("EXTERNAL", "") and not _trunk_records(t)
        ]
        for trunk in trunks:
            self.add(
                Finding(
                    "WARN",
                    "trunk",
                    "trunk",
                    _str(trunk.get("name")),
                    _str(trunk.get("id")),
                    "this external trunk does not record calls; calls it carries are neither transcribed nor "
                    "analysed (which queues it carries cannot be read from the API)",
                    "Admin > Telephony > Trunks > this trunk > Media > Recording: enable",
                    inferred=True,
                )
            )

    # -- per queue ----------------------------------------------------------------------------------
    def queues(self) -> None:
        queues = _queues(self.answers, self.queue_ids, self.all_queues)
        if not queues and not self.all_queues and not self.queue_ids:
            self.add(
                Finding(
                    "WARN",
                    "coverage",
                    "queue",
                    "",
                    "-",
                    "no queue to audit",
                    "pass --queue-id (repeatable) or --all-queues",
                )
            )
        for queue in queues:
            self.queue(queue)
        if not self.all_queues:  # a watched queue that could not be read at all
            judged = {_str(q.get("id")) for q in queues}
            for queue_id in dict.fromkeys(self.queue_ids):
                answer = self.answers.get(f"queue:{queue_id}")
                if answer is None or queue_id in judged:
                    continue
                reason = "queue_not_found" if answer.status == 404 else "permission_missing"
                if answer.status not in (401, 403, 404):
                    reason = "unreadable"
                if answer.status == 200:  # the other statuses have their line among the reads
                    self.add(
                        Finding(
                            "WARN",
                            "coverage",
                            "queue",
                            "",
                            queue_id,
                            "the platform's answer is not a queue; cannot tell whether its calls will be analysed",
                            "run the audit again",
                            queue_id=queue_id,
                        )
                    )
                verdict: Verdict = "lost" if reason == "queue_not_found" else "unknown"
                self.report.queues.append(QueueCoverage(queue_id, "", verdict, reason))

    def _program_label(self, program_id: str) -> str:
        name = self.program_names.get(program_id, "")
        return f'"{name}" ({program_id})' if name else program_id

    def queue(self, queue: dict[str, Any]) -> None:
        queue_id, name = _str(queue.get("id")), _str(queue.get("name"))
        state = _QueueState()

        def add(level: Level, check: str, text: str, fix: str = "", reason: str = "", inferred: bool = False) -> None:
            state.findings.append(Finding(level, check, "queue", name, queue_id, text, fix, inferred, queue_id))
            if level == "FAIL":
                state.reasons_fail.append(reason)
            elif level == "WARN":
                state.reasons_warn.append(reason)

        self._transcription(queue, state, add)
        program = self._program(queue, state, add)
        language = self._language(queue, program, state, add)
        self._policies(queue, state)
        settings = _ok(self.answers, "transcription")
        if isinstance(settings, dict) and (
            settings.get("pciDssRedactionEnabled") is True or settings.get("piiRedactionEnabled") is True
        ):
            state.reasons_warn.append("redaction")
        if self.analyzer.audio_monitoring:
            if queue.get("enableAudioMonitoring") is True:
                state.good.append("audio monitoring on (AudioHook)")
            else:
                add(
                    "WARN",
                    "audiohook",
                    "audio monitoring is off for this queue: the exporter's AudioHook Monitor receives none of "
                    "its calls unless an Architect flow's Audio Monitoring action turns it on",
                    "Admin > Contact Center > Queues > this queue > Voice > Audio monitoring: on "
                    "(enableAudioMonitoring=true)",
                    "audio_monitoring_off",
                )
        if queue.get("suppressInQueueCallRecording") is True:
            state.good.append("in-queue audio not recorded (agent talk is)")

        if state.reasons_fail:
            verdict: Verdict = "lost"
            reason = state.reasons_fail[0]
        elif state.unknown:
            verdict, reason = "unknown", state.unknown[0]
        elif state.reasons_warn:
            verdict, reason = "degraded", state.reasons_warn[0]
        else:
            verdict, reason = "ok", ""
        if verdict in ("ok", "degraded") and not any(f.level != "ok" for f in state.findings):
            summary = "; ".join(state.good) if state.good else "nothing to report"
            if verdict == "degraded":
                summary += f" (degraded by {reason.replace('_', ' ')}: see the org-wide line above)"
            state.findings.insert(
                0,
                Finding("ok", "coverage", "queue", name, queue_id, f"will be analysed: {summary}", queue_id=queue_id),
            )
        if verdict == "unknown":
            state.findings.append(
                Finding(
                    "WARN",
                    "coverage",
                    "queue",
                    name,
                    queue_id,
                    f"cannot tell whether its calls will be analysed ({reason.replace('_', ' ')}); see the lines above",
                    "grant the missing permissions and run the audit again",
                    queue_id=queue_id,
                )
            )
        self.report.findings.extend(state.findings)
        self.report.queues.append(QueueCoverage(queue_id, name, verdict, reason, language, program or ""))

    def _transcription(self, queue: dict[str, Any], state: _QueueState, add: Callable[..., None]) -> None:
        settings = _ok(self.answers, "transcription")
        if not isinstance(settings, dict):
            state.unknown.append("permission_missing" if "transcription" in self.denied else "unreadable")
            return
        mode = _str(settings.get("transcription"))
        flag = queue.get("enableTranscription") is True
        if mode == "Disabled":
            add(
                "FAIL",
                "transcription",
                "voice transcription is Disabled for the whole org: no call is transcribed, so none is analysed",
                "Admin > Speech and Text Analytics > Voice Transcription: 'Enabled for all flows and queues' "
                "(transcription=EnabledGlobally in PUT /api/v2/routing/settings/transcription), or "
                "EnabledQueueFlow and enable it on this queue",
                "transcription_disabled",
                inferred=True,
            )
        elif mode == "EnabledQueueFlow" and not flag:
            add(
                "FAIL",
                "transcription",
                "org transcription is EnabledQueueFlow and this queue does not enable transcription "
                "(enableTranscription is off): its calls are recorded but not transcribed, so never scored "
                "(unless an Architect flow turns transcription on, which the API does not show)",
                "Admin > Contact Center > Queues > this queue > Voice > Voice Transcription: on "
                "(enableTranscription=true)",
                "queue_transcription_off",
                inferred=True,
            )
        elif mode == "EnabledGlobally":
            state.good.append("transcription EnabledGlobally")
        elif mode == "EnabledQueueFlow":
            state.good.append("transcription on for this queue")
        else:
            add("WARN", "transcription", f"unknown transcription mode {mode!r}", "", "unreadable")
            state.unknown.append("unreadable")

    def _program(self, queue: dict[str, Any], state: _QueueState, add: Callable[..., None]) -> str | None:
        if _ok(self.answers, "mappings") is None:
            state.unknown.append("permission_missing" if "mappings" in self.denied else "unreadable")
            return None
        queue_id = _str(queue.get("id"))
        programs = _program_of_queue(self.answers).get(queue_id, [])
        if len(programs) > 1:
            labels = ", ".join(self._program_label(p) for p in programs)
            add(
                "WARN",
                "program",
                f"the queue is mapped to several programs ({labels}); the platform keeps one per queue",
                "keep the queue in one program",
                "",
                inferred=True,
            )
        if programs:
            program = programs[0]
            state.good.append(f"program {self._program_label(program)}")
        else:
            default = _default_program(self.answers)
            if not default:
                if _ok(self.answers, "sta_settings") is None:
                    state.unknown.append("permission_missing" if "sta_settings" in self.denied else "unreadable")
                    return None
                policies = [p for p in self._applying_policies(queue) if _retains(p)]
                note = ""
                if policies:
                    names = ", ".join(f'"{_str(p.get("name"))}" ({_str(p.get("id"))})' for p in policies)
                    note = (
                        f"; recording policy {names} records its calls, but a recording policy cannot turn "
                        "analysis on (it only keeps or deletes recordings)"
                    )
                add(
                    "FAIL",
                    "program",
                    "in no speech and text analytics program and the org has no default program: its calls "
                    f"are never analysed{note}",
                    "Speech and Text Analytics > Programs > a program > Queues: add this queue "
                    "(PUT /api/v2/speechandtextanalytics/programs/{id}/mappings)",
                    "no_program",
                )
                return None
            program = default
            add(
                "WARN",
                "program",
                f"in no program; relies on the org's default program {self._program_label(default)}",
                "map the queue explicitly (Speech and Text Analytics > Programs > Queues)",
                "default_program",
                inferred=True,
            )
        published = self.published.get(program)
        if published is False:
            add(
                "FAIL",
                "program",
                f"its program {self._program_label(program)} is not published: an unpublished program analyses nothing",
                "Speech and Text Analytics > Programs > this program: Publish",
                "program_unpublished",
                inferred=True,
            )
        processing = self.answers.get(f"processing:{program}")
        if processing is None or processing.status == 404:
            add(
                "WARN",
                "sentiment",
                f"program {self._program_label(program)}: cannot tell whether sentiment analysis is on "
                "(GET .../programs/{id}/settings/processing is not available on this org)",
                "check Speech and Text Analytics > Programs > this program > Sentiment analysis",
                "",
            )
        elif processing.status == 200 and isinstance(processing.body, dict):
            if processing.body.get("sentimentAnalysisEnabled") is False:
                add(
                    "FAIL",
                    "sentiment",
                    f"program {self._program_label(program)} has sentiment analysis off: its calls are "
                    "transcribed but never scored",
                    "Speech and Text Analytics > Programs > this program > Settings: Sentiment analysis on "
                    "(sentimentAnalysisEnabled=true, PATCH .../programs/{id}/settings/processing)",
                    "sentiment_disabled",
                )
            else:
                state.good.append("sentiment on")
        else:
            state.unknown.append("permission_missing" if processing.status in (401, 403) else "unreadable")
        return program

    def _language(
        self, queue: dict[str, Any], program: str | None, state: _QueueState, add: Callable[..., None]
    ) -> str:
        language = _str(queue.get("defaultMediaLanguage"))
        from_flow = False
        if not language:
            flow_id = _ref_id(queue.get("queueFlow"))
            for flow in _entities(_ok(self.answers, "flows_inqueue")):
                if _str(flow.get("id")) == flow_id and flow_id:
                    for supported in _list(flow.get("supportedLanguages")):
                        if isinstance(supported, dict) and supported.get("isDefault") is True:
                            language = _str(supported.get("language"))
                            from_flow = True
        if not language:
            add(
                "WARN",
                "language",
                "no default media language on the queue (nor on its in-queue flow): the call's language comes "
                "from the trunk or IVR flow, so the dialect check cannot be made",
                "Admin > Contact Center > Queues > this queue > Voice > Default media language",
                "language_unknown",
            )
            return ""
        wanted = norm_language(language)
        origin = "its in-queue flow's default language" if from_flow else "its default media language"
        if program is not None:
            engines = self.answers.get(f"engines:{program}")
            if engines is not None and engines.status == 200 and isinstance(engines.body, dict):
                dialects = [
                    _str(d)
                    for engine in _list(engines.body.get("transcriptionEngines"))
                    if isinstance(engine, dict)
                    for d in _list(engine.get("dialects"))
                ]
                if dialects and wanted not in {norm_language(d) for d in dialects}:
                    org_dialects = {
                        norm_language(_str(d))
                        for e in _entities(_ok(self.answers, "dialects"))
                        for d in _list(e.get("dialects"))
                    }
                    available = (
                        "; the org's engines offer it"
                        if wanted in org_dialects
                        else "; no engine of the org lists it: a Transcription Connector is needed"
                        if org_dialects
                        else ""
                    )
                    add(
                        "FAIL",
                        "language",
                        f"calls are in {language} ({origin}) but program {self._program_label(program)} "
                        f"transcribes {', '.join(dialects)} only: transcripts will be wrong or missing and "
                        f"scores stuck near neutral{available}",
                        f"Speech and Text Analytics > Programs > this program > Transcription engine: add "
                        f"{language} (PUT .../programs/{{id}}/transcriptionengines), or set the queue's language",
                        "dialect_not_transcribed",
                        inferred=True,
                    )
                elif dialects:
                    state.good.append(f"{language} transcribed")
            elif engines is not None and engines.status in (401, 403):
                state.unknown.append("permission_missing")
        expected = _ok(self.answers, "sta_settings")
        if isinstance(expected, dict) and isinstance(expected.get("expectedDialects"), list):
            listed = {norm_language(_str(d)) for d in expected["expectedDialects"]}
            if listed and wanted not in listed:
                add(
                    "WARN",
                    "language",
                    f"{language} is not among the org's expected dialects ({', '.join(sorted(listed))})",
                    "Admin > Speech and Text Analytics > Settings > Expected dialects: add it",
                    "",
                    inferred=True,
                )
        self._scorer(language, wanted, state, add)
        return language

    def _scorer(self, language: str, wanted: str, state: _QueueState, add: Callable[..., None]) -> None:
        """Genesys' own sentiment (the live score on the analytics stream, the post-call score otherwise)
        and, when the exporter scores transcripts itself, its analyzer's languages."""
        analyzer = self.analyzer
        body = _ok(self.answers, "sentiment_dialects")
        listed = (
            {norm_language(_dialect_of(item)) for item in _list(body.get("entities"))} - {""}
            if isinstance(body, dict)
            else set()
        )
        if listed and wanted not in listed and wanted.split("-")[0] not in listed:
            if analyzer.native:
                add(
                    "FAIL",
                    "language",
                    f"Genesys sentiment is not available for {language} (GET /api/v2/speechandtextanalytics/"
                    f"sentiment/dialects lists {', '.join(sorted(listed))}): calls are transcribed but not scored",
                    "route this language to a queue whose calls can be scored, or score transcripts with the "
                    "exporter's own analyzer (--source notifications)",
                    "language_not_scored",
                    inferred=True,
                )
            else:
                add(
                    "WARN",
                    "language",
                    f"Genesys' own (post-call) sentiment is not available for {language}; the live score comes "
                    "from the exporter's analyzer",
                    "none needed for live monitoring",
                    "",
                    inferred=True,
                )
        elif listed and analyzer.native:
            state.good.append(f"{language} scored by Genesys")
        if analyzer.native:
            return
        can = analyzer.can_score(language) if analyzer.can_score is not None else None
        if can is False:
            add(
                "FAIL",
                "language",
                f"the exporter's analyzer ({analyzer.name}) cannot score {language}: every utterance will be "
                "counted as unsupported_language and the queue gets no live score",
                "run an analyzer that scores this language (--sentiment-analyzer onnx with a model for it, and "
                "--sentiment-languages)",
                "language_not_scored",
            )
        elif can is True:
            state.good.append(f"{language} scored by {analyzer.name}")

    def _applying_policies(self, queue: dict[str, Any]) -> list[dict[str, Any]]:
        queue_id = _str(queue.get("id"))
        out = []
        for policy in _entities(_ok(self.answers, "policies")):
            if policy.get("enabled") is False:
                continue
            call = _dict(_dict(policy.get("mediaPolicies")).get("callPolicy"))
            if not call:  # a chat/email-only policy
                continue
            for_queues = _dict(call.get("conditions")).get("forQueues")
            ids = {_ref_id(q) for q in for_queues} if isinstance(for_queues, list) else set()
            if not ids or queue_id in ids:  # no queue condition: applies to every queue [I]
                out.append(policy)
        return out

    def _policies(self, queue: dict[str, Any], state: _QueueState) -> None:
        for policy in self._applying_policies(queue):
            actions = _actions(policy)
            if actions.get("alwaysDelete") is True or actions.get("deleteRecording") is True:
                state.findings.append(
                    Finding(
                        "WARN",
                        "recording-policy",
                        "policy",
                        _str(policy.get("name")),
                        _str(policy.get("id")),
                        f'deletes the recordings of queue "{_str(queue.get("name"))}"\'s calls; live sentiment '
                        "is unaffected, post-call transcripts and replays may be gone",
                        "check that deleting is intended (Admin > Quality > Policies)",
                        inferred=True,
                        queue_id=_str(queue.get("id")),
                    )
                )


def _retains(policy: dict[str, Any]) -> bool:
    actions = _actions(policy)
    return actions.get("retainRecording") is True


def _trunk_records(trunk: dict[str, Any]) -> bool:
    """`properties.trunk_recording_enabled.value.instance` (a third party's reading of an untyped dict)."""
    props = trunk.get("properties")
    if not isinstance(props, dict):
        return False  # listed by the recordingEnabled=false filter
    value = _dict(props.get("trunk_recording_enabled")).get("value")
    if isinstance(value, dict) and isinstance(value.get("instance"), bool):
        return bool(value["instance"])
    return False


def evaluate(
    answers: Mapping[str, Answer],
    queue_ids: Sequence[str],
    all_queues: bool,
    analyzer: Analyzer = GENESYS_NATIVE,
) -> Report:
    """Findings and per-queue verdicts from the answers of `first_reads` and `program_reads`."""
    evaluation = _Evaluation(answers, queue_ids, all_queues, analyzer)
    evaluation.read_findings()
    evaluation.org_findings()
    evaluation.queues()
    return evaluation.report


def merge_pages(pages: Iterable[Any]) -> Any:
    """One body for a paged listing: the first page's fields with every page's entities."""
    first: dict[str, Any] | None = None
    entities: list[Any] = []
    for page in pages:
        if not isinstance(page, dict):
            continue
        if first is None:
            first = dict(page)
        if isinstance(page.get("entities"), list):
            entities.extend(page["entities"])
    if first is None:
        return None
    first["entities"] = entities
    return first
