"""The prior-corrected decision for a finished run or ensemble: its test probabilities, each
multiplied by the class frequencies of its fold's training clips and renormalised, then argmax.

Models here are trained with inverse-frequency class weights (UA is the metric), so their
probabilities are those of a class-balanced world; times the training prior they become the
Bayes decision for accuracy (WA) when the test prior is the training prior. Nothing is fitted:
the prior is counted, and the same rule applies to every fold. Written beside the source as the
result set `prior` (or `<source>_prior` for another source, e.g. `shifts_prior`), so `python
-m train report` tables it next to the balanced decision.
"""
from __future__ import annotations

import json
import pathlib

import numpy as np

from .ensemble import fold_probabilities, write_result_set
from .rescore import scored
from .run_dir import read_run_config

RESULT_SET = "prior"


def source_result_set(run_dir: pathlib.Path) -> str:
    """The result set a prior-corrected decision starts from: an ensemble's, or a single run's."""
    for name in ("ensemble", "single"):
        if (run_dir / name).is_dir():
            return name
    raise FileNotFoundError(f"{run_dir}: no single or ensemble results (runs with masking variants are not supported)")


def training_counts(folds: list[dict], n_clips: int, n_classes: int) -> list[np.ndarray]:
    """Class counts [classes] of each fold's training clips, for protocols whose test folds
    partition the corpus (LOSO, 6 x 4 actors): the corpus's counts minus the fold's test counts."""
    tested = {name for f in folds for name in f["test_clips"]}
    if len(tested) != n_clips or sum(f["n_test"] for f in folds) != n_clips or \
            any(f["n_train"] + f["n_test"] != n_clips for f in folds):
        raise ValueError("the test folds do not partition the corpus (or clips were added): no training prior to count")
    totals = sum(np.bincount(f["test_true"], minlength=n_classes) for f in folds)
    return [totals - np.bincount(f["test_true"], minlength=n_classes) for f in folds]


def prior_decided(result: dict, probabilities: np.ndarray, counts: np.ndarray, n_classes: int) -> dict:
    """A fold JSON for the prior-corrected decision on `probabilities` [n_test, classes]."""
    corrected = probabilities * (counts / counts.sum())
    corrected /= corrected.sum(axis=1, keepdims=True)
    return scored(result, corrected, n_classes, training_class_counts=counts.tolist())


def decide_with_prior(run_dir: pathlib.Path, source: str | None = None) -> dict:
    """Write `<run_dir>/prior/` (fold JSONs, summary, confusion PNG) from the run's single or
    ensemble results, or `<run_dir>/<source>_prior/` from the result set `source`; returns the summary."""
    run_dir = pathlib.Path(run_dir)
    config = read_run_config(run_dir)
    if config["run"].get("extra_train"):
        raise ValueError(f"{run_dir}: trained with added clips, whose prior the fold JSONs do not record")
    written = RESULT_SET if source is None else f"{source}_{RESULT_SET}"
    source = source or source_result_set(run_dir)
    paths = [run_dir / source / f"fold_{fold}.json" for fold in config["folds"]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{missing[0]}: the run has not finished every fold")
    folds = [json.loads(p.read_text()) for p in paths]
    labels = config["labels"]
    counts = training_counts(folds, config["n_clips"], len(labels))
    results = [prior_decided(f, fold_probabilities(f, p), c, len(labels)) for f, p, c in zip(folds, paths, counts)]
    return write_result_set(run_dir / written, results, labels, f"{run_dir.name} {source}, prior-corrected decision")
