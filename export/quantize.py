"""INT8 ONNX with onnxruntime: static QDQ (per-channel int8 weights, activations uint8 "U8S8" or
int8 "S8S8", calibrated on real training-fold log-mel features with min-max, percentile or
entropy ranges) and dynamic quantization (int8 weights, activations quantized per call).

Weights are 7-bit by default (`weight_bits`, onnxruntime's `reduce_range`): x86 CPUs with AVX2
but no VNNI multiply U8 activations by S8 weights with an instruction (vpmaddubsw) that adds
pairs of products into int16 and saturates, so 8-bit weights can overflow there; with 7 bits a
pair cannot. Measured: a student whose full-integer 8-bit file scored 40 % UA on such a CPU
(and 72 % with the first conv in float) scores as FP32 with 7-bit weights.
`edge_ser.kernel_check` (also `edge-ser check` on a device) detects the problem on the machine
at hand: the optimised integer kernels against the reference QDQ arithmetic.

`quant_pre_process` (shape inference + graph optimisation) runs first, as onnxruntime advises.
`float_ops` reports which nodes stay in float: on this CPU, LayerNormalization, Gelu, Softmax and
the like have no int8 kernel, and dynamic quantization only covers MatMul/Conv weights.
"""
from __future__ import annotations

import contextlib
import pathlib
import tempfile

import numpy as np

from edge_ser.contract import INPUT_NAME

CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
ACTIVATION_TYPES = ("u8", "s8")
KEEP_FLOAT = ("none", "first", "edges", "attention", "attention+first", "attention+edges")
LINEAR_OPS = ("Conv", "MatMul", "Gemm")  # `linear_only`: the ops that hold weights, nothing else
WEIGHT_BITS = (7, 8)
PERCENTILE = 99.999  # percentile calibration: clip the rarest activation outliers
INTEGER_OPS = {"ConvInteger", "MatMulInteger", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
               "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"}


class FeatureReader:
    """onnxruntime CalibrationDataReader over log-mel features [N, n_mels, frames], one clip per
    call (the ranges then reflect single-clip inference, as on the device)."""

    def __init__(self, features: np.ndarray):
        self.features = np.ascontiguousarray(features, dtype=np.float32)
        if self.features.ndim != 3 or len(self.features) == 0:
            raise ValueError(f"calibration features must be a non-empty [N, n_mels, frames] array, "
                             f"got shape {self.features.shape}")
        self.position = 0

    def get_next(self) -> dict | None:
        if self.position >= len(self.features):
            return None
        item = {INPUT_NAME: self.features[self.position:self.position + 1]}
        self.position += 1
        return item

    def rewind(self) -> None:
        self.position = 0

    def __len__(self) -> int:
        return len(self.features)


def pre_process(src: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = pathlib.Path(src).resolve(), pathlib.Path(dst).resolve()
    # When the symbolic pass fails it dumps the model (sym_shape_infer_temp.onnx and its external
    # data) into the working directory: work in a scratch one.
    with tempfile.TemporaryDirectory() as scratch, contextlib.chdir(scratch):
        try:
            quant_pre_process(str(src), str(dst), skip_symbolic_shape=False)
        except Exception:  # noqa: BLE001 - the pass fails with bare Exceptions and TypeErrors alike
            # onnxruntime's symbolic pass cannot follow every graph (the Whisper stem slices its
            # positional table to the input's length); ONNX's own shape inference runs without it.
            quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
    return dst


def float_layers(path: pathlib.Path, keep_float: str) -> list[str]:
    """Names of the nodes to leave in float: "none", "first" (the first Conv: its input is the
    standardised spectrogram, the widest-ranged activation, and it holds 0.1 % of the weights),
    "edges" (the first Conv and the final Gemm/MatMul), "attention" (the MatMuls of two
    activations, queries x keys and weights x values: no weights to shrink, and softmax
    probabilities lose most to a per-tensor uint8 scale), or "attention+first" / "attention+edges"."""
    import onnx

    if keep_float not in KEEP_FLOAT:
        raise ValueError(f"unknown keep-float choice {keep_float!r}: use one of {', '.join(KEEP_FLOAT)}")
    graph = onnx.load(str(path)).graph
    parts = set(keep_float.split("+"))
    names = activation_matmuls(graph) if "attention" in parts else []
    convs = [n.name for n in graph.node if n.op_type == "Conv"]
    heads = [n.name for n in graph.node if n.op_type in ("Gemm", "MatMul")]
    if convs and parts & {"first", "edges"}:
        names += convs[:1] + (heads[-1:] if "edges" in parts else [])
    return names


def activation_matmuls(graph) -> list[str]:
    """MatMul nodes neither of whose inputs is a constant (initializer or Constant node)."""
    constants = {i.name for i in graph.initializer}
    constants |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in graph.node if n.op_type == "MatMul" and not constants.intersection(n.input)]


