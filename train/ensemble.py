"""Ensembles of finished runs under the same protocol: each test clip's class probabilities
(softmax of the logits the fold JSONs keep) averaged over the runs, then scored like a run of
its own (`<out>/ensemble/fold_*.json`, summary, confusion PNG), which `python -m train report`
tables. Nothing is retrained and nothing is chosen on the test folds: the members are fixed
before their results are seen."""
from __future__ import annotations

import json
import pathlib

import numpy as np

from . import metrics
from .records import write_json
from .run_dir import read_run_config

RESULT_SET = "ensemble"


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def fold_probabilities(result: dict, path: pathlib.Path) -> np.ndarray:
    """Class probabilities [n_test, classes] of a fold JSON: a run's softmax of its logits, or
    an ensemble's probabilities (so an ensemble can be fused again)."""
    if "probabilities" in result:
        return np.array(result["probabilities"], dtype=np.float64)
    if "logits" not in result:
        raise ValueError(f"{path}: no test logits (a run from before fold JSONs kept them)")
    return softmax(np.array(result["logits"], dtype=np.float64))


def _check_same_protocol(runs: list[pathlib.Path], configs: list[dict]) -> None:
    first = configs[0]
    for run, config in zip(runs[1:], configs[1:]):
        for key in ("labels", "folds", "feature_config", "input_shape"):
            if config[key] != first[key]:
                raise ValueError(f"{run}: its {key} differ from {runs[0]}'s: not the same protocol")
        for key in ("corpus", "protocol", "seconds", "speaker_norm", "extra_train"):
            if config["run"].get(key) != first["run"].get(key):
                raise ValueError(f"{run}: {key} {config['run'].get(key)!r} differs from {runs[0]}'s")


def fold_result(runs: list[pathlib.Path], result_set: str, fold: str, n_classes: int) -> dict:
    """The ensemble's fold JSON from the members' fold JSONs of `fold`."""
    members, member_probs = [], []
    for run in runs:
        path = run / result_set / f"fold_{fold}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the member has not finished fold {fold}")
        members.append(json.loads(path.read_text()))
        if "logits" not in members[-1]:  # members are runs: an ensemble's fold keeps no logits
            raise ValueError(f"{path}: no test logits (a run from before fold JSONs kept them)")
        if members[-1]["test_clips"] != members[0]["test_clips"]:
            raise ValueError(f"{path}: other test clips than {runs[0]}'s fold {fold}")
        member_probs.append(fold_probabilities(members[-1], path))
    probs = np.mean(member_probs, axis=0)
    predicted = probs.argmax(axis=1)
    matrix = metrics.confusion(np.array(members[0]["test_true"]), predicted, n_classes)
    keep = ("fold", "test_speakers", "n_train", "n_test", "test_clips", "test_true")
    return {**{k: members[0][k] for k in keep}, "scores": metrics.scores(matrix), "confusion": matrix.tolist(),
            "predicted": predicted.tolist(), "probabilities": np.round(probs, 4).tolist(),
            "train_seconds": float(sum(m["train_seconds"] for m in members))}


def write_result_set(directory: pathlib.Path, results: list[dict], labels: list[str], title: str) -> dict:
    """A derived result set (every fold's JSON, summary, confusion PNG) in `directory`; returns
    the summary."""
    for result in results:
        write_json(directory / f"fold_{result['fold']}.json", result)
    summary = metrics.summarise(results, labels)
    summary["train_seconds"] = float(sum(r["train_seconds"] for r in results))
    summary["complete"] = True
    write_json(directory / "summary.json", summary)
    metrics.plot_confusion(np.array(summary["pooled_confusion"]), labels, directory / "confusion.png",
                           f"{title}: UA {100 * summary['pooled']['ua']:.1f}% WA {100 * summary['pooled']['wa']:.1f}%")
    return summary


def ensemble(runs: list[pathlib.Path], out: pathlib.Path, result_set: str = "single") -> dict:
    """Write the ensemble of `runs` (their `result_set`) to `out`; returns its summary."""
    runs = [pathlib.Path(r) for r in runs]
    if len(runs) < 2:
        raise ValueError("an ensemble needs at least two runs")
    configs = [read_run_config(run) for run in runs]
    _check_same_protocol(runs, configs)
    first = configs[0]
    labels = first["labels"]
    results = [fold_result(runs, result_set, fold, len(labels)) for fold in first["folds"]]
    summary = write_result_set(out / RESULT_SET, results, labels, f"ensemble of {len(runs)} runs")
    run = {**first["run"], "seed": None, "ensemble_of": [str(r) for r in runs], "ensemble_result_set": result_set}
    write_json(out / "config.json", {**first, "run": run, "n_parameters": sum(c["n_parameters"] for c in configs),
                                     "members": [{"run": str(r), "seed": c["run"].get("seed"),
                                                  "commit": c["environment"].get("commit")} for r, c in zip(runs, configs)]})
    return summary
