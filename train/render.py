"""Render a clip's log-mel spectrogram beside its attention-rollout map (PNG)."""
from __future__ import annotations

import pathlib

import numpy as np
import torch

from edge_ser.config import FeatureConfig

from . import rollout
from .data import read_audio
from .features import clip_log_mel
from .run_dir import load_fold_model


def load_run_model(run_dir: pathlib.Path, fold: str, checkpoint: str = "phase1"):
    """(model, run config dict, feature config, labels) from a run directory's saved state."""
    model, config = load_fold_model(run_dir, fold, checkpoint)
    if config["run"].get("speaker_norm"):
        raise ValueError(f"{run_dir}: trained on speaker-normalised features; rollout renders raw clips only")
    return model, config["run"], FeatureConfig.from_dict(config["feature_config"]), config["labels"]


def render_rollout(run_dir: pathlib.Path, fold: str, checkpoint: str, audio_path: pathlib.Path,
                   png: pathlib.Path, head_fusion: str = "mean") -> np.ndarray:
    """Write the PNG; returns the per-bin rollout map [n_mels, frames]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model, run, feature_config, labels = load_run_model(pathlib.Path(run_dir), fold, checkpoint)
    if run["model"] != "deit":
        raise ValueError(f"{run_dir}: rollout needs a DeiT run, this one is {run['model']}")
    features = torch.from_numpy(clip_log_mel(read_audio(audio_path), feature_config, run["seconds"]))[None]
    with torch.no_grad():
        probabilities = model(features).softmax(dim=1)[0]
    importance = rollout.patch_importance(model, features, head_fusion)
    heat = rollout.to_spectrogram(importance, tuple(run["patch"]), tuple(features.shape[1:]))[0].numpy()
    fig, axes = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    extent = (0, features.shape[2] / feature_config.sample_rate * feature_config.hop_length, 0, features.shape[1])
    axes[0].imshow(features[0].numpy(), origin="lower", aspect="auto", cmap="magma", extent=extent)
    axes[0].set_title(f"{pathlib.Path(audio_path).name}: predicted {labels[int(probabilities.argmax())]} "
                      f"({100 * float(probabilities.max()):.0f}%)", fontsize=9)
    axes[1].imshow(features[0].numpy(), origin="lower", aspect="auto", cmap="gray", extent=extent)
    axes[1].imshow(heat, origin="lower", aspect="auto", cmap="jet", alpha=0.5, extent=extent)
    axes[1].set_title(f"attention rollout ({head_fusion} over heads), {checkpoint} model of fold {fold}", fontsize=9)
    for ax in axes:
        ax.set_ylabel("mel band")
    axes[1].set_xlabel("time (s)")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return heat
