"""Encoder models to the device, on a tiny random Whisper encoder and fold checkpoints the tests
write: the standalone log-mel -> logits module computes what the training path computes, its
FP32 / INT8 ONNX files carry the contract and run in the runtime, the pooled parity figures and
the packaging rule (eligibility, budgets, ties) behave as docs/packaged-models.md says."""
import dataclasses
import json
import pathlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime.quantization")
pytest.importorskip("litert_torch", reason="the export extra converts to TFLite with litert-torch")
pytest.importorskip("ai_edge_litert", reason="the tflite extra runs TFLite files")

from edge_ser.config import SAMPLE_RATE, WHISPER_FEATURES  # noqa: E402
from edge_ser.recognizer import Recognizer  # noqa: E402
from export import encoder_models, packaged  # noqa: E402
from train.encoders.whisper import WhisperEncoder, WhisperEncoderConfig  # noqa: E402
from train.fusion import head, inputs, model  # noqa: E402
from train.fusion.standalone import LogMelClassifier, load_standalone  # noqa: E402

TINY = WhisperEncoderConfig(n_mels=80, n_ctx=150, d_model=32, n_heads=2, n_layers=3)
LABELS = ("anger", "neutral", "sadness")


def encoder():
    torch.manual_seed(0)
    return WhisperEncoder(TINY).eval()


def checkpoint(path: pathlib.Path, name: str = "encoder+gap") -> pathlib.Path:
    torch.manual_seed(1)
    net = model.FusionModel(model.MODELS[name], encoder(), 2, 1, n_classes=len(LABELS)).eval()
    head.save_fold_model(net, path, depth=3, tune=1, n_classes=len(LABELS))
    return path


