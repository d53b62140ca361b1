"""The export steps end to end on a tiny CNN and a synthetic fold: distill -> prune -> ONNX
(FP32, static INT8, dynamic INT8) -> TFLite (FP32, INT8), each file run through the runtime
(`open_session`, `Recognizer`, `edge-ser infer`) at two clip lengths, contract metadata and model
cards read back; and the calibration reader on real EmoDB features."""
import json
import os
import wave

import numpy as np
import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
torch = pytest.importorskip("torch", reason="export tests need the train extra (torch)")
pytest.importorskip("onnx", reason="export tests need the export extra (onnx)")
pytest.importorskip("onnxscript", reason="export tests need the export extra (onnxscript)")
try:
    from train._compat import import_timm

    import_timm()
except ImportError:
    pytest.skip("export tests need the train extra (timm)", allow_module_level=True)
torch.set_num_threads(1)

from edge_ser import cli  # noqa: E402
from edge_ser.config import SAMPLE_RATE, FeatureConfig  # noqa: E402
from edge_ser.recognizer import Recognizer  # noqa: E402
from edge_ser.session import open_session  # noqa: E402
from export import folds, model_files, quantize, steps  # noqa: E402
from train.arch import build, cnn_arch  # noqa: E402

LABELS = ["anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"]
N_MELS, FRAMES = 64, 201


