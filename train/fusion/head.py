"""The fusion model as a head of the encoder runs (`python -m train.encoders run --head fusion`):
one fold's model built, trained on its training clips and scored on its test clips."""
from __future__ import annotations

import dataclasses

import numpy as np

from .fit import FusionSettings, fit, predict
from .inputs import EncodedWindows
from .model import MODELS, FusionModel


def fusion_config(name: str, direction: str, combine: str):
    """A named model of MODELS with the run's cross-attention direction and segment combining."""
    if name not in MODELS:
        raise ValueError(f"--fusion {name}: use one of {', '.join(MODELS)}")
    return dataclasses.replace(MODELS[name], direction=direction, combine=combine)


def fit_fold(windows: EncodedWindows, config, depth: int, tune: int, targets: np.ndarray, train: np.ndarray,
             test: np.ndarray, n_classes: int, seed: int, settings: FusionSettings = FusionSettings()) -> dict:
    """The fold's model fitted on clips `train`; its probabilities on clips `test` and its sizes."""
    import torch

    torch.manual_seed(seed)
    model = FusionModel(config, windows.encoder, depth - tune, tune, n_classes)
    frames = windows.upto(depth - tune)
    inputs = (windows.mel, frames, windows.valid, windows.segments)
    history = fit(model, tuple(x[train] for x in inputs), targets[train], settings, seed)
    parts = model.part_parameters()
    new = sum(p.numel() for name, p in model.named_parameters() if not name.startswith("blocks."))
    return {"probabilities": predict(model, tuple(x[test] for x in inputs)), "choice": {"depth": depth},
            "n_states_used": depth + 1, "head_parameters": new, "part_parameters": parts, "loss": history}
