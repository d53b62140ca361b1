"""Tiny model files that follow the runtime's contract (docs/model-contract.md): the seeds the
model targets mutate. Built at run time, as tests/models.py builds its test models: the ONNX ones
with `onnx.helper` (the dev extra), the TFLite one with LiteRT's flatbuffer schema (the tflite
extra), so neither needs torch.

Each is log_mel [batch, 64, frames] -> mean over frames -> x W + b -> logits [batch, 7].
"""
from __future__ import annotations

import numpy as np

from edge_ser.config import FeatureConfig
from edge_ser.contract import ModelInfo, write_onnx_metadata, write_tflite_metadata

LABELS = ("anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral")
N_MELS = 64
STATIC_FRAMES = 200  # the frame axis of the static seeds: 2 s windows at 10 ms hops
WINDOW_SECONDS = 2.0


def model_info() -> ModelInfo:
    return ModelInfo(LABELS, FeatureConfig(n_mels=N_MELS), WINDOW_SECONDS)


def _weights(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """W float32 [N_MELS, n_classes], b float32 [n_classes] from a seeded generator."""
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 0.03, (N_MELS, len(LABELS))).astype(np.float32),
            rng.normal(0, 0.1, len(LABELS)).astype(np.float32))


def onnx_bytes(frames: int | None = None) -> bytes:
    """The ONNX seed: dynamic batch and frames (frames None) or a static [1, 64, frames] input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights, bias = _weights()
    shape = ["batch", N_MELS, "frames"] if frames is None else [1, N_MELS, frames]
    nodes = [helper.make_node("ReduceMean", ["log_mel"], ["pooled"], axes=[2], keepdims=0),
             helper.make_node("MatMul", ["pooled", "W"], ["scaled"]),
             helper.make_node("Add", ["scaled", "b"], ["logits"])]
    graph = helper.make_graph(
        nodes, "tiny_ser", [helper.make_tensor_value_info("log_mel", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [shape[0], len(LABELS)])],
        initializer=[numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what onnxruntime >= 1.14 reads
    onnx.checker.check_model(model)
    write_onnx_metadata(model, model_info())
    return model.SerializeToString()


def tflite_bytes(frames: int = STATIC_FRAMES) -> bytes:
    """The TFLite seed: MEAN over frames then FULLY_CONNECTED, static [1, 64, frames] float32."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    weights, bias = _weights()
    model = schema.ModelT()
    model.version = 3
    model.buffers = [_buffer(schema, b"")]  # buffer 0 is the empty buffer by convention
    tensors = []

    def tensor(name: str, shape, dtype, data: bytes | None = None) -> int:
        t = schema.TensorT()
        t.name, t.shape, t.type = name, list(shape), dtype
        t.buffer = 0
        if data is not None:
            model.buffers.append(_buffer(schema, data))
            t.buffer = len(model.buffers) - 1
        tensors.append(t)
        return len(tensors) - 1

    f32, i32 = schema.TensorType.FLOAT32, schema.TensorType.INT32
    x = tensor("log_mel", (1, N_MELS, frames), f32)
    axis = tensor("axis", (1,), i32, np.array([2], "<i4").tobytes())
    pooled = tensor("pooled", (1, N_MELS), f32)
    w = tensor("W", (len(LABELS), N_MELS), f32, np.ascontiguousarray(weights.T).astype("<f4").tobytes())
    b = tensor("b", (len(LABELS),), f32, bias.astype("<f4").tobytes())
    y = tensor("logits", (1, len(LABELS)), f32)
    mean = _operator(schema, 0, [x, axis], [pooled], schema.BuiltinOptions.ReducerOptions, schema.ReducerOptionsT())
    dense = _operator(schema, 1, [pooled, w, b], [y], schema.BuiltinOptions.FullyConnectedOptions,
                      schema.FullyConnectedOptionsT())
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = tensors, [x], [y], [mean, dense]
    graph.name = "main"
    model.subgraphs = [graph]
    model.operatorCodes = [_opcode(schema, schema.BuiltinOperator.MEAN),
                           _opcode(schema, schema.BuiltinOperator.FULLY_CONNECTED)]
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return write_tflite_metadata(bytes(builder.Output()), model_info())


def _buffer(schema, data: bytes):
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(data, np.uint8) if data else None
    return buffer


def _operator(schema, opcode: int, inputs, outputs, options_type, options):
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = opcode, list(inputs), list(outputs)
    op.builtinOptionsType, op.builtinOptions = options_type, options
    return op


def _opcode(schema, builtin: int):
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
    return code
