"""Pooling frame features into one utterance vector, for segmental average pooling (SAP).

SAP = [global average over all frames ; average over the frames inside speech segments], so a
classifier sees both the whole clip and its voiced part. Segments come from
`edge_ser.vad.speech_segments` (seconds); frame t of a `frame_rate` Hz sequence covers
[t / frame_rate, (t + 1) / frame_rate) and belongs to a segment if its start lies inside it.
"""
from __future__ import annotations

import numpy as np


def _check(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"features must be [T, D] with T >= 1, got shape {features.shape}")
    return features


def global_average_pool(features: np.ndarray) -> np.ndarray:
    """features [T, D] -> mean over the T frames, [D]."""
    return _check(features).mean(axis=0)


def segment_mask(n_frames: int, segments, frame_rate: float) -> np.ndarray:
    """bool [n_frames]: frames whose start time (t / frame_rate s) lies in some [start_s, end_s)."""
    if frame_rate <= 0:
        raise ValueError(f"frame_rate must be positive, got {frame_rate}")
    starts = np.arange(n_frames) / frame_rate
    mask = np.zeros(n_frames, dtype=bool)
    for start_s, end_s in segments:
        mask |= (starts >= start_s) & (starts < end_s)
    return mask


def segment_pool(features: np.ndarray, segments, frame_rate: float) -> np.ndarray:
    """features [T, D], segments [(start_s, end_s)], frame_rate (frames per second) -> [D].

    Mean over the frames inside the speech segments; the global mean when no frame is inside
    any segment (no segments, or segments past the end)."""
    features = _check(features)
    mask = segment_mask(features.shape[0], segments, frame_rate)
    return features[mask].mean(axis=0) if mask.any() else features.mean(axis=0)


def sap_pool(features: np.ndarray, segments, frame_rate: float) -> np.ndarray:
    """features [T, D] -> [2D]: global_average_pool then segment_pool, concatenated."""
    pooled = global_average_pool(features), segment_pool(features, segments, frame_rate)
    return np.concatenate(pooled)
