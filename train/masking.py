"""Patch masks on spectrograms: SAMSG's top-k most attended patches, or random patches of the
same area (the ablation). Masks are boolean [B, grid_h, grid_w], True = masked."""
from __future__ import annotations

import numpy as np
import torch

PAUSE_BELOW = 0.5  # a token column with less than this share of speech frames is a pause


def n_masked(n_patches: int, ratio: float) -> int:
    """Patches masked for a ratio in [0, 1]: round(ratio * n_patches)."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"mask ratio must be in [0, 1], got {ratio}")
    return int(round(ratio * n_patches))


def top_k_mask(importance: torch.Tensor, ratio: float) -> torch.Tensor:
    """Importance [B, gh, gw] -> mask of exactly round(ratio * gh * gw) most important patches."""
    flat = importance.flatten(1)
    mask = torch.zeros_like(flat, dtype=torch.bool)
    k = n_masked(flat.shape[1], ratio)
    if k:
        mask.scatter_(1, flat.topk(k, dim=1).indices, True)
    return mask.view_as(importance)


def random_mask(batch: int, grid: tuple[int, int], ratio: float, generator: torch.Generator) -> torch.Tensor:
    """Mask of exactly round(ratio * gh * gw) patches drawn uniformly per example [B, gh, gw]."""
    scores = torch.rand(batch, grid[0] * grid[1], generator=generator)
    return top_k_mask(scores.view(batch, *grid), ratio)


def apply_mask(features: torch.Tensor, mask: torch.Tensor, patch: tuple[int, int], fill="mean") -> torch.Tensor:
    """Log-mel [B, n_mels, frames] with masked patches set to `fill`: a number, or "mean" (each
    clip's own mean log-mel, so the hole carries no level cue). Returns a new tensor."""
    pixels = mask.repeat_interleave(patch[0], dim=1).repeat_interleave(patch[1], dim=2)
    full = torch.zeros(features.shape, dtype=torch.bool)
    h, w = min(pixels.shape[1], features.shape[1]), min(pixels.shape[2], features.shape[2])
    full[:, :h, :w] = pixels[:, :h, :w]
    if fill == "mean":
        value = features.mean(dim=(1, 2), keepdim=True).expand_as(features)
    else:
        value = torch.full_like(features, float(fill))
    return torch.where(full, value, features)


def pause_tokens(speech: np.ndarray, grid: tuple[int, int], patch_w: int) -> torch.Tensor:
    """Speech frames bool [B, frames] -> bool [B, gh, gw], True for every token of a column (patch_w
    frames; frames past the grid are ignored) with less than PAUSE_BELOW speech."""
    gh, gw = grid
    share = np.asarray(speech, dtype=np.float64)[:, : gw * patch_w].reshape(len(speech), gw, patch_w).mean(axis=2)
    return torch.from_numpy(share < PAUSE_BELOW)[:, None, :].expand(-1, gh, -1).clone()


def top_k_speech_mask(importance: torch.Tensor, pauses: torch.Tensor, ratio: float) -> torch.Tensor:
    """SAMSG's mask among speech tokens only: the top-k of `importance` [B, gh, gw] (>= 0, as
    rollout's) with every pause token ranked below every speech token, so a clip with fewer speech
    tokens than k fills up with its most attended pauses."""
    return top_k_mask(importance - pauses * (importance.amax() + 1.0), ratio)  # pauses: below 0, order kept


def rollout_share(importance: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean over clips of the share of each clip's rollout mass [B, gh, gw] under its mask."""
    return ((importance * mask).flatten(1).sum(1) / importance.flatten(1).sum(1)).mean().item()


def pause_share(mask: torch.Tensor, pauses: torch.Tensor) -> float:
    """Share of the masked tokens [B, gh, gw] that are pause tokens (0 for an empty mask)."""
    return float((mask & pauses).sum() / max(1, int(mask.sum())))
