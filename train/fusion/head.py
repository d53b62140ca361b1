"""The fusion model as a head of the encoder runs (`python -m train.encoders run --head fusion`):
one fold's model built, trained on its training clips, scored on its test clips and saved."""
from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np
import torch

from ..fitting import predict_probabilities
from .fit import FusionSettings, fit
from .inputs import EncodedWindows
from .model import MODELS, FusionConfig, FusionModel
from .samsg import MaskingSettings, continue_with_masks

CHECKPOINT_FORMAT = "edge-ser-fusion/1"


def fusion_config(name: str, direction: str | None, combine: str) -> FusionConfig:
    """A named model of MODELS with the run's segment combining, and cross-attention direction
    when given (None: the named model's own)."""
    if name not in MODELS:
        raise ValueError(f"--fusion {name}: use one of {', '.join(MODELS)}")
    return dataclasses.replace(MODELS[name], direction=direction or MODELS[name].direction, combine=combine)


def fit_fold(windows: EncodedWindows, config: FusionConfig, depth: int, tune: int, targets: np.ndarray,
             train: np.ndarray, test: np.ndarray, n_classes: int, seed: int, *,
             settings: FusionSettings = FusionSettings(), checkpoints: pathlib.Path | None = None,
             fold: str = "fold", masking: str = "", phase1_from: pathlib.Path | None = None,
             masking_settings: MaskingSettings = MaskingSettings()) -> dict:
    """The fold's model fitted on clips `train` (phase 1; then with `masking`, phase 2 on masked
    copies, samsg.py), saved as `checkpoints/<fold>.pt` (and its phase 1 as `<fold>.phase1.pt`);
    its probabilities on clips `test` and its sizes. `phase1_from`: another run's checkpoints
    folder whose phase 1 of this fold is taken instead of training one."""
    inputs = (windows.mel, windows.upto(depth - tune), windows.valid, windows.segments)
    train_inputs = tuple(x[train] for x in inputs)
    result = {}
    if phase1_from is not None:
        source = phase1_path(phase1_from, fold)
        model, _ = load_fold_model(source, windows.encoder)
        result["phase1_from"] = source.parent.parent.name
    else:
        torch.manual_seed(seed)
        model = FusionModel(config, windows.encoder, depth - tune, tune, n_classes)
        result["loss"] = fit(model, train_inputs, targets[train], settings, seed)
    if masking:
        if checkpoints is not None:  # kept even when reused: a run that starts from this one finds it
            save_fold_model(model, checkpoints / f"{fold}.phase1.pt", depth, tune, n_classes)
        result["masking"] = continue_with_masks(model, windows.encoder, train_inputs, depth - tune, targets[train],
                                                masking, masking_settings, settings, seed)
    if checkpoints is not None:
        save_fold_model(model, checkpoints / f"{fold}.pt", depth, tune, n_classes)
    new = sum(p.numel() for name, p in model.named_parameters() if not name.startswith("blocks."))
    return {"probabilities": predict_probabilities(model, tuple(x[test] for x in inputs)), "choice": {"depth": depth},
            "n_states_used": depth + 1, "head_parameters": new, "part_parameters": model.part_parameters(),
            **result}


def phase1_path(checkpoints: pathlib.Path, fold: str) -> pathlib.Path:
    """A run's phase-1 model of `fold`: the one a masking run kept, else its only model (which is
    phase 1 only for a run without masking: a masking run's is its phase 2)."""
    kept = checkpoints / f"{fold}.phase1.pt"
    if kept.is_file():
        return kept
    config = checkpoints.parent / "config.json"
    if config.is_file() and json.loads(config.read_text())["run"].get("masking"):
        raise FileNotFoundError(f"{kept}: that masking run kept no phase 1 of fold {fold}")
    return checkpoints / f"{fold}.pt"


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
    if not pathlib.Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such fusion checkpoint")
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
