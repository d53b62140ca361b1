"""What the frozen-encoder baselines learn from: every hidden state of a pretrained encoder, pooled
over time into its mean and standard deviation, per clip.

The pooled statistics are cached on disk, one `.npz` per clip (the statistics and the CPU seconds
the encoder took for them, so a protocol's cost is known however warm the cache), under a key made of the clip's bytes,
the encoder weights' sha256, the feature configuration and the window length, so a probe or a head
over them trains in seconds and a killed run resumes where it stopped. The encoder sees exactly
what the runtime would feed it: `edge_ser.features.log_mel` of the clip fixed to the window.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import time

import numpy as np
import torch

from edge_ser.config import FeatureConfig

from ..data import Corpus, read_audio
from ..features import cache_key as log_mel_cache_key
from ..features import clip_log_mel

CACHE_VERSION = "2"  # bump when the pooling or the entry's layout changes


def pooled_layers(hidden_states: list[torch.Tensor]) -> np.ndarray:
    """Hidden states, each [1, T, D] -> float32 [n_states, 2, D]: mean and std over the T frames."""
    stacked = torch.cat(hidden_states, dim=0)  # [n_states, T, D]
    mean = stacked.mean(dim=1)
    std = stacked.std(dim=1, unbiased=False)
    return torch.stack([mean, std], dim=1).numpy().astype(np.float32)


@torch.no_grad()
def clip_layer_stats(encoder, audio: np.ndarray, config: FeatureConfig, seconds: float) -> np.ndarray:
    """Float32 [samples] at 16 kHz -> [n_layers + 1, 2, D]: every hidden state of `encoder` on the
    clip fixed to `seconds`, pooled over time."""
    mel = torch.from_numpy(clip_log_mel(audio, config, seconds))[None]
    return pooled_layers(encoder.hidden_states(mel))


def cache_key(path: pathlib.Path, weights_sha256: str, config: FeatureConfig, seconds: float) -> str:
    """The log-mel cache's key of the clip (its bytes, the feature configuration, the window) with
    the encoder's weights added."""
    blob = f"{log_mel_cache_key(path, config, seconds)}|{weights_sha256}|{CACHE_VERSION}"
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def cached_layer_stats(path: pathlib.Path, encoder, weights_sha256: str, config: FeatureConfig,
                       seconds: float, cache_dir: pathlib.Path | None) -> tuple[np.ndarray, float]:
    """`clip_layer_stats` of one file and the CPU seconds it cost, read from / written to
    `cache_dir` when given."""
    cache_file = None if cache_dir is None else \
        pathlib.Path(cache_dir) / f"{cache_key(path, weights_sha256, config, seconds)}.npz"
    if cache_file is not None and cache_file.exists():
        with np.load(cache_file) as entry:
            return entry["stats"], float(entry["cpu_seconds"])
    start = time.process_time()
    stats = clip_layer_stats(encoder, read_audio(path), config, seconds)
    cpu_seconds = time.process_time() - start
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(f".{os.getpid()}.tmp.npz")  # own name: runs may share a cache
        np.savez(tmp, stats=stats, cpu_seconds=cpu_seconds)
        tmp.replace(cache_file)  # atomic: a killed run never leaves a half-written entry
    return stats, cpu_seconds


def corpus_layer_stats(corpus: Corpus, encoder, weights_sha256: str, config: FeatureConfig, seconds: float,
                       cache_dir: pathlib.Path | None, progress: bool = True) -> tuple[np.ndarray, float]:
    """Every clip's pooled hidden states, float32 [n_clips, n_layers + 1, 2, D], and the CPU
    seconds the encoder took for all of them (when they were computed, cached or not)."""
    clips = corpus.clips
    if progress:
        from tqdm import tqdm

        clips = tqdm(clips, desc=f"encoder {corpus.name}", unit="clip", mininterval=5)
    entries = [cached_layer_stats(c.path, encoder, weights_sha256, config, seconds, cache_dir) for c in clips]
    return np.stack([stats for stats, _ in entries]), float(sum(cost for _, cost in entries))
