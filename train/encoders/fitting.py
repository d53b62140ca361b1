"""The one training loop of the heads over encoder features: shuffled mini-batches, cross-entropy,
a fixed number of epochs (no early stopping: nothing is chosen on held-out clips)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def fit_epochs(model: nn.Module, x: torch.Tensor, y: np.ndarray, optimiser: torch.optim.Optimizer,
               epochs: int, batch_size: int, seed: int) -> nn.Module:
    """Train `model` on inputs x [N, ...] with labels y [N]; returns it in eval mode."""
    targets = torch.from_numpy(y.astype(np.int64))
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(x), generator=generator).split(batch_size):
            loss = nn.functional.cross_entropy(model(x[batch]), targets[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model.eval()