def static_qdq(src: pathlib.Path, dst: pathlib.Path, features: np.ndarray, method: str = "minmax",
               activations: str = "u8", per_channel: bool = True, keep_float: str = "none",
               weight_bits: int = 7, linear_only: bool = False) -> pathlib.Path:
    """Static QDQ quantization of an FP32 ONNX file, calibrated on `features`; `keep_float`
    (see `float_layers`) leaves the most sensitive layers in float; `weight_bits` 7 or 8 (see
    the module docstring: 7 is safe on every CPU); `linear_only` quantizes the weighted ops
    (`LINEAR_OPS`) and leaves the rest (LayerNorm, GELU, Softmax, residual Adds) in float: on
    a transformer that costs nothing in speed and keeps most of the accuracy the full graph loses."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in CALIBRATION_METHODS:
        raise ValueError(f"unknown calibration method {method!r}: use one of {', '.join(CALIBRATION_METHODS)}")
    if activations not in ACTIVATION_TYPES:
        raise ValueError(f"unknown activation type {activations!r}: use u8 or s8")
    if weight_bits not in WEIGHT_BITS:
        raise ValueError(f"weight bits {weight_bits!r}: use 7 or 8")
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    extra = {"CalibPercentile": PERCENTILE} if method == "percentile" else {}
    with tempfile.TemporaryDirectory() as tmp:
        prepared = pre_process(src, pathlib.Path(tmp) / "prepared.onnx")
        quantize_static(str(prepared), str(dst), FeatureReader(features), quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, weight_type=QuantType.QInt8,
                        activation_type=QuantType.QUInt8 if activations == "u8" else QuantType.QInt8,
                        calibrate_method=methods[method], extra_options=extra, reduce_range=weight_bits == 7,
                        nodes_to_exclude=float_layers(prepared, keep_float),
                        **({"op_types_to_quantize": list(LINEAR_OPS)} if linear_only else {}))
    return pathlib.Path(dst)


def dynamic(src: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
    """Dynamic quantization: int8 weights, activations quantized at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        prepared = pre_process(src, pathlib.Path(tmp) / "prepared.onnx")
        quantize_dynamic(str(prepared), str(dst), weight_type=QuantType.QInt8, per_channel=True)
    return pathlib.Path(dst)


def float_ops(path: pathlib.Path) -> dict[str, int]:
    """Op types (with counts) that compute in float in a quantized ONNX graph.

    QDQ: a compute node whose float inputs do not all come from DequantizeLinear, or whose
    output does not feed a QuantizeLinear, is not fused into an integer kernel. Dynamic: every
    node that is not one of the integer ops. Graph-level view; the kernels ORT actually picks can
    differ (it may run some of them in float anyway)."""
    import onnx

    graph = onnx.load(str(path)).graph
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    constants = {i.name for i in graph.initializer}
    is_qdq = any(n.op_type == "QuantizeLinear" for n in graph.node) and \
        not any(n.op_type == "DynamicQuantizeLinear" for n in graph.node)
    result: dict[str, int] = {}
    for node in graph.node:
        if node.op_type in INTEGER_OPS:
            continue
        if is_qdq:
            inputs = [i for i in node.input if i and i not in constants]
            fed = all(producers.get(i) is not None and producers[i].op_type == "DequantizeLinear" for i in inputs)
            feeds = all(c.op_type == "QuantizeLinear" for o in node.output for c in consumers.get(o, [])) and \
                any(consumers.get(o) for o in node.output)
            if fed and feeds:
                continue
        result[node.op_type] = result.get(node.op_type, 0) + 1
    return dict(sorted(result.items()))


def file_size(path: pathlib.Path) -> int:
    return pathlib.Path(path).stat().st_size


def calibration_features(train_x: np.ndarray, indices: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(train_x)[indices], dtype=np.float32)
