"""VADER (Hutto & Gilbert 2014) through `vaderSentiment`: the default utterance analyzer.

Chosen because it is made for short, informal English utterances (its lexicon comes from social media
text, it weighs negation, intensifiers, "but" and capitals), it needs no model download (the lexicon
ships inside the wheel and is read from the package directory), and it scores an utterance in tens of
microseconds on one core. Its compound score is already in [-1, 1]. English only: anything else is
`unsupported_language`, never a guessed neutral.
"""

from __future__ import annotations

from typing import Any

from vaderSentiment.vaderSentiment import BOOSTER_DICT, SentimentIntensityAnalyzer, SentiText

LANGUAGES = frozenset({"en"})


class _AsciiFastVader(SentimentIntensityAnalyzer):  # type: ignore[misc]
    """Stock VADER, minus one step that cannot change an ASCII utterance's score.

    `polarity_scores` first rebuilds the text character by character, replacing each emoji with its
    description: about 15 % of its time on a transcript line (bench/README.md). No emoji in VADER's
    table is ASCII (checked at construction; otherwise every text takes the stock path), so for ASCII
    text that rebuild is `text.strip()`. The rest is the stock method's body (vaderSentiment 3.3.2),
    kept identical; tests/test_analysis.py compares both on a corpus.
    """

    def __init__(self) -> None:
        super().__init__()
        self._ascii_safe = not any(emoji.isascii() for emoji in self.emojis)

    def polarity_scores(self, text: str) -> dict[str, Any]:
        if not (self._ascii_safe and text.isascii()):
            return super().polarity_scores(text)  # type: ignore[no-any-return]
        text = text.strip()
        sentitext = SentiText(text)
        sentiments: list[float] = []
        words_and_emoticons = sentitext.words_and_emoticons
        for i, item in enumerate(words_and_emoticons):
            valence = 0
            if item.lower() in BOOSTER_DICT:
                sentiments.append(valence)
                continue
            if (
                i < len(words_and_emoticons) - 1
                and item.lower() == "kind"
                and words_and_emoticons[i + 1].lower() == "of"
            ):
                sentiments.append(valence)
                continue
            sentiments = self.sentiment_valence(valence, sentitext, item, i, sentiments)
        sentiments = self._but_check(words_and_emoticons, sentiments)
        return self.score_valence(sentiments, text)  # type: ignore[no-any-return]


class VaderScorer:
    name = "vader"
    languages = LANGUAGES

    def __init__(self) -> None:
        self._analyzer = _AsciiFastVader()  # reads the packaged lexicons once

    def score(self, text: str) -> float:
        return float(self._analyzer.polarity_scores(text)["compound"])
