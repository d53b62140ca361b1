"""edge_ser.contract and edge_ser.session: model metadata, contract checks, ONNX/TFLite sessions."""
import json

import numpy as np
import pytest

import models
from edge_ser.config import WHISPER_FEATURES, FeatureConfig
from edge_ser.contract import (
    KEY_FEATURE_CONFIG,
    KEY_FORMAT_VERSION,
    KEY_LABELS,
    KEY_MODEL_CARD,
    KEY_WINDOW_SECONDS,
    REQUIRED_KEYS,
    ModelInfo,
    read_tflite_metadata,
)
from edge_ser.errors import ModelError
from edge_ser.session import OnnxSession, TFLiteSession, open_session

CARD = {"data": "synthetic", "metrics": {"uar": 0.5}}


def assert_one_line_naming(error: ModelError, source, fragment: str = "") -> None:
    message = str(error)
    assert "\n" not in message
    assert str(source) in message
    assert fragment in message, message


# --- metadata --------------------------------------------------------------------------------


def test_metadata_round_trip():
    info = ModelInfo(("calm", "angry"), FeatureConfig(n_mels=128, normalize="utterance"), 3.5, card=CARD)
    meta = info.to_metadata()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
    assert ModelInfo.from_metadata(meta, "m.onnx") == info


# A feature config as written before FeatureConfig had log, pad and drop_last_frame (the example
# in docs/model-contract.md until then): it must still load, to today's defaults.
OLD_FEATURE_CONFIG = ('{"fmax": 8000.0, "fmin": 0.0, "hop_length": 160, "log_floor": 1e-10, "n_fft": 512, '
                      '"n_mels": 64, "normalize": "none", "sample_rate": 16000, "win_length": 400}')


def test_metadata_without_the_new_feature_keys_loads_to_the_old_config():
    meta = {**good_meta(), KEY_FEATURE_CONFIG: OLD_FEATURE_CONFIG}
    config = ModelInfo.from_metadata(meta, "old.onnx").feature_config
    assert config == FeatureConfig()
    assert (config.log, config.pad, config.drop_last_frame) == ("ln", "zero", False)


def test_whisper_features_round_trip_through_metadata():
    info = ModelInfo(("calm", "angry"), WHISPER_FEATURES, 30.0)
    meta = info.to_metadata()
    written = json.loads(meta[KEY_FEATURE_CONFIG])
    assert written["n_fft"] == 400 and written["normalize"] == "whisper" and written["drop_last_frame"] is True
    assert ModelInfo.from_metadata(meta, "whisper.onnx").feature_config == WHISPER_FEATURES


def test_model_card_is_optional():
    meta = models.model_info().to_metadata()
    assert KEY_MODEL_CARD not in meta
    assert ModelInfo.from_metadata(meta).card is None


def good_meta() -> dict:
    return models.model_info(card=CARD).to_metadata()


