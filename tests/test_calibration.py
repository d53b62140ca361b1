"""Calibrated scores (export.calibration, the `edge_ser.temperature` metadata key and the
runtime's use of it): the fit, the cross-fitting that keeps each fold out of its own
temperature, the contract's bounds, and the packaged models' temperatures."""
from __future__ import annotations

import numpy as np
import pytest

from edge_ser import Recognizer
from edge_ser.contract import KEY_TEMPERATURE, ModelInfo
from edge_ser.errors import ModelError
from edge_ser.packaged import packaged_card, packaged_file
from edge_ser.session import open_session
from export import calibration
import models

RNG = np.random.default_rng(7)


def toy(n: int = 3000, n_classes: int = 4, scale: float = 3.0):
    """Logits `scale` x too sharp: classes drawn from softmax(z), the model reports z * scale."""
    z = RNG.normal(0, 1.5, (n, n_classes))
    p = calibration.softmax(z)
    truth = np.array([RNG.choice(n_classes, p=row) for row in p])
    return z * scale, truth


def test_fit_temperature_recovers_the_overconfidence_factor():
    logits, truth = toy()
    assert calibration.fit_temperature(logits, truth) == pytest.approx(3.0, rel=0.15)
    assert calibration.fit_temperature(logits / 3.0, truth) == pytest.approx(1.0, rel=0.15)


def test_reliability_of_a_known_set():
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.55, 0.45]])
    truth = np.array([0, 1, 0, 0])  # top-score bins: (0.9, 1] accuracy 0.5; (0.5, 0.6] accuracy 1
    r = calibration.reliability(probs, truth)
    assert r["ece"] == pytest.approx(0.5 * 0.45 + 0.5 * 0.45)
    assert [b["count"] for b in r["bins"]] == [0, 0, 0, 0, 0, 2, 0, 0, 0, 2]


def test_a_fold_never_helps_fit_its_own_temperature():
    logits, truth = toy(n=1200)
    folds = np.repeat(np.arange(4), 300)
    _, temperatures = calibration.cross_fitted(logits, truth, folds)
    # Make fold 0's clips look badly calibrated: its own temperature must not move, the others' must.
    changed = logits.copy()
    changed[folds == 0] *= 10
    _, after = calibration.cross_fitted(changed, truth, folds)
    assert after[0] == pytest.approx(temperatures[0], rel=1e-6)
    assert all(after[k] > 1.5 * temperatures[k] for k in (1, 2, 3))


def test_cross_fitting_lowers_the_error_of_overconfident_logits():
    logits, truth = toy(n=2000)
    held = calibration.HeldOut(logits, truth, np.array(["a", "b"] * 1000), np.repeat(np.arange(5), 400))
    result = calibration.calibration(held)
    assert result["before"]["pooled"]["ece"] > 0.1
    assert result["after"]["pooled"]["ece"] < 0.04
    assert set(result["before"]) == {"pooled", "a", "b"}
    assert result["after"]["pooled"]["accuracy"] == result["before"]["pooled"]["accuracy"]


def test_temperature_round_trips_and_is_bounded():
    info = models.model_info()
    meta = ModelInfo(info.labels, info.feature_config, info.window_seconds, temperature=2.5).to_metadata()
    assert ModelInfo.from_metadata(meta).temperature == 2.5
    assert KEY_TEMPERATURE not in info.to_metadata()  # 1.0 is the default and is not written
    for bad in ("0.001", "1e9", "nan", "-2", "hot"):
        with pytest.raises(ModelError, match="model.onnx: edge_ser.temperature"):
            ModelInfo.from_metadata({**meta, KEY_TEMPERATURE: bad}, source="model.onnx")


def test_the_runtime_divides_logits_by_the_temperature(tmp_path):
    info = models.model_info()
    plain = models.save(models.build_model(info), tmp_path / "plain.onnx")
    hot = models.build_model(info)
    models.set_metadata(hot, KEY_TEMPERATURE, "4.0")
    hot = models.save(hot, tmp_path / "hot.onnx")
    audio = RNG.normal(0, 0.1, 32000).astype(np.float32)
    p1 = np.array(list(Recognizer(plain).predict(audio).scores.values()))
    p4 = np.array(list(Recognizer(hot).predict(audio).scores.values()))
    expected = calibration.softmax(np.log(p1)[None] / 4.0)[0]
    np.testing.assert_allclose(p4, expected, atol=1e-5)
    assert p4.argmax() == p1.argmax()


@pytest.mark.parametrize("name", ["default", "tiny"])
def test_packaged_models_carry_their_fitted_temperature(name):
    info = open_session(packaged_file(name)).info
    card = packaged_card(name)
    assert info.temperature == pytest.approx(card["calibration"]["temperature"]) != 1.0
    assert info.card["calibration"] == card["calibration"]
    # The reason it ships: the cross-fitted temperature must have lowered the pooled error.
    assert card["calibration"]["ece_after_cross_fitted"]["pooled"] < card["calibration"]["ece_before"]["pooled"]
