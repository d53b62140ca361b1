"""A training run's directory and inputs, as the runner and the tools reading runs share them:
its config.json (`read_run_config`, `stored_config`), a fold's saved model (`load_fold_model`),
the `--quick` corpus, the feature cache, a corpus's features as a run computes them
(`clip_features`) and the degraded training copies a run's config asks for."""
from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np
import torch

from edge_ser.config import FeatureConfig

from .arch import arch_of, build
from .data import Corpus, label_indices
from .features import cache_dir, corpus_features, speaker_normalise
from .run_config import RunConfig


def quick_corpus(corpus: Corpus, n_speakers: int = 3, per_speaker: int = 10) -> Corpus:
    """A few clips of a few speakers, for `--quick` (tests): the first clips of each speaker."""
    kept, counts = [], {}
    speakers = sorted(set(corpus.speakers().tolist()))[:n_speakers]
    for clip in corpus.clips:
        if clip.speaker in speakers and counts.get(clip.speaker, 0) < per_speaker:
            counts[clip.speaker] = counts.get(clip.speaker, 0) + 1
            kept.append(True)
        else:
            kept.append(False)
    return corpus.subset(kept)


def feature_cache(cfg: RunConfig) -> pathlib.Path:
    return cache_dir(cfg.cache)


def clip_features(cfg: RunConfig, corpus: Corpus, seconds: float) -> torch.Tensor:
    """Log-mel [N, n_mels, frames] of every clip fixed to `seconds`, speaker-normalised if asked."""
    x = corpus_features(corpus, cfg.feature_config(), seconds, feature_cache(cfg), cfg.progress)
    if not cfg.speaker_norm:
        return torch.from_numpy(x)
    reference = None
    if cfg.speaker_norm_labels:
        wanted = label_indices(cfg.speaker_norm_labels, corpus, "--speaker-norm-labels")
        reference = np.isin(corpus.targets(), wanted)
    return torch.from_numpy(speaker_normalise(x, corpus.speakers(), reference))


def degraded_training_copies(run: dict, clips: list[pathlib.Path], config: FeatureConfig) -> torch.Tensor:
    """The copies a run's config (its "run" entry) asks for, of `clips`: the one place training
    and the export chain's students make them, so a student hears what its teacher heard."""
    from .copies import training_copies

    return training_copies(clips, config, run["seconds"], run["noise_copies"], run["seed"],
                           pathlib.Path(run["noise_train"]) if run.get("noise_train") else None,
                           tuple(run["noise_snr"]), tuple(run["reverb_train"]) if run.get("reverb_train") else None)


def read_run_config(run_dir: pathlib.Path) -> dict:
    """A run directory's config.json."""
    path = pathlib.Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not a training run directory")
    return json.loads(path.read_text())


def stored_config(config: dict, data: str | None = None) -> RunConfig:
    """The RunConfig a run's config.json was written from (fields newer than the run keep their
    defaults), reading its corpus from `data` when given."""
    known = {f.name for f in dataclasses.fields(RunConfig)}
    run = {k: tuple(v) if isinstance(v, list) else v for k, v in config["run"].items() if k in known}
    return RunConfig(**{**run, "data": data or run.get("data")})


def load_fold_model(run_dir: pathlib.Path, fold: str, checkpoint: str = "phase1") -> tuple[torch.nn.Module, dict]:
    """(model in eval mode, the run's config.json) from a fold's saved checkpoint; `checkpoint`
    is phase1 (the only one of a single-phase run) or a variant's name."""
    config = read_run_config(run_dir)
    path = run_dir / "checkpoints" / fold / f"{checkpoint}.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such checkpoint (folds: {', '.join(config['folds'])})")
    model = build(arch_of(config))
    model.load_state_dict(torch.load(path, weights_only=True))
    return model.eval(), config
