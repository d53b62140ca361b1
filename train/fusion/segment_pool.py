"""Segmental average pooling (SAP; Hyeon, Oh and Choi, 2024): frame features averaged over each
speech segment the runtime's VAD finds in the window, the segments combined (mean or attention),
next to global average pooling (GAP) over the window's real frames.

Segments arrive as ids per frame, [B, T] int64: k for the k-th speech segment of the window, -1
for pauses and padding. A window with no segment, or with a single speech frame, has nothing to
pool per segment: its SAP falls back to its GAP.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

POOLINGS = ("gap", "sap", "gap+sap")
COMBINES = ("mean", "attention")
NO_SEGMENT = -1
# Segment slots per window: fixed, so the pooled graph has static shapes for export. With the
# VAD's 0.4-s bridging of gaps a 3-s window holds at most 7 segments; later ones share the last slot.
MAX_SEGMENTS = 16


def segment_ids(speech: np.ndarray, stride: int = 1) -> np.ndarray:
    """bool speech decisions [F] (10 ms frames) -> segment id per output frame [ceil(F / stride)]:
    runs of speech numbered 0, 1, ... in time order, NO_SEGMENT elsewhere. An output frame covers
    `stride` input frames and is speech if any of them is (the encoder's conv stem sees them all)."""
    speech = np.asarray(speech, dtype=bool)
    n_out = -(-len(speech) // stride)
    padded = np.zeros(n_out * stride, dtype=bool)
    padded[: len(speech)] = speech
    frames = padded.reshape(n_out, stride).any(axis=1)
    starts = frames & ~np.concatenate([[False], frames[:-1]])
    ids = np.minimum(np.cumsum(starts) - 1, MAX_SEGMENTS - 1)
    return np.where(frames, ids, NO_SEGMENT).astype(np.int64)


def global_average(frames: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over the real frames: frames [B, T, D], valid bool [B, T] -> [B, D]."""
    weights = valid.to(frames.dtype).unsqueeze(-1)
    return (frames * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


def segment_means(frames: torch.Tensor, ids: torch.Tensor,
                  n_segments: int = MAX_SEGMENTS) -> tuple[torch.Tensor, torch.Tensor]:
    """Each segment's mean frame [B, S, D] and its frame count [B, S], for S = `n_segments` slots
    (slots no frame has are empty: count 0, mean 0)."""
    slots = torch.arange(n_segments, device=ids.device)
    member = (ids.unsqueeze(1) == slots[None, :, None]).to(frames.dtype)  # [B, S, T]
    counts = member.sum(dim=2)
    return member @ frames / counts.clamp(min=1.0).unsqueeze(-1), counts


class SegmentPooling(nn.Module):
    """[B, T, D] frames -> [B, D] (gap or sap) or [B, 2 D] (gap+sap: GAP then SAP)."""

    def __init__(self, dim: int, pooling: str = "gap+sap", combine: str = "mean"):
        super().__init__()
        if pooling not in POOLINGS or combine not in COMBINES:
            raise ValueError(f"pooling {pooling!r} / combine {combine!r}: use one of {POOLINGS} / {COMBINES}")
        self.pooling, self.combine = pooling, combine
        self.score = nn.Linear(dim, 1) if combine == "attention" and pooling != "gap" else None
        self.out_dim = dim * (2 if pooling == "gap+sap" else 1)

    def forward(self, frames: torch.Tensor, valid: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        gap = global_average(frames, valid)
        if self.pooling == "gap":
            return gap
        sap = self.segment_average(frames, ids, gap)
        return sap if self.pooling == "sap" else torch.cat([gap, sap], dim=1)

    def segment_average(self, frames: torch.Tensor, ids: torch.Tensor, gap: torch.Tensor) -> torch.Tensor:
        """SAP [B, D]; GAP for windows with no segment or a single speech frame."""
        means, counts = segment_means(frames, ids)
        present = counts > 0
        if self.score is None:
            weights = present.to(frames.dtype)
        else:  # attention over the window's segments only
            scores = self.score(means).squeeze(-1).masked_fill(~present, float("-inf"))
            weights = torch.softmax(scores.masked_fill(~present.any(1, keepdim=True), 0.0), dim=1)
        pooled = (weights.unsqueeze(-1) * means).sum(dim=1) / weights.sum(dim=1, keepdim=True).clamp(min=1e-9)
        usable = (counts.sum(dim=1) > 1).unsqueeze(-1)
        return torch.where(usable, pooled, gap)
