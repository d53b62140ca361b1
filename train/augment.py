"""Training-time augmentation of log-mel batches [B, n_mels, frames] (raw, before the model's
own per-band standardisation): frequency warping, SpecAugment masks, mixup, random crops.

Frequency warping: VTLP (Jaitly & Hinton, ICML workshop 2013) in its plain form, applied to the
log-mel bands: each clip's spectral envelope is rescaled in Hz by one factor drawn per clip, which
imitates a longer or shorter vocal tract, i.e. another speaker.

SpecAugment: Park et al., Interspeech 2019 (frequency and time masking; no time warping).
Mixup: Zhang et al., ICLR 2018 (pairs of clips and their targets mixed with one Beta-drawn weight
per batch). Every draw comes from the generators passed in, so a run is reproducible.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """What `fit` does to each training batch besides the circular time shift. The defaults do
    nothing (and draw no random numbers), so runs without augmentation stay reproducible."""

    freq_masks: int = 0  # SpecAugment frequency masks per clip
    freq_mask_width: int = 8  # mel bands: each mask is 0..width bands wide
    time_masks: int = 0  # SpecAugment time masks per clip
    time_mask_width: int = 20  # frames (10 ms): each mask is 0..width frames wide
    mixup_alpha: float = 0.0  # Beta(alpha, alpha) mixing weight; 0 = no mixup
    freq_warp: float = 0.0  # max relative warp: factors uniform in [1 - w, 1 + w]; 0 = off
    band_hz: tuple[float, ...] = ()  # centre frequency of each mel band (needed by freq_warp)

    def __post_init__(self):
        for name in ("freq_masks", "freq_mask_width", "time_masks", "time_mask_width"):
            if getattr(self, name) < 0:
                raise ValueError(f"augmentation {name} must be >= 0, got {getattr(self, name)}")
        if self.mixup_alpha < 0:
            raise ValueError(f"augmentation mixup_alpha must be >= 0, got {self.mixup_alpha}")
        if not 0 <= self.freq_warp < 0.5:
            raise ValueError(f"augmentation freq_warp must be in [0, 0.5), got {self.freq_warp}")
        if self.freq_warp and len(self.band_hz) < 2:
            raise ValueError("augmentation freq_warp needs the mel bands' centre frequencies (band_hz)")

    @property
    def masks(self) -> bool:
        return self.freq_masks > 0 or self.time_masks > 0


def mask_axis(batch: torch.Tensor, axis: int, n_masks: int, max_width: int,
              generator: torch.Generator) -> torch.Tensor:
    """Per clip of `batch` [B, n_mels, frames], `n_masks` bands along `axis` (1: mel, 2: time),
    each of a width drawn uniformly from 0..max_width at a uniform start, set to the clip's mean
    log-mel. Returns a new tensor; masks may overlap."""
    size = batch.shape[axis]
    width = torch.randint(0, min(max_width, size) + 1, (len(batch), n_masks), generator=generator)
    start = (torch.rand(len(batch), n_masks, generator=generator) * (size - width + 1)).long()
    position = torch.arange(size).view(1, 1, -1)
    hidden = ((position >= start.unsqueeze(-1)) & (position < (start + width).unsqueeze(-1))).any(dim=1)  # [B, size]
    hidden = hidden.unsqueeze(2 if axis == 1 else 1)
    fill = batch.mean(dim=(1, 2), keepdim=True)  # a masked region carries no band-specific energy
    return torch.where(hidden, fill, batch)


def freq_warp(batch: torch.Tensor, max_warp: float, band_hz: tuple[float, ...],
              generator: torch.Generator) -> torch.Tensor:
    """`warp_bands` of `batch` [B, n_mels, frames] by one factor per clip drawn uniformly from
    [1 - max_warp, 1 + max_warp]."""
    factor = 1 + max_warp * (2 * torch.rand(len(batch), generator=generator, dtype=batch.dtype) - 1)
    return warp_bands(batch, factor, band_hz)


def warp_bands(batch: torch.Tensor, factor: torch.Tensor, band_hz: tuple[float, ...]) -> torch.Tensor:
    """Rescale each clip's spectral envelope in Hz: band m (centre c_m Hz) of clip b takes the
    log-mel found at c_m / factor[b] Hz, linearly interpolated between the two nearest band
    centres (content moves up in frequency for factor > 1); beyond the lowest or highest centre
    the edge band is repeated. [B, n_mels, frames], factor [B] -> new [B, n_mels, frames]."""
    centres = torch.tensor(band_hz, dtype=batch.dtype)
    source = (centres.unsqueeze(0) / factor.unsqueeze(1)).clamp(centres[0], centres[-1])  # [B, n_mels] in Hz
    upper = torch.searchsorted(centres, source).clamp(1, len(centres) - 1)
    lower = upper - 1
    weight = ((source - centres[lower]) / (centres[upper] - centres[lower])).unsqueeze(-1)
    gather = lambda index: batch.gather(1, index.unsqueeze(-1).expand_as(batch))  # noqa: E731
    return (1 - weight) * gather(lower) + weight * gather(upper)


def band_centres_hz(config) -> tuple[float, ...]:
    """Centre frequency in Hz of each mel band of `config` (an edge_ser FeatureConfig)."""
    from edge_ser.reference import mel_edges_hz

    return tuple(float(f) for f in mel_edges_hz(config)[1:-1])


def spec_augment(batch: torch.Tensor, augmentation: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """[B, n_mels, frames] with `augmentation`'s frequency masks, then its time masks."""
    if augmentation.freq_masks:
        batch = mask_axis(batch, 1, augmentation.freq_masks, augmentation.freq_mask_width, generator)
    if augmentation.time_masks:
        batch = mask_axis(batch, 2, augmentation.time_masks, augmentation.time_mask_width, generator)
    return batch


def mixup(batch: torch.Tensor, alpha: float, generator: torch.Generator,
          rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mix each clip of `batch` [B, ...] with a random partner: lam * x + (1 - lam) * x[partner].
    Returns (mixed batch, partner indices [B], lam); the loss must mix the targets the same way
    (see `mixed_loss`). lam ~ Beta(alpha, alpha) from `rng` (torch has no seeded Beta draw)."""
    lam = float(rng.beta(alpha, alpha))
    partner = torch.randperm(len(batch), generator=generator)
    return lam * batch + (1 - lam) * batch[partner], partner, lam


def mixed_loss(loss_fn, logits: torch.Tensor, targets: torch.Tensor, partner: torch.Tensor, lam: float) -> torch.Tensor:
    """Cross-entropy against the mixed soft targets lam * onehot(y) + (1 - lam) * onehot(y[partner]).
    Cross-entropy is linear in the target, so this is the two hard-target losses mixed, which
    keeps `loss_fn`'s class weights and label smoothing exactly as without mixup."""
    return lam * loss_fn(logits, targets) + (1 - lam) * loss_fn(logits, targets[partner])


def random_crop(batch: torch.Tensor, frames: int, generator: torch.Generator) -> torch.Tensor:
    """[B, n_mels, longer] -> [B, n_mels, frames]: a window at a uniformly random start per clip."""
    spare = batch.shape[-1] - frames
    if spare < 0:
        raise ValueError(f"random crop: clips have {batch.shape[-1]} frames, fewer than the window's {frames}")
    starts = torch.randint(0, spare + 1, (len(batch),), generator=generator)
    return torch.stack([x[:, int(s) : int(s) + frames] for x, s in zip(batch, starts)])

