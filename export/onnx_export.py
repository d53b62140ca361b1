"""PyTorch -> ONNX (torch.onnx dynamo exporter, opset 20, weights inside the file), the model
contract's metadata, an optional onnxruntime graph-optimisation pass, and the parity check.

Input `log_mel` [batch, n_mels, frames] with batch dynamic; frames dynamic for networks that
allow it (the CNN: global pooling), static for DeiT (a fixed patch grid: the runtime then pads or
crops every window to that many frames, as the contract allows).
"""
from __future__ import annotations

import pathlib
import warnings

import numpy as np
import torch

from edge_ser.contract import INPUT_NAME, OUTPUT_NAME, ModelInfo, write_onnx_metadata

OPSET = 20
EXAMPLE_FRAMES = 201  # a 2.0 s clip at 10 ms hop
MIN_FRAMES_CNN = 64  # the CNN downsamples time 32x: shorter input would collapse to nothing


def export(model: torch.nn.Module, path: pathlib.Path, n_mels: int, dynamic_frames: bool,
           frames: int = EXAMPLE_FRAMES) -> pathlib.Path:
    """Write `model` (eval mode) as ONNX at `path` without metadata."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randn(2, n_mels, frames)
    axes = {0: torch.export.Dim("batch", min=1, max=1024)}
    if dynamic_frames:
        axes[2] = torch.export.Dim("frames", min=MIN_FRAMES_CNN, max=100_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model.eval(), (example,), dynamo=True, opset_version=OPSET,
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes=(axes,), external_data=False, verbose=False)
    program.save(str(path), external_data=False)
    strip_debug_info(path)
    return path


def strip_debug_info(path: pathlib.Path) -> None:
    """Drop the exporter's per-node debug metadata (source namespaces, class hierarchies, FX
    nodes): about 0.5 KB per node, a quarter of a small INT8 file, and of no use on the device."""
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    onnx.save(model, str(path))


def set_metadata(path: pathlib.Path, info: ModelInfo) -> None:
    """Write the contract metadata into an ONNX file, in place."""
    import onnx

    model = onnx.load(str(path))
    write_onnx_metadata(model, info)
    onnx.save(model, str(path))


def optimise(src: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
    """onnxruntime's basic graph optimisations (constant folding, redundant node removal: the
    portable level) saved as a new ONNX file; metadata is carried over."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(dst)
    options.intra_op_num_threads = 1
    ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])
    original, optimised = onnx.load(str(src)), onnx.load(str(dst))
    del optimised.metadata_props[:]
    optimised.metadata_props.extend(original.metadata_props)
    onnx.save(optimised, str(dst))
    return pathlib.Path(dst)


def graph_summary(path: pathlib.Path) -> dict:
    """Node count, op types and opset of an ONNX file."""
    import onnx

    model = onnx.load(str(path))
    ops: dict[str, int] = {}
    for node in model.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None)
    return {"nodes": len(model.graph.node), "ops": dict(sorted(ops.items())), "opset": opset}


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
