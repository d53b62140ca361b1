"""The model that ships inside the package (edge_ser/models/default.{onnx,tflite}): it loads, its
metadata and card are valid, `edge-ser infer` uses it when --model is absent, and `edge-ser info`
lists it."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from edge_ser import recognizer
from edge_ser.audio import load_audio
from edge_ser.config import FeatureConfig
from edge_ser.session import open_session

MODELS = recognizer.DEFAULT_MODEL.parent
COMMON_LABELS = {"anger", "disgust", "fear", "happiness", "sadness", "neutral"}
MAX_BYTES = 4 * 1024 * 1024  # "a few MB at most"


def edge_ser(*args):
    env = {"PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": "PASSIVE", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "edge_ser", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=120)
    return done.returncode, done.stdout, done.stderr


def real_clips(data_dir, n_per_corpus=6):
    emodb = sorted((data_dir / "emodb" / "wav").glob("*.wav"))[::60][:n_per_corpus]
    ravdess = sorted((data_dir / "ravdess").rglob("*.flac"))[::200][:n_per_corpus]
    return emodb + ravdess


@pytest.mark.parametrize("name", ["default.onnx", "default.tflite"])
def test_default_model_metadata_and_card(name):
    if name.endswith(".tflite"):
        pytest.importorskip("ai_edge_litert", reason="the TFLite default model needs the tflite extra")
    path = MODELS / name
    assert path.is_file(), f"{path}: the package must ship its default model"
    assert path.stat().st_size <= MAX_BYTES
    info = open_session(path).info
    assert set(info.labels) == COMMON_LABELS
    assert info.feature_config == FeatureConfig()
    assert info.window_seconds == 2.0
    card = info.card
    assert card["cross_validation"]["folds"] == [f"spk5-{i}" for i in range(1, 6)]
    shipped = card["cross_validation"]["models"]["student INT8 ONNX (shipped)"]
    assert set(shipped["per_corpus"]) == {"emodb", "ravdess"}
    assert 0 < shipped["pooled"]["ua"] <= 1
    assert "non-commercial" in card["licence"]
    beside = json.loads((MODELS / "default.card.json").read_text())
    assert beside["cross_validation"]["models"] == card["cross_validation"]["models"]


def test_onnx_and_tflite_defaults_agree(data_dir):
    pytest.importorskip("ai_edge_litert", reason="the TFLite default model needs the tflite extra")
    onnx_rec, tflite_rec = recognizer.Recognizer(MODELS / "default.onnx"), recognizer.Recognizer(MODELS / "default.tflite")
    clips = real_clips(data_dir)
    same = [onnx_rec.predict(c).label == tflite_rec.predict(c).label for c in clips]
    assert np.mean(same) >= 0.75


def test_infer_without_model_uses_the_default_on_real_clips(data_dir):
    clips = real_clips(data_dir)
    code, out, err = edge_ser("infer", "--format", "json", *clips)
    assert code == 0, err
    rows = json.loads(out)
    assert len(rows) == len(clips)
    assert {r["label"] for r in rows} <= COMMON_LABELS
    for row in rows:
        assert abs(sum(row["scores"].values()) - 1) < 1e-3


def test_default_model_recognises_its_training_corpora(data_dir):
    """Packaging sanity, not a generalisation claim (these clips were in its training set): a
    model whose features or normalisation broke on the way to the package falls to chance (17 %)."""
    clips = sorted((data_dir / "emodb" / "wav").glob("*.wav"))[::9]
    rec = recognizer.Recognizer()
    emodb = {"W": "anger", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness", "N": "neutral"}
    scored = [(rec.predict(load_audio(c)).label, emodb[c.stem[5]]) for c in clips if c.stem[5] in emodb]
    assert np.mean([p == t for p, t in scored]) >= 0.5


def test_info_default_shows_the_card():
    code, out, err = edge_ser("info", "default")
    assert code == 0, err
    assert "UA (student INT8 ONNX (shipped))" in out
    assert "non-commercial" in out


def test_info_without_model_lists_the_default_with_its_card_scores():
    card = json.loads((MODELS / "default.card.json").read_text())
    ua = card["cross_validation"]["models"]["student INT8 ONNX (shipped)"]["pooled"]["ua"]
    code, out, err = edge_ser("info")
    assert code == 0, err
    [line] = [x for x in out.splitlines() if x.startswith("default ")]
    assert line.split()[1] == "default.onnx"
    assert f"{len(COMMON_LABELS)} labels" in line and f"UA {100 * ua:.1f} %" in line
    assert "latency n/a" not in line


def test_tflite_tensor_details_name_shape_dtype_and_quantization():
    pytest.importorskip("ai_edge_litert", reason="the TFLite default model needs the tflite extra")
    from edge_ser.describe import tflite_details

    session = open_session(MODELS / "default.tflite")
    (x,), (y,) = session.tensor_details("inputs"), session.tensor_details("outputs")
    assert len(x["shape"]) == 3 and x["shape"][1] == session.info.feature_config.n_mels
    assert y["shape"][-1] == len(session.info.labels) and y["dtype"] == np.float32
    tensors = session.tensor_details()
    assert {x["name"], y["name"]} <= {t["name"] for t in tensors}
    int8 = [t for t in tensors if t["dtype"] in (np.int8, np.uint8)]
    assert int8 and all(len(t["quantization"]) == 2 for t in int8)
    assert tflite_details(session)["quantized"] == f"yes ({len(int8)} int8 tensors)"