BAD_METADATA = {
    **{f"missing {k}": ({k: None}, f"{k} is missing") for k in REQUIRED_KEYS},
    "labels not JSON": ({KEY_LABELS: "[anger, calm]"}, "not valid JSON"),
    "config not JSON": ({KEY_FEATURE_CONFIG: "{n_mels: 64"}, "not valid JSON"),
    "card not JSON": ({KEY_MODEL_CARD: "{"}, "not valid JSON"),
    "unknown version": ({KEY_FORMAT_VERSION: "2"}, "unknown edge_ser.format_version '2'"),
    "empty labels": ({KEY_LABELS: "[]"}, "is empty"),
    "duplicate labels": ({KEY_LABELS: '["a", "b", "a"]'}, "duplicate labels ['a']"),
    "labels not strings": ({KEY_LABELS: '["a", 2]'}, "list of non-empty strings"),
    "empty label": ({KEY_LABELS: '["a", ""]'}, "list of non-empty strings"),
    "labels an object": ({KEY_LABELS: '{"a": 1}'}, "list of non-empty strings"),
    "config unknown key": ({KEY_FEATURE_CONFIG: '{"n_mel": 64}'}, "unknown keys ['n_mel']"),
    "config bad value": ({KEY_FEATURE_CONFIG: '{"n_fft": 502}'}, "n_fft must be even with n_fft / 2 a product of 2, 3 and 5"),
    "config bad log": ({KEY_FEATURE_CONFIG: '{"log": "log2"}'}, "log must be one of 'ln', 'log10'"),
    "config bad pad": ({KEY_FEATURE_CONFIG: '{"pad": "edge"}'}, "pad must be one of 'zero', 'reflect'"),
    "config whisper with ln": ({KEY_FEATURE_CONFIG: '{"normalize": "whisper"}'}, "normalize 'whisper' needs log 'log10'"),
    "config drop_last_frame 1": ({KEY_FEATURE_CONFIG: '{"drop_last_frame": 1}'}, "drop_last_frame must be true or false"),
    "config a list": ({KEY_FEATURE_CONFIG: "[64]"}, "must be a JSON object"),
    "window zero": ({KEY_WINDOW_SECONDS: "0"}, "positive number of seconds"),
    "window negative": ({KEY_WINDOW_SECONDS: "-2"}, "positive number of seconds"),
    "window nan": ({KEY_WINDOW_SECONDS: "nan"}, "positive number of seconds"),
    "window text": ({KEY_WINDOW_SECONDS: "two"}, "not a number"),
    "card a list": ({KEY_MODEL_CARD: "[1]"}, "must be a JSON object"),
    # Issue 22, finding 1: a million labels once hung the (quadratic) duplicate check; nesting
    # deeper than the JSON reader's recursion gave "unexpected error: RecursionError".
    "a million labels": ({KEY_LABELS: json.dumps([f"l{i}" for i in range(999_999)] + ["l0"])},
                         "1000000 labels, more than the 1000"),
    "labels nested deep": ({KEY_LABELS: "[" * 100_000 + "]" * 100_000}, "nested too deeply"),
    # Finding 2: values that ran for minutes, took gigabytes, or crashed per file while `info` took them.
    "hop 2**29": ({KEY_FEATURE_CONFIG: '{"hop_length": 536870912}'}, "hop_length must be at most one second"),
    "n_fft 2**20": ({KEY_FEATURE_CONFIG: '{"n_fft": 1048576}'}, "n_fft must be at most 65536"),
    "sample rate 1e9": ({KEY_FEATURE_CONFIG: '{"sample_rate": 1000000000}'}, "sample_rate must be in 4000..192000"),
    "window 1e-4": ({KEY_WINDOW_SECONDS: "0.0001"}, "must be in 0.1..60 s"),
    "window 1e9": ({KEY_WINDOW_SECONDS: "1e9"}, "must be in 0.1..60 s"),
    "hop 160.5": ({KEY_FEATURE_CONFIG: '{"hop_length": 160.5}'}, "hop_length must be an integer"),
    "sample rate 16000.5": ({KEY_FEATURE_CONFIG: '{"sample_rate": 16000.5}'}, "sample_rate must be an integer"),
    "n_fft 2": ({KEY_FEATURE_CONFIG: '{"n_fft": 2, "win_length": 2}'}, "n_fft must be even with"),
    "n_mels true": ({KEY_FEATURE_CONFIG: '{"n_mels": true}'}, "n_mels must be an integer"),
    "fmin about fmax": ({KEY_FEATURE_CONFIG: '{"fmin": 4000.0, "fmax": 4000.0001}'}, "at least 1 Hz above fmin"),
    "log floor 1e308": ({KEY_FEATURE_CONFIG: '{"log_floor": 1e308}'}, "log_floor must be at most 1"),
    "log floor infinite": ({KEY_FEATURE_CONFIG: '{"log_floor": Infinity}'}, "log_floor must be a finite number"),
    "card nested deep": ({KEY_MODEL_CARD: '{"a": ' * 100_000 + "1" + "}" * 100_000}, "nested too deeply"),
}


@pytest.mark.parametrize("case", sorted(BAD_METADATA))
def test_bad_metadata_is_one_line_naming_the_model(case):
    changes, fragment = BAD_METADATA[case]
    meta = good_meta()
    for key, value in changes.items():
        if value is None:
            del meta[key]
        else:
            meta[key] = value
    with pytest.raises(ModelError) as caught:
        ModelInfo.from_metadata(meta, source="/models/ser.onnx")
    assert_one_line_naming(caught.value, "/models/ser.onnx", fragment)


