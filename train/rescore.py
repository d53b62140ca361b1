"""Re-scoring a finished run's saved fold models on other inputs (time shifts, noise): the loop
over its folds, and the check that each checkpoint is the model that was tested."""
from __future__ import annotations

import json
import pathlib
from typing import Iterator

import numpy as np
import torch

from . import metrics
from .data import Corpus, load_corpus
from .run_config import RunConfig
from .run_dir import load_fold_model, quick_corpus, read_run_config, stored_config

# The saved logits have 4 decimals; the same model on the same features reproduces them to this.
REPRODUCED = 2e-3


def check_reproduces(source: dict, logits: np.ndarray, where: str) -> None:
    """`logits` [n_test, classes] of a fold's checkpoint on its clean test features must be the
    ones its fold JSON kept (its predictions, for runs from before fold JSONs kept logits)."""
    if "logits" in source:
        drift = np.abs(logits - np.array(source["logits"])).max()
        if drift > REPRODUCED:
            raise ValueError(f"{where}: the checkpoint's logits differ from the fold's saved ones by {drift:.4f} "
                             "(another checkpoint or other features than the run's)")
    elif logits.argmax(axis=1).tolist() != source["predicted"]:
        raise ValueError(f"{where}: the checkpoint's predictions differ from the fold's saved ones "
                         "(another checkpoint or other features than the run's)")


def single_run(run_dir: pathlib.Path, data: str | None = None) -> tuple[dict, RunConfig, Corpus]:
    """(config.json, its RunConfig, corpus as the run read it) of a run with one model per fold,
    else ValueError."""
    config = read_run_config(run_dir)
    run = config["run"]
    if run.get("ensemble_of"):
        raise ValueError(f"{run_dir}: an ensemble has no fold models of its own; re-score its members")
    if run.get("variants"):
        raise ValueError(f"{run_dir}: runs with masking variants are not supported (one model per fold only)")
    cfg = stored_config(config, data)
    corpus = load_corpus(cfg.corpus, cfg.data)
    return config, cfg, quick_corpus(corpus) if cfg.quick else corpus


def fold_models(run_dir: pathlib.Path, config: dict, corpus: Corpus) -> Iterator[tuple[dict, torch.nn.Module, list[int], str]]:
    """For each fold: (its `single` JSON, its model in eval mode, the corpus rows of its test
    clips in the JSON's order, the JSON's path for messages)."""
    row_of = {clip.path.name: i for i, clip in enumerate(corpus.clips)}
    for fold in config["folds"]:
        path = run_dir / "single" / f"fold_{fold}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the run has not finished fold {fold}")
        source = json.loads(path.read_text())
        missing = sorted(set(source["test_clips"]) - set(row_of))
        if missing:
            raise ValueError(f"{path}: tested {missing[0]}, which {corpus.name} here lacks (other --data?)")
        model, _ = load_fold_model(run_dir, fold)
        yield source, model, [row_of[name] for name in source["test_clips"]], str(path)


def scored(source: dict, probabilities: np.ndarray, n_classes: int, **extra) -> dict:
    """A derived fold JSON: the source's clips and labels, scored on `probabilities` [n_test, classes]."""
    predicted = probabilities.argmax(axis=1)
    matrix = metrics.confusion(np.array(source["test_true"]), predicted, n_classes)
    keep = ("fold", "test_speakers", "n_train", "n_test", "test_clips", "test_true", "train_seconds")
    return {**{k: source[k] for k in keep}, "scores": metrics.scores(matrix), "confusion": matrix.tolist(),
            "predicted": predicted.tolist(), "probabilities": np.round(probabilities, 4).tolist(), **extra}
