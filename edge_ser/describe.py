"""What a model file holds, in readable fields: `edge-ser info`'s rows, and the details behind them.

`describe(path)` opens the model (edge_ser.session) and returns (field, value) rows: format,
labels, window, features, parameter count, file size, opset, quantization, and a summary of
its model card. ONNX details are read with the `onnx` package when it is installed (it is not
a runtime dependency); TFLite details come from the interpreter's tensor list.

`packaged_row(name, path)` is one packaged model's line in `edge-ser info`'s list: name, file,
size, labels, and from its card the cross-validated UA and the latency.
"""
from __future__ import annotations

import json
import os
import pathlib

import numpy as np

from .config import FeatureConfig
from .packaged import packaged_card
from .session import OnnxSession, open_session

# ONNX ops that only appear in quantized graphs (QLinear* ops are matched by prefix)
QUANTIZED_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger",
                 "ConvInteger")
INT8_DTYPES = (np.int8, np.uint8)
# Largest |weight| of 7-bit weights (symmetric [-64, 64]); larger ones are 8-bit
MAX_7BIT_WEIGHT = 64
SIZE_UNITS = ("bytes", "KB", "MB", "GB")


def describe(path: str) -> list[tuple[str, str]]:
    """A model file -> its (field, value) rows, in display order; opening it checks it against
    the model contract (ModelError when it fails)."""
    session = open_session(path)
    info = session.info
    is_onnx = isinstance(session, OnnxSession)
    details = onnx_details(path) if is_onnx else tflite_details(session)
    rows = [
        ("model", path),
        ("format", "ONNX" if is_onnx else "TFLite"),
        ("format version", info.format_version),
        ("labels", f"{', '.join(info.labels)} ({len(info.labels)})"),
        ("window", f"{info.window_seconds:g} s"),
        ("features", feature_summary(info.feature_config)),
        ("parameters", details["parameters"]),
        ("file size", _size(os.path.getsize(path))),
        ("opset", details["opset"]),
        ("quantized", details["quantized"]),
    ]
    if info.card:
        rows += card_summary(info.card)
        rows.append(("model card", json.dumps(info.card, sort_keys=True)))
    return rows


def feature_summary(cfg: FeatureConfig) -> str:
    """The feature config on one line: bands, frequency range, framing, padding, log, normalisation."""
    return (f"log-mel, {cfg.n_mels} bands, {cfg.fmin:g}-{cfg.fmax:g} Hz, "
            f"{cfg.win_length}-sample window / {cfg.hop_length}-sample hop / n_fft {cfg.n_fft} "
            f"at {cfg.sample_rate} Hz, {cfg.pad} padding{', last frame dropped' * cfg.drop_last_frame}, "
            f"log {cfg.log}, normalize {cfg.normalize}")


def onnx_details(path: str) -> dict[str, str]:
    """{"parameters", "opset", "quantized"} of an ONNX file as display strings, read with `onnx`
    if installed (each "unknown (...)" otherwise)."""
    try:
        import onnx
    except ImportError:
        unknown = "unknown (needs the onnx package)"
        return {"parameters": unknown, "opset": unknown, "quantized": unknown}

    model = onnx.load(path, load_external_data=False)
    graph = model.graph
    params = sum(int(np.prod(t.dims)) for t in graph.initializer)
    opset = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
    return {"parameters": f"{params:,}", "opset": opset, "quantized": _onnx_quantized(graph)}


def _onnx_quantized(graph) -> str:
    """The graph's quantization as a display string: "no", or "yes (<quantized ops>, <n> int8
    tensors, <weight width>)"."""
    from onnx import TensorProto

    ops = sorted({n.op_type for n in graph.node
                  if n.op_type in QUANTIZED_OPS or n.op_type.startswith("QLinear")})
    int8_tensors = sum(t.data_type in (TensorProto.INT8, TensorProto.UINT8) for t in graph.initializer)
    if not (ops or int8_tensors):
        return "no"
    return "yes (" + ", ".join(ops + ([f"{int8_tensors} int8 tensors"] if int8_tensors else [])
                               + weight_width(graph)) + ")"


