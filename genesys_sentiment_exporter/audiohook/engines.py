"""Speech-to-text engines for AudioHook utterances, by name (`--audiohook.engine`).

An engine turns one utterance (int16 little-endian, 8 kHz, mono) into text. It is built inside a
worker process, once, and used for every utterance that worker handles, so loading a model costs
once per worker, not per call.

Built in: `pocketsphinx`, whose wheel ships the CMU en-US acoustic model, dictionary and language
model, so it installs from PyPI alone and downloads nothing. Its acoustic model is wideband
(16 kHz): telephony audio is upsampled first. It is a small, old model: good enough to catch
plainly worded anger on clear lines, weak on accents and noise (README "AudioHook" says how to
plug a stronger engine). Any other engine plugs in as `module:factory`, a callable taking the
model directory (`--audiohook.model-dir`, may be None) and returning an object with
`transcribe(pcm: bytes) -> str` and a `languages` set.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol, runtime_checkable

from genesys_sentiment_exporter.audiohook.audio import upsample_2x

DEFAULT_ENGINE = "pocketsphinx"


@runtime_checkable
class Recognizer(Protocol):
    name: str
    languages: frozenset[str]  # BCP 47 tags the engine understands, lower case ("en-us")

    def transcribe(self, pcm: bytes) -> str: ...


class PocketSphinxEngine:
    name = "pocketsphinx"
    languages = frozenset({"en-us"})

    def __init__(self, model_dir: Path | None = None) -> None:
        from pocketsphinx import Decoder

        options: dict[str, object] = {"loglevel": "FATAL"}
        if model_dir is not None:
            # A directory laid out like the wheel's: acoustic model in en-us/, dictionary, language model.
            options.update(
                hmm=str(model_dir / "en-us"),
                lm=str(model_dir / "en-us.lm.bin"),
                dict=str(model_dir / "cmudict-en-us.dict"),
            )
        self.decoder = Decoder(**options)

    def transcribe(self, pcm: bytes) -> str:
        decoder = self.decoder
        decoder.start_utt()
        decoder.process_raw(upsample_2x(pcm), full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""


def build_engine(name: str, model_dir: Path | None = None) -> Recognizer:
    """The engine called `name` (or `module:factory`); ValueError naming the setting otherwise."""
    if name == "pocketsphinx":
        return PocketSphinxEngine(model_dir)
    module_name, sep, attribute = name.partition(":")
    if not sep:
        raise ValueError(f"audiohook_engine: unknown engine {name!r}: use pocketsphinx or module:factory")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"audiohook_engine: cannot load {name!r} ({exc})") from None
    engine = factory(model_dir)
    if not isinstance(engine, Recognizer):
        raise ValueError(f"audiohook_engine: {name!r} did not return an engine with transcribe() and languages")
    return engine
