"""Accuracy of exported model files on degraded clips: in every fold folder of an export chain,
one model file (by default the deployed INT8 ONNX) scored through the runtime's own session on
its fold's held-out clips mixed with recorded noise or in simulated rooms (the degradations of
`train.degraded`: one noise segment or room per clip, from a seed and the clip's name). Written
as `benchmarks/results/<name>.{json,md}` rows the benchmark report's tables read: the clean
figures from the cards, then one row per level.
"""
from __future__ import annotations

import datetime
import json
import pathlib
from typing import Callable

import numpy as np

from edge_ser.config import FeatureConfig
from edge_ser.session import open_session
from train import metrics
from train.data import load_corpus
from train.degraded import noisy_corpus_features, reverberant_corpus_features
from train.features import corpus_features

from . import model_files

KEY = "deployed_onnx_int8"  # result.json's name for the file each fold deploys


def fold_folders(export_dir: pathlib.Path) -> list[pathlib.Path]:
    folders = sorted(p.parent for p in pathlib.Path(export_dir).glob("*/result.json"))
    if not folders:
        raise FileNotFoundError(f"{export_dir}: no fold folders with a result.json (run the export chain first)")
    return folders


def model_path(folder: pathlib.Path, key: str) -> pathlib.Path:
    """The fold's file `key` names in result.json (e.g. the deployed INT8 ONNX), or the file `key`."""
    named = json.loads((folder / "result.json").read_text())
    path = folder / named.get(key, key)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file (result.json names {sorted(named)})")
    return path


def fold_scores(path: pathlib.Path, features: dict[str, np.ndarray], rows: list[int], truth: np.ndarray,
                n_classes: int) -> dict[str, dict]:
    """{set: fold result (scores, confusion)} of one model file on its test rows of each feature
    set in `features` (keyed by result set, and "clean")."""
    session = open_session(path)
    out = {}
    for name, x in features.items():
        predicted = session(x[rows]).argmax(axis=1)
        matrix = metrics.confusion(truth, predicted, n_classes)
        out[name] = {"scores": metrics.scores(matrix), "confusion": matrix.tolist()}
    return out


def score_export(export_dir: pathlib.Path, degraded: Callable, key: str = KEY, data: str | None = None) -> dict:
    """{"labels", "run", "clean": summary, set: summary} over every fold folder of `export_dir`;
    `degraded(corpus, feature_config, seconds)` -> {set: log-mel tensor} of every clip."""
    features = {}  # per teacher run: its corpus's degraded features, made once
    per_set, clean, labels, config = {}, [], None, None
    for folder in fold_folders(export_dir):
        path = model_path(folder, key)
        card = model_files.read_card(path)
        run_dir, fold = pathlib.Path(card["source"]["run"]), card["source"]["fold"]
        config = json.loads((run_dir / "config.json").read_text())
        labels = config["labels"]
        if str(run_dir) not in features:
            corpus = load_corpus(config["run"]["corpus"], data or config["run"].get("data"))
            feature_config = FeatureConfig.from_dict(config["feature_config"])
            x = {s: v.numpy() for s, v in degraded(corpus, feature_config, config["run"]["seconds"]).items()}
            x["clean"] = corpus_features(corpus, feature_config, config["run"]["seconds"], None)
            features[str(run_dir)] = ({c.path.name: i for i, c in enumerate(corpus.clips)}, x)
        row_of, x = features[str(run_dir)]
        source = json.loads((run_dir / "single" / f"fold_{fold}.json").read_text())
        rows, truth = [row_of[name] for name in source["test_clips"]], np.array(source["test_true"])
        matrix = metrics.confusion(truth, np.array(card["test"]["predicted"]), len(labels))
        scored = fold_scores(path, x, rows, truth, len(labels))
        if scored.pop("clean")["confusion"] != matrix.tolist():
            raise ValueError(f"{path}: on the clean clips it does not reproduce its card's confusion matrix "
                             "(other clips or features than its fold's)")
        clean.append({"scores": metrics.scores(matrix), "confusion": matrix.tolist()})
        for name, result in scored.items():
            per_set.setdefault(name, []).append(result)
    return {"labels": labels, "run": config["run"], "clean": metrics.summarise(clean, labels),
            "sets": {name: metrics.summarise(results, labels) for name, results in per_set.items()}}


def noise_condition(noise_dir: pathlib.Path, snrs: tuple[float, ...], seed: int = 0) -> tuple[Callable, dict, str]:
    """(features of every clip in noise, what the results file records, how its heading reads)."""
    return ((lambda corpus, config, seconds: noisy_corpus_features(corpus, config, seconds, noise_dir, snrs, seed)),
            {"noise": str(noise_dir), "noise_seed": seed},
            f"mixed with the recordings of `{noise_dir}` (noise seed {seed}; one segment per clip, the same at every SNR)")


def room_condition(rt60s: tuple[float, ...], seed: int = 0) -> tuple[Callable, dict, str]:
    return ((lambda corpus, config, seconds: reverberant_corpus_features(corpus, config, seconds, rt60s, seed)),
            {"room": "statistical (train/reverb.py)", "room_seed": seed},
            f"in simulated rooms (train/reverb.py; room seed {seed}; one random room tail per clip, the same at every RT60)")


def write(export_dir: pathlib.Path, condition: tuple[Callable, dict, str], name: str, model: str,
          out_dir: pathlib.Path, key: str = KEY, data: str | None = None) -> pathlib.Path:
    """`<out_dir>/<name>.{json,md}`: rows shaped like `train report`'s (benchmarks/accuracy.py
    reads them); `condition` from `noise_condition` or `room_condition`."""
    degraded, recorded, heading = condition
    scored = score_export(export_dir, degraded, key, data)
    environment = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    rows = [{"model": model, "result_set": result_set, "n_parameters": None,
             "summary": {**summary, "complete": True}, "config": {"run": scored["run"], "environment": environment}}
            for result_set, summary in [("single", scored["clean"]), *scored["sets"].items()]]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps({"name": name, "export_dir": str(export_dir), "key": key,
                                                     **recorded, "results": rows}, indent=1))
    lines = [f"# {name}: {model} on degraded clips", "",
             f"Every fold folder of `{export_dir}`: its `{key}` file through the runtime's session, on the fold's "
             f"held-out speakers' clips {heading}. Clean figures from the files' cards.", "",
             "| test clips | UA % (pooled) | WA % | fold UA % mean ± std | folds |", "|---|---:|---:|---|---:|"]
    for row in rows:
        s = row["summary"]
        lines.append(f"| {row['result_set']} | {100 * s['pooled']['ua']:.1f} | {100 * s['pooled']['wa']:.1f} | "
                     f"{100 * s['fold_mean']['ua']:.1f} ± {100 * s['fold_std']['ua']:.1f} | {s['n_folds']} |")
    (out_dir / f"{name}.md").write_text("\n".join(lines) + "\n")
    return out_dir / f"{name}.md"
