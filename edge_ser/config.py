"""The one feature definition shared by training, export and the device runtime.

A model file carries a `FeatureConfig` in its metadata (see `edge_ser.contract`), so the
runtime computes exactly the features the model was trained on. Change a default here and
every cache keyed on `FeatureConfig.key()` is invalidated.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json

SAMPLE_RATE = 16000  # Hz: every waveform is resampled to this before features
WIN_LENGTH = 400  # samples: 25 ms analysis window
HOP_LENGTH = 160  # samples: 10 ms between frames
N_FFT = 512  # samples: the window is zero-padded (centred) to this length
N_MELS = 64  # mel bands (64 or 128)
LOG_FLOOR = 1e-10  # mel power is clamped to this before the natural log
N_MFCC = 20  # cepstral coefficients kept by `mfcc`

FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 100


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """How a waveform becomes a log-mel spectrogram.

    Definition (the C extractor and the numpy reference implement exactly this):
      1. frames are centred: the signal is zero-padded by n_fft // 2 on both sides and frame t
         covers padded samples [t * hop_length, t * hop_length + n_fft); there are
         1 + n_samples // hop_length frames, so even one sample gives one frame;
      2. a periodic Hann window of win_length samples, centred in n_fft, multiplies the frame;
      3. power spectrum |rfft(frame, n_fft)|^2, n_fft // 2 + 1 bins;
      4. mel power = Slaney-normalised Slaney-scale triangular filters (librosa's default
         `librosa.filters.mel(htk=False, norm="slaney")`) from fmin to fmax;
      5. log_mel = ln(max(mel power, log_floor));
      6. if normalize == "utterance", each band is shifted to zero mean and scaled to unit
         variance over the utterance's frames (std floored at 1e-5).
    MFCC = DCT-II (orthonormal) of log_mel along the band axis, first n_mfcc coefficients.
    """

    sample_rate: int = SAMPLE_RATE
    win_length: int = WIN_LENGTH
    hop_length: int = HOP_LENGTH
    n_fft: int = N_FFT
    n_mels: int = N_MELS
    fmin: float = 0.0
    fmax: float = SAMPLE_RATE / 2
    log_floor: float = LOG_FLOOR
    normalize: str = "none"  # "none" | "utterance"

    def __post_init__(self):
        problems = []
        if self.n_fft < 2 or self.n_fft & (self.n_fft - 1):
            problems.append(f"n_fft must be a power of two, got {self.n_fft}")
        if not 0 < self.win_length <= self.n_fft:
            problems.append(f"win_length must be in 1..n_fft, got {self.win_length}")
        if self.hop_length <= 0:
            problems.append(f"hop_length must be positive, got {self.hop_length}")
        if not 1 <= self.n_mels <= self.n_fft // 2 + 1:
            problems.append(f"n_mels must be in 1..n_fft/2+1, got {self.n_mels}")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            problems.append(f"need 0 <= fmin < fmax <= sample_rate/2, got {self.fmin}, {self.fmax}")
        if not self.log_floor > 0:
            problems.append(f"log_floor must be positive, got {self.log_floor}")
        if self.normalize not in ("none", "utterance"):
            problems.append(f"normalize must be 'none' or 'utterance', got {self.normalize!r}")
        if problems:
            raise ValueError("invalid feature config: " + "; ".join(problems))

    def n_frames(self, n_samples: int) -> int:
        """Frames produced for a waveform of `n_samples` samples (0 for an empty one)."""
        return 0 if n_samples <= 0 else 1 + n_samples // self.hop_length

    def n_samples(self, seconds: float) -> int:
        return int(round(seconds * self.sample_rate))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureConfig":
        """Build from a metadata dict; unknown keys are an error, missing keys take defaults."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - fields)
        if unknown:
            raise ValueError(f"invalid feature config: unknown keys {unknown}")
        return cls(**d)

    def key(self) -> str:
        """Short stable hash of the definition, for feature caches."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
