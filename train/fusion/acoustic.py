"""The acoustic branch: a light 1-D conv stack over the window's log-mel (the same runtime
features the pretrained encoder reads), its frames brought to the encoder's frame rate by one
stride-2 convolution, as Whisper's own stem does (100 -> 50 frames per second)."""
from __future__ import annotations

import torch
from torch import nn

STRIDE = 2  # the encoder's conv stem halves the frame rate; so does this branch


def conv_unit(channels_in: int, channels_out: int, stride: int = 1) -> nn.Sequential:
    """Conv1d (kernel 3, same padding as Whisper's stem) + BatchNorm + GELU."""
    return nn.Sequential(nn.Conv1d(channels_in, channels_out, 3, stride=stride, padding=1),
                         nn.BatchNorm1d(channels_out), nn.GELU())


class AcousticBranch(nn.Module):
    """Log-mel [B, n_mels, F] -> frames [B, ceil(F / 2), dim]."""

    def __init__(self, n_mels: int, dim: int, width: int = 128, layers: int = 3):
        super().__init__()
        if layers < 2:
            raise ValueError(f"the acoustic branch needs at least 2 conv layers (one strided), got {layers}")
        units = [conv_unit(n_mels, width), conv_unit(width, width, STRIDE)]
        units += [conv_unit(width, width) for _ in range(layers - 2)]
        self.convs = nn.Sequential(*units)
        self.project = nn.Linear(width, dim)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.project(self.convs(mel).transpose(1, 2))
