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

import pathlib

import numpy as np
import torch

from .ensemble import softmax, write_result_set
from .loop import predict_logits
from .rescore import check_reproduces, fold_models, scored, single_run
from .run_dir import clip_features

RESULT_SET = "shifts"
SHIFTS = (-20, -10, 0, 10, 20)  # frames (10 ms each): the training shift's range


def shift_averaged(model: torch.nn.Module, x: torch.Tensor, shifts: tuple[int, ...] = SHIFTS) -> np.ndarray:
    """Mean class probabilities [N, classes] of `model` over circular time shifts (frames) of
    the log-mels `x` [N, n_mels, frames]."""
    return np.mean([softmax(predict_logits(model, torch.roll(x, s, dims=-1)).astype(np.float64)) for s in shifts],
                   axis=0)


def average_over_shifts(run_dir: pathlib.Path, shifts: tuple[int, ...] = SHIFTS, data: str | None = None) -> dict:
    """Write `<run_dir>/shifts/` (fold JSONs, summary, confusion PNG); returns the summary."""
    run_dir = pathlib.Path(run_dir)
    config, cfg, corpus = single_run(run_dir, data)
    x = clip_features(cfg, corpus, cfg.seconds)  # speaker-normalised if the run was
    results = []
    for source, model, rows, where in fold_models(run_dir, config, corpus):
        check_reproduces(source, predict_logits(model, x[rows]), where)
        results.append(scored(source, shift_averaged(model, x[rows], shifts), len(config["labels"]),
                              shifts=list(shifts)))
    title = f"{run_dir.name}, averaged over shifts {','.join(map(str, shifts))}"
    return write_result_set(run_dir / RESULT_SET, results, config["labels"], title)
