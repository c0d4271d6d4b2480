"""Item 1: one out-of-range score must not latch `--sentiment-scale auto` to percent for good."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from genesys_sentiment_exporter.scale import PERCENT_CONVERSATIONS, PERCENT_RUN, UNIT_CONVERSATIONS, UNIT_RUN, Scale


def test_a_run_of_percent_values_over_several_conversations_switches_auto_to_percent() -> None:
    scale = Scale("auto")
    out = [scale.normalise(-62.0, f"c{i % PERCENT_CONVERSATIONS}") for i in range(PERCENT_RUN)]
    assert out[:-1] == [None] * (PERCENT_RUN - 1)  # evidence, not readings
    assert out[-1] == -0.62
    assert (scale.in_use, scale.decided) == ("percent", True)
    assert scale.normalise(0.5, "c9") == 0.005


def test_a_run_from_one_conversation_is_not_enough() -> None:
    scale = Scale("auto")
    for _ in range(10 * PERCENT_RUN):
        assert scale.normalise(80.0, "c1") is None
    assert scale.in_use == "unit"
    assert scale.normalise(-0.8, "c2") == -0.8


def test_a_unit_value_in_between_breaks_the_run() -> None:
    scale = Scale("auto")
    for i in range(5 * PERCENT_RUN):
        scale.normalise(80.0, f"c{i}")
        if i % (PERCENT_RUN - 1) == PERCENT_RUN - 2:
            scale.normalise(0.3, f"u{i}")
    assert scale.in_use == "unit"


def test_enough_unit_values_settle_unit_for_good() -> None:
    scale = Scale("auto")
    for i in range(UNIT_RUN):
        scale.normalise(-0.4, f"c{i % UNIT_CONVERSATIONS}")
    assert (scale.in_use, scale.decided) == ("unit", True)
    for i in range(10 * PERCENT_RUN):
        assert scale.normalise(-62, f"p{i}") is None
    assert scale.in_use == "unit"


def test_trend_follows_the_scale_in_use_and_is_never_evidence() -> None:
    scale = Scale("auto")
    for i in range(10 * PERCENT_RUN):
        assert scale.trend(50.0 + i) is None
    assert scale.in_use == "unit"
    assert scale.trend(-0.2) == -0.2
    assert Scale("percent").trend(-20) == -0.2
    assert scale.trend(float("inf")) is None


@given(
    st.sampled_from(["unit", "percent", "auto"]),
    st.lists(
        st.tuples(
            st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.booleans(), st.none()),
            st.text(max_size=3),
        ),
        max_size=60,
    ),
)
def test_any_sequence_gives_scores_within_unit_bounds(setting: str, values: list[tuple[object, str]]) -> None:
    scale = Scale(setting)  # type: ignore[arg-type]
    forged = 0
    for value, conversation in values:
        score = scale.normalise(value, conversation)
        assert score is None or -1.0 <= score <= 1.0
        trend = scale.trend(value)
        assert trend is None or -1.0 <= trend <= 1.0
        if isinstance(value, float | int) and not isinstance(value, bool) and abs(value) > 100:
            forged += 1
            assert score is None
    if setting == "auto" and scale.in_use == "percent":
        assert len({c for v, c in values if isinstance(v, int | float) and 1 < abs(v) <= 100}) >= PERCENT_CONVERSATIONS


async def test_live_one_absurd_score_is_refused_and_later_scores_are_not_divided() -> None:
    """The scale now applies to Genesys' post-call score (the live path scores transcripts)."""
    from genesys_sentiment_exporter.sources.notifications_protocol import sentiment_topic
    from tests.live_helpers import wait_for
    from tests.test_notifications_live import connect_call, live, scrape

    async with live() as (sim, exporter, _source):
        for conv in ("c1", "c2", "c3"):
            await connect_call(sim, conv, "a1")
        absurd = {"conversationId": "c1", "sentimentOverallScore": 1e308, "queueIds": []}
        sim.notifications.publish(sentiment_topic("c1"), absurd)
        await wait_for(lambda: exporter.ingest.messages["invalid_score"] == 1, what="absurd score refused")
        for conv in ("c2", "c3"):
            sim.notifications.publish(sentiment_topic(conv), {"conversationId": conv, "sentimentOverallScore": -0.8})
        await wait_for(lambda: exporter.ingest.messages["postcall_score"] == 2, what="post-call scores")
        text = await scrape(exporter)
        assert 'genesys_agent_postcall_sentiment_mean{agent_id="a1",queue_id="q1"} -0.8' in text
        assert 'genesys_exporter_sentiment_scale_info{scale="unit",setting="auto"} 1.0' in text
