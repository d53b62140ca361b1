"""The fusion model: a pretrained encoder's frames (the frozen blocks' output, then `tune` of its
own blocks fine-tuned) fused by cross-attention with an acoustic branch over the same window's
log-mel, pooled (GAP, SAP or both) and classified. Built from a `FusionConfig`; named settings
live in `MODELS`.

    mel [B, n_mels, F] ---------> AcousticBranch -> [B, T, D] --\
    frozen frames [B, T, D] -> tuned blocks -> LayerNorm -------> CrossFusion -> pooling -> head
"""
from __future__ import annotations

import copy
import dataclasses

import torch
from torch import nn

from .acoustic import AcousticBranch
from .cross_attention import DIRECTIONS, CrossFusion
from .segment_pool import COMBINES, POOLINGS, SegmentPooling


@dataclasses.dataclass(frozen=True)
class FusionConfig:
    """The fusion model's own settings (the encoder and its cut come from the run)."""

    acoustic: bool = True  # False: the encoder's frames alone (the SAP-on-encoder ablation)
    direction: str = "a2s"  # CrossFusion: acoustic queries the encoder (the paper's direction)
    gated: bool = False  # Flamingo-style tanh gates starting at 0 on the cross-attention's branches
    pooling: str = "gap+sap"
    combine: str = "mean"  # how SAP combines the segments
    acoustic_width: int = 128
    acoustic_layers: int = 3
    dropout: float = 0.1

    def __post_init__(self):
        if self.direction not in DIRECTIONS or self.pooling not in POOLINGS or self.combine not in COMBINES:
            raise ValueError(f"direction {self.direction!r}, pooling {self.pooling!r}, combine {self.combine!r}: use "
                             f"{'|'.join(DIRECTIONS)}, {'|'.join(POOLINGS)}, {'|'.join(COMBINES)}")


# Named settings, registered as timm registers its models: what the result tables call them.
MODELS = {
    "encoder+gap": FusionConfig(acoustic=False, pooling="gap"),
    "encoder+sap": FusionConfig(acoustic=False, pooling="sap"),
    "encoder+gap+sap": FusionConfig(acoustic=False, pooling="gap+sap"),
    "fusion+gap": FusionConfig(pooling="gap"),
    "fusion+sap": FusionConfig(pooling="sap"),
    "fusion+gap+sap": FusionConfig(pooling="gap+sap"),
    # The encoder's frames query the acoustic ones through gates that start closed: the model
    # starts as encoder+pooling and lets the acoustic branch in as far as training finds it useful.
    "gated+gap": FusionConfig(direction="s2a", gated=True, pooling="gap"),
    "gated+sap": FusionConfig(direction="s2a", gated=True, pooling="sap"),
    "gated+gap+sap": FusionConfig(direction="s2a", gated=True, pooling="gap+sap"),
}


class FusionModel(nn.Module):
    """(mel [B, n_mels, F], frozen frames [B, T, D], valid [B, T], segment ids [B, T]) -> logits."""

    def __init__(self, config: FusionConfig, encoder, first_tuned: int, tune: int, n_classes: int):
        super().__init__()
        dim, heads = encoder.config.d_model, encoder.config.n_heads
        self.config = config
        self.blocks = nn.ModuleList(copy.deepcopy(encoder.blocks[first_tuned : first_tuned + tune]))
        # The full depth ends with Whisper's own final LayerNorm; a cut one gets a fresh LayerNorm.
        full = first_tuned + tune == len(encoder.blocks)
        self.norm = copy.deepcopy(encoder.ln_post) if full else nn.LayerNorm(dim)
        self.acoustic = (AcousticBranch(encoder.config.n_mels, dim, config.acoustic_width, config.acoustic_layers)
                         if config.acoustic else None)
        self.fusion = CrossFusion(dim, heads, config.direction, config.dropout, config.gated) if config.acoustic else None
        self.pool = SegmentPooling(dim, config.pooling, config.combine)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(self.pool.out_dim, n_classes)

    def forward_encoder(self, frames: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            frames = block(frames)
        return self.norm(frames)

    def forward_features(self, mel: torch.Tensor, frames: torch.Tensor, valid: torch.Tensor,
                         segments: torch.Tensor) -> torch.Tensor:
        """The pooled window embedding [B, pool.out_dim]."""
        encoded = self.forward_encoder(frames)
        if self.acoustic is not None:
            encoded = self.fusion(self.acoustic(mel)[:, : encoded.shape[1]], encoded, valid)
        return self.pool(encoded, valid, segments)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(features))

    def forward(self, mel, frames, valid, segments) -> torch.Tensor:
        return self.forward_head(self.forward_features(mel, frames, valid, segments))

    def part_parameters(self) -> dict[str, int]:
        """Trainable parameters of each part (the frozen encoder blocks below are counted by the run)."""
        parts = {"tuned_blocks": nn.ModuleList([self.blocks, self.norm]), "acoustic": self.acoustic,
                 "fusion": self.fusion, "pooling": self.pool, "head": self.head}
        return {name: sum(p.numel() for p in part.parameters()) if part is not None else 0
                for name, part in parts.items()}
