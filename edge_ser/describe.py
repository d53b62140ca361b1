"""What a model file holds, in readable fields: `edge-ser info`'s rows, and the details behind them.

`describe(path)` opens the model (edge_ser.session) and returns the (field, value) rows a person
asks about: task, labels, window, features, parameters, size, format, precision, calibration,
and from its model card the cross-validated accuracy, training data and licence;
`describe_json(path)` adds the contract metadata and the whole card. ONNX details are read with
the `onnx` package when it is installed (it is not a runtime dependency; without it the parameter
count comes from the card); TFLite details come from the interpreter's tensor list.

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


def describe(path: str, name: str | None = None) -> list[tuple[str, str]]:
    """A model file -> the (field, value) rows a person asks about, in display order: what it
    does, on what input, how big and precise, how accurate and on what data, under what licence.
    `name`: how the user named it (a packaged name), for the hint to the whole card. Opening it
    checks it against the model contract (ModelError when it fails)."""
    return _rows(open_session(path), path, name)


def _rows(session, path: str, name: str | None) -> list[tuple[str, str]]:
    info, card = session.info, session.info.card or {}
    details = onnx_details(path) if isinstance(session, OnnxSession) else tflite_details(session)
    rows = [
        ("model", path),
        ("task", card.get("task") or f"speech emotion recognition, {len(info.labels)} classes"),
        ("labels", f"{', '.join(info.labels)} ({len(info.labels)})"),
        ("window", f"{info.window_seconds:g} s"),
        ("features", feature_summary(info.feature_config)),
        ("parameters", _parameters(details["parameters"], card)),
        ("file size", _size(os.path.getsize(path))),
        ("format", details["format"]),
        ("precision", details["quantized"]),
        ("calibration", _calibration(info.temperature, card)),
    ]
    rows += card_summary(card)
    if card:
        rows.append(("model card", f"edge-ser info {name or path} --format json"))
    return rows


def describe_json(path: str) -> dict:
    """A model file -> its `describe` rows, its contract metadata and its whole model card."""
    session = open_session(path)
    info = session.info
    summary = {k: v for k, v in _rows(session, path, None) if k != "model card"}  # the card is right here
    return {"summary": summary,
            "metadata": {"labels": list(info.labels), "window_seconds": info.window_seconds,
                         "feature_config": info.feature_config.to_dict(), "temperature": info.temperature,
                         "format_version": info.format_version},
            "card": info.card}


def _parameters(counted: str | None, card: dict) -> str:
    """The file's own parameter count when it could be read, else its card's, else "unknown"."""
    if counted is not None:
        return counted
    recorded = _card_field(card, "model", "parameters")
    if isinstance(recorded, int):
        return f"{recorded:,} (from its model card)"
    return "unknown (install the onnx package to count them; its card does not say)"


def _calibration(temperature: float, card: dict) -> str:
    if temperature == 1.0:
        return "none (scores are the model's softmax)"
    ece = _card_field(card, "calibration", "ece_before", "pooled"), \
        _card_field(card, "calibration", "ece_after_cross_fitted", "pooled")
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in ece)  # a card is free-form
    measured = f"; expected calibration error {ece[0]:.3f} -> {ece[1]:.3f}" if numbers else ""
    return f"softmax temperature {temperature:g}{measured}"


def feature_summary(cfg: FeatureConfig) -> str:
    """The feature config on one line: bands, frequency range, window and hop in ms, rate, and
    the normalisation when there is one."""
    ms = lambda samples: f"{1000 * samples / cfg.sample_rate:g} ms"  # noqa: E731
    normalized = f", {cfg.normalize} normalisation" if cfg.normalize not in (None, "none") else ""
    return (f"log-mel, {cfg.n_mels} bands, {cfg.fmin:g}-{cfg.fmax:g} Hz, {ms(cfg.win_length)} window, "
            f"{ms(cfg.hop_length)} hop, at {cfg.sample_rate} Hz{normalized}")


def onnx_details(path: str) -> dict[str, str | None]:
    """{"parameters", "format", "quantized"} of an ONNX file as display strings, read with `onnx`
    if installed (parameters None and the rest "unknown (...)" otherwise)."""
    try:
        import onnx
    except ImportError:
        return {"parameters": None, "format": "ONNX", "quantized": "unknown (needs the onnx package)"}

    model = onnx.load(path, load_external_data=False)
    graph = model.graph
    params = sum(int(np.prod(t.dims)) for t in graph.initializer)
    opset = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    return {"parameters": f"{params:,}", "format": f"ONNX (opset {opset[0]})" if opset else "ONNX",
            "quantized": _onnx_quantized(graph)}


def _onnx_quantized(graph) -> str:
    """The graph's precision as a display string: "float32", or "INT8 (<quantized ops>, <n> int8
    tensors, <weight width>)"."""
    from onnx import TensorProto

    ops = sorted({n.op_type for n in graph.node
                  if n.op_type in QUANTIZED_OPS or n.op_type.startswith("QLinear")})
    int8_tensors = sum(t.data_type in (TensorProto.INT8, TensorProto.UINT8) for t in graph.initializer)
    if not (ops or int8_tensors):
        return "float32"
    return "INT8 (" + ", ".join(ops + ([f"{int8_tensors} int8 tensors"] if int8_tensors else [])
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


def tflite_details(session) -> dict[str, str | None]:
    """{"parameters", "format", "quantized"} of an open TFLiteSession as display strings:
    precision from its tensor types; the parameter count is not read (None)."""
    int8 = sum(t["dtype"] in INT8_DTYPES for t in session.tensor_details())
    return {"parameters": None, "format": "TFLite",
            "quantized": f"INT8 ({int8} int8 tensors)" if int8 else "float32"}


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
    """One "accuracy" row per shipped file: pooled UA and WA, per-corpus UA, the protocol."""
    shipped = [(model, scores) for model, scores in cv.get("models", {}).items() if "shipped" in model]
    rows = []
    for model, scores in shipped:
        per = ", ".join(f"{c} {100 * s['ua']:.1f} %" for c, s in scores.get("per_corpus", {}).items())
        pooled = scores["pooled"]
        field = "accuracy" if len(shipped) == 1 else f"accuracy ({'TFLite' if 'TFLite' in model else 'ONNX'})"
        rows.append((field, f"{100 * pooled['ua']:.1f} % UA, {100 * pooled['wa']:.1f} % WA ({per}); "
                            f"{cv.get('protocol', 'cross-validated')}"))
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
