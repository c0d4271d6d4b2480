"""Analyzers by name, for `--sentiment-analyzer` (GENESYS_EXPORTER_SENTIMENT_ANALYZER).

Built in: `vader` (default) and `onnx` (a local model directory, `--sentiment-model-dir`). Third parties
plug in without touching this package: a distribution declares an entry point in the group
`genesys_sentiment_exporter.analyzers` whose object is a factory `(AnalyzerOptions) -> TextScorer`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import MappingProxyType

from genesys_sentiment_exporter.analysis.base import TextScorer, UtteranceAnalyzer

ENTRY_POINT_GROUP = "genesys_sentiment_exporter.analyzers"
DEFAULT_ANALYZER = "vader"


@dataclass(frozen=True, slots=True)
class AnalyzerOptions:
    model_dir: Path | None = None  # --sentiment-model-dir
    languages: tuple[str, ...] = ()  # --sentiment-languages; empty: the analyzer's own


Factory = Callable[[AnalyzerOptions], TextScorer]


def _vader(options: AnalyzerOptions) -> TextScorer:
    from genesys_sentiment_exporter.analysis.vader import VaderScorer

    return VaderScorer()


def _onnx(options: AnalyzerOptions) -> TextScorer:
    if options.model_dir is None:
        raise ValueError(
            "sentiment_model_dir: --sentiment-analyzer onnx needs --sentiment-model-dir (a directory with "
            "model.onnx, tokenizer.json and config.json)"
        )
    try:
        from genesys_sentiment_exporter.analysis.onnx_text import OnnxTextScorer
    except ImportError as error:  # the image and a plain `pip install` carry no extra
        raise ValueError(
            f"sentiment_analyzer: --sentiment-analyzer onnx needs the onnx extra "
            f"(pip install 'genesys-sentiment-exporter[onnx]'): module {error.name!r} is not installed"
        ) from None
    return OnnxTextScorer(options.model_dir)


BUILT_IN: Mapping[str, Factory] = MappingProxyType({"vader": _vader, "onnx": _onnx})


def available() -> dict[str, Factory]:
    """Built-in analyzers plus those other installed distributions declare (built-ins win a clash)."""
    found: dict[str, Factory] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, _lazy(entry.name))
    found.update(BUILT_IN)
    return found


def _lazy(name: str) -> Factory:
    def factory(options: AnalyzerOptions) -> TextScorer:
        (entry,) = entry_points(group=ENTRY_POINT_GROUP, name=name)
        made = entry.load()(options)
        if not isinstance(made, TextScorer):
            raise ValueError(f"sentiment_analyzer: the plugin {name!r} did not return a TextScorer")
        return made

    return factory


def build_analyzer(name: str, options: AnalyzerOptions | None = None) -> UtteranceAnalyzer:
    """The analyzer called `name`, ready to score; ValueError ("field: why") for a bad setting."""
    options = options or AnalyzerOptions()
    factories = available()
    factory = factories.get(name)
    if factory is None:
        raise ValueError(f"sentiment_analyzer: unknown analyzer {name!r}; known: {', '.join(sorted(factories))}")
    scorer = factory(options)
    return UtteranceAnalyzer(scorer, frozenset(options.languages) or None)
