"""Log-mel and MFCC features, computed by the C extractor (`edge_ser._features`).

TEMPORARY: falls back to the numpy reference until the C extractor lands.
"""
from __future__ import annotations

import numpy as np

from . import reference
from .config import FeatureConfig
from .errors import AudioError


def _check(audio: np.ndarray) -> np.ndarray:
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise AudioError(f"audio must be mono [samples], got shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise AudioError("audio contains NaN or infinite samples")
    return audio


def log_mel(audio: np.ndarray, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """[samples] float at config.sample_rate -> log-mel [n_mels, n_frames] float32."""
    return reference.log_mel(_check(audio), config).astype(np.float32)


def mfcc(audio: np.ndarray, config: FeatureConfig = FeatureConfig(), n_mfcc: int = 20) -> np.ndarray:
    """[samples] -> MFCC [n_mfcc, n_frames] float32."""
    return reference.mfcc(_check(audio), config, n_mfcc).astype(np.float32)
