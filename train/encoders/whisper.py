"""Whisper's audio encoder (Radford et al. 2022) as a plain torch module of ours.

Same computation as OpenAI's `AudioEncoder` and transformers' `WhisperEncoder`, with two
differences that matter on a device: the positional table is sliced to the input's length, so a
2-4 s window runs without padding to 30 s (200 mel frames -> 100 encoder frames), and attention is
written out with matmuls (no fused kernels) so that it exports to ONNX as it is.

Parameter names are OpenAI's (`blocks.N.attn.query`, `mlp.0`, `ln_post`, ...), so an OpenAI
checkpoint maps by dropping its `encoder.` prefix; `convert` maps the other formats.
"""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn
from torch.nn import functional as F

LAYER_NORM_EPS = 1e-5  # OpenAI's and transformers' LayerNorm default
FFN_RATIO = 4  # Whisper's feed-forward width is 4 x d_model for every size
CONV_STRIDE = 2  # conv2 halves the frame rate: 100 mel frames/s -> 50 encoder frames/s
MAX_TIMESCALE = 10_000  # of Whisper's sinusoidal positions


@dataclasses.dataclass(frozen=True)
class WhisperEncoderConfig:
    """Sizes of a Whisper encoder (defaults: tiny). `n_ctx` is the positional table's length, in
    encoder frames (1500 for Whisper: 30 s); inputs may be up to `2 * n_ctx` mel frames long."""

    n_mels: int = 80
    n_ctx: int = 1500
    d_model: int = 384
    n_heads: int = 6
    n_layers: int = 4

    def __post_init__(self):
        sizes = dataclasses.asdict(self)
        smallest = {name: 0 if name == "n_layers" else 1 for name in sizes}  # 0 blocks: the stem alone
        if any(not isinstance(v, int) or v < smallest[k] for k, v in sizes.items()):
            raise ValueError(f"encoder sizes must be positive integers, got {sizes}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")

    @property
    def max_mel_frames(self) -> int:
        return CONV_STRIDE * self.n_ctx


