"""The fusion model as a head of the encoder runs (`python -m train.encoders run --head fusion`):
one fold's model built, trained on its training clips, scored on its test clips and saved."""
from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import torch

from .fit import FusionSettings, fit, predict
from .inputs import EncodedWindows
from .model import MODELS, FusionConfig, FusionModel

CHECKPOINT_FORMAT = "edge-ser-fusion/1"


def fusion_config(name: str, direction: str, combine: str) -> FusionConfig:
    """A named model of MODELS with the run's cross-attention direction and segment combining."""
    if name not in MODELS:
        raise ValueError(f"--fusion {name}: use one of {', '.join(MODELS)}")
    return dataclasses.replace(MODELS[name], direction=direction, combine=combine)


def fit_fold(windows: EncodedWindows, config: FusionConfig, depth: int, tune: int, targets: np.ndarray,
             train: np.ndarray, test: np.ndarray, n_classes: int, seed: int,
             settings: FusionSettings = FusionSettings(), checkpoint: pathlib.Path | None = None) -> dict:
    """The fold's model fitted on clips `train` (saved to `checkpoint` if given); its
    probabilities on clips `test` and its sizes."""
    torch.manual_seed(seed)
    model = FusionModel(config, windows.encoder, depth - tune, tune, n_classes)
    inputs = (windows.mel, windows.upto(depth - tune), windows.valid, windows.segments)
    history = fit(model, tuple(x[train] for x in inputs), targets[train], settings, seed)
    if checkpoint is not None:
        save_fold_model(model, checkpoint, depth, tune, n_classes)
    new = sum(p.numel() for name, p in model.named_parameters() if not name.startswith("blocks."))
    return {"probabilities": predict(model, tuple(x[test] for x in inputs)), "choice": {"depth": depth},
            "n_states_used": depth + 1, "head_parameters": new, "part_parameters": model.part_parameters(),
            "loss": history}


def save_fold_model(model: FusionModel, path: pathlib.Path, depth: int, tune: int, n_classes: int) -> None:
    """The trained parts (tuned block copies included) and how to rebuild them; written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": CHECKPOINT_FORMAT, "config": dataclasses.asdict(model.config), "depth": depth,
               "tune": tune, "n_classes": n_classes, "state_dict": model.state_dict()}
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_fold_model(path: pathlib.Path, encoder) -> tuple[FusionModel, dict]:
    """(model in eval mode, its depth/tune/classes) from `save_fold_model`'s file; `encoder` is the
    pretrained encoder the run used (its sizes shape the model)."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises a different error type for each way a file can be broken
        saved = None
    if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a fusion checkpoint ({CHECKPOINT_FORMAT})")
    model = FusionModel(FusionConfig(**saved["config"]), encoder, saved["depth"] - saved["tune"], saved["tune"],
                        saved["n_classes"])
    model.load_state_dict(saved["state_dict"])
    return model.eval(), {k: saved[k] for k in ("depth", "tune", "n_classes")}
