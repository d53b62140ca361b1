"""PyTorch -> TFLite with litert-torch (no TensorFlow), FP32 and INT8, with the contract metadata.

INT8 is PT2E static quantization (per-channel symmetric int8 weights, int8 activations
calibrated on training-fold features), full-integer: every conv / pool / mean / linear runs in
int8. The input stays float32 (a QUANTIZE op follows it); the output is int8 with its own
(scale, zero point), which the runtime dequantizes (docs/model-contract.md).

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


def convert_int8(model: torch.nn.Module, calibration: np.ndarray, frames: int = EXAMPLE_FRAMES) -> bytes:
    """Model (eval) -> TFLite flatbuffer bytes, static INT8 (PT2E), calibrated on `calibration`
    [N, n_mels, frames] training features."""
    import litert_torch
    from litert_torch.quantize import pt2e_quantizer
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import move_exported_model_to_eval, quantize_pt2e

    example = (torch.from_numpy(np.ascontiguousarray(calibration[:1], np.float32)),)
    with quiet():
        graph = torch.export.export(model.eval(), example).module()
        quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
            pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True))
        prepared = quantize_pt2e.prepare_pt2e(graph, quantizer)
        with torch.no_grad():
            for clip in calibration:
                prepared(torch.from_numpy(np.ascontiguousarray(clip[None], np.float32)))
        quantized = move_exported_model_to_eval(quantize_pt2e.convert_pt2e(prepared, fold_quantize=False))
        # Without quant_config the converter keeps float kernels between QUANTIZE/DEQUANTIZE
        # pairs (same size and slower than FP32); with it, the graph becomes integer.
        edge = litert_torch.convert(quantized, example, quant_config=QuantConfig(pt2e_quantizer=quantizer))
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

