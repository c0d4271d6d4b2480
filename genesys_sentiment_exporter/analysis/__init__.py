"""Utterance sentiment: score what is said on a call, one utterance at a time.

Usage (every caller, whatever the text came from)::

    from genesys_sentiment_exporter.analysis import CannotScore, build_analyzer

    analyzer = build_analyzer("vader")  # or settings.sentiment_analyzer, options from settings
    result = analyzer.analyze("I have been waiting two weeks for this refund", "en-US")
    if isinstance(result, CannotScore):
        count(result.reason)  # e.g. "unsupported_language": never a 0.0 reading
    else:
        record(result)  # a float in [-1, 1]

See `base.py` for the contract and `registry.py` for plugging in another analyzer.
"""

from genesys_sentiment_exporter.analysis.base import (
    Analysis,
    CannotScore,
    CannotScoreReason,
    TextScorer,
    UtteranceAnalyzer,
    language_tags,
)
from genesys_sentiment_exporter.analysis.registry import (
    DEFAULT_ANALYZER,
    ENTRY_POINT_GROUP,
    AnalyzerOptions,
    available,
    build_analyzer,
)

__all__ = [
    "DEFAULT_ANALYZER",
    "ENTRY_POINT_GROUP",
    "Analysis",
    "AnalyzerOptions",
    "CannotScore",
    "CannotScoreReason",
    "TextScorer",
    "UtteranceAnalyzer",
    "available",
    "build_analyzer",
    "language_tags",
]
