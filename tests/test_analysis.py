"""The utterance analyzer: VADER by default, ONNX models from a directory, refusals never 0.0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from genesys_sentiment_exporter.analysis import (
    AnalyzerOptions,
    CannotScore,
    CannotScoreReason,
    UtteranceAnalyzer,
    available,
    build_analyzer,
    language_tags,
)
from genesys_sentiment_exporter.analysis.onnx_text import label_polarity
from genesys_sentiment_exporter.cli import ConfigError, load_settings
from tests import tiny_onnx

HOSTILE = "This is ridiculous, I have been waiting two weeks and your service is terrible!"
POLITE = "Thank you so much, that was really helpful, have a great day."


@pytest.fixture(scope="module")
def vader() -> UtteranceAnalyzer:
    return build_analyzer("vader")


def test_vader_scores_hostile_negative_and_polite_positive(vader: UtteranceAnalyzer) -> None:
    hostile = vader.analyze(HOSTILE, "en-US")
    polite = vader.analyze(POLITE, "en-GB")
    assert isinstance(hostile, float) and hostile < -0.5
    assert isinstance(polite, float) and polite > 0.5


def test_vader_neutral_text_is_a_real_zero_not_a_refusal(vader: UtteranceAnalyzer) -> None:
    assert vader.analyze("i am calling about my invoice", "en-US") == 0.0


@pytest.mark.parametrize("dialect", ["de-DE", "fr-CA", "es-US", "xx"])
def test_unsupported_language_is_a_refusal_never_zero(vader: UtteranceAnalyzer, dialect: str) -> None:
    result = vader.analyze("Das ist eine Unverschämtheit, ich warte seit zwei Wochen", dialect)
    assert isinstance(result, CannotScore)
    assert result.reason is CannotScoreReason.UNSUPPORTED_LANGUAGE
    assert result.reason == "unsupported_language"  # the counted outcome's label value
    assert dialect in result.detail


@pytest.mark.parametrize("dialect", [None, ""])
def test_missing_dialect_is_unknown_language(vader: UtteranceAnalyzer, dialect: str | None) -> None:
    result = vader.analyze(HOSTILE, dialect)
    assert isinstance(result, CannotScore) and result.reason is CannotScoreReason.UNKNOWN_LANGUAGE


@pytest.mark.parametrize("text", ["", "   ", "...", "?!"])
def test_empty_text_is_a_refusal(vader: UtteranceAnalyzer, text: str) -> None:
    result = vader.analyze(text, "en-US")
    assert isinstance(result, CannotScore) and result.reason is CannotScoreReason.EMPTY_TEXT


def test_language_tags() -> None:
    assert language_tags("en-US") == ("en-us", "en")
    assert language_tags("pt_BR") == ("pt-br", "pt")
    assert language_tags("EN") == ("en", "en")


class Scripted:
    """A plugin scorer returning whatever the test says (or raising)."""

    name = "scripted"

    def __init__(self, value: object, languages: frozenset[str] = frozenset({"en", "pt-br"})) -> None:
        self.value = value
        self.languages = languages

    def score(self, text: str) -> float:
        if isinstance(self.value, Exception):
            raise self.value
        return self.value  # type: ignore[return-value]


def test_full_tag_languages_match_only_that_dialect() -> None:
    analyzer = UtteranceAnalyzer(Scripted(0.25))
    assert analyzer.analyze("olá", "pt-BR") == 0.25
    refused = analyzer.analyze("olá", "pt-PT")
    assert isinstance(refused, CannotScore) and refused.reason is CannotScoreReason.UNSUPPORTED_LANGUAGE
    assert analyzer.analyze("hello", "en-AU") == 0.25


@pytest.mark.parametrize("value", [1.5, -1.01, float("nan"), float("inf"), ValueError("model exploded")])
def test_plugin_failures_and_out_of_range_are_analyzer_errors(value: object) -> None:
    result = UtteranceAnalyzer(Scripted(value)).analyze("hello there", "en-US")
    assert isinstance(result, CannotScore) and result.reason is CannotScoreReason.ANALYZER_ERROR


def test_languages_override() -> None:
    analyzer = build_analyzer("vader", AnalyzerOptions(languages=("en-US",)))
    assert isinstance(analyzer.analyze(POLITE, "en-US"), float)
    refused = analyzer.analyze(POLITE, "en-GB")
    assert isinstance(refused, CannotScore) and refused.reason is CannotScoreReason.UNSUPPORTED_LANGUAGE


def test_registry_names_and_unknown_analyzer() -> None:
    assert {"vader", "onnx"} <= set(available())
    with pytest.raises(ValueError, match=r"sentiment_analyzer: unknown analyzer 'nope'; known: .*vader"):
        build_analyzer("nope")


def test_settings_flag_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert load_settings({}).sentiment_analyzer == "vader"
    with pytest.raises(ConfigError, match=r"--sentiment-analyzer \(GENESYS_EXPORTER_SENTIMENT_ANALYZER\)"):
        load_settings({"sentiment_analyzer": "nope"})
    with pytest.raises(ConfigError, match=r"--sentiment-model-dir \(GENESYS_EXPORTER_SENTIMENT_MODEL_DIR\)"):
        load_settings({"sentiment_analyzer": "onnx"})
    monkeypatch.setenv("GENESYS_EXPORTER_SENTIMENT_ANALYZER", "onnx")
    monkeypatch.setenv("GENESYS_EXPORTER_SENTIMENT_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("GENESYS_EXPORTER_SENTIMENT_LANGUAGES", "en,de")
    settings = load_settings({})
    assert settings.sentiment_analyzer == "onnx"
    assert settings.analyzer_options() == AnalyzerOptions(tmp_path, ("en", "de"))


# -- ONNX ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_onnx.build(tmp_path_factory.mktemp("tiny") / "model", languages=["en", "de"])


def test_onnx_model_scores_by_its_classes(model_dir: Path) -> None:
    analyzer = build_analyzer("onnx", AnalyzerOptions(model_dir=model_dir))
    assert analyzer.name == "onnx"
    assert analyzer.languages == frozenset({"en", "de"})
    good = analyzer.analyze("The refund is GREAT", "en-US")
    bad = analyzer.analyze("terrible, awful", "de-DE")
    neutral = analyzer.analyze("the refund", "en-US")
    assert isinstance(good, float) and good > 0.9
    assert isinstance(bad, float) and bad < -0.9
    assert neutral == pytest.approx(0.0)  # equal logits: P(pos) - P(neg) = 0
    refused = analyzer.analyze("great", "fr-FR")
    assert isinstance(refused, CannotScore) and refused.reason is CannotScoreReason.UNSUPPORTED_LANGUAGE


def test_onnx_token_type_ids_and_five_stars(tmp_path: Path) -> None:
    labels = ("1 star", "2 stars", "3 stars", "4 stars", "5 stars")
    directory = tiny_onnx.build(tmp_path / "stars", labels=labels, token_type_ids=True)
    analyzer = build_analyzer("onnx", AnalyzerOptions(model_dir=directory, languages=("en",)))
    result = analyzer.analyze("the refund is", "en-US")
    assert result == pytest.approx(0.0)  # uniform over 1..5 stars


def test_onnx_without_languages_needs_the_setting(tmp_path: Path) -> None:
    directory = tiny_onnx.build(tmp_path / "nolang")
    with pytest.raises(ValueError, match="sentiment_languages"):
        build_analyzer("onnx", AnalyzerOptions(model_dir=directory))


def test_onnx_bad_directories_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"sentiment_model_dir: .* is not a directory"):
        build_analyzer("onnx", AnalyzerOptions(model_dir=tmp_path / "absent"))
    directory = tiny_onnx.build(tmp_path / "m", languages=["en"])
    (directory / "config.json").write_text(json.dumps({"id2label": {"0": "LABEL_0", "1": "LABEL_1"}}))
    with pytest.raises(ValueError, match="class 'LABEL_0'"):
        build_analyzer("onnx", AnalyzerOptions(model_dir=directory))
    (directory / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="no id2label"):
        build_analyzer("onnx", AnalyzerOptions(model_dir=directory))
    (directory / "model.onnx").unlink()
    (directory / "config.json").write_text(json.dumps({"id2label": {"0": "negative", "1": "positive"}}))
    with pytest.raises(ValueError, match=r"holds no model\.onnx"):
        build_analyzer("onnx", AnalyzerOptions(model_dir=directory))
    with pytest.raises(ValueError, match="needs --sentiment-model-dir"):
        build_analyzer("onnx")


def test_onnx_mismatched_classes_is_an_analyzer_error(model_dir: Path, tmp_path: Path) -> None:
    directory = tiny_onnx.build(tmp_path / "two", languages=["en"])
    (directory / "config.json").write_text(
        json.dumps({"id2label": {"0": "negative", "1": "positive"}, "languages": ["en"]})
    )
    analyzer = build_analyzer("onnx", AnalyzerOptions(model_dir=directory))
    result = analyzer.analyze("great", "en-US")  # the model emits 3 logits for 2 declared classes
    assert isinstance(result, CannotScore) and result.reason is CannotScoreReason.ANALYZER_ERROR


@pytest.mark.parametrize(
    ("label", "value"),
    [("NEGATIVE", -1.0), ("neutral", 0.0), ("Positive", 1.0), ("neg", -1.0), ("1 star", -1.0), ("4 stars", 0.5)],
)
def test_label_polarity(label: str, value: float) -> None:
    assert label_polarity(label) == value


def test_onnx_without_the_extra_names_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The Docker image and a plain `pip install` carry no extra: the analyzer must refuse in one line.
    monkeypatch.delitem(__import__("sys").modules, "genesys_sentiment_exporter.analysis.onnx_text")
    monkeypatch.setitem(__import__("sys").modules, "numpy", None)
    with pytest.raises(ValueError, match=r"needs the onnx extra .*module 'numpy' is not installed"):
        build_analyzer("onnx", AnalyzerOptions(model_dir=tmp_path))


def test_vader_scores_exactly_as_the_stock_analyzer() -> None:
    # The scorer skips VADER's emoji rebuild for ASCII text (analysis/vader.py): same scores, every key.
    from genesys_cloud_simulator.transcripts import AGENT_LINES, CUSTOMER_LINES, FRENCH_AGENT_LINES
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from genesys_sentiment_exporter.analysis.vader import VaderScorer

    stock, ours = SentimentIntensityAnalyzer(), VaderScorer()._analyzer
    corpus = [
        *(line for _, line in CUSTOMER_LINES),
        *AGENT_LINES,
        *FRENCH_AGENT_LINES,
        "I am NOT happy with this!!!",
        "It was kind of good, but the wait was TERRIBLE.",
        "not bad at all",
        "Never so happy :) lol",
        "  padded, with spaces and tabs\t ",
        "",
        "?!",
        "I don't like it, nor do I hate it",
        "at least it works... sort of",
        "that was the kiss of death for the deal",
        "I love it \U0001f600 so much",  # an emoji: the stock path
        "\U0001f621\U0001f621",
        "The café was nice",  # non-ASCII without emoji: the stock path too
        "EXTREMELY disappointed, absolutely the worst",
    ]
    for text in corpus:
        assert ours.polarity_scores(text) == stock.polarity_scores(text), text
    assert ours._ascii_safe  # VADER's emoji table has no ASCII key: the fast path is taken