def sinusoids(length: int, channels: int) -> torch.Tensor:
    """Whisper's fixed positional table, [length, channels]: sines then cosines (OpenAI's formula)."""
    half = channels // 2
    if half < 2:
        raise ValueError(f"sinusoids need at least 4 channels, got {channels}")
    increment = math.log(MAX_TIMESCALE) / (half - 1)
    inverse = torch.exp(-increment * torch.arange(half, dtype=torch.float32))
    angles = torch.arange(length, dtype=torch.float32)[:, None] * inverse[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class SelfAttention(nn.Module):
    """Multi-head self-attention, [B, T, D] -> [B, T, D]. The key projection has no bias, as in
    Whisper (a key bias only adds a per-query constant to the scores, which softmax ignores)."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.recorded: list[torch.Tensor] | None = None  # a list: each forward appends its weights (rollout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, frames, width = x.shape
        q, k, v = (self._split_heads(proj(x)) for proj in (self.query, self.key, self.value))
        scores = q @ k.transpose(-2, -1) * (width // self.n_heads) ** -0.5  # [B, H, T, T]
        weights = scores.softmax(dim=-1)
        if self.recorded is not None:
            self.recorded.append(weights.detach())
        mixed = weights @ v  # [B, H, T, D/H]
        return self.out(mixed.transpose(1, 2).reshape(batch, frames, width))

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, D] -> [B, H, T, D/H]."""
        batch, frames, width = x.shape
        return x.reshape(batch, frames, self.n_heads, width // self.n_heads).transpose(1, 2)


class Block(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(LN(x)), then x + FFN(LN(x)); [B, T, D] -> [B, T, D]."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.attn_ln = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.attn = SelfAttention(d_model, n_heads)
        self.mlp_ln = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        hidden = FFN_RATIO * d_model
        # Exact (erf) GELU, as Whisper; indices 0 and 2 are OpenAI's parameter names.
        self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_ln(x))
        return x + self.mlp(self.mlp_ln(x))


class WhisperEncoder(nn.Module):
    """Log-mel [B, n_mels, F] (F <= 2 * n_ctx) -> hidden states [B, ceil(F / 2), d_model]."""

    def __init__(self, config: WhisperEncoderConfig = WhisperEncoderConfig()):
        super().__init__()
        self.config = config
        d = config.d_model
        self.conv1 = nn.Conv1d(config.n_mels, d, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d, d, kernel_size=3, stride=CONV_STRIDE, padding=1)
        # A buffer, not a parameter: Whisper's table is fixed; loading replaces it with the checkpoint's.
        self.register_buffer("positional_embedding", sinusoids(config.n_ctx, d))
        self.blocks = nn.ModuleList(Block(d, config.n_heads) for _ in range(config.n_layers))
        self.ln_post = nn.LayerNorm(d, eps=LAYER_NORM_EPS)

    def embed(self, mel: torch.Tensor) -> torch.Tensor:
        """Conv stem + positions: [B, n_mels, F] -> [B, T, D], T = ceil(F / 2), table sliced to T."""
        self._check_input(mel)
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        return x + self.positional_embedding[: x.shape[1]]

    def forward_features(self, mel: torch.Tensor) -> torch.Tensor:
        """The last block's output after the final LayerNorm (Whisper's encoder output), [B, T, D]."""
        x = self.embed(mel)
        for block in self.blocks:
            x = block(x)
        return self.ln_post(x)

    forward = forward_features

    def hidden_states(self, mel: torch.Tensor, upto: int | None = None) -> list[torch.Tensor]:
        """[B, T, D] states as transformers' `output_hidden_states`: index 0 after the stem and
        positions, index i after block i; the entry of the last block (index n_layers) has the
        final LayerNorm applied. With `upto=k < n_layers`, blocks after k are not computed and
        k + 1 states come back (none of them normalised)."""
        n_layers = self.config.n_layers
        upto = n_layers if upto is None else upto
        if not 0 <= upto <= n_layers:
            raise ValueError(f"upto={upto} is outside 0..{n_layers} (the encoder has {n_layers} blocks)")
        states = [self.embed(mel)]
        for block in self.blocks[:upto]:
            states.append(block(states[-1]))
        if upto == n_layers:
            states[-1] = self.ln_post(states[-1])
        return states

    def truncate(self, n_layers: int) -> WhisperEncoder:
        """A copy keeping the stem, positions, the first `n_layers` blocks and `ln_post` (whose
        weights were trained for the last block: a student fine-tunes them)."""
        if not 0 <= n_layers <= self.config.n_layers:
            raise ValueError(f"cannot keep {n_layers} of {self.config.n_layers} blocks")
        reference = self.conv1.weight
        copy = WhisperEncoder(dataclasses.replace(self.config, n_layers=n_layers))
        copy.to(device=reference.device, dtype=reference.dtype)
        kept = {k: v for k, v in self.state_dict().items() if _block_index(k) < n_layers}
        copy.load_state_dict(kept)
        return copy.train(self.training)

    def _check_input(self, mel: torch.Tensor) -> None:
        cfg = self.config
        if mel.dim() != 3 or mel.shape[1] != cfg.n_mels:
            raise ValueError(f"expected log-mel [batch, {cfg.n_mels}, frames], got {list(mel.shape)}")
        if mel.shape[2] > cfg.max_mel_frames:
            raise ValueError(f"{mel.shape[2]} mel frames is longer than the positional table allows "
                             f"({cfg.max_mel_frames} frames = {cfg.n_ctx} encoder frames): cut the input into windows")


def _block_index(key: str) -> float:
    """N for a `blocks.N.*` state-dict key, -inf for the others (kept by any truncation)."""
    parts = key.split(".")
    return int(parts[1]) if parts[0] == "blocks" else -math.inf
