"""The functionals baselines' maths, and the late fusion with a training run (clip-matched)."""
import json

import numpy as np
import pytest

pytest.importorskip("torch", reason="the baselines reuse the training code (the train extra)")

from benchmarks.baselines import functionals  # noqa: E402
from benchmarks.baselines.opensmile_svm import fuse  # noqa: E402
from train.data import Clip, Corpus  # noqa: E402


def test_delta_of_a_ramp_is_its_slope_away_from_the_edges():
    ramp = np.arange(20, dtype=np.float64)[None, None, :] * 0.5
    d = functionals.delta(ramp)
    assert d.shape == ramp.shape and np.allclose(d[..., 2:-2], 0.5)


def test_functionals_of_known_contours():
    t = np.linspace(-1, 1, 101)
    lld = np.stack([np.full(101, 3.0), t])[None]  # [1, 2 descriptors, 101 frames]
    f = functionals.functionals(lld).reshape(2, len(functionals.FUNCTIONALS))
    named = [dict(zip(functionals.FUNCTIONALS, row)) for row in f]
    assert named[0]["mean"] == 3.0 and named[0]["std"] == 0 and named[0]["range"] == 0
    assert named[0]["slope"] == pytest.approx(0, abs=1e-12)
    assert named[1]["p50"] == pytest.approx(0) and named[1]["iqr"] == pytest.approx(1.0)
    assert named[1]["skewness"] == pytest.approx(0, abs=1e-9) and named[1]["slope"] == pytest.approx(t.std())


def test_spectral_descriptors_find_a_tone():
    sr, tone = 16000, 1000.0
    audio = 0.5 * np.sin(2 * np.pi * tone * np.arange(sr) / sr)
    lld = dict(zip(functionals.SPECTRAL_LLDS, functionals.spectral_descriptors(audio)[:, 5:-5].mean(axis=1)))
    assert lld["centroid"] == pytest.approx(tone / 1000, rel=0.02)  # kHz
    assert lld["rolloff50"] == pytest.approx(tone / 1000, abs=0.04)
    assert lld["zcr"] == pytest.approx(2 * tone / sr, rel=0.05)  # crossings per sample
    assert lld["log_band_1000_4000"] > lld["log_band_250_650"] + 5


def test_fusion_averages_probabilities_clip_by_clip(tmp_path):
    labels = ["anger", "neutral"]
    corpus = Corpus("emodb", [Clip(tmp_path / f"{n}.wav", "anger", "03") for n in "abc"], labels)
    run = tmp_path / "run"
    (run / "single").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"labels": labels, "run": {"corpus": "emodb", "protocol": "loso"}}))
    (run / "single" / "summary.json").write_text(json.dumps({"pooled": {"ua": 0.5}, "train_seconds": 60.0}))
    # The run lists its clips in another order than the SVM: fusion must match them by name.
    (run / "single" / "fold_spk-03.json").write_text(json.dumps(
        {"test_clips": ["c.wav", "a.wav", "b.wav"], "logits": [[0.0, 5.0], [5.0, 0.0], [0.0, 0.1]]}))
    svm = {"summary": {"train_seconds": 1.0}, "fold_outputs": [
        {"fold": "spk-03", "test_clips": ["a.wav", "b.wav", "c.wav"], "test_true": [0, 0, 1], "train_seconds": 1.0,
         "probabilities": [[0.4, 0.6], [0.8, 0.2], [0.45, 0.55]]}]}
    fused = fuse(svm, run, corpus)
    # a: run ~[1, 0] + svm [.4, .6] -> anger; b: run ~[.48, .52] + svm [.8, .2] -> anger; c: neutral.
    assert fused["summary"]["pooled"]["wa"] == 1.0
    assert fused["fused_with_ua"] == 0.5 and fused["train_seconds_per_protocol"] == 61.0  # the SVM's + the run's
    (run / "single" / "fold_spk-03.json").write_text(json.dumps({"test_clips": ["a.wav", "x.wav", "c.wav"],
                                                                "logits": [[0, 0]] * 3}))
    with pytest.raises(ValueError, match="tested other clips"):
        fuse(svm, run, corpus)


def test_fusion_refuses_a_speaker_normalised_run(tmp_path):
    corpus = Corpus("emodb", [], ["anger"])
    (tmp_path / "config.json").write_text(json.dumps(
        {"labels": ["anger"], "run": {"corpus": "emodb", "protocol": "loso", "speaker_norm": True}}))
    with pytest.raises(ValueError, match="--speaker-norm run"):
        fuse({"fold_outputs": []}, tmp_path, corpus)


def test_the_calibrator_turns_pairwise_margins_into_probabilities():
    pytest.importorskip("sklearn", reason="the SVM baseline needs scikit-learn (not a project dependency)")
    from benchmarks.baselines.opensmile_svm import fit_calibrator, fit_svm, linear_kernel, svm_margins

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    x = rng.normal(size=(60, 5)) + 3 * np.eye(3, 5)[y]  # three separable clusters
    speakers = np.tile(np.arange(10), 6)
    gram, _ = linear_kernel(x, x)
    svm = fit_svm(gram, y, 1.0)
    assert svm_margins(svm, gram).shape == (60, 3)  # 3 pairs
    probs = fit_calibrator(gram, y, speakers, 1.0).predict_proba(svm_margins(svm, gram))
    assert np.allclose(probs.sum(1), 1) and (probs.argmax(1) == y).mean() > 0.9
    assert svm.decision_function(gram).shape == (60, 3) and svm.decision_function_shape == "ovr"  # restored
