"""VADER (Hutto & Gilbert 2014) through `vaderSentiment`: the default utterance analyzer.

Chosen because it is made for short, informal English utterances (its lexicon comes from social media
text, it weighs negation, intensifiers, "but" and capitals), it needs no model download (the lexicon
ships inside the wheel and is read from the package directory), and it scores an utterance in tens of
microseconds on one core. Its compound score is already in [-1, 1]. English only: anything else is
`unsupported_language`, never a guessed neutral.
"""

from __future__ import annotations

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

LANGUAGES = frozenset({"en"})


class VaderScorer:
    name = "vader"
    languages = LANGUAGES

    def __init__(self) -> None:
        self._analyzer = SentimentIntensityAnalyzer()  # reads the packaged lexicons once

    def score(self, text: str) -> float:
        return float(self._analyzer.polarity_scores(text)["compound"])
