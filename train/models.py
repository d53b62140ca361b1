"""Classifiers on log-mel spectrograms [batch, n_mels, frames]: a small CNN (≤ 1 M parameters)
and DeiT (timm `VisionTransformer`, in_chans 1, the spectrogram's size, configurable patches).

Both start with `Standardize`, whose per-band mean/std (from the training speakers only) are
buffers, so an exported model takes raw `edge_ser.features.log_mel` output.
"""
from __future__ import annotations

import pathlib

import torch
from torch import nn

from ._compat import import_timm


class Standardize(nn.Module):
    """[B, n_mels, frames] -> [B, 1, n_mels, frames], each band shifted and scaled."""

    def __init__(self, n_mels: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, 1, n_mels, 1))
        self.register_buffer("std", torch.ones(1, 1, n_mels, 1))

    def fit(self, features: torch.Tensor) -> None:
        """Set the statistics from training features [N, n_mels, frames]."""
        self.mean.copy_(features.mean(dim=(0, 2)).view(1, 1, -1, 1))
        self.std.copy_(features.std(dim=(0, 2)).clamp_min(1e-3).view(1, 1, -1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.unsqueeze(1) - self.mean) / self.std


class Classifier(nn.Module):
    """Standardize, then a backbone taking [B, 1, n_mels, frames] and returning logits."""

    def __init__(self, n_mels: int, backbone: nn.Module):
        super().__init__()
        self.standardize = Standardize(n_mels)
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.standardize(x))

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled embedding [B, dim] the head classifies (timm's pre-logits)."""
        return self.backbone.forward_head(self.backbone.forward_features(self.standardize(x)), pre_logits=True)

    def logits(self, embedding: torch.Tensor) -> torch.Tensor:
        """[B, dim] -> [B, classes]: the head alone; `logits(embedding(x))` is `forward(x)`."""
        return self.backbone.head(embedding)


def _conv_block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """Conv-BN-ReLU stages, each followed by 2x2 max-pooling (the first conv has stride 2 too),
    global average pooling, dropout, linear head. Default widths: 0.39 M parameters.
    The early downsampling keeps a training step cheap (~45 M multiply-adds per 2-s clip)."""

    def __init__(self, n_classes: int, widths=(32, 64, 128, 256), dropout: float = 0.3):
        super().__init__()
        layers, c_in = [_conv_block(1, widths[0], 2), nn.MaxPool2d(2)], widths[0]
        for width in widths[1:]:
            layers += [_conv_block(c_in, width, 1), nn.MaxPool2d(2)]
            c_in = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(c_in, n_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1, n_mels, frames] -> feature map [B, channels, n_mels/32, frames/32]."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Feature map -> logits [B, classes] (or the pooled [B, channels] with `pre_logits`)."""
        pooled = x.mean(dim=(2, 3))
        return pooled if pre_logits else self.head(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


CONV_STEM_STRIDE = (16, 16)  # the token grid of 16x16 patches, so masks and rollout maps line up


def conv_stem(widths=(32, 64, 128)) -> nn.Sequential:
    """[B, 1, n_mels, frames] -> [B, widths[-1], n_mels/16, frames/16]: the SmallCNN's first stages
    (stride-2 conv + 2x2 pools). Early convolutions make ViTs far less data-hungry (Xiao et al.,
    NeurIPS 2021), which matters with ~500 training clips and no pretrained weights."""
    layers, c_in = [], 1
    for i, width in enumerate(widths):
        layers += [_conv_block(c_in, width, 2 if i == 0 else 1), nn.MaxPool2d(2)]
        c_in = width
    return nn.Sequential(*layers)


def _conv_stem_embed(**kwargs):
    """timm `embed_layer`: HybridEmbed over `conv_stem`, a 1x1 projection to the embedding."""
    from timm.layers import HybridEmbed

    return HybridEmbed(conv_stem(), **{**kwargs, "patch_size": 1})


def deit(n_classes: int, input_shape: tuple[int, int], patch: tuple[int, int] = (16, 16),
         depth: int = 4, dim: int = 192, heads: int = 3, drop_path: float = 0.1, stem: str = "patch"):
    """A DeiT-style ViT for [B, 1, n_mels, frames]; frames beyond the last whole patch are ignored.
    `stem`: "patch" (linear patch embedding, as DeiT) or "conv" (`conv_stem`, tokens on the grid
    of 16x16 patches)."""
    timm = import_timm()
    from timm.layers import PatchEmbed
    from timm.models.vision_transformer import VisionTransformer

    del timm
    if stem not in ("patch", "conv"):
        raise ValueError(f"unknown stem {stem!r}: use patch or conv")
    if stem == "conv" and tuple(patch) != CONV_STEM_STRIDE:
        raise ValueError(f"--stem conv makes 16x16 tokens: it needs --patch 16x16, got {patch[0]}x{patch[1]}")
    vit = VisionTransformer(img_size=input_shape, patch_size=patch, in_chans=1, num_classes=n_classes,
                            embed_dim=dim, depth=depth, num_heads=heads, mlp_ratio=4.0,
                            drop_path_rate=drop_path, class_token=True, global_pool="token",
                            embed_layer=_conv_stem_embed if stem == "conv" else PatchEmbed)
    patch_grid = tuple(n // p for n, p in zip(input_shape, patch))
    if tuple(vit.patch_embed.grid_size) != patch_grid:  # the pools round up where patches drop the rest
        raise ValueError(f"--stem conv: {input_shape[1]} frames give {tuple(vit.patch_embed.grid_size)} tokens, "
                         f"not the {patch_grid} grid of 16x16 patches (frames mod 16 must not be 15)")
    return vit


def build(kind: str, n_classes: int, input_shape: tuple[int, int], **deit_options) -> Classifier:
    """`cnn` or `deit` classifier for log-mel [B, n_mels, frames] of `input_shape` = (n_mels, frames)."""
    if kind == "cnn":
        backbone = SmallCNN(n_classes)
    elif kind == "deit":
        backbone = deit(n_classes, input_shape, **deit_options)
    else:
        raise ValueError(f"unknown model {kind!r}: use cnn or deit")
    return Classifier(input_shape[0], backbone)


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def read_state_dict(path: pathlib.Path) -> dict:
    """A state dict from a local checkpoint: raw, or under "model" / "state_dict"; of a train
    run's checkpoint (`runs/RUN/checkpoints/FOLD/*.pt`), the backbone's tensors."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict checkpoint")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if any(k.startswith("backbone.") for k in state):  # a train run's Classifier: its ViT alone
        state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    return state


def _source_grid(n_patches: int, grid: tuple[int, int]) -> list[int] | None:
    """The checkpoint's patch grid, which a state dict does not record: the same number of rows
    as ours (spectrogram models), else square (image models); None if neither fits."""
    if n_patches % grid[0] == 0:
        return [grid[0], n_patches // grid[0]]
    side = int(round(n_patches ** 0.5))
    return [side, side] if side * side == n_patches else None


def init_backbone_from(backbone: nn.Module, path: pathlib.Path, fresh_head: bool = False) -> list[str]:
    """Load a local checkpoint into `backbone` (a timm ViT/DeiT or a `SmallCNN`), adapting it.

    ViT: RGB patch weights are summed to one channel, position embeddings are resampled to this
    grid (see `_source_grid` for the checkpoint's). Tensors whose shape still differs (e.g. the
    classification head of another label set) are skipped; `fresh_head` leaves the head fresh even
    when its shape fits (another corpus's classes). A CNN must match everywhere but its head: a CNN
    of other widths would start mostly fresh, which is a mistake, not an initialisation.
    Returns the names of the parameters left at their fresh initialisation.
    """
    state, own = read_state_dict(path), backbone.state_dict()
    if "pos_embed" in own:
        _adapt_vit_state(backbone, state, own)
    usable = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape
              and not (fresh_head and k.startswith("head."))}
    if not usable:
        raise ValueError(f"{path}: no tensor matches this model (is it a checkpoint of the same kind of model?)")
    fresh = sorted(set(own) - set(usable))
    if isinstance(backbone, SmallCNN):  # checked before loading, so a refused model is left untouched
        body = [k for k in fresh if not k.startswith("head.")] + sorted(set(state) - set(own))
        if body:
            raise ValueError(f"{path}: a CNN of another shape ({len(body)} tensors differ, e.g. {body[0]})")
    backbone.load_state_dict(usable, strict=False)
    return fresh


def _adapt_vit_state(vit: nn.Module, state: dict, own: dict) -> None:
    """In place: a ViT checkpoint's patch weights and position embeddings made to fit `vit`."""
    from timm.layers import resample_abs_pos_embed

    weight = state.get("patch_embed.proj.weight")
    if weight is not None and weight.shape[1] != own["patch_embed.proj.weight"].shape[1]:
        state["patch_embed.proj.weight"] = weight.sum(dim=1, keepdim=True)
    pos = state.get("pos_embed")
    if pos is not None and pos.shape != own["pos_embed"].shape:
        prefix = 0 if vit.no_embed_class else vit.num_prefix_tokens
        old_grid = _source_grid(pos.shape[1] - prefix, vit.patch_embed.grid_size)
        if old_grid:
            state["pos_embed"] = resample_abs_pos_embed(pos, list(vit.patch_embed.grid_size), old_grid,
                                                        num_prefix_tokens=prefix)
