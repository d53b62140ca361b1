"""The linear probe: one layer of a frozen encoder, its mean and std over time, standardised, and a
multinomial logistic regression.

Which layer, and how strongly to regularise, is chosen by an inner cross-validation over the
training speakers only (speaker-disjoint inner folds); the test fold is never seen before the
choice is made. Middle layers of Whisper carry more paralinguistic information than its last one
(../shared/notes/pretrained-encoders.md), which is why the layer is a choice at all.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .. import metrics
from ..protocols import dealt_speaker_folds

C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # inverse L2 strength, 3 decades: inner CV picked both ends of narrower grids
INNER_FOLDS = 5  # speaker-disjoint inner folds (fewer when the training fold has fewer speakers)
MAX_ITER = 2000


def layer_features(stats: np.ndarray, layer: int) -> np.ndarray:
    """[N, n_states, 2, D] -> [N, 2 D]: the mean and std of hidden state `layer`, side by side."""
    return stats[:, layer].reshape(len(stats), -1)


def fit_probe(x: np.ndarray, y: np.ndarray, c: float):
    """Standardise (training statistics) then multinomial logistic regression with inverse L2 `c`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=MAX_ITER)).fit(x, y)


@dataclasses.dataclass(frozen=True)
class Choice:
    layer: int
    c: float
    inner_ua: float  # pooled UA of the choice over the inner folds
    grid: dict  # "layer,c" -> inner pooled UA, every candidate


def inner_ua(x: np.ndarray, y: np.ndarray, speakers: np.ndarray, c: float, n_classes: int) -> float:
    """Pooled UA of the probe over speaker-disjoint inner folds of the training clips."""
    folds = dealt_speaker_folds(speakers, min(INNER_FOLDS, len(set(speakers.tolist()))))
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    for fold in folds:
        predicted = fit_probe(x[fold.train], y[fold.train], c).predict(x[fold.test])
        matrix += metrics.confusion(y[fold.test], predicted, n_classes)
    return metrics.scores(matrix)["ua"]


def choose(stats: np.ndarray, y: np.ndarray, speakers: np.ndarray, n_classes: int) -> Choice:
    """The (layer, C) with the best inner-CV UA on these (training) clips; ties go to the earlier
    layer and the smaller C (the cheaper, more regularised model)."""
    grid = {}
    for layer in range(stats.shape[1]):
        x = layer_features(stats, layer)
        for c in C_GRID:
            grid[f"{layer},{c}"] = inner_ua(x, y, speakers, c, n_classes)
    best = max(grid, key=lambda k: (grid[k], -int(k.split(",")[0]), -float(k.split(",")[1])))
    layer, c = best.split(",")
    return Choice(int(layer), float(c), grid[best], grid)


def probe_fold(train_stats: np.ndarray, train_y: np.ndarray, train_speakers: np.ndarray,
               test_stats: np.ndarray, n_classes: int) -> tuple[np.ndarray, Choice]:
    """Choose on the training clips, refit on all of them, predict the test clips.
    Returns (class probabilities [n_test, n_classes], the choice)."""
    choice = choose(train_stats, train_y, train_speakers, n_classes)
    probe = fit_probe(layer_features(train_stats, choice.layer), train_y, choice.c)
    probabilities = np.zeros((len(test_stats), n_classes))
    probabilities[:, probe.classes_] = probe.predict_proba(layer_features(test_stats, choice.layer))
    return probabilities, choice
