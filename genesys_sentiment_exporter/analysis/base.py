"""The utterance analyzer's contract: text and a language in, a score in [-1, 1] or a typed refusal out.

Genesys' own sentiment score is computed after the call (shared/genesys-transcription-notes.md §8), so
the live signal is what each utterance of the transcript says, scored by us. Two callers feed this
interface: the transcription topic (`sources/transcription_protocol.py`) and utterances recognised from
AudioHook audio. Both need the same guarantee: a text the analyzer cannot judge is never a neutral 0.0
(the design document's edge case 1), it is a `CannotScore` whose reason the caller counts.

Pure and synchronous: no I/O after construction, no clock, no asyncio. Scoring is CPU work (VADER is
tens of microseconds per utterance, a transformer milliseconds); whether to off-load it to a thread is
the caller's decision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable


class CannotScoreReason(StrEnum):
    """Why an utterance has no score; the values are bounded metric label values (counted outcomes)."""

    UNSUPPORTED_LANGUAGE = "unsupported_language"  # the analyzer does not know the utterance's language
    UNKNOWN_LANGUAGE = "unknown_language"  # the utterance came without a language (no `dialect`)
    EMPTY_TEXT = "empty_text"  # nothing but whitespace and punctuation to judge
    ANALYZER_ERROR = "analyzer_error"  # the model raised or produced something outside [-1, 1]


@dataclass(frozen=True, slots=True)
class CannotScore:
    """No score for this utterance, and why. `detail` is for logs (never a label: it may hold a dialect)."""

    reason: CannotScoreReason
    detail: str = ""


Analysis = float | CannotScore


@runtime_checkable
class TextScorer(Protocol):
    """What an analyzer plugin implements; `UtteranceAnalyzer` adds the checks every caller needs.

    `score` receives non-empty text in one of `languages` and returns a polarity in [-1, 1]
    (negative = hostile or unhappy, positive = pleased). It may raise; the wrapper counts that.
    """

    name: str
    languages: frozenset[str]  # lower-case BCP 47 tags: a primary subtag ("en") or a full tag ("pt-br")

    def score(self, text: str) -> float: ...


def language_tags(dialect: str) -> tuple[str, str]:
    """("en-us", "en") for "en-US" or "en_US": the full tag and its primary subtag, lower case."""
    full = dialect.strip().replace("_", "-").lower()
    return full, full.split("-", 1)[0]


class UtteranceAnalyzer:
    """Scores utterances with a `TextScorer`, refusing what it cannot judge instead of guessing.

    The single entry point for every caller: `analyze(text, dialect)`.
    """

    __slots__ = ("_cache", "languages", "name", "scorer")

    def __init__(self, scorer: TextScorer, languages: frozenset[str] | None = None) -> None:
        self.scorer = scorer
        self.name = scorer.name
        self.languages = frozenset(language_tags(tag)[0] for tag in (languages or scorer.languages))
        if not self.languages:
            raise ValueError(f"sentiment_languages: the {self.name} analyzer was given no language to score")
        self._cache: dict[str, bool] = {}  # dialect -> supported; dialects are few (one per queue/program)

    def supports(self, dialect: str) -> bool:
        """Whether utterances in `dialect` ("en-US") can be scored: by full tag or by primary language."""
        known = self._cache.get(dialect)
        if known is None:
            full, primary = language_tags(dialect)
            known = bool(primary) and (full in self.languages or primary in self.languages)
            if len(self._cache) < 1000 and len(dialect) <= 64:  # a wire value: bounded in number and size
                self._cache[dialect] = known
        return known

    def analyze(self, text: str, dialect: str | None) -> Analysis:
        """A score in [-1, 1], or `CannotScore`. Never raises for any text or dialect."""
        if not dialect:
            return CannotScore(CannotScoreReason.UNKNOWN_LANGUAGE, "the utterance carries no dialect")
        if not (self._cache.get(dialect) or self.supports(dialect)):  # the cache first: once per utterance
            return CannotScore(
                CannotScoreReason.UNSUPPORTED_LANGUAGE,
                f"{self.name} scores {', '.join(sorted(self.languages))}, not {dialect[:35]}",
            )
        if not (text[:1].isalnum() or any(ch.isalnum() for ch in text)):  # most utterances start with a letter
            return CannotScore(CannotScoreReason.EMPTY_TEXT)
        try:
            value = float(self.scorer.score(text))
        except Exception as exc:  # a plugin's failure is one counted utterance, never a dead task
            return CannotScore(CannotScoreReason.ANALYZER_ERROR, f"{type(exc).__name__}: {exc}"[:200])
        if not math.isfinite(value) or not -1.0 <= value <= 1.0:
            return CannotScore(CannotScoreReason.ANALYZER_ERROR, f"{self.name} returned {value!r}, not in [-1, 1]")
        return value
