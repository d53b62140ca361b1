"""A trained fusion-run model as the device runs it: one module from log-mel to logits.

    log_mel [B, n_mels, F] -> Whisper stem + positions -> frozen blocks        (the pretrained cut)
                           -> FusionModel: tuned blocks, LayerNorm, [acoustic cross-attention],
                              GAP, linear head                                 (the trained parts)
                           -> logits [B, n_classes]

Training keeps the frozen blocks' output in memory and feeds it to `FusionModel`; here both halves
are one graph, so the file the runtime loads needs nothing but the window's log-mel (the model
contract). Only GAP models stand alone: SAP pools over the VAD's speech segments, a second input
the contract does not have.

GAP averages the frames over audio, as in training, where each clip's end padding was left out:
the runtime zero-pads a window that holds less audio than the model's window (a short speech
segment of long audio, a file shorter than half a second, every window of a fixed-frame file),
and zero samples give the window's floor value (its minimum) in every band. A frame with no band
above that floor is padding, or digital silence, which carries no emotion either.
"""
from __future__ import annotations

import pathlib

import torch
from torch import nn

from edge_ser.config import FRAMES_PER_SECOND

from .acoustic import STRIDE
from .head import load_fold_model
from .model import FusionModel
from .segment_pool import NO_SEGMENT

MAX_WINDOW_SECONDS = 10  # the longest window a standalone model takes (the runtime's are 2-3 s)
FLOOR_MARGIN = 1e-4  # above the floor by more than float rounding: Whisper's values span about 2.5


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
        # Whisper's table covers 30 s; the device never feeds a window that long, and the rows
        # would be a fifth of a tiny.en cut's INT8 file (and of its memory) for nothing.
        frames = min(len(stem.positional_embedding), MAX_WINDOW_SECONDS * FRAMES_PER_SECOND // STRIDE)
        self.register_buffer("positional_embedding", stem.positional_embedding[:frames].clone())
        self.frozen = stem.blocks
        self.model = model

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
        segments = torch.full(frames.shape[:2], NO_SEGMENT, dtype=torch.int64)
        return self.model(log_mel, frames, audio_frames(log_mel), segments)


def audio_frames(log_mel: torch.Tensor) -> torch.Tensor:
    """log_mel [B, n_mels, F] -> bool [B, ceil(F / 2)]: encoder frames whose two mel frames are not
    both at the window's floor in every band (see the module docstring)."""
    floor = log_mel.amin(dim=(1, 2), keepdim=True)
    above = (log_mel > floor + FLOOR_MARGIN).any(dim=1)  # [B, F]
    # Even and odd mel frames, the odd ones padded by one: ceil(F / 2) pairs. (max_pool1d with
    # ceil_mode does the same, but the exporter can only follow it by fixing F.)
    odd = nn.functional.pad(above.to(log_mel.dtype), (0, 1))[:, 1::STRIDE] > 0
    return above[:, 0::STRIDE] | odd


def load_standalone(checkpoint: pathlib.Path, encoder) -> tuple[LogMelClassifier, dict]:
    """A fusion run's fold checkpoint and the pretrained encoder it was trained on -> the
    standalone model (eval mode) and the checkpoint's depth / tune / classes."""
    model, saved = load_fold_model(checkpoint, encoder)
    return LogMelClassifier(encoder, model, saved["depth"] - saved["tune"]).eval(), saved
