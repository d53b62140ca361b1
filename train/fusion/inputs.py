"""What the fusion model reads for every clip of a corpus, computed once per run: the window's
log-mel at the encoder's features, which encoder frames hold real audio (not end padding), the
speech segment of each encoder frame (the runtime's VAD), and the frozen encoder blocks' output."""
from __future__ import annotations

import time

import numpy as np
import torch

from edge_ser.config import FeatureConfig

from ..data import Corpus, read_audio
from ..features import clip_log_mel, window_speech
from .acoustic import STRIDE
from .segment_pool import segment_ids

BATCH = 32  # clips per pass of the frozen blocks


def encoder_frames(n_mel_frames: int) -> int:
    """Encoder frames of a log-mel of `n_mel_frames` frames (Whisper's stride-2 stem, padding 1)."""
    return -(-n_mel_frames // STRIDE)


def window_arrays(audio: np.ndarray, config: FeatureConfig, seconds: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One recording -> (log-mel [n_mels, F] of its window, valid bool [T], segment ids [T])."""
    mel = clip_log_mel(audio, config, seconds)
    n_frames = encoder_frames(mel.shape[1])
    real = min(len(audio), config.n_samples(seconds))
    valid = np.arange(n_frames) < encoder_frames(config.n_frames(real))
    speech = window_speech(audio, seconds)[: mel.shape[1]]
    segments = segment_ids(speech, STRIDE)[:n_frames]
    segments = np.where(valid[: len(segments)], segments, -1)
    return mel, valid, np.pad(segments, (0, n_frames - len(segments)), constant_values=-1)


class EncodedWindows:
    """Every clip's window inputs, and the frozen blocks' output frames [N, T, D] for each cut
    asked for (computed on first use, kept in memory; folds may cut at different depths)."""

    def __init__(self, encoder, corpus: Corpus, config: FeatureConfig, seconds: float, progress: bool = True):
        self.encoder = encoder
        arrays = [window_arrays(read_audio(c.path), config, seconds)
                  for c in _progress(corpus.clips, "windows", progress)]
        self.mel = torch.from_numpy(np.stack([a[0] for a in arrays]))
        self.valid = torch.from_numpy(np.stack([a[1] for a in arrays]))
        self.segments = torch.from_numpy(np.stack([a[2] for a in arrays]))
        self.progress = progress
        self.cpu_seconds = 0.0  # the frozen blocks' time for every cut computed so far
        self._frames: dict[int, torch.Tensor] = {}

    def upto(self, blocks: int) -> torch.Tensor:
        """Output after the first `blocks` blocks (0: the conv stem and positions), [N, T, D]."""
        if blocks not in self._frames:
            start = time.process_time()
            self._frames[blocks] = frozen_frames(self.encoder, self.mel, blocks, self.progress)
            self.cpu_seconds += time.process_time() - start
        return self._frames[blocks]


@torch.no_grad()
def frozen_frames(encoder, mel: torch.Tensor, blocks: int, progress: bool = False) -> torch.Tensor:
    """The encoder's hidden state after `blocks` blocks for log-mel [N, n_mels, F] -> [N, T, D]."""
    batches = _progress(mel.split(BATCH), f"frozen blocks (upto {blocks})", progress)
    return torch.cat([encoder.hidden_states(batch, upto=blocks)[-1] for batch in batches])


def _progress(items, desc: str, on: bool):
    if not on:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, mininterval=5)
