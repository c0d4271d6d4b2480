"""Which scale the platform's sentiment scores are on, decided from evidence one message cannot forge.

The UI shows -100..100 and the REST value appears to be -1..1 (shared/genesys-platform-notes.md), so
`--sentiment-scale auto` has to find out. Latching to percent on the first value outside [-1, 1] let a
single stray value (1e308, a glitch, a forged frame) divide every later real score by 100, so the
sentiment alert could never fire again until restart. Here `auto` switches to percent only after a
run of percent-range values from several conversations with no unit-looking value in between, decides
unit for good after enough unit-looking values, and refuses what no scale allows (|value| > 100,
NaN, infinities) on every setting. Pure: fed values, no clock.
"""

from __future__ import annotations

import math
from typing import Literal

ScaleSetting = Literal["unit", "percent", "auto"]

PERCENT_LIMIT = 100.0  # nothing on either scale lies beyond this: an absurd value, refused
PERCENT_RUN = 5  # consecutive percent-range values (1 < |v| <= 100) before `auto` switches to percent
PERCENT_CONVERSATIONS = 3  # ... coming from at least this many conversations
UNIT_RUN = 20  # values strictly inside (-1, 1) and not 0 before `auto` settles on unit for good
UNIT_CONVERSATIONS = 5


class Scale:
    """Normalises scores to [-1, 1]; `in_use` and `decided` say what it concluded (exported)."""

    def __init__(self, setting: ScaleSetting) -> None:
        self.setting = setting
        self.in_use: str = "percent" if setting == "percent" else "unit"
        self.decided = setting != "auto"
        self._percent_run = 0
        self._percent_conversations: set[str] = set()
        self._unit_run = 0
        self._unit_conversations: set[str] = set()

    def normalise(self, value: object, conversation_id: str = "") -> float | None:
        """A score in [-1, 1], or None (counted `invalid_score`) for what the scale in use cannot hold."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        number = float(value)
        if not -PERCENT_LIMIT <= number <= PERCENT_LIMIT:  # also False for NaN
            return None
        if self.in_use == "percent":
            return number / 100.0
        if -1.0 <= number <= 1.0:
            if not self.decided:
                self._unit_evidence(number, conversation_id)
            return number
        if self.decided:
            return None  # unit, and a percent-range value: refused, never rescaled
        self._percent_run += 1
        self._percent_conversations.add(conversation_id)
        if self._percent_run >= PERCENT_RUN and len(self._percent_conversations) >= PERCENT_CONVERSATIONS:
            self.in_use = "percent"
            self.decided = True
            return number / 100.0
        return None  # evidence, not yet a reading: an unconfirmed scale must not move an average

    def trend(self, value: object) -> float | None:
        """The trend score on the scale already in use; it never counts as evidence."""
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return None
        number = float(value) / 100.0 if self.in_use == "percent" else float(value)
        return number if -1.0 <= number <= 1.0 else None

    def _unit_evidence(self, number: float, conversation_id: str) -> None:
        if number == 0.0:
            return  # 0 means neutral on both scales: no evidence either way
        self._percent_run = 0
        self._percent_conversations.clear()
        if -1.0 < number < 1.0:
            self._unit_run += 1
            self._unit_conversations.add(conversation_id)
            if self._unit_run >= UNIT_RUN and len(self._unit_conversations) >= UNIT_CONVERSATIONS:
                self.decided = True
