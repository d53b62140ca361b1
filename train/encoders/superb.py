"""The SUPERB emotion-recognition head over a frozen encoder: a learned softmax-weighted sum of all
its hidden states, a linear projector, mean pooling over time and a linear classifier (the s3prl
recipe, Yang et al. 2021).

Weighted sum, projector and mean pooling are all linear, so their order can be swapped: the head
applied to the per-layer time means gives exactly the head applied to the frames and then pooled
(in eval mode; in training, dropout falls on the means rather than on each frame). It therefore
trains on the cached per-clip statistics (`layer_stats`), in seconds. One addition to s3prl's
recipe: each layer's means are standardised with training statistics (an affine map the projector
could absorb; it only puts the layers on one scale for the softmax weights).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from ..fitting import fit_epochs


@dataclasses.dataclass(frozen=True)
class SuperbSettings:
    """Fixed before any run; nothing here is tuned on a test fold."""

    projector_dim: int = 256
    epochs: int = 60
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-2
    dropout: float = 0.1  # on the weighted sum, before the projector


class SuperbHead(nn.Module):
    """[B, n_states, D] per-layer time means -> logits [B, n_classes]."""

    def __init__(self, n_states: int, dim: int, n_classes: int, settings: SuperbSettings):
        super().__init__()
        self.layer_logits = nn.Parameter(torch.zeros(n_states))  # uniform weights to start
        self.dropout = nn.Dropout(settings.dropout)
        self.projector = nn.Linear(dim, settings.projector_dim)
        self.classifier = nn.Linear(settings.projector_dim, n_classes)

    def layer_weights(self) -> torch.Tensor:
        return torch.softmax(self.layer_logits, dim=0)

    def forward_features(self, means: torch.Tensor) -> torch.Tensor:
        mixed = torch.einsum("l,bld->bd", self.layer_weights(), means)
        return self.projector(self.dropout(mixed))

    def forward(self, means: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(means))


def standardiser(means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer, per-dimension mean and std (floored) of training means [N, n_states, D]: layers
    differ in scale by orders of magnitude, and the softmax weights should compare content, not scale."""
    return means.mean(axis=0), np.maximum(means.std(axis=0), 1e-5)


def fit_superb(means: np.ndarray, y: np.ndarray, n_classes: int, seed: int,
               settings: SuperbSettings = SuperbSettings()) -> tuple[SuperbHead, tuple[np.ndarray, np.ndarray]]:
    """Train the head on training means [N, n_states, D] with labels y [N]. Returns the head (eval
    mode) and the standardiser to apply to test means."""
    torch.manual_seed(seed)
    centre, scale = standardiser(means)
    x = torch.from_numpy(((means - centre) / scale).astype(np.float32))
    head = SuperbHead(means.shape[1], means.shape[2], n_classes, settings)
    optimiser = torch.optim.AdamW(head.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    fit_epochs(head, x, y, optimiser, settings.epochs, settings.batch_size, seed)
    return head, (centre, scale)


@torch.no_grad()
def predict_superb(head: SuperbHead, scaler: tuple[np.ndarray, np.ndarray], means: np.ndarray) -> np.ndarray:
    """Class probabilities [N, n_classes] for means [N, n_states, D]."""
    centre, scale = scaler
    x = torch.from_numpy(((means - centre) / scale).astype(np.float32))
    return torch.softmax(head(x), dim=1).numpy()