def synthetic_fold() -> folds.FoldData:
    """7 classes; class c raises mel bands 8c..8c+8; 28 training and 14 test clips."""
    rng = np.random.default_rng(0)

    def clips(n):
        y = np.arange(n) % len(LABELS)
        x = rng.normal(-6, 1.5, (n, N_MELS, FRAMES)).astype(np.float32)
        for i, c in enumerate(y):
            x[i, 8 * c:8 * c + 8] += 3
        return torch.from_numpy(x), torch.from_numpy(y)

    train_x, train_y = clips(28)
    test_x, test_y = clips(14)
    protocol = {"corpus": "synthetic", "protocol": "none", "fold": "f0", "speaker_independent": False}
    return folds.FoldData("f0", LABELS, train_x, train_y, test_x, test_y, ["x"], protocol)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Every file of the chain, built once: name -> path."""
    out = tmp_path_factory.mktemp("export")
    data = synthetic_fold()
    torch.manual_seed(0)
    arch = cnn_arch(len(LABELS), N_MELS, (8, 8, 8, 8))
    teacher = build(arch)
    teacher.standardize.fit(data.train_x)
    info = {"labels": LABELS, "feature_config": FeatureConfig().to_dict(), "window_seconds": 2.0}
    paths = {"teacher.pt": model_files.save(out / "teacher.pt", teacher.eval(), arch, info,
                                            {"source": {"run": "none", "fold": "f0"}, "parameters": 1})}
    paths["student.pt"] = steps.distill(paths["teacher.pt"], out / "student.pt", (4, 8, 8, 8), epochs=1,
                                        data=data, progress=False)
    paths["pruned.pt"] = steps.prune_model(paths["student.pt"], out / "pruned.pt", paths["teacher.pt"], keep=0.5,
                                           epochs=1, data=data, progress=False)
    paths["fp32.onnx"] = steps.to_onnx(paths["student.pt"], out / "fp32.onnx", data=data)
    paths["static.onnx"] = steps.quantize_onnx(paths["fp32.onnx"], out / "static.onnx", "static", "minmax", "u8",
                                               data=data)
    paths["mixed.onnx"] = steps.quantize_onnx(paths["fp32.onnx"], out / "mixed.onnx", "static", "minmax", "u8",
                                              data=data, keep_float="first")
    paths["dynamic.onnx"] = steps.quantize_onnx(paths["fp32.onnx"], out / "dynamic.onnx", "dynamic", data=data)
    return {"paths": paths, "data": data, "out": out}


def cards(chain):
    return {name: model_files.read_card(path) for name, path in chain["paths"].items()}


def test_cards_record_the_chain(chain):
    c = cards(chain)
    assert c["student.pt"]["role"] == "student" and c["student.pt"]["distillation"]["epochs"] == 1
    assert c["pruned.pt"]["parameters"] < c["student.pt"]["parameters"]  # really smaller
    assert c["pruned.pt"]["arch"]["widths"] == [4, 4, 4, 4]  # halved, at least prune.MIN_CHANNELS
    for name in ("fp32.onnx", "static.onnx", "dynamic.onnx"):
        card = c[name]
        assert card["size_bytes"] == chain["paths"][name].stat().st_size
        assert set(card["test"]) >= {"ua", "wa", "confusion", "predicted"}
        assert card["latency"]["median_ms"] > 0 and card["protocol"]["fold"] == "f0"
    assert c["fp32.onnx"]["max_abs_logit_diff_vs_reference"] < 1e-4  # ONNX vs PyTorch parity
    import onnx

    for name in ("static.onnx", "dynamic.onnx"):  # conv weights stored as int8 (tiny files: no size check)
        weights = {i.name: i.data_type for i in onnx.load(str(chain["paths"][name])).graph.initializer}
        conv = [k for k in weights if k.startswith("backbone.features.2.0.weight")]
        assert onnx.TensorProto.INT8 in [weights[k] for k in conv], conv
    assert c["static.onnx"]["float_ops"] != c["dynamic.onnx"]["float_ops"]
    assert "Conv" not in c["static.onnx"]["float_ops"]  # convolutions run in int8
    assert c["mixed.onnx"]["float_ops"]["Conv"] == 1  # ... but the first one, when asked
    assert 0 <= c["static.onnx"]["selection_logit_error_vs_fp32"] and c["static.onnx"]["n_selection_clips"] == 14


@pytest.mark.parametrize("name", ["fp32.onnx", "static.onnx", "mixed.onnx", "dynamic.onnx"])
def test_onnx_runtime_round_trip(chain, name):
    path = chain["paths"][name]
    session = open_session(path)
    assert list(session.info.labels) == LABELS and session.info.window_seconds == 2.0
    assert session.fixed_frames is None  # dynamic frames
    assert session.info.card["protocol"]["fold"] == "f0"  # the short card inside the file
    assert "predicted" not in session.info.card["test"]  # per-clip results stay in the card beside it
    for frames in (150, 201, 260):
        assert session(chain["data"].test_x[:3, :, :frames].numpy()).shape == (3, len(LABELS))
    recognizer = Recognizer(path, min_speech=0)  # noise: labelled by its scores
    for seconds in (1.2, 2.0, 5.0):
        prediction = recognizer.predict(noise(seconds))
        assert prediction.label in LABELS


def noise(seconds: float) -> np.ndarray:
    return np.random.default_rng(1).normal(0, 0.1, int(seconds * SAMPLE_RATE)).astype(np.float32)


def write_wav(path, audio):
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
        f.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return str(path)


def test_edge_ser_infer_runs_exported_models(chain, tmp_path, capsys):
    wav = write_wav(tmp_path / "clip.wav", noise(1.7))
    for name in ("fp32.onnx", "static.onnx"):
        assert cli.main(["infer", "--model", str(chain["paths"][name]), "--format", "json", wav]) == 0
        assert json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def tflite_chain(chain):
    pytest.importorskip("ai_edge_litert", reason="TFLite tests need the tflite extra (ai-edge-litert)")
    pytest.importorskip("litert_torch", reason="TFLite export needs the export extra (litert-torch)")
    paths, data, out = chain["paths"], chain["data"], chain["out"]
    paths["fp32.tflite"] = steps.to_tflite(paths["student.pt"], out / "fp32.tflite", False, paths["fp32.onnx"], data=data)
    paths["int8.tflite"] = steps.to_tflite(paths["student.pt"], out / "int8.tflite", True, paths["static.onnx"],
                                           data=data)
    paths["edges.tflite"] = steps.to_tflite(paths["student.pt"], out / "edges.tflite", True, paths["static.onnx"],
                                            data=data, keep_float="edges", observer="minmax")
    return chain


@pytest.mark.parametrize("name", ["fp32.tflite", "int8.tflite", "edges.tflite"])
def test_tflite_runtime_round_trip(tflite_chain, name):
    path = tflite_chain["paths"][name]
    card = model_files.read_card(path)
    session = open_session(path)
    assert list(session.info.labels) == LABELS and session.info.card["format"] == "tflite"
    x = tflite_chain["data"].test_x.numpy()
    for frames, batch in ((201, 1), (150, 3), (300, 2)):  # resizable batch and frames
        assert session(x[:batch, :, :frames]).shape == (batch, len(LABELS))
    assert Recognizer(path, min_speech=0).predict(noise(1.3)).label in LABELS  # noise: labelled by its scores
    if name == "fp32.tflite":
        assert card["max_abs_logit_diff_vs_reference"] < 1e-4  # vs FP32 ONNX
        assert card["io"] == {"input": "float32", "output": "float32"}
    elif name == "int8.tflite":
        assert card["io"]["output"] == "int8"  # full-integer; the runtime dequantizes
        assert card["size_bytes"] < model_files.read_card(tflite_chain["paths"]["fp32.tflite"])["size_bytes"]
        assert "DEQUANTIZE" not in card["ops"]  # no float kernels between Q/DQ pairs
        assert set(card["float_ops"]) == {"EXPAND_DIMS", "SUB", "MUL"}  # only the in-graph standardisation
    else:  # the first conv (1 input channel: a depthwise conv in TFLite) and the head stay in float
        assert card["io"]["output"] == "float32" and card["keep_float"] == "edges"
        assert card["float_ops"].get("DEPTHWISE_CONV_2D") == 1 and card["float_ops"].get("FULLY_CONNECTED") == 1
        assert "CONV_2D" not in card["float_ops"] and card["ops"]["CONV_2D"] == 3  # the other convs: int8
    if name != "fp32.tflite":  # scored against FP32 on held-out training clips, for the selection
        assert 0 <= card["selection_agreement_vs_fp32"] <= 1 and card["selection_logit_error_vs_fp32"] >= 0


def test_tflite_float_modules_are_the_edges():
    from export import tflite

    model = build(cnn_arch(len(LABELS), N_MELS, (4, 8, 8, 8)))
    assert tflite.float_modules(model, "none") == []
    assert tflite.float_modules(model, "first") == ["backbone.features.0.0"]
    assert tflite.float_modules(model, "edges") == ["backbone.features.0.0", "backbone.head.1"]
    with pytest.raises(ValueError, match="keep-float"):
        tflite.float_modules(model, "middle")


def test_calibration_reader_on_real_features(data_dir):
    from edge_ser.audio import load_audio
    from edge_ser.features import log_mel

    wavs = sorted((data_dir / "emodb" / "wav").glob("*.wav"))[:3]
    features = np.stack([log_mel(load_audio(str(w))) for w in wavs])
    reader = quantize.FeatureReader(features)
    items = [reader.get_next() for _ in range(len(wavs))]
    assert reader.get_next() is None
    for item, expected in zip(items, features):
        assert list(item) == ["log_mel"] and item["log_mel"].shape == (1, *expected.shape)
        assert item["log_mel"].dtype == np.float32 and np.array_equal(item["log_mel"][0], expected)
    reader.rewind()
    assert np.array_equal(reader.get_next()["log_mel"], items[0]["log_mel"])
    with pytest.raises(ValueError, match="non-empty"):
        quantize.FeatureReader(np.zeros((0, 64, 10)))


def test_calibration_split_is_disjoint_and_seeded():
    a, b = folds.calibration_split(50, 20)
    assert len(folds.calibration_split(30, 128)[0]) == 15  # small sets: half and half
    assert len(a) == 20 and len(b) == 30 and not set(a) & set(b)
    assert np.array_equal(a, folds.calibration_split(50, 20)[0])
