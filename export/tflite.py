"""PyTorch -> TFLite with litert-torch (no TensorFlow), FP32 and INT8, with the contract metadata.

INT8 is PT2E static quantization (per-channel symmetric int8 weights, int8 activations
calibrated on training-fold features with litert's histogram observer or plain min-max). Fully
quantized, every conv / pool / mean / linear runs in int8; the input stays float32 (a QUANTIZE op
follows the in-graph standardisation) and the output is int8 with its own (scale, zero point),
which the runtime dequantizes (docs/model-contract.md). As in the ONNX path, the first conv, or
the first conv and the head, can stay in float (`keep_float`): the QUANTIZE then follows that
conv, and a DEQUANTIZE feeds a float FULLY_CONNECTED (float32 output).

Resizable input: litert-torch cannot lower a dynamic frame axis here (the `unsqueeze` to
[B, 1, n_mels, frames] fails in lowering), so we convert at [1, n_mels, 201] and then rewrite
the one RESHAPE that adds the channel axis into an EXPAND_DIMS, which has no baked-in shape, and
mark batch and frames as -1 in the input's shape signature. The CNN's other ops (conv, pool,
mean, fully connected) resize on their own, so the runtime's `resize_tensor_input` works. A ViT
(fixed patch grid) stays fixed at the exported frame count.
"""
from __future__ import annotations

import contextlib
import os
import pathlib

import numpy as np
import torch

from edge_ser.contract import ModelInfo, write_tflite_metadata

EXAMPLE_FRAMES = 201
FILE_IDENTIFIER = b"TFL3"
KEEP_FLOAT = ("none", "first", "edges")  # as export.quantize.KEEP_FLOAT
OBSERVERS = ("histogram", "minmax")  # activation range observers (litert's default: histogram)
CONVERSION_OPS = ("QUANTIZE", "DEQUANTIZE")


@contextlib.contextmanager
def quiet():
    """Silence litert-torch's progress lines and C++ logging for the block."""
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        yield


def convert_fp32(model: torch.nn.Module, n_mels: int, frames: int = EXAMPLE_FRAMES) -> bytes:
    """Model (eval) -> TFLite flatbuffer bytes, FP32."""
    import litert_torch

    with quiet():
        edge = litert_torch.convert(model.eval(), (torch.zeros(1, n_mels, frames),))
    return flatbuffer(edge)


def float_modules(model: torch.nn.Module, keep_float: str = "none") -> list[str]:
    """Qualified names of the modules to leave in float: none, the first Conv2d ("first": its
    input, the standardised spectrogram, is the widest-ranged activation) or the first Conv2d
    and the last Linear ("edges")."""
    if keep_float not in KEEP_FLOAT:
        raise ValueError(f"unknown keep-float choice {keep_float!r}: use one of {', '.join(KEEP_FLOAT)}")
    convs = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    heads = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    if keep_float == "none" or not convs:
        return []
    return convs[:1] + (heads[-1:] if keep_float == "edges" else [])


def _from_modules(node, names: list[str]) -> bool:
    """Whether an exported graph node was traced inside one of the modules `names`."""
    stack = [path for path, _ in node.meta.get("nn_module_stack", {}).values()]
    return any(path == name or path.startswith(name + ".") for path in stack for name in names)


def quantizer(skip: list[str] = (), observer: str = "histogram"):
    """litert's PT2EQuantizer (per-channel symmetric int8 weights, int8 activations seen by
    `observer`) that leaves the nodes of the modules `skip` unannotated, i.e. in float.
    Its own `set_module_name(name, None)` refuses None, and its name filter does not match the
    module-stack keys torch.export writes here, so the filter is applied directly."""
    import dataclasses

    from litert_torch.quantize import pt2e_quantizer
    from torchao.quantization.pt2e.observer import MinMaxObserver

    if observer not in OBSERVERS:
        raise ValueError(f"unknown observer {observer!r}: use one of {', '.join(OBSERVERS)}")
    config = pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True)
    if observer == "minmax":
        spec = dataclasses.replace(config.input_activation,
                                   observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-12))
        config = dataclasses.replace(config, input_activation=spec, output_activation=spec)
    skip = list(skip)

    class Quantizer(pt2e_quantizer.PT2EQuantizer):
        def _annotate_for_static_quantization_config(self, model):
            return self._annotate_all_static_patterns(model, self.global_config,
                                                      lambda node: not _from_modules(node, skip))

    return Quantizer().set_global(config)


def convert_int8(model: torch.nn.Module, calibration: np.ndarray, frames: int = EXAMPLE_FRAMES,
                 keep_float: str = "none", observer: str = "histogram") -> bytes:
    """Model (eval) -> TFLite flatbuffer bytes, static INT8 (PT2E), calibrated on `calibration`
    [N, n_mels, frames] training features, one clip per call (ranges as in single-clip
    inference); `keep_float` (see `float_modules`) leaves the most sensitive layers in float."""
    import litert_torch
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import move_exported_model_to_eval, quantize_pt2e

    example = (torch.from_numpy(np.ascontiguousarray(calibration[:1], np.float32)),)
    chosen = quantizer(float_modules(model, keep_float), observer)
    with quiet():
        graph = torch.export.export(model.eval(), example).module()
        prepared = quantize_pt2e.prepare_pt2e(graph, chosen)
        with torch.no_grad():
            for clip in calibration:
                prepared(torch.from_numpy(np.ascontiguousarray(clip[None], np.float32)))
        quantized = move_exported_model_to_eval(quantize_pt2e.convert_pt2e(prepared, fold_quantize=False))
        # Without quant_config the converter keeps float kernels between QUANTIZE/DEQUANTIZE
        # pairs (same size and slower than FP32); with it, the quantized part becomes integer.
        edge = litert_torch.convert(quantized, example, quant_config=QuantConfig(pt2e_quantizer=chosen))
    return flatbuffer(edge)


