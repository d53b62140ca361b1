"""A training run's folds and teachers: the features of one fold's training and test speakers
(rebuilt exactly as `train.run` built them: same corpus, protocol, seed, clip length, feature
config and cache) and the teacher checkpoint of that fold as an export model file."""
from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import torch

from edge_ser.config import FeatureConfig
from train import protocols
from train.arch import arch_of, build
from train.data import load_corpus
from train.features import cache_dir, corpus_features
from train.run_dir import degraded_training_copies, quick_corpus
from train.run_dir import read_run_config as run_config


REPO = pathlib.Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class FoldData:
    """One fold: features [N, n_mels, frames] float32 and class ids [N] int64."""

    name: str
    labels: list[str]
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    test_speakers: list[str]
    protocol: dict  # corpus, protocol, fold, speaker_independent, seconds
    # The teacher run's --noise-train / --reverb-train, if it had them: degraded copies [N, copies,
    # n_mels, frames] of the training clips (train.copies) and the chance a drawn clip is replaced by one.
    train_noisy: torch.Tensor | None = None
    noise_p: float = 0.0


def fold_data(run_dir: pathlib.Path, fold: str, data_root: str | None = None, progress: bool = False) -> FoldData:
    """The features of `fold` of the run in `run_dir` (its training speakers only in train_x)."""
    config = run_config(run_dir)
    run = config["run"]
    if run.get("speaker_norm"):
        raise ValueError(f"{run_dir}: trained with --speaker-norm (per-speaker statistics a device does not have): "
                         "not exportable")
    corpus = load_corpus(run["corpus"], data_root or run.get("data"))
    if run.get("quick"):
        corpus = quick_corpus(corpus)
    feature_config = FeatureConfig(**config["feature_config"])
    x = torch.from_numpy(corpus_features(corpus, feature_config, run["seconds"], cache_dir(run.get("cache")), progress))
    y = torch.from_numpy(corpus.targets())
    folds = {f.name: f for f in protocols.make_folds(run["protocol"], corpus.targets(), corpus.speakers(), run["seed"])}
    if fold not in folds:
        raise ValueError(f"{run_dir}: no fold {fold!r} (folds: {', '.join(folds)})")
    split = folds[fold]
    speakers = sorted(set(corpus.speakers()[split.test].tolist()))
    protocol = {"corpus": run["corpus"], "protocol": run["protocol"], "fold": fold, "test_speakers": speakers,
                "speaker_independent": protocols.is_speaker_independent(run["protocol"]), "seconds": run["seconds"],
                "n_train": len(split.train), "n_test": len(split.test)}
    noisy = None
    if run.get("noise_train") or run.get("reverb_train"):
        from train.copies import COPY_FIELDS

        protocol["noise_train"] = {k: run.get(k) for k in COPY_FIELDS}
        noisy = degraded_training_copies(run, [corpus.clips[i].path for i in split.train], feature_config)
    return FoldData(fold, list(config["labels"]), x[split.train], y[split.train], x[split.test], y[split.test],
                    speakers, protocol, noisy, run.get("noise_p", 0.0) if noisy is not None else 0.0)


def model_info_dict(config: dict) -> dict:
    """The contract fields (labels, feature config, window) of a run's models."""
    return {"labels": list(config["labels"]), "feature_config": config["feature_config"],
            "window_seconds": float(config["run"]["seconds"])}


def load_teacher(run_dir: pathlib.Path, fold: str, variant: str):
    """-> (model, arch, info dict) from `runs/<run>/checkpoints/<fold>/<variant>.pt`."""
    config = run_config(run_dir)
    path = pathlib.Path(run_dir) / "checkpoints" / fold / f"{variant}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint (is fold {fold} trained yet?)")
    arch = arch_of(config)
    model = build(arch)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval(), arch, model_info_dict(config)


def calibration_split(n: int, n_calibration: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Training-clip indices -> (calibration, selection): disjoint, seeded. Quantization is
    calibrated on the first set; choices between variants are made on the second, never on
    the test speakers. A small training set is split in half."""
    n_calibration = min(n_calibration, max(1, n // 2))
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[:n_calibration]), np.sort(order[n_calibration:])
