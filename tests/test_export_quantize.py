"""Static INT8 ONNX and the int8 kernels of the CPU at hand: 7-bit weights give the file's own
(QDQ reference) arithmetic on every CPU; 8-bit weights saturate on x86 with AVX2 but no VNNI,
which `edge_ser.kernel_check` reports. Built on a hand-made conv whose products are as large as
they get."""
import pathlib
import platform

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="export tests need the export extra (onnx)")
pytest.importorskip("onnxruntime.quantization", reason="export tests need onnxruntime's quantization tools")

import models  # noqa: E402
from edge_ser.contract import INPUT_NAME, write_onnx_metadata  # noqa: E402
from edge_ser.kernel_check import cpu_int8_dot_product, kernel_check  # noqa: E402
from export import quantize  # noqa: E402

N_MELS, FRAMES = 64, 24
INFO = models.model_info(labels=("a", "b", "c", "d"))


def worst_case_conv(path: pathlib.Path) -> pathlib.Path:
    """log_mel [B, 64, F] -> one 3x3 conv, four channels of equal positive weights (every weight
    quantizes to the top code) -> per-channel mean [B, 4]."""
    from onnx import TensorProto, helper, numpy_helper

    weights = np.ones((4, 1, 3, 3), np.float32) * np.array([1.0, 0.5, 0.25, 2.0], np.float32).reshape(4, 1, 1, 1)
    nodes = [helper.make_node("Unsqueeze", [INPUT_NAME, "axis"], ["x"]),
             helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1]),
             helper.make_node("ReduceMean", ["y", "axes"], ["logits"], keepdims=0)]
    graph = helper.make_graph(
        nodes, "worst_case_conv",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", N_MELS, "frames"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(np.array([1], np.int64), "axis"), numpy_helper.from_array(weights, "w"),
         numpy_helper.from_array(np.zeros(4, np.float32), "b"),
         numpy_helper.from_array(np.array([2, 3], np.int64), "axes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    return with_metadata(model, path)


def with_metadata(model, path: pathlib.Path) -> pathlib.Path:
    """The model contract's labels and feature config, so the runtime's sessions open it."""
    write_onnx_metadata(model, INFO)
    onnx.save(model, str(path))
    return path


def loud_features(n: int, seed: int = 0) -> np.ndarray:
    """Inputs near the top of their range, so activations quantize to codes near 255."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.9, 1.0, (n, N_MELS, FRAMES)).astype(np.float32)


def saturating_cpu() -> bool:
    """x86 with AVX2 and no int8 dot-product instruction: where U8S8 products can saturate."""
    flags = pathlib.Path("/proc/cpuinfo").read_text() if pathlib.Path("/proc/cpuinfo").exists() else ""
    return platform.machine() in ("x86_64", "AMD64") and " avx2" in flags and \
        cpu_int8_dot_product() == "none"


@pytest.mark.parametrize("bits", [7, 8])
def test_seven_bit_weights_follow_the_qdq_arithmetic_on_any_cpu(tmp_path, bits):
    fp32 = worst_case_conv(tmp_path / "conv.onnx")
    calibration = np.concatenate([loud_features(8), -loud_features(8, seed=1)])  # range [-1, 1]
    int8 = quantize.static_qdq(fp32, tmp_path / f"conv_w{bits}.onnx", calibration, weight_bits=bits)
    check = kernel_check(with_metadata(onnx.load(str(int8)), int8), loud_features(6, seed=2))
    assert check.n_windows == 6 and check.cpu_int8_dot_product == cpu_int8_dot_product()
    if bits == 7:
        assert check.max_abs_logit_diff < 1e-3 and check.ok  # the kernels compute exactly what the file says
    elif saturating_cpu():
        assert check.max_abs_logit_diff > 1 and not check.ok  # pairs of 255 x 127 overflow int16 here


def test_weight_bits_are_checked():
    with pytest.raises(ValueError, match="weight bits 6"):
        quantize.static_qdq(pathlib.Path("unused.onnx"), pathlib.Path("unused_int8.onnx"), loud_features(1),
                            weight_bits=6)


def test_info_tells_the_weight_width(tmp_path):
    from edge_ser.describe import onnx_details

    fp32 = worst_case_conv(tmp_path / "conv.onnx")
    calibration = loud_features(8)
    for bits in (7, 8):
        int8 = quantize.static_qdq(fp32, tmp_path / f"conv_w{bits}.onnx", calibration, weight_bits=bits)
        assert f"{bits}-bit weights" in onnx_details(str(int8))["quantized"]
    assert "bit weights" not in onnx_details(str(fp32))["quantized"]
