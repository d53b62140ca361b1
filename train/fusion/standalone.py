"""A trained fusion-run model as the device runs it: one module from log-mel to logits.

    log_mel [B, n_mels, F] -> Whisper stem + positions -> frozen blocks        (the pretrained cut)
                           -> FusionModel: tuned blocks, LayerNorm, [acoustic cross-attention],
                              GAP, linear head                                 (the trained parts)
                           -> logits [B, n_classes]

Training keeps the frozen blocks' output in memory and feeds it to `FusionModel`; here both halves
are one graph, so the file the runtime loads needs nothing but the window's log-mel (the model
contract). Only GAP models stand alone: SAP pools over the VAD's speech segments, a second input
the contract does not have. Every frame of the input counts as real audio: the runtime never pads
a window of a model whose frame axis is dynamic beyond the audio it holds (half a second at most).
"""
from __future__ import annotations

import pathlib

import torch
from torch import nn

from .head import load_fold_model
from .model import FusionModel
from .segment_pool import NO_SEGMENT


class LogMelClassifier(nn.Module):
    """log_mel [B, n_mels, F] -> logits [B, n_classes]: the encoder's stem and first
    `first_tuned` blocks (frozen in training), then the fusion-run model."""

    def __init__(self, encoder, model: FusionModel, first_tuned: int):
        super().__init__()
        if model.config.pooling != "gap":
            raise ValueError(f"pooling {model.config.pooling!r} needs the VAD's speech segments as a second input, "
                             "which a model file does not take: only 'gap' models stand alone")
        stem = encoder.truncate(first_tuned)
        self.conv1, self.conv2 = stem.conv1, stem.conv2
        self.register_buffer("positional_embedding", stem.positional_embedding.clone())
        self.frozen = stem.blocks
        self.model = model
        self.n_mels = encoder.config.n_mels
        self.max_frames = encoder.config.max_mel_frames

    def forward_frozen(self, log_mel: torch.Tensor) -> torch.Tensor:
        """The pretrained cut's output [B, T, D], T = ceil(F / 2), exactly as the run computed it."""
        x = nn.functional.gelu(self.conv1(log_mel))
        x = nn.functional.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.positional_embedding[: x.shape[1]]
        for block in self.frozen:
            x = block(x)
        return x

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        frames = self.forward_frozen(log_mel)
        valid = torch.ones(frames.shape[:2], dtype=torch.bool)
        segments = torch.full(frames.shape[:2], NO_SEGMENT, dtype=torch.int64)
        return self.model(log_mel, frames, valid, segments)


def load_standalone(checkpoint: pathlib.Path, encoder) -> tuple[LogMelClassifier, dict]:
    """A fusion run's fold checkpoint and the pretrained encoder it was trained on -> the
    standalone model (eval mode) and the checkpoint's depth / tune / classes."""
    model, saved = load_fold_model(checkpoint, encoder)
    return LogMelClassifier(encoder, model, saved["depth"] - saved["tune"]).eval(), saved
