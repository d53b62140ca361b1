"""Speaker-adversarial training: a speaker classifier on the model's pooled embedding, and a
confusion loss that pushes the encoder to make that classifier's output uniform (Tzeng et al.,
ICCV 2015), so the encoder learns to hide who is speaking while the emotion head learns what is
felt. Speaker-independent tests fail on exactly that confound: ~500 clips of 9 speakers let a
model key on voices.

Why not a gradient-reversal layer (Ganin & Lempitsky 2015): reversing the speaker
cross-entropy rewards an encoder that makes the adversary confidently *wrong*, which needs the
speaker identity in the embedding; on a synthetic check it did exactly that (a linear probe's
speaker accuracy rose from chance to 100 %). The confusion target (uniform) is bounded and is
met only by removing the information.

The adversary exists only during training: it is not part of the classifier, its state dict or
any exported model.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

HIDDEN = 128  # adversary MLP width


def ramp(progress: float, weight: float) -> float:
    """DANN's schedule: the confusion weight grows from 0 to `weight` as training progress
    (0..1) goes, so the encoder is not scrambled before the adversary has learnt anything."""
    return weight * (2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0)


class SpeakerAdversary(nn.Module):
    """Embedding [B, dim] -> speaker logits [B, n_speakers]."""

    def __init__(self, dim: int, n_speakers: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, HIDDEN), nn.ReLU(inplace=True), nn.Linear(HIDDEN, n_speakers))

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.mlp(embedding)

    def loss(self, embedding: torch.Tensor, speakers: torch.Tensor, weight: float) -> torch.Tensor:
        """Both players' losses in one scalar, each reaching only its own parameters:
        the adversary's cross-entropy on the detached embedding (it learns to tell speakers),
        plus `weight` x the cross-entropy of its frozen copy's output against the uniform
        distribution (the encoder learns to make it unable to)."""
        own = nn.functional.cross_entropy(self(embedding.detach()), speakers)
        frozen = {name: p.detach() for name, p in self.named_parameters()}
        log_p = functional_call(self, frozen, (embedding,)).log_softmax(dim=1)
        return own + weight * -log_p.mean(dim=1).mean()


def speaker_ids(speakers: np.ndarray) -> torch.Tensor:
    """Speaker names [N] -> ids 0..S-1 [N] (int64), in sorted-name order."""
    _, ids = np.unique(np.asarray(speakers), return_inverse=True)
    return torch.from_numpy(ids.astype(np.int64))
