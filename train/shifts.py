"""Averaging over time shifts at test time: each test clip's class probabilities averaged over
circular shifts of its log-mel along time, from a finished run's saved fold models.

Training rolls every clip by a random offset within ±`loop.MAX_SHIFT_FRAMES`, so a model has
seen each of these shifted copies; where a cue sits in the window is noise to it, and averaging
over a few positions smooths that noise out. Nothing is retrained and nothing is chosen on the
test folds: the shifts are fixed before any result is seen. Written beside the run as the result
set `shifts`, so `python -m train report` tables it next to `single`, and `python -m train prior
--result-set shifts` re-decides it with the training prior.
"""
from __future__ import annotations

import json
import pathlib

import numpy as np
import torch

from . import metrics
from .data import load_corpus
from .ensemble import softmax, write_result_set
from .loop import predict_logits
from .run import clip_features, load_fold_model, quick_corpus, read_run_config, stored_config

RESULT_SET = "shifts"
SHIFTS = (-20, -10, 0, 10, 20)  # frames (10 ms each): the training shift's range
# The saved logits have 4 decimals; the same model on the same features reproduces them to this.
REPRODUCED = 2e-3


def shift_averaged(model: torch.nn.Module, x: torch.Tensor, shifts: tuple[int, ...] = SHIFTS) -> np.ndarray:
    """Mean class probabilities [N, classes] of `model` over circular time shifts (frames) of
    the log-mels `x` [N, n_mels, frames]."""
    return np.mean([softmax(predict_logits(model, torch.roll(x, s, dims=-1)).astype(np.float64)) for s in shifts],
                   axis=0)


def _check_source(run_dir: pathlib.Path, config: dict) -> None:
    run = config["run"]
    if run.get("ensemble_of"):
        raise ValueError(f"{run_dir}: an ensemble has no fold models of its own; average its members' shifts")
    if run.get("variants"):
        raise ValueError(f"{run_dir}: runs with masking variants are not supported (one model per fold only)")


def fold_result(source: dict, model: torch.nn.Module, x: torch.Tensor, shifts: tuple[int, ...],
                n_classes: int, where: str) -> dict:
    """The `shifts` fold JSON from a fold's `single` JSON, its model and its test features [n_test, ...].
    The model must reproduce the logits the fold JSON kept (its predictions, for runs from before
    fold JSONs kept logits): else it is not the model that was tested."""
    logits = predict_logits(model, x)
    if "logits" in source:
        drift = np.abs(logits - np.array(source["logits"])).max()
        if drift > REPRODUCED:
            raise ValueError(f"{where}: the checkpoint's logits differ from the fold's saved ones by {drift:.4f} "
                             "(another checkpoint or other features than the run's)")
    elif logits.argmax(axis=1).tolist() != source["predicted"]:
        raise ValueError(f"{where}: the checkpoint's predictions differ from the fold's saved ones "
                         "(another checkpoint or other features than the run's)")
    probs = shift_averaged(model, x, shifts)
    predicted = probs.argmax(axis=1)
    matrix = metrics.confusion(np.array(source["test_true"]), predicted, n_classes)
    keep = ("fold", "test_speakers", "n_train", "n_test", "test_clips", "test_true", "train_seconds")
    return {**{k: source[k] for k in keep}, "scores": metrics.scores(matrix), "confusion": matrix.tolist(),
            "predicted": predicted.tolist(), "probabilities": np.round(probs, 4).tolist(), "shifts": list(shifts)}


def average_over_shifts(run_dir: pathlib.Path, shifts: tuple[int, ...] = SHIFTS, data: str | None = None) -> dict:
    """Write `<run_dir>/shifts/` (fold JSONs, summary, confusion PNG); returns the summary."""
    run_dir = pathlib.Path(run_dir)
    config = read_run_config(run_dir)
    _check_source(run_dir, config)
    cfg = stored_config(config, data)
    corpus = load_corpus(cfg.corpus, cfg.data)
    if cfg.quick:
        corpus = quick_corpus(corpus)
    x = clip_features(cfg, corpus, cfg.seconds)  # what the run tested on (speaker-normalised if it was)
    row_of = {clip.path.name: i for i, clip in enumerate(corpus.clips)}
    results = []
    for fold in config["folds"]:
        path = run_dir / "single" / f"fold_{fold}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the run has not finished fold {fold}")
        source = json.loads(path.read_text())
        missing = sorted(set(source["test_clips"]) - set(row_of))
        if missing:
            raise ValueError(f"{path}: tested {missing[0]}, which {corpus.name} here lacks (other --data?)")
        model, _ = load_fold_model(run_dir, fold)
        rows = [row_of[name] for name in source["test_clips"]]
        results.append(fold_result(source, model, x[rows], shifts, len(config["labels"]), str(path)))
    title = f"{run_dir.name}, averaged over shifts {','.join(map(str, shifts))}"
    return write_result_set(run_dir / RESULT_SET, results, config["labels"], title)