def weight_width(graph) -> list[str]:
    """["7-bit weights"] or ["8-bit weights ..."] from the signed int8 initializers' range (the
    weights; activation zero points are uint8), [] without any. 8-bit weights can saturate on
    x86 CPUs with AVX2 but no VNNI (edge_ser.kernel_check)."""
    from onnx import TensorProto, numpy_helper

    weights = [numpy_helper.to_array(t) for t in graph.initializer if t.data_type == TensorProto.INT8 and t.dims]
    if not weights:
        return []
    largest = max(int(np.abs(w.astype(np.int16)).max()) for w in weights)  # int16: |-128| fits
    if largest <= MAX_7BIT_WEIGHT:
        return ["7-bit weights"]
    return ["8-bit weights: run `edge-ser check` on x86 without VNNI"]


def tflite_details(session) -> dict[str, str]:
    """{"parameters", "opset", "quantized"} of an open TFLiteSession as display strings:
    quantization from its tensor types; the parameter count is not read."""
    int8 = sum(t["dtype"] in INT8_DTYPES for t in session.tensor_details())
    return {"parameters": "unknown (not read from TFLite files)", "opset": "n/a (TFLite)",
            "quantized": f"yes ({int8} int8 tensors)" if int8 else "no"}


def card_summary(card: dict) -> list[tuple[str, str]]:
    """(field, value) rows for the card fields a user asks about first: the shipped models'
    cross-validated accuracy, the training data, the licence (the rest stays JSON)."""
    rows = []
    if "cross_validation" in card:
        rows += _accuracy_rows(card["cross_validation"])
    if "training_data" in card:
        data = card["training_data"]
        rows.append(("trained on", f"{data.get('corpus')}, {data.get('clips')} clips"))
    if "licence" in card:
        rows.append(("licence", card["licence"]))
    return rows


def _accuracy_rows(cv: dict) -> list[tuple[str, str]]:
    """One "UA (<model>)" row per shipped model: pooled UA and WA, per-corpus UA, the protocol."""
    rows = []
    for model, scores in cv.get("models", {}).items():
        if "shipped" in model:
            per = ", ".join(f"{c} {100 * s['ua']:.1f}" for c, s in scores.get("per_corpus", {}).items())
            pooled = scores["pooled"]
            rows.append((f"UA ({model})", f"{100 * pooled['ua']:.1f} % (WA {100 * pooled['wa']:.1f} %; {per}), "
                                          f"{cv.get('protocol', '')}"))
    return rows


def packaged_row(name: str, path: str | os.PathLike) -> list[str]:
    """Packaged model `name` (file `path`) as the columns of its `edge-ser info` line: name,
    file, size, label count, cross-validated UA and latency. The card is the file beside the
    model (it has the latency), else the one inside it; "n/a" where the card does not say.
    Opening the model checks it against the contract (ModelError when it fails)."""
    path = pathlib.Path(path)
    info = open_session(path).info
    card = packaged_card(name) or info.card or {}
    file_format = path.suffix.lstrip(".")  # "onnx" / "tflite": the keys of the card's "files"
    ua, latency = shipped_ua(card, file_format), file_latency_ms(card, file_format)
    return [name, path.name, _size(os.path.getsize(path)), f"{len(info.labels)} labels",
            "UA " + ("n/a" if ua is None else f"{100 * ua:.1f} % (cross-validated)"),
            "latency " + ("n/a" if latency is None else f"{latency:.2f} ms/window")]


def shipped_ua(card: dict, file_format: str) -> float | None:
    """The card's pooled cross-validated UA of the shipped model in `file_format` ("onnx",
    "tflite"): its "(shipped)" entry naming that format, else its first "(shipped)" entry; None
    without one."""
    models = _card_field(card, "cross_validation", "models")
    if not isinstance(models, dict):
        return None
    shipped = [(model, scores) for model, scores in models.items() if "shipped" in model]
    same_format = [s for model, s in shipped if file_format.lower() in model.lower()]
    chosen = (same_format or [s for _, s in shipped] or [None])[0]
    return _card_field(chosen, "pooled", "ua")


def file_latency_ms(card: dict, file_format: str) -> float | None:
    """The card's median latency in ms (one window, as its latency_note says) of its
    `file_format` file; None when the card does not give it."""
    return _card_field(card, "files", file_format, "latency_ms", "median_ms")


def _card_field(card, *keys):
    """card[k1][k2]... or None where a level is missing or not a dict."""
    for key in keys:
        if not isinstance(card, dict):
            return None
        card = card.get(key)
    return card


def _size(n_bytes: float) -> str:
    """A byte count in the largest unit below 1024 of it: "812 bytes", "145.6 KB"."""
    for unit in SIZE_UNITS:
        if n_bytes < 1024 or unit == SIZE_UNITS[-1]:
            return f"{n_bytes} {unit}" if unit == "bytes" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
