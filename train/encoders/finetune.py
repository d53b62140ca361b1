"""Fine-tuning the top of a pretrained encoder: the encoder is cut after `depth` blocks, the lower
`depth - tune` blocks stay frozen and the top `tune` blocks train together with a small head
(LayerNorm, mean + std pooling over time, linear).

The frozen part runs once per clip (its output frames are kept in memory), so an epoch costs only
the top blocks' forward and backward passes: this is what makes fine-tuning fit a 2-core machine.
"""
from __future__ import annotations

import copy
import dataclasses
import time

import numpy as np
import torch
from torch import nn

from edge_ser.config import FeatureConfig

from ..data import Corpus, read_audio
from ..features import clip_log_mel
from ..fitting import fit_epochs, tuned_blocks_optimiser


@dataclasses.dataclass(frozen=True)
class FinetuneSettings:
    """Fixed before any run; nothing here is tuned on a test fold."""

    depth: int = 3  # blocks kept (Whisper's middle layers carry more emotion than its last)
    tune: int = 1  # top blocks of those that train (at least 1)
    epochs: int = 12
    batch_size: int = 16
    lr_blocks: float = 5e-5
    lr_head: float = 1e-3
    weight_decay: float = 1e-2
    dropout: float = 0.1  # on the pooled statistics

    def __post_init__(self):
        if not 1 <= self.tune <= self.depth:
            raise ValueError(f"fine-tuning needs 1 <= tune <= depth, got tune {self.tune}, depth {self.depth}")


class FrozenFrames:
    """The frozen lower blocks' output for every clip, [N, T, D] float32, computed on first use
    for each cut (folds may keep different depths) and kept in memory."""

    def __init__(self, encoder, corpus: Corpus, config: FeatureConfig, seconds: float, progress: bool = True):
        self.encoder, self.corpus, self.config, self.seconds = encoder, corpus, config, seconds
        self.progress = progress
        self.cpu_seconds = 0.0  # the encoder's time for every cut computed so far
        self._frames: dict[int, torch.Tensor] = {}

    def upto(self, blocks: int) -> torch.Tensor:
        """Output after the first `blocks` blocks (0: the conv stem and positions)."""
        if blocks not in self._frames:
            start = time.process_time()
            self._frames[blocks] = self._compute(blocks)
            self.cpu_seconds += time.process_time() - start
        return self._frames[blocks]

    @torch.no_grad()
    def _compute(self, blocks: int) -> torch.Tensor:
        clips = self.corpus.clips
        if self.progress:
            from tqdm import tqdm

            clips = tqdm(clips, desc=f"frozen blocks {self.corpus.name}", unit="clip", mininterval=5)
        return torch.stack([self.encoder.hidden_states(self._mel(c.path), upto=blocks)[-1][0] for c in clips])

    def _mel(self, path) -> torch.Tensor:
        return torch.from_numpy(clip_log_mel(read_audio(path), self.config, self.seconds))[None]


class TunedTop(nn.Module):
    """The top blocks (copies: each fold starts from the pretrained weights) and the head."""

    def __init__(self, encoder, settings: FinetuneSettings, n_classes: int):
        super().__init__()
        first = settings.depth - settings.tune
        self.blocks = nn.ModuleList(copy.deepcopy(encoder.blocks[first : settings.depth]))
        dim = encoder.config.d_model
        # The full depth ends with Whisper's own final LayerNorm; a cut one gets a fresh LayerNorm.
        self.norm = copy.deepcopy(encoder.ln_post) if settings.depth == len(encoder.blocks) else nn.LayerNorm(dim)
        self.dropout = nn.Dropout(settings.dropout)
        self.classifier = nn.Linear(2 * dim, n_classes)

    def forward_features(self, frames: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            frames = block(frames)
        frames = self.norm(frames)
        return torch.cat([frames.mean(dim=1), frames.std(dim=1, unbiased=False)], dim=1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.forward_features(frames)))


def fit_top(encoder, frames: torch.Tensor, y: np.ndarray, n_classes: int, seed: int,
            settings: FinetuneSettings = FinetuneSettings()) -> TunedTop:
    """Train the top blocks and head on training frames [N, T, D] with labels [N]; eval mode."""
    torch.manual_seed(seed)
    model = TunedTop(encoder, settings, n_classes)
    optimiser = tuned_blocks_optimiser(model, settings.lr_blocks, settings.lr_head, settings.weight_decay)
    fit_epochs(model, frames, y, optimiser, settings.epochs, settings.batch_size, seed)
    return model
