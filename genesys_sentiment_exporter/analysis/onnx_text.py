"""A text-classification model exported to ONNX, loaded from a local directory.

For operators who want a stronger or non-English model than VADER (a multilingual sentiment transformer
exported with Hugging Face Optimum, for example). Nothing is downloaded: the directory holds

- `model.onnx` (or `onnx/model.onnx`): inputs `input_ids` and `attention_mask` (optionally
  `token_type_ids`), int64 `[batch, sequence]`; first output the logits `[batch, labels]`;
- `tokenizer.json`: a Hugging Face `tokenizers` tokenizer;
- `config.json`: `id2label` naming each class (negative/neutral/positive, or "1 star".."5 stars"), and
  optionally `languages` (list of BCP 47 tags the model scores; `--sentiment-languages` overrides).

The score is the expected polarity over the softmax: P(positive) - P(negative) for three classes,
(stars - 3) / 2 weighted by probability for five. One intra-op thread: the exporter shares its cores.
Needs the `onnx` extra (`pip install 'genesys-sentiment-exporter[onnx]'`: onnxruntime, tokenizers).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

MAX_TOKENS = 512


def label_polarity(label: str) -> float:
    """A class name's polarity in [-1, 1]; ValueError for a name that says nothing about sentiment."""
    text = label.strip().lower()
    stars = re.fullmatch(r"([1-5])\s*stars?", text)
    if stars:
        return (int(stars.group(1)) - 3) / 2.0
    for prefix, value in (("neg", -1.0), ("neu", 0.0), ("pos", 1.0)):
        if text.startswith(prefix):
            return value
    raise ValueError(
        f"class {label!r}: name the classes negative/neutral/positive or '1 star'..'5 stars' in config.json id2label"
    )


def _model_file(directory: Path) -> Path:
    for candidate in (directory / "model.onnx", directory / "onnx" / "model.onnx"):
        if candidate.is_file():
            return candidate
    raise ValueError(f"sentiment_model_dir: {directory} holds no model.onnx (nor onnx/model.onnx)")


def _read_config(directory: Path) -> dict[str, Any]:
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"sentiment_model_dir: cannot read {directory / 'config.json'} ({exc.strerror})") from None
    except ValueError:
        raise ValueError(f"sentiment_model_dir: {directory / 'config.json'} is not JSON") from None
    if not isinstance(config, dict) or not isinstance(config.get("id2label"), dict) or not config["id2label"]:
        raise ValueError(f"sentiment_model_dir: {directory / 'config.json'} has no id2label")
    return config


class OnnxTextScorer:
    name = "onnx"

    def __init__(self, directory: Path) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError:
            raise ValueError(
                "sentiment_analyzer: the onnx analyzer needs onnxruntime and tokenizers: "
                "pip install 'genesys-sentiment-exporter[onnx]'"
            ) from None
        if not directory.is_dir():
            raise ValueError(f"sentiment_model_dir: {directory} is not a directory")
        config = _read_config(directory)
        try:
            ids = sorted((int(k), str(v)) for k, v in config["id2label"].items())
        except ValueError:
            raise ValueError("sentiment_model_dir: config.json id2label keys must be class numbers") from None
        if [i for i, _ in ids] != list(range(len(ids))):
            raise ValueError("sentiment_model_dir: config.json id2label must number the classes 0..n-1")
        try:
            self.polarity = np.array([label_polarity(label) for _, label in ids], dtype=np.float64)
        except ValueError as exc:
            raise ValueError(f"sentiment_model_dir: {exc}") from None
        languages = config.get("languages", [])
        languages = languages if isinstance(languages, list) else []
        self.languages = frozenset(str(tag).lower() for tag in languages)
        try:
            self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        except Exception as exc:
            raise ValueError(f"sentiment_model_dir: cannot load {directory / 'tokenizer.json'} ({exc})") from None
        limit = config.get("max_position_embeddings")
        length = min(MAX_TOKENS, limit) if isinstance(limit, int) and limit > 2 else MAX_TOKENS
        if self.tokenizer.truncation is None:
            self.tokenizer.enable_truncation(length)
        self.tokenizer.no_padding()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(
                str(_model_file(directory)), options, providers=["CPUExecutionProvider"]
            )
        except ValueError:
            raise
        except Exception as exc:
            raise ValueError(f"sentiment_model_dir: onnxruntime cannot load the model ({exc})") from None
        self.inputs = [node.name for node in self.session.get_inputs()]
        unknown = set(self.inputs) - {"input_ids", "attention_mask", "token_type_ids"}
        if "input_ids" not in self.inputs or unknown:
            raise ValueError(
                f"sentiment_model_dir: model inputs {self.inputs}: expected input_ids, attention_mask "
                "and optionally token_type_ids"
            )
        self.output = self.session.get_outputs()[0].name

    def score(self, text: str) -> float:
        encoding = self.tokenizer.encode(text)
        ids = np.array([encoding.ids], dtype=np.int64)
        feed = {
            "input_ids": ids,
            "attention_mask": np.array([encoding.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([encoding.type_ids], dtype=np.int64),
        }
        (logits,) = self.session.run([self.output], {name: feed[name] for name in self.inputs})
        row = np.asarray(logits, dtype=np.float64).reshape(-1)
        if row.shape != self.polarity.shape:
            raise ValueError(f"model returned {row.size} logits for {self.polarity.size} classes")
        exp = np.exp(row - row.max())
        return float(np.dot(exp / exp.sum(), self.polarity))
