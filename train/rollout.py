"""Attention rollout (Abnar & Zuidema 2020) for timm ViTs, mapped back onto the spectrogram.

Per layer: fuse heads (mean, or max/min), add the residual as 0.5*A + 0.5*I, row-normalise;
multiply the layers together (first layer rightmost); the CLS token's row over the patch tokens
is each patch's importance.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

HEAD_FUSIONS = ("mean", "max", "min")


def fuse_heads(attention: torch.Tensor, head_fusion: str = "mean") -> torch.Tensor:
    """[B, heads, N, N] -> [B, N, N]."""
    if head_fusion == "mean":
        return attention.mean(dim=1)
    if head_fusion == "max":
        return attention.amax(dim=1)
    if head_fusion == "min":
        return attention.amin(dim=1)
    raise ValueError(f"unknown head fusion {head_fusion!r}: use one of {', '.join(HEAD_FUSIONS)}")


def rollout(attentions: list[torch.Tensor], head_fusion: str = "mean") -> torch.Tensor:
    """Per-layer attention [B, heads, N, N] (first layer first) -> rolled-out attention [B, N, N]."""
    joint = None
    for attention in attentions:
        fused = fuse_heads(attention, head_fusion)
        eye = torch.eye(fused.shape[-1], dtype=fused.dtype, device=fused.device)
        layer = 0.5 * fused + 0.5 * eye
        layer = layer / layer.sum(dim=-1, keepdim=True)
        joint = layer if joint is None else layer @ joint
    return joint


def cls_importance(joint: torch.Tensor, n_prefix: int = 1) -> torch.Tensor:
    """Rolled-out attention [B, N, N] -> the CLS row over the patch tokens [B, N - n_prefix]."""
    return joint[:, 0, n_prefix:]


@contextlib.contextmanager
def recorded_attention(vit: nn.Module):
    """Within the block, every forward of `vit` appends each layer's attention [B, heads, N, N]
    to the yielded list. Fused attention is switched off meanwhile (it never forms the weights)."""
    attentions, hooks, fused = [], [], []
    for block in vit.blocks:
        fused.append(block.attn.fused_attn)
        block.attn.fused_attn = False
        hooks.append(block.attn.attn_drop.register_forward_hook(lambda m, i, out: attentions.append(out.detach())))
    try:
        yield attentions
    finally:
        for block, was_fused, hook in zip(vit.blocks, fused, hooks):
            block.attn.fused_attn = was_fused
            hook.remove()


@torch.no_grad()
def patch_importance(model: nn.Module, features: torch.Tensor, head_fusion: str = "mean",
                     batch_size: int = 64) -> torch.Tensor:
    """Classifier with a ViT backbone, log-mel [B, n_mels, frames] -> importance [B, grid_h, grid_w]."""
    vit = model.backbone
    was_training = model.training
    model.eval()
    maps = []
    for start in range(0, len(features), batch_size):
        with recorded_attention(vit) as attentions:
            model(features[start : start + batch_size])
        maps.append(cls_importance(rollout(attentions, head_fusion), vit.num_prefix_tokens))
    model.train(was_training)
    return torch.cat(maps).view(len(features), *vit.patch_embed.grid_size)


def to_spectrogram(importance: torch.Tensor, patch: tuple[int, int], shape: tuple[int, int]) -> torch.Tensor:
    """Patch importance [B, gh, gw] -> per-bin map [B, n_mels, frames] (uncovered frames get 0)."""
    full = importance.repeat_interleave(patch[0], dim=1).repeat_interleave(patch[1], dim=2)
    out = torch.zeros(importance.shape[0], *shape, dtype=importance.dtype)
    out[:, : full.shape[1], : full.shape[2]] = full[:, : shape[0], : shape[1]]
    return out