def test_to_metadata_refuses_a_bad_info():
    with pytest.raises(ModelError, match="duplicate"):
        ModelInfo(("a", "a"), FeatureConfig(), 2.0).to_metadata()


# --- ONNX sessions ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    return models.save(models.build_model(models.model_info(card=CARD)), tmp_path_factory.mktemp("m") / "tiny.onnx")


def reference_logits(model_proto, log_mel: np.ndarray) -> np.ndarray:
    """What the tiny model computes, in numpy: mean over frames, then W, b."""
    from onnx import numpy_helper

    weights = {t.name: numpy_helper.to_array(t) for t in model_proto.graph.initializer}
    return log_mel.mean(axis=-1) @ weights["W"] + weights["b"]


def test_onnx_session_reads_metadata_and_computes_the_graph(tiny_onnx):
    import onnx

    session = OnnxSession(tiny_onnx)
    assert session.info == models.model_info(card=CARD)
    assert session.fixed_frames is None
    log_mel = np.random.default_rng(1).normal(-5, 2, (3, 64, 137)).astype(np.float32)
    logits = session(log_mel)
    assert logits.shape == (3, len(models.LABELS)) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, reference_logits(onnx.load(str(tiny_onnx)), log_mel), rtol=1e-4, atol=1e-4)


def test_metadata_that_is_not_utf8_is_one_line_naming_the_model(tiny_onnx, tmp_path):
    """Issue 22, finding 4: it gave "unexpected error: UnicodeDecodeError" without the file's name."""
    import onnx

    model = onnx.load(str(tiny_onnx))
    model.metadata_props.append(onnx.StringStringEntryProto(key="note", value="MARKER-MARKER"))
    raw = model.SerializeToString().replace(b"MARKER-MARKER", b"\xff\xfe\xfd-MARKER-MA")
    bad = tmp_path / "bad_utf8.onnx"
    bad.write_bytes(raw)
    with pytest.raises(ModelError) as caught:
        OnnxSession(bad)
    assert_one_line_naming(caught.value, str(bad), "not valid UTF-8")


@pytest.mark.parametrize("marker", [b"frames", b"logits"])
def test_input_or_output_names_that_are_not_utf8_are_one_line(tiny_onnx, tmp_path, marker):
    """Found by the 30-minute fuzz run: a dimension name that is not UTF-8 made onnxruntime's
    shape property raise UnicodeDecodeError inside the contract check."""
    raw = tiny_onnx.read_bytes()
    assert marker in raw
    bad = tmp_path / "bad_io_utf8.onnx"
    bad.write_bytes(raw.replace(marker, marker[:2] + b"\x9d" + marker[3:]))
    with pytest.raises(ModelError) as caught:
        OnnxSession(bad)
    assert_one_line_naming(caught.value, str(bad), "not valid UTF-8")


def test_open_session_picks_onnx_by_content(tiny_onnx, tmp_path):
    renamed = tmp_path / "model.bin"
    renamed.write_bytes(tiny_onnx.read_bytes())
    assert isinstance(open_session(renamed), OnnxSession)


@pytest.mark.parametrize("name", sorted(models.broken_models()))
def test_broken_onnx_models_are_refused_with_one_line(name, tmp_path):
    model, fragment = models.broken_models()[name]
    path = models.save(model, tmp_path / f"{name}.onnx")
    with pytest.raises(ModelError) as caught:
        open_session(path)
    assert_one_line_naming(caught.value, path, fragment)


def test_static_batch_other_than_one_is_refused(tmp_path):
    path = models.save(models.build_model(input_shape=(4, None, "frames")), tmp_path / "b4.onnx")
    with pytest.raises(ModelError) as caught:
        open_session(path)
    assert_one_line_naming(caught.value, path, "batch must be dynamic or 1")


