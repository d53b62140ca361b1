"""The one training loop of the heads over encoder features and of the fusion model: shuffled
mini-batches, cross-entropy, a fixed number of epochs (no early stopping: nothing is chosen on
held-out clips); and their class probabilities."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def fit_epochs(model: nn.Module, inputs, y: np.ndarray, optimiser: torch.optim.Optimizer,
               epochs: int, batch_size: int, seed: int) -> list[float]:
    """Train `model` on inputs (a tensor [N, ...], or a tuple of them: the model's arguments) with
    labels y [N]; returns each epoch's mean loss and leaves the model in eval mode."""
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    targets = torch.from_numpy(np.asarray(y, dtype=np.int64))
    generator = torch.Generator().manual_seed(seed)
    history = []
    for _ in range(epochs):
        model.train()
        losses = []
        for batch in torch.randperm(len(targets), generator=generator).split(batch_size):
            loss = nn.functional.cross_entropy(model(*(x[batch] for x in inputs)), targets[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        history.append(float(np.mean(losses)))
    model.eval()
    return history


@torch.no_grad()
def predict_probabilities(model: nn.Module, inputs, batch_size: int = 64) -> np.ndarray:
    """Class probabilities [N, n_classes] of inputs (a tensor or a tuple, as `fit_epochs`), eval mode."""
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    model.eval()
    return torch.cat([torch.softmax(model(*(x[i : i + batch_size] for x in inputs)), dim=1)
                      for i in range(0, len(inputs[0]), batch_size)]).numpy()


def tuned_blocks_optimiser(model: nn.Module, lr_blocks: float, lr_new: float, weight_decay: float):
    """AdamW with the pretrained blocks (parameters named `blocks.*`) at `lr_blocks` and every
    other parameter (the new parts) at `lr_new`."""
    pretrained = [p for name, p in model.named_parameters() if name.startswith("blocks.")]
    new = [p for name, p in model.named_parameters() if not name.startswith("blocks.")]
    return torch.optim.AdamW([{"params": pretrained, "lr": lr_blocks}, {"params": new, "lr": lr_new}],
                             weight_decay=weight_decay)
