"""SAMSG on the pretrained transformer (after Kim and Lee, 2025): once the fusion model has trained
(phase 1), attention rollout over the Whisper encoder's self-attention (frozen blocks and tuned
ones; its tokens are time frames) finds the frames the model relies on most; phase 2 continues
training on the originals plus a copy of each clip with the mel frames under its top-k tokens
masked. The ablation: random frames of the same area ("random"), or the originals again ("none").

Whisper has no class token: a token's importance is the mean, over the window's real frames, of
the rolled-out attention they pay to it (the pooled embedding averages the frames).
"""
from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import torch

from ..rollout import rollout
from .acoustic import STRIDE
from .fit import FusionSettings, fit
from .inputs import frozen_frames

VARIANTS = ("none", "random", "samsg")


@dataclasses.dataclass(frozen=True)
class MaskingSettings:
    """Fixed before any run."""

    ratio: float = 0.25  # share of the window's real tokens masked (the DeiT ablation's ratio)
    epochs: int = 4  # phase 2, passes over originals + copies
    lr_factor: float = 0.3  # phase 2's learning rates, relative to phase 1's
    head_fusion: str = "mean"


@contextlib.contextmanager
def recorded_attention(blocks):
    """Within the block, each forward of the Whisper `blocks` appends its attention weights
    [B, heads, T, T] to the yielded list, in the order the blocks run."""
    attentions: list[torch.Tensor] = []
    for block in blocks:
        block.attn.recorded = attentions
    try:
        yield attentions
    finally:
        for block in blocks:
            block.attn.recorded = None


@torch.no_grad()
def token_importance(encoder, model, mel: torch.Tensor, first_tuned: int, valid: torch.Tensor,
                     head_fusion: str = "mean", batch_size: int = 32) -> torch.Tensor:
    """Rolled-out importance of each encoder token [N, T] (0 on padding) through the frozen blocks
    and the model's tuned blocks, for log-mel [N, n_mels, F]."""
    out = []
    for start in range(0, len(mel), batch_size):
        part, real = mel[start : start + batch_size], valid[start : start + batch_size]
        with recorded_attention(list(encoder.blocks[:first_tuned]) + list(model.blocks)) as attentions:
            model.forward_encoder(encoder.hidden_states(part, upto=first_tuned)[-1])
        joint = rollout(attentions, head_fusion)  # [B, T, T]
        weights = real.to(joint.dtype).unsqueeze(-1)
        out.append((joint * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0) * real)
    return torch.cat(out)


def top_tokens(scores: torch.Tensor, valid: torch.Tensor, ratio: float) -> torch.Tensor:
    """bool [N, T]: the round(ratio * real tokens) real tokens of highest score in each window."""
    k = torch.round(ratio * valid.sum(dim=1)).long()
    ranked = scores.masked_fill(~valid, float("-inf")).argsort(dim=1, descending=True)
    ranks = torch.empty_like(ranked)
    ranks.scatter_(1, ranked, torch.arange(scores.shape[1]).expand_as(ranked).contiguous())
    return (ranks < k[:, None]) & valid


def masked_mel(mel: torch.Tensor, tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Log-mel [N, n_mels, F] with the frames under masked tokens [N, T] set to the mean of each
    clip's real frames (valid [N, T]; so the hole carries no level cue, whatever the clip's
    length); token t covers mel frames STRIDE * t ... STRIDE * t + 1."""
    frames = tokens.repeat_interleave(STRIDE, dim=1)[:, : mel.shape[2]]
    real = valid.repeat_interleave(STRIDE, dim=1)[:, None, : mel.shape[2]].to(mel.dtype)
    fill = (mel * real).sum(dim=(1, 2), keepdim=True) / (real.sum(dim=(1, 2), keepdim=True) * mel.shape[1]).clamp(min=1)
    return torch.where(frames[:, None, :], fill.expand_as(mel), mel)


def variant_tokens(variant: str, importance: torch.Tensor, valid: torch.Tensor, ratio: float,
                   seed: int) -> torch.Tensor | None:
    """The tokens masked in each training clip's copy (None for "none": the originals again)."""
    if variant == "none":
        return None
    if variant == "random":
        generator = torch.Generator().manual_seed(seed)
        return top_tokens(torch.rand(valid.shape, generator=generator), valid, ratio)
    if variant == "samsg":
        return top_tokens(importance, valid, ratio)
    raise ValueError(f"masking {variant!r}: use one of {', '.join(VARIANTS)}")


def continue_with_masks(model, encoder, inputs: tuple[torch.Tensor, ...], first_tuned: int, y: np.ndarray,
                        variant: str, settings: MaskingSettings, phase1: FusionSettings, seed: int) -> dict:
    """Phase 2 in place on the training clips' inputs (mel, frames, valid, segments): originals
    plus one copy each, as `variant` makes them. Returns what the masks covered and the losses."""
    mel, frames, valid, segments = inputs
    importance = token_importance(encoder, model, mel, first_tuned, valid, settings.head_fusion)
    tokens = variant_tokens(variant, importance, valid, settings.ratio, seed)
    copy_mel = mel if tokens is None else masked_mel(mel, tokens, valid)
    copies = frames if tokens is None else frozen_frames(encoder, copy_mel, first_tuned)
    both = (torch.cat([mel, copy_mel]), torch.cat([frames, copies]), torch.cat([valid, valid]),
            torch.cat([segments, segments]))
    lr = settings.lr_factor
    phase2 = dataclasses.replace(phase1, epochs=settings.epochs, lr_blocks=lr * phase1.lr_blocks,
                                 lr_new=lr * phase1.lr_new)
    # Seeded here: phase 2's dropout draws must not depend on whether phase 1 ran in this process.
    torch.manual_seed(seed + 1)
    history = fit(model, both, np.concatenate([y, y]), phase2, seed)
    covered = None if tokens is None else float(((importance * tokens).sum(1) / importance.sum(1)).mean())
    return {"variant": variant, "rollout_share_masked": covered, "loss": history,
            "masked_share": None if tokens is None else float(tokens.sum() / valid.sum())}