@pytest.mark.parametrize("frames", [302, 1_000_000])
def test_a_static_frame_axis_longer_than_the_runtime_feeds_is_refused(tmp_path, frames):
    """Issue 22, finding 3: a fixed 1 M or 16 M frame axis made the runtime allocate gigabytes.
    The longest input is 1.5 windows: 301 frames for the tiny model's 2-s window."""
    path = models.save(models.build_model(input_shape=(1, None, frames)), tmp_path / "long.onnx")
    with pytest.raises(ModelError) as caught:
        OnnxSession(path)
    assert_one_line_naming(caught.value, str(path), f"fixed at {frames} frames, more than the 301")
    assert OnnxSession(models.save(models.build_model(input_shape=(1, None, 301)), tmp_path / "ok.onnx")).fixed_frames == 301


def test_static_batch_one_and_fixed_frames_run_item_by_item(tmp_path):
    path = models.save(models.build_model(input_shape=(1, None, 201)), tmp_path / "static.onnx")
    session = open_session(path)
    assert session.fixed_frames == 201
    log_mel = np.random.default_rng(2).normal(size=(3, 64, 201)).astype(np.float32)
    np.testing.assert_allclose(session(log_mel), np.concatenate([session(x[None]) for x in log_mel]))


def test_declared_dynamic_class_axis_is_still_checked(tmp_path):
    model = models.build_model(n_classes=5)  # 5 outputs, 7 labels, class axis declared dynamic
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "classes"
    path = models.save(model, tmp_path / "dyn.onnx")
    with pytest.raises(ModelError) as caught:  # at load (onnxruntime infers 5) or first call
        open_session(path)(np.zeros((1, 64, 10), np.float32))
    assert_one_line_naming(caught.value, path, "5 classes")


@pytest.mark.parametrize("content, fragment", [
    (None, "no such model file"),
    (b"", "model file is empty"),
    (b"\x08\x01garbage that is not protobuf" * 10, "not a loadable ONNX model"),
])
def test_unusable_model_files(tmp_path, content, fragment):
    path = tmp_path / "model.onnx"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError) as caught:
        open_session(path)
    assert_one_line_naming(caught.value, path, fragment)


def test_a_directory_is_not_a_model(tmp_path):
    with pytest.raises(ModelError) as caught:
        open_session(tmp_path)
    assert_one_line_naming(caught.value, tmp_path, "is a directory")


def test_write_onnx_metadata_replaces_earlier_entries(tiny_onnx):
    import onnx

    model = onnx.load(str(tiny_onnx))
    models.write_onnx_metadata(model, models.model_info(labels=("x", "y", "z", "u", "v", "w", "q")))
    keys = [p.key for p in model.metadata_props]
    assert len(keys) == len(set(keys))
    assert json.loads(dict((p.key, p.value) for p in model.metadata_props)[KEY_LABELS])[0] == "x"


# --- TFLite ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tflite_bytes():
    """A tiny float TFLite model (mean over frames + Linear), converted with litert_torch,
    and the torch module it came from. Skips without torch/litert_torch/ai_edge_litert."""
    torch = pytest.importorskip("torch", reason="needs torch (the train extra) to build a TFLite model")
    litert_torch = pytest.importorskip("litert_torch", reason="needs litert_torch to build a TFLite model")
    pytest.importorskip("ai_edge_litert", reason="needs ai_edge_litert")
    import tempfile

    torch.manual_seed(0)
    torch.set_num_threads(1)

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(64, len(models.LABELS))

        def forward(self, log_mel):
            return self.linear(log_mel.mean(dim=2))

    module = Tiny().eval()
    with tempfile.TemporaryDirectory() as tmp:
        litert_torch.convert(module, (torch.zeros(1, 64, 201),)).export(f"{tmp}/tiny.tflite")
        with open(f"{tmp}/tiny.tflite", "rb") as f:
            return f.read(), module


def test_tflite_metadata_round_trip_and_session(tflite_bytes, tmp_path):
    import torch

    from edge_ser.contract import write_tflite_metadata

    raw, module = tflite_bytes
    info = models.model_info(card=CARD)
    data = write_tflite_metadata(raw, info)
    assert "edge_ser" not in read_tflite_metadata(raw)
    assert json.loads(read_tflite_metadata(data)["edge_ser"]) == info.to_metadata()
    path = tmp_path / "tiny.tflite"
    path.write_bytes(data)
    session = open_session(path)
    assert isinstance(session, TFLiteSession) and session.info == info
    for shape in [(1, 64, 201), (1, 64, 57), (3, 64, 120)]:  # other frame counts: resized
        log_mel = np.random.default_rng(3).normal(-5, 2, shape).astype(np.float32)
        with torch.no_grad():
            expected = module(torch.from_numpy(log_mel)).numpy()
        np.testing.assert_allclose(session(log_mel), expected, rtol=1e-4, atol=1e-4)


