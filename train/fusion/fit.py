"""Training and scoring a fusion model on a fold's clips: shuffled mini-batches, cross-entropy,
a fixed number of epochs (nothing is chosen on held-out clips), the pretrained blocks at a lower
learning rate than the new parts."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class FusionSettings:
    """Fixed before any run (the fine-tuned baseline's, for a like-for-like comparison)."""

    epochs: int = 12
    batch_size: int = 16
    lr_blocks: float = 5e-5  # the tuned pretrained blocks
    lr_new: float = 1e-3  # acoustic branch, fusion, pooling, head
    weight_decay: float = 1e-2


def optimiser(model: nn.Module, settings: FusionSettings) -> torch.optim.Optimizer:
    pretrained = [p for name, p in model.named_parameters() if name.startswith("blocks.")]
    new = [p for name, p in model.named_parameters() if not name.startswith("blocks.")]
    return torch.optim.AdamW([{"params": pretrained, "lr": settings.lr_blocks},
                              {"params": new, "lr": settings.lr_new}], weight_decay=settings.weight_decay)


def fit(model: nn.Module, inputs: tuple[torch.Tensor, ...], y: np.ndarray, settings: FusionSettings,
        seed: int) -> list[float]:
    """Train `model` in place on inputs (each [N, ...], the model's arguments) and labels [N];
    returns the mean loss of each epoch, and leaves the model in eval mode."""
    targets = torch.from_numpy(np.asarray(y, dtype=np.int64))
    generator = torch.Generator().manual_seed(seed)
    opt, history = optimiser(model, settings), []
    for _ in range(settings.epochs):
        model.train()
        losses = []
        for batch in torch.randperm(len(targets), generator=generator).split(settings.batch_size):
            loss = nn.functional.cross_entropy(model(*(x[batch] for x in inputs)), targets[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        history.append(float(np.mean(losses)))
    model.eval()
    return history


@torch.no_grad()
def predict(model: nn.Module, inputs: tuple[torch.Tensor, ...], batch_size: int = 64) -> np.ndarray:
    """Class probabilities [N, n_classes] (eval mode)."""
    model.eval()
    n = len(inputs[0])
    return torch.cat([torch.softmax(model(*(x[i : i + batch_size] for x in inputs)), dim=1)
                      for i in range(0, n, batch_size)]).numpy()
