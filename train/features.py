"""Training features: exactly the runtime's `edge_ser.features.log_mel`, on fixed-length audio,
cached on disk under a key made of the feature configuration, the clip length and the audio bytes.
"""
from __future__ import annotations

import hashlib
import os
import pathlib

import numpy as np

from edge_ser.config import FeatureConfig
from edge_ser.features import log_mel

from .data import Corpus, read_audio

# The default cache of every command's log-mel features (a run's --cache replaces it).
FEATURE_CACHE = pathlib.Path(__file__).resolve().parents[1] / ".cache" / "features"
CACHE_VERSION = "1"  # bump when the fixed-length rule below changes


def cache_dir(cache: str | None) -> pathlib.Path:
    """The feature cache folder a run names (its `cache` field), else FEATURE_CACHE."""
    return pathlib.Path(cache) if cache else FEATURE_CACHE


def crop_start(length: int, n_samples: int) -> int:
    """First sample of the window `fix_length` keeps of `length` samples (0 when it pads)."""
    return max(0, length - n_samples) // 2


def fix_length(audio: np.ndarray, n_samples: int) -> np.ndarray:
    """[samples] -> [n_samples]: centre crop when longer, zero-pad at the end when shorter."""
    if len(audio) >= n_samples:
        start = crop_start(len(audio), n_samples)
        return audio[start : start + n_samples]
    return np.pad(audio, (0, n_samples - len(audio)))


def clip_log_mel(audio: np.ndarray, config: FeatureConfig, seconds: float) -> np.ndarray:
    """Float32 [samples] at 16 kHz -> log-mel [n_mels, frames] of the clip fixed to `seconds`."""
    return log_mel(fix_length(audio, config.n_samples(seconds)), config)


def cache_key(path: pathlib.Path, config: FeatureConfig, seconds: float) -> str:
    """Hash of the file's bytes, the feature configuration and the clip length."""
    digest = hashlib.sha256(pathlib.Path(path).read_bytes())
    digest.update(f"{config.key()}|{seconds}|{CACHE_VERSION}".encode())
    return digest.hexdigest()[:24]


def cached_log_mel(path: pathlib.Path, config: FeatureConfig, seconds: float,
                   cache_dir: pathlib.Path | None) -> np.ndarray:
    """Log-mel [n_mels, frames] of one file, read from / written to `cache_dir` when given."""
    if cache_dir is None:
        return clip_log_mel(read_audio(path), config, seconds)
    cache_file = pathlib.Path(cache_dir) / f"{cache_key(path, config, seconds)}.npy"
    if cache_file.exists():
        return np.load(cache_file)
    features = clip_log_mel(read_audio(path), config, seconds)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(f".{os.getpid()}.tmp.npy")  # own name: runs may share a cache
    np.save(tmp, features)
    tmp.replace(cache_file)  # atomic: a killed run never leaves a half-written cache entry
    return features


def corpus_features(corpus: Corpus, config: FeatureConfig, seconds: float,
                    cache_dir: pathlib.Path | None, progress: bool = False) -> np.ndarray:
    """All clips' log-mel stacked: [n_clips, n_mels, frames] float32."""
    clips = corpus.clips
    if progress:
        from tqdm import tqdm

        clips = tqdm(clips, desc=f"features {corpus.name}", unit="clip", leave=False)
    return np.stack([cached_log_mel(c.path, config, seconds, cache_dir) for c in clips])


def band_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and std (floored at 1e-3) over all clips and frames of [N, n_mels, frames];
    each [1, n_mels, 1], so they broadcast over clips."""
    return features.mean(axis=(0, 2), keepdims=True), np.maximum(features.std(axis=(0, 2), keepdims=True), 1e-3)


def speaker_normalise(features: np.ndarray, speakers: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
    """[N, n_mels, frames] with each speaker's clips z-scored per mel band with the statistics of
    that speaker's own clips and frames: all of them, or only those where `reference` [N] (bool)
    is set, e.g. the neutral ones. Transductive: a test speaker's statistics come from its own
    clips (and, with `reference`, their labels), so results are reported apart."""
    out = np.empty_like(features)
    for speaker in np.unique(speakers):
        own = speakers == speaker
        source = own if reference is None else own & reference
        if not source.any():
            raise ValueError(f"speaker {speaker} has no reference clips to normalise with")
        mean, std = band_stats(features[source])
        out[own] = (features[own] - mean) / std
    return out


def clip_speech(path: pathlib.Path, seconds: float) -> np.ndarray:
    """`window_speech` of the file at `path`."""
    return window_speech(read_audio(path), seconds)


def window_speech(audio: np.ndarray, seconds: float) -> np.ndarray:
    """bool [frames of a `seconds` clip]: the runtime's VAD over the whole recording, cut to the
    window `clip_log_mel` keeps (centre crop; frames of end padding are pauses). Over the whole
    recording, as the runtime runs it: the VAD's noise floor starts at the first frame it sees, so
    a window that opens mid-sentence would begin as "pause"."""
    from edge_ser.vad import VAD_CONFIG, speech_frames

    speech = speech_frames(log_mel(audio, VAD_CONFIG))
    n_samples = VAD_CONFIG.n_samples(seconds)
    start = round(crop_start(len(audio), n_samples) / VAD_CONFIG.hop_length)
    window = np.zeros(VAD_CONFIG.n_frames(n_samples), dtype=bool)
    piece = speech[start : start + len(window)]
    window[: len(piece)] = piece
    return window


def corpus_speech(corpus: Corpus, seconds: float) -> np.ndarray:
    """`clip_speech` of every clip: bool [n_clips, frames]."""
    return np.stack([clip_speech(c.path, seconds) for c in corpus.clips])