def convert_dynamic_int8(model: torch.nn.Module, n_mels: int, frames: int) -> bytes:
    """Model (eval) -> TFLite flatbuffer bytes, dynamic-range INT8 (PT2E): int8 per-channel
    weights, activations quantized per call, at a fixed [1, n_mels, frames] input. No calibration:
    nothing is fixed ahead but the weights' scales. For transformers, where per-tensor static
    ranges lose most (docs/packaged-models.md)."""
    import litert_torch
    from litert_torch.quantize import pt2e_quantizer
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import move_exported_model_to_eval, quantize_pt2e

    config = pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)
    chosen = pt2e_quantizer.PT2EQuantizer().set_global(config)
    example = (torch.zeros(1, n_mels, frames),)
    with quiet():
        graph = torch.export.export(model.eval(), example).module()
        prepared = quantize_pt2e.prepare_pt2e(graph, chosen)
        with torch.no_grad():
            prepared(*example)  # dynamic observers record nothing that is kept; prepare needs a pass
        quantized = move_exported_model_to_eval(quantize_pt2e.convert_pt2e(prepared, fold_quantize=False))
        edge = litert_torch.convert(quantized, example, quant_config=QuantConfig(pt2e_quantizer=chosen))
    return flatbuffer(edge)


def flatbuffer(edge_model) -> bytes:
    """litert-torch model -> bytes (through a temporary file: `export` is the stable API)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "model.tflite"
        edge_model.export(str(path))
        return path.read_bytes()


def _builtin(model, op) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def _opcode_index(model, builtin: int) -> int:
    """Index of `builtin` in the model's operator codes, added if missing."""
    from ai_edge_litert import schema_py_generated as schema

    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = builtin
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _constant_int32(model, graph, values: list[int], name: bytes) -> int:
    """Add an int32 constant tensor; returns its index in the subgraph."""
    from ai_edge_litert import schema_py_generated as schema

    buffer = schema.BufferT()
    buffer.data = np.frombuffer(np.asarray(values, np.int32).tobytes(), np.uint8)
    model.buffers.append(buffer)
    tensor = schema.TensorT()
    tensor.shape, tensor.type = np.array([len(values)], np.int32), schema.TensorType.INT32
    tensor.buffer, tensor.name = len(model.buffers) - 1, name
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def make_resizable(buf: bytes) -> bytes:
    """Rewrite RESHAPE ops that only append a unit axis ([..] -> [.., 1]) as EXPAND_DIMS and mark
    the input's batch and frame axes -1, so `resize_tensor_input` works. Returns new bytes."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(buf), 0)
    for buffer in model.buffers or []:  # re-packing keeps only data inside the flatbuffer (as in
        if buffer.offset > 1 and buffer.size:  # edge_ser.contract.write_tflite_metadata)
            buffer.data = np.frombuffer(buf[buffer.offset:buffer.offset + buffer.size], dtype=np.uint8)
        buffer.offset = buffer.size = 0
    graph = model.subgraphs[0]
    source = graph.tensors[graph.inputs[0]]
    source.shapeSignature = np.array([-1, source.shape[1], -1], np.int32)
    for op in graph.operators:
        if _builtin(model, op) != schema.BuiltinOperator.RESHAPE:
            continue
        x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
        if list(y.shape) != list(x.shape) + [1]:
            continue
        op.opcodeIndex = _opcode_index(model, schema.BuiltinOperator.EXPAND_DIMS)
        op.builtinOptionsType = schema.BuiltinOptions.ExpandDimsOptions
        op.builtinOptions = schema.ExpandDimsOptionsT()
        axis = _constant_int32(model, graph, [len(x.shape)], b"expand_dims_axis")
        op.inputs = np.array([op.inputs[0], axis], np.int32)
    builder = flatbuffers.Builder(len(buf) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def write(path: pathlib.Path, buf: bytes, info: ModelInfo, resizable: bool = True) -> pathlib.Path:
    """Flatbuffer bytes -> file with the contract metadata (made resizable first if asked)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if resizable:
        buf = make_resizable(buf)
    path.write_bytes(write_tflite_metadata(buf, info))
    return path


def op_types(path: pathlib.Path) -> dict[str, int]:
    """Op names (with counts) of a TFLite file."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.ModelT.InitFromPackedBuf(bytearray(pathlib.Path(path).read_bytes()), 0)
    ops: dict[str, int] = {}
    for op in model.subgraphs[0].operators:
        name = names.get(_builtin(model, op), str(_builtin(model, op)))
        ops[name] = ops.get(name, 0) + 1
    return dict(sorted(ops.items()))


def io_types(path: pathlib.Path) -> dict[str, str]:
    """dtype of the input and output tensors of a TFLite file."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    return {"input": np.dtype(interpreter.get_input_details()[0]["dtype"]).name,
            "output": np.dtype(interpreter.get_output_details()[0]["dtype"]).name}


def float_ops(path: pathlib.Path) -> dict[str, int]:
    """Op names (with counts) that compute in float in a TFLite file: every op but QUANTIZE /
    DEQUANTIZE whose first input is a float32 tensor."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.ModelT.InitFromPackedBuf(bytearray(pathlib.Path(path).read_bytes()), 0)
    graph = model.subgraphs[0]
    ops: dict[str, int] = {}
    for op in graph.operators:
        name = names.get(_builtin(model, op), str(_builtin(model, op)))
        if name not in CONVERSION_OPS and graph.tensors[op.inputs[0]].type == schema.TensorType.FLOAT32:
            ops[name] = ops.get(name, 0) + 1
    return dict(sorted(ops.items()))
