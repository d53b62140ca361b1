"""The fusion model's training settings; the loop is the heads' (`train.fitting`): shuffled
mini-batches, cross-entropy, a fixed number of epochs, the pretrained blocks at a lower learning
rate than the new parts."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from ..fitting import fit_epochs, tuned_blocks_optimiser


@dataclasses.dataclass(frozen=True)
class FusionSettings:
    """Fixed before any run (the fine-tuned baseline's, for a like-for-like comparison)."""

    epochs: int = 12
    batch_size: int = 16
    lr_blocks: float = 5e-5  # the tuned pretrained blocks
    lr_new: float = 1e-3  # acoustic branch, fusion, pooling, head
    weight_decay: float = 1e-2


def fit(model: nn.Module, inputs: tuple[torch.Tensor, ...], y: np.ndarray, settings: FusionSettings,
        seed: int) -> list[float]:
    """Train `model` in place on inputs (each [N, ...], the model's arguments) and labels [N];
    returns the mean loss of each epoch, and leaves the model in eval mode."""
    optimiser = tuned_blocks_optimiser(model, settings.lr_blocks, settings.lr_new, settings.weight_decay)
    return fit_epochs(model, inputs, y, optimiser, settings.epochs, settings.batch_size, seed)