def mel(n_clips=4, seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([inputs.window_arrays(rng.normal(scale=0.1, size=int(SAMPLE_RATE * seconds)).astype(np.float32),
                                          WHISPER_FEATURES, seconds)[0] for _ in range(n_clips)]).astype(np.float32)


def test_standalone_model_computes_what_training_computes(tmp_path):
    standalone, saved = load_standalone(checkpoint(tmp_path / "f.pt"), encoder())
    trained, _ = head.load_fold_model(tmp_path / "f.pt", encoder())
    x = torch.from_numpy(mel())
    frames = encoder().hidden_states(x, upto=2)[-1]
    valid = torch.ones(frames.shape[:2], dtype=torch.bool)
    with torch.no_grad():
        expected = trained(x, frames, valid, torch.full(frames.shape[:2], -1))
        assert torch.allclose(standalone(x), expected, atol=1e-6)
    assert saved["depth"] == 3 and len(standalone.frozen) == 2


@pytest.mark.parametrize("seconds", [0.3, 0.61, 1.0])
def test_gap_leaves_out_the_runtimes_zero_padding_as_training_did(seconds):
    """A 1-s window holding `seconds` of audio: the frames GAP averages are the frames training
    counted as real audio (window_arrays' `valid`), to within the one frame straddling the end."""
    from train.fusion.standalone import audio_frames

    audio = np.random.default_rng(4).normal(scale=0.1, size=int(SAMPLE_RATE * seconds)).astype(np.float32)
    mel_window, valid, _ = inputs.window_arrays(audio, WHISPER_FEATURES, 1.0)
    found = audio_frames(torch.from_numpy(mel_window)[None])[0].numpy()
    assert found.shape == valid.shape
    assert np.sum(found != valid) <= 1 and found[: max(valid.sum() - 1, 0)].all()


def test_sap_models_do_not_stand_alone(tmp_path):
    with pytest.raises(ValueError, match="segments"):
        load_standalone(checkpoint(tmp_path / "f.pt", "encoder+gap+sap"), encoder())


def fake_run(tmp_path: pathlib.Path) -> encoder_models.FusionRun:
    checkpoint(tmp_path / "run" / "checkpoints" / "all.pt")
    return encoder_models.FusionRun(tmp_path / "run", "tiny-test", "emodb", "all", 1.0, None, LABELS,
                                    WHISPER_FEATURES, ("all",))


def test_onnx_files_carry_the_contract_and_follow_torch(tmp_path):
    run = fake_run(tmp_path)
    files = encoder_models.model_files(run, "all", encoder(), mel(8, seed=1), tmp_path / "out")
    assert set(files) == {"fp32", *encoder_models.VARIANTS, encoder_models.TFLITE}
    standalone, _ = load_standalone(run.path / "checkpoints" / "all.pt", encoder())
    x = mel(3, seconds=1.4, seed=2)  # another length than the export's example: the frame axis is dynamic
    with torch.no_grad():
        expected = standalone(torch.from_numpy(x)).numpy()
    fp32 = encoder_models.evaluate.session_logits(files["fp32"], x)
    assert np.abs(fp32 - expected).max() < 1e-4
    for name in encoder_models.VARIANTS:
        info = encoder_models.session_info(files[name])
        assert info.labels == LABELS and info.feature_config == WHISPER_FEATURES and info.window_seconds == 1.0
        assert encoder_models.evaluate.session_logits(files[name], x).shape == (3, len(LABELS))
    audio = np.random.default_rng(3).normal(scale=0.1, size=SAMPLE_RATE).astype(np.float32)
    assert Recognizer(files["int8_static"], min_speech=0).predict(audio).label in LABELS  # noise: label by scores
    twin = Recognizer(files[encoder_models.TFLITE], min_speech=0)  # fixed at 1.5 windows: a 1-s clip is zero-padded to them
    assert twin.session.fixed_frames == 150 and twin.info.feature_config == WHISPER_FEATURES
    assert twin.predict(audio).label in LABELS
    before = files["fp32"].stat().st_mtime_ns  # a second call reuses the files (resume)
    encoder_models.model_files(run, "all", encoder(), mel(8, seed=1), tmp_path / "out")
    assert files["fp32"].stat().st_mtime_ns == before


def test_pooled_scores_report_parity_gates():
    truth = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    exact = np.eye(3)[truth] * 5.0
    one_flip = exact.copy()
    one_flip[0] = np.eye(3)[1] * 5.0
    logits = {"fp32": exact, "int8_dynamic": exact.copy(), "int8_static": one_flip}
    groups = np.array(["emodb"] * 5 + ["ravdess"] * 5)
    result = encoder_models.pooled_scores(truth, groups, logits, 3, [5, 5])
    assert result["fp32"]["pooled"]["ua"] == 1.0 and set(result["fp32"]["per_corpus"]) == {"emodb", "ravdess"}
    assert result["int8_dynamic"]["parity"] == {"agreement_with_fp32": 1.0, "ua_drop": 0.0, "passes": True}
    static = result["int8_static"]["parity"]
    assert static["agreement_with_fp32"] == 0.9 and not static["passes"]


def candidate(name, ua, p95, fp32_ua=None):
    path = pathlib.Path(name if name.endswith(".tflite") else f"{name}.onnx")
    c = packaged.Candidate(name, path, ua, fp32_ua, None, 1, {})
    c.latency = {"p95_ms": p95, "median_ms": p95}
    return c


def test_the_rule_takes_the_most_accurate_eligible_model_within_budget():
    fast = candidate("cnn", 0.62, 0.5)
    good = candidate("enc/int8_static", 0.79, 4.9, fp32_ua=0.797)
    lossy = candidate("enc2/int8_static", 0.85, 5.0, fp32_ua=0.87)  # loses 2 points to its FP32
    slow = candidate("enc/int8_dynamic", 0.793, 9.5, fp32_ua=0.797)  # within the tie of `good`: slower loses
    pool = [fast, good, lossy, slow]
    assert not lossy.eligible
    assert packaged.choose(pool, 24.0) is good
    assert packaged.choose(pool, 4.0) is fast
    assert packaged.choose(pool, 0.1) is None
    twin = candidate("enc/int8_tflite.tflite", 0.794, 3.0, fp32_ua=0.797)
    assert packaged.choose(pool + [twin], 4.0) is twin  # as accurate as `good`, and within budget
    assert packaged.choose(pool + [twin], 24.0, ("onnx",)) is good  # the default: ONNX files only
    good.latency["peak_rss_bytes"] = 120 * 2**20  # a cold edge-ser infer beyond the 100 MB target
    assert packaged.choose(pool, 24.0, ("onnx",)) is slow


def test_cnn_card_loses_the_build_machines_paths():
    source = {"name": "edge-ser default", "model": {"noise_train": {"noise_train": "/some/where/data/noise/background"}},
              "recipe": "python -m export default --widths 18,36 --noise-train /some/where/data/noise/background"}
    card = packaged.cnn_card("tiny", dataclasses.replace(candidate("cnn-student/int8_static", 0.6, 1.0), source=source))
    text = json.dumps(card)
    assert "/some/where" not in text and card["name"] == "edge-ser tiny"
    assert card["model"]["noise_train"]["noise_train"] == "DATA/noise/background"


def test_the_standalone_positional_table_stops_at_the_longest_window():
    from train.fusion.standalone import MAX_WINDOW_SECONDS

    long_table = WhisperEncoder(WhisperEncoderConfig(n_mels=80, n_ctx=1500, d_model=32, n_heads=2, n_layers=2)).eval()
    net = model.FusionModel(model.MODELS["encoder+gap"], long_table, 1, 1, n_classes=3).eval()
    standalone = LogMelClassifier(long_table, net, 1)
    assert len(standalone.positional_embedding) == MAX_WINDOW_SECONDS * 50  # encoder frames: 50 per second
    assert torch.equal(standalone.positional_embedding, long_table.positional_embedding[: MAX_WINDOW_SECONDS * 50])
    with torch.no_grad():
        assert standalone(torch.zeros(1, 80, MAX_WINDOW_SECONDS * 100)).shape == (1, 3)