def test_tflite_metadata_written_twice_is_replaced(tflite_bytes):
    from edge_ser.contract import write_tflite_metadata

    raw, _ = tflite_bytes
    first = write_tflite_metadata(raw, models.model_info())
    second = write_tflite_metadata(first, models.model_info(window_seconds=3.0))
    entries = json.loads(read_tflite_metadata(second)["edge_ser"])
    assert float(entries[KEY_WINDOW_SECONDS]) == 3.0


def test_tflite_without_edge_ser_metadata_or_truncated_is_refused(tflite_bytes, tmp_path):
    raw, _ = tflite_bytes
    cases = {"plain.tflite": (raw, "'edge_ser' is missing"),
             "cut.tflite": (raw[:100], "corrupt TFLite file"),
             "text.tflite": (b"hello, not a model at all", "corrupt TFLite file")}
    for name, (content, fragment) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ModelError) as caught:
            open_session(path)
        assert_one_line_naming(caught.value, path, fragment)


def test_tflite_class_count_must_match_labels(tflite_bytes, tmp_path):
    from edge_ser.contract import write_tflite_metadata

    raw, _ = tflite_bytes
    path = tmp_path / "five.tflite"
    path.write_bytes(write_tflite_metadata(raw, models.model_info(labels=("a", "b", "c", "d", "e"))))
    with pytest.raises(ModelError) as caught:
        open_session(path)
    assert_one_line_naming(caught.value, path, "7 classes")


def test_missing_tflite_interpreter_says_how_to_install(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_litert(name, *args, **kwargs):
        if name.startswith(("ai_edge_litert", "tflite_runtime")):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_litert)
    path = tmp_path / "m.tflite"
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    with pytest.raises(ModelError) as caught:
        open_session(path)
    assert_one_line_naming(caught.value, path, "pip install 'edge-ser[tflite]'")


def test_int8_quantize_and_dequantize_use_the_tensor_parameters():
    from edge_ser.session import _dequantize, _quantize

    detail = {"dtype": np.int8, "quantization": (0.05, -3)}
    x = np.array([-10.0, -1.0, 0.0, 0.26, 1.0, 10.0], np.float32)
    q = _quantize(x, detail)
    assert q.dtype == np.int8
    np.testing.assert_array_equal(q, [-128, -23, -3, 2, 17, 127])  # round(x / 0.05) - 3, clipped
    np.testing.assert_allclose(_dequantize(q, detail), (q.astype(np.float32) + 3) * 0.05)
    float_detail = {"dtype": np.float32, "quantization": (0.0, 0)}
    assert _quantize(x, float_detail) is x


def test_inference_failure_is_a_one_line_model_error(tmp_path):
    """A graph that only works for 10 frames (Reshape to [-1, n_mels * 10]) fed 11 frames."""
    from onnx import TensorProto, helper, numpy_helper

    n_mels, frames, n_classes = 64, 10, len(models.LABELS)
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["log_mel", "shape"], ["flat"]),
         helper.make_node("MatMul", ["flat", "W"], ["logits"])],
        "needs_ten_frames",
        [helper.make_tensor_value_info("log_mel", TensorProto.FLOAT, ["batch", n_mels, "frames"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_classes])],
        initializer=[numpy_helper.from_array(np.array([-1, n_mels * frames], np.int64), "shape"),
                     numpy_helper.from_array(np.zeros((n_mels * frames, n_classes), np.float32), "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", models.OPSET)])
    model.ir_version = 8
    models.write_onnx_metadata(model, models.model_info())
    path = models.save(model, tmp_path / "ten.onnx")
    session = open_session(path)
    assert session(np.zeros((2, n_mels, frames), np.float32)).shape == (2, n_classes)
    with pytest.raises(ModelError) as caught:
        session(np.zeros((1, n_mels, frames + 1), np.float32))
    assert_one_line_naming(caught.value, path, "inference failed on input [1, 64, 11]")
