"""Pruning: structured (whole CNN channels; DeiT attention heads and MLP channels), which
really shrinks the network, and unstructured global magnitude pruning (weights set to zero;
the dense shapes, file size at FP32 and latency stay the same) as the comparison.

Importance criteria (no data needed):
  CNN channel     |BatchNorm gamma| (network slimming, Liu et al. 2017): a channel the BN scales
                  towards zero contributes little after the ReLU.
  DeiT head       L2 norm of the head's columns of the output projection times that of its
                  value rows in qkv.
  DeiT MLP unit   L2 norm of its fc1 row times that of its fc2 column.
Fine-tuning after pruning is the caller's job (`export.distill.distill`, teacher as before).
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from train.arch import build

MIN_CHANNELS = 4  # never prune a stage below this many channels


def kept(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """Indices (ascending) of the `keep` highest scores."""
    return torch.sort(torch.topk(scores, keep).indices).values


def prune_cnn(model: nn.Module, arch: dict, keep_ratio: float) -> tuple[nn.Module, dict]:
    """Classifier(SmallCNN) -> a new one with round(keep_ratio * width) channels per stage,
    the kept channels' weights copied. Returns (model, arch)."""
    widths = [max(MIN_CHANNELS, round(keep_ratio * w)) for w in arch["widths"]]
    new_arch = {**arch, "widths": widths}
    small = build(new_arch)
    small.standardize.load_state_dict(model.standardize.state_dict())
    old_convs = [m for m in model.backbone.features if isinstance(m, nn.Sequential)]
    new_convs = [m for m in small.backbone.features if isinstance(m, nn.Sequential)]
    previous = torch.arange(1)
    for old, new, width in zip(old_convs, new_convs, widths):
        conv, bn = old[0], old[1]
        channels = kept(bn.weight.detach().abs(), width)
        new[0].weight.data = conv.weight.data[channels][:, previous].clone()
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(new[1], name).data = getattr(bn, name).data[channels].clone()
        previous = channels
    head_old, head_new = model.backbone.head[1], small.backbone.head[1]
    head_new.weight.data = head_old.weight.data[:, previous].clone()
    head_new.bias.data = head_old.bias.data.clone()
    return small.train(model.training), new_arch


def head_scores(attn: nn.Module) -> torch.Tensor:
    """[num_heads] importance of each head of a timm Attention."""
    d, n = attn.head_dim, attn.num_heads
    proj = attn.proj.weight.detach().view(attn.proj.out_features, n, d).norm(dim=(0, 2))
    value = attn.qkv.weight.detach()[2 * attn.attn_dim:].view(n, d, -1).norm(dim=(1, 2))
    return proj * value


def prune_heads(attn: nn.Module, keep: int) -> None:
    """Keep the `keep` most important heads of a timm Attention, in place."""
    heads, d = kept(head_scores(attn), keep), attn.head_dim
    rows = torch.cat([heads * d + i for i in range(d)]).sort().values  # kept channels of q (and k, v)
    qkv_rows = torch.cat([rows + part * attn.attn_dim for part in range(3)])
    qkv = nn.Linear(attn.qkv.in_features, len(qkv_rows), bias=attn.qkv.bias is not None)
    qkv.weight.data = attn.qkv.weight.data[qkv_rows].clone()
    if attn.qkv.bias is not None:
        qkv.bias.data = attn.qkv.bias.data[qkv_rows].clone()
    proj = nn.Linear(len(rows), attn.proj.out_features, bias=attn.proj.bias is not None)
    proj.weight.data = attn.proj.weight.data[:, rows].clone()
    if attn.proj.bias is not None:
        proj.bias.data = attn.proj.bias.data.clone()
    attn.qkv, attn.proj, attn.num_heads, attn.attn_dim = qkv, proj, keep, keep * d


def prune_mlp(mlp: nn.Module, keep: int) -> None:
    """Keep the `keep` most important hidden units of a timm Mlp, in place."""
    scores = mlp.fc1.weight.detach().norm(dim=1) * mlp.fc2.weight.detach().norm(dim=0)
    units = kept(scores, keep)
    fc1 = nn.Linear(mlp.fc1.in_features, keep)
    fc1.weight.data, fc1.bias.data = mlp.fc1.weight.data[units].clone(), mlp.fc1.bias.data[units].clone()
    fc2 = nn.Linear(keep, mlp.fc2.out_features)
    fc2.weight.data, fc2.bias.data = mlp.fc2.weight.data[:, units].clone(), mlp.fc2.bias.data.clone()
    mlp.fc1, mlp.fc2 = fc1, fc2


def prune_deit(model: nn.Module, arch: dict, head_ratio: float, mlp_ratio: float) -> tuple[nn.Module, dict]:
    """Classifier(DeiT) -> a copy with round(ratio * n) heads / MLP units per block (at least 1)."""
    small = copy.deepcopy(model)
    block_heads, block_mlp = [], []
    for block in small.backbone.blocks:
        n_heads = max(1, round(head_ratio * block.attn.num_heads))
        n_hidden = max(1, round(mlp_ratio * block.mlp.fc1.out_features))
        prune_heads(block.attn, n_heads)
        prune_mlp(block.mlp, n_hidden)
        block_heads.append(n_heads)
        block_mlp.append(n_hidden)
    return small, {**arch, "block_heads": block_heads, "block_mlp": block_mlp}


def structured(model: nn.Module, arch: dict, keep_ratio: float) -> tuple[nn.Module, dict]:
    """Channel (CNN) or head + MLP (DeiT) pruning keeping `keep_ratio` of each."""
    if not 0 < keep_ratio <= 1:
        raise ValueError(f"keep ratio must be in (0, 1], got {keep_ratio}")
    if arch["kind"] == "cnn":
        return prune_cnn(model, arch, keep_ratio)
    return prune_deit(model, arch, keep_ratio, keep_ratio)


def prunable_weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """(module, "weight") of every conv and linear layer: what magnitude pruning may zero."""
    return [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def magnitude(model: nn.Module, sparsity: float) -> nn.Module:
    """Zero the `sparsity` fraction of smallest-magnitude conv/linear weights over the whole
    network, in place. The masks stay attached (pruned weights stay zero while fine-tuning)
    until `finalise_magnitude`."""
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    torch_prune.global_unstructured(prunable_weights(model), pruning_method=torch_prune.L1Unstructured,
                                    amount=sparsity)
    return model


def finalise_magnitude(model: nn.Module) -> nn.Module:
    """Make magnitude pruning permanent (drop the masks, keep the zeros), in place."""
    for module, name in prunable_weights(model):
        if torch_prune.is_pruned(module):
            torch_prune.remove(module, name)
    return model


def sparsity_of(model: nn.Module) -> float:
    """Fraction of zero weights among the conv/linear weights."""
    weights = [getattr(m, n) for m, n in prunable_weights(model)]
    total = sum(w.numel() for w in weights)
    return float(sum(int((w == 0).sum()) for w in weights) / total)
