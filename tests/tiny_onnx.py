"""A tiny text-classification model in the layout `--sentiment-analyzer onnx` loads, built with the
`onnx` package: a word-level tokenizer and a bag-of-embeddings classifier whose weights make "great"
positive and "terrible" negative. Real enough to exercise tokenizer, session, inputs and id2label."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

VOCAB = ["[UNK]", "great", "thanks", "terrible", "awful", "the", "refund", "is"]
# logits per word: negative, neutral, positive
WEIGHTS = {"great": (0.0, 0.0, 4.0), "thanks": (0.0, 0.5, 2.0), "terrible": (4.0, 0.0, 0.0), "awful": (3.0, 0.5, 0.0)}


def build(
    directory: Path,
    *,
    labels: tuple[str, ...] = ("negative", "neutral", "positive"),
    languages: list[str] | None = None,
    token_type_ids: bool = False,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(directory / "tokenizer.json"))

    table = np.zeros((len(VOCAB), len(labels)), dtype=np.float32)
    for word, row in WEIGHTS.items():
        table[VOCAB.index(word), :] = row[: len(labels)] if len(labels) <= 3 else np.resize(row, len(labels))
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
    ]
    if token_type_ids:
        inputs.append(helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ["batch", "sequence"]))
    nodes = [
        helper.make_node("Gather", ["embeddings", "input_ids"], ["embedded"]),  # [b, s, labels]
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["embedded", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["logits"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-sentiment",
        inputs,
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(labels)])],
        initializer=[
            numpy_helper.from_array(table, "embeddings"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(directory / "model.onnx"))
    config: dict[str, object] = {"id2label": {str(i): label for i, label in enumerate(labels)}}
    if languages is not None:
        config["languages"] = languages
    (directory / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return directory
