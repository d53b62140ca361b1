"""Cross-attention between two frame sequences of one window (Deeb, Savchenko and Makarov, 2025):
the frames of one attend to the frames of the other, padded frames masked out as keys.

Directions: "a2s" acoustic frames query the encoder's (the paper's), "s2a" the reverse, "both"
each way with a learned gate mixing the two per frame and channel.

Gated (as Flamingo's cross-attention, Alayrac et al. 2022): the attention and feed-forward
branches are scaled by tanh of a learned scalar that starts at 0, so with "s2a" the fused frames
start as the encoder's own and the acoustic branch is let in only as far as training finds it useful.
"""
from __future__ import annotations

import torch
from torch import nn

DIRECTIONS = ("a2s", "s2a", "both")


class CrossAttention(nn.Module):
    """Pre-LayerNorm cross-attention block: q + attn(LN(q), LN(kv)), then + FFN; [B, T, D]."""

    def __init__(self, dim: int, heads: int, ffn_ratio: int = 2, dropout: float = 0.1, gated: bool = False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.query_norm, self.key_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.ffn = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, ffn_ratio * dim), nn.GELU(),
                                 nn.Linear(ffn_ratio * dim, dim))
        self.dropout = nn.Dropout(dropout)
        self.gates = nn.Parameter(torch.zeros(2)) if gated else None

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, key_valid: torch.Tensor) -> torch.Tensor:
        """queries [B, Tq, D] attend to keys [B, Tk, D] whose real frames are key_valid [B, Tk]."""
        attn_scale, ffn_scale = (1.0, 1.0) if self.gates is None else (torch.tanh(self.gates[0]),
                                                                          torch.tanh(self.gates[1]))
        x = queries + attn_scale * self.dropout(self.attend(self.query_norm(queries), self.key_norm(keys), key_valid))
        return x + ffn_scale * self.dropout(self.ffn(x))

    def attend(self, queries: torch.Tensor, keys: torch.Tensor, key_valid: torch.Tensor) -> torch.Tensor:
        batch, n_queries, dim = queries.shape
        q, k, v = (self._split(proj(x)) for proj, x in ((self.query, queries), (self.key, keys), (self.value, keys)))
        scores = q @ k.transpose(-2, -1) * (dim // self.heads) ** -0.5  # [B, H, Tq, Tk]
        # A window always has a real frame; a large negative (not -inf) keeps an all-padding row finite.
        scores = scores.masked_fill(~key_valid[:, None, None, :], -1e4)
        mixed = scores.softmax(dim=-1) @ v
        return self.out(mixed.transpose(1, 2).reshape(batch, n_queries, dim))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, frames, dim = x.shape
        return x.reshape(batch, frames, self.heads, dim // self.heads).transpose(1, 2)


class CrossFusion(nn.Module):
    """Acoustic [B, T, D] and encoder [B, T, D] frames of one window -> fused frames [B, T, D]."""

    def __init__(self, dim: int, heads: int, direction: str = "a2s", dropout: float = 0.1, gated: bool = False):
        super().__init__()
        if direction not in DIRECTIONS:
            raise ValueError(f"direction {direction!r}: use one of {DIRECTIONS}")
        self.direction = direction
        self.a2s = CrossAttention(dim, heads, dropout=dropout, gated=gated) if direction in ("a2s", "both") else None
        self.s2a = CrossAttention(dim, heads, dropout=dropout, gated=gated) if direction in ("s2a", "both") else None
        self.gate = nn.Linear(2 * dim, dim) if direction == "both" else None

    def forward(self, acoustic: torch.Tensor, encoded: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if self.direction == "a2s":
            return self.a2s(acoustic, encoded, valid)
        if self.direction == "s2a":
            return self.s2a(encoded, acoustic, valid)
        a2s, s2a = self.a2s(acoustic, encoded, valid), self.s2a(encoded, acoustic, valid)
        gate = torch.sigmoid(self.gate(torch.cat([a2s, s2a], dim=-1)))
        return gate * a2s + (1 - gate) * s2a
