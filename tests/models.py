"""Tiny ONNX models for tests, built with onnx.helper: valid ones that follow the model
contract (docs/model-contract.md) and broken variants, one contract violation each.

The valid model: log_mel [batch, n_mels, frames] -> ReduceMean over frames -> MatMul W -> Add b
-> logits [batch, n_classes], weights from a seeded generator, opset 17.
"""
from __future__ import annotations

import json
import pathlib

import numpy as np

from edge_ser.config import FeatureConfig
from edge_ser.contract import KEY_FEATURE_CONFIG, KEY_LABELS, ModelInfo, write_onnx_metadata

LABELS = ("anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral")
OPSET = 17
WINDOW_SECONDS = 2.0


def model_info(labels=LABELS, n_mels: int = 64, window_seconds: float = WINDOW_SECONDS, card=None) -> ModelInfo:
    return ModelInfo(tuple(labels), FeatureConfig(n_mels=n_mels), window_seconds, card=card)


def build_model(
    info: ModelInfo | None = None,
    *,
    input_name: str = "log_mel",
    input_shape=("batch", None, "frames"),  # None -> the feature config's n_mels
    n_classes: int | None = None,  # None -> len(info.labels)
    metadata: bool = True,
    seed: int = 0,
):
    """-> onnx.ModelProto of the tiny linear model (see module docstring)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    info = info or model_info()
    n_mels = info.feature_config.n_mels
    n_classes = len(info.labels) if n_classes is None else n_classes
    shape = [n_mels if d is None else d for d in input_shape]
    rng = np.random.default_rng(seed)
    bands = shape[1] if len(shape) == 3 and isinstance(shape[1], int) else n_mels
    weights = rng.normal(0, 0.03, (bands, n_classes)).astype(np.float32)
    bias = rng.normal(0, 0.1, n_classes).astype(np.float32)
    reduce_axis = len(shape) - 1
    nodes = [
        helper.make_node("ReduceMean", [input_name], ["pooled"], axes=[reduce_axis], keepdims=0),
        helper.make_node("MatMul", ["pooled", "W"], ["scaled"]),
        helper.make_node("Add", ["scaled", "b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_ser",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [shape[0], n_classes])],
        initializer=[numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # what onnxruntime >= 1.14 reads; make_model may pick a newer one
    onnx.checker.check_model(model)
    if metadata:
        write_onnx_metadata(model, info)
    return model


def save(model, path) -> pathlib.Path:
    import onnx

    path = pathlib.Path(path)
    onnx.save(model, str(path))
    return path


def set_metadata(model, key: str, value: str | None):
    """Overwrite (or with None, delete) one metadata key without validation, for broken models."""
    kept = [p for p in model.metadata_props if p.key != key]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    if value is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def broken_models() -> dict[str, tuple[object, str]]:
    """name -> (onnx.ModelProto, a fragment the one-line ModelError must contain)."""
    return {
        "no_metadata": (build_model(metadata=False), "edge_ser.format_version is missing"),
        "bad_json": (set_metadata(build_model(), KEY_LABELS, "[anger,"), "not valid JSON"),
        "bad_feature_config": (
            set_metadata(build_model(), KEY_FEATURE_CONFIG, json.dumps({"n_fft": 502})),
            "n_fft must be even with n_fft / 2 a product of 2, 3 and 5",
        ),
        "wrong_input_name": (build_model(input_name="mel"), "one input named 'log_mel'"),
        "wrong_rank": (build_model(input_shape=("batch", "frames")), "[batch, n_mels, frames]"),
        "wrong_n_mels": (build_model(input_shape=("batch", 80, "frames")), "80 mel bands"),
        "class_mismatch": (build_model(n_classes=5), "5 classes"),
    }


def quantize(src, dst) -> pathlib.Path:
    """Dynamic int8 quantization of an ONNX file (MatMul -> MatMulInteger) with onnxruntime."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    return pathlib.Path(dst)
