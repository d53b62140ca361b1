"""The one feature definition shared by training, export and the device runtime.

A model file carries a `FeatureConfig` in its metadata (see `edge_ser.contract`), so the
runtime computes exactly the features the model was trained on. Change a default here and
every cache keyed on `FeatureConfig.key()` is invalidated.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math

SAMPLE_RATE = 16000  # Hz: every waveform is resampled to this before features
WIN_LENGTH = 400  # samples: 25 ms analysis window
HOP_LENGTH = 160  # samples: 10 ms between frames
N_FFT = 512  # samples: the window is zero-padded (centred) to this length
N_MELS = 64  # mel bands (64 or 128)
LOG_FLOOR = 1e-10  # mel power is clamped to this before the log
N_MFCC = 20  # cepstral coefficients kept by `mfcc`
FFT_PRIMES = (2, 3, 5)  # n_fft / 2 must factor into these: the C FFT has radix 2, 3, 4 and 5 stages

# Allowed values of the string fields; the first of each is the default.
LOGS = ("ln", "log10")
NORMALIZATIONS = ("none", "utterance", "whisper")
PADS = ("zero", "reflect")
WHISPER_RANGE = 8.0  # "whisper" normalisation: log10 mel power is clamped to at most this below its maximum
WHISPER_OFFSET = 4.0  # ... then mapped to (x + WHISPER_OFFSET) / WHISPER_SCALE
WHISPER_SCALE = 4.0

FRAMES_PER_SECOND = SAMPLE_RATE // HOP_LENGTH  # 100
# Bounds on what a feature config may ask of the runtime (a model file's metadata is input).
INT_FIELDS = ("sample_rate", "win_length", "hop_length", "n_fft", "n_mels")
FLOAT_FIELDS = ("fmin", "fmax", "log_floor")
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 4000, 192000  # Hz
MAX_N_FFT = 65536  # samples: 4 s at 16 kHz, far beyond any speech front end
MAX_N_MELS = 512
MIN_BAND_HZ = 1.0  # fmax - fmin: a narrower band makes the Slaney filterbank degenerate (NaN)
MAX_LOG_FLOOR = 1.0  # a floor above this flattens every spectrum to the same features
# Fields added after format 1, with the defaults that mean "as format 1" (see `FeatureConfig.to_dict`).
LATER_FIELDS = {"log": LOGS[0], "pad": PADS[0], "drop_last_frame": False}


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """How a waveform becomes a log-mel spectrogram.

    Definition (the C extractor and the numpy reference implement exactly this):
      1. frames are centred: the signal is extended by n_fft // 2 samples on both sides and
         frame t covers padded samples [t * hop_length, t * hop_length + n_fft);
         pad "zero": the extension is zeros;
         pad "reflect": it mirrors the signal about its end samples without repeating them
         (numpy.pad(mode="reflect"); torch.stft's pad_mode="reflect" where that is defined,
         n_samples > n_fft // 2; a shorter signal is reflected back and forth, as in
         transformers' numpy Whisper extractor, and a single sample is repeated);
         there are 1 + n_samples // hop_length frames (even one sample gives one frame), or
         n_samples // hop_length when drop_last_frame (Whisper drops torch.stft's last frame);
         no samples, no frames;
      2. a periodic Hann window of win_length samples, centred in n_fft, multiplies the frame;
      3. power spectrum |rfft(frame, n_fft)|^2, n_fft // 2 + 1 bins; n_fft is even and n_fft / 2
         has no prime factor but 2, 3 and 5 (512, 400, 320, ...);
      4. mel power = Slaney-normalised Slaney-scale triangular filters (librosa's default
         `librosa.filters.mel(htk=False, norm="slaney")`) from fmin to fmax;
      5. log_mel = log(max(mel power, log_floor)), log "ln" (natural) or "log10";
      6. normalize "none": nothing more; "utterance": each band is shifted to zero mean and
         scaled to unit variance over the frames of the call (std floored at 1e-5);
         "whisper" (needs log "log10"): x = max(x, max over all bands and frames of the call
         - 8), then (x + 4) / 4, as Whisper does on its 30 s window.
    MFCC = DCT-II (orthonormal) of log_mel along the band axis, first n_mfcc coefficients.
    `WHISPER_FEATURES` is Whisper's front end (transformers' WhisperFeatureExtractor).
    """

    sample_rate: int = SAMPLE_RATE
    win_length: int = WIN_LENGTH
    hop_length: int = HOP_LENGTH
    n_fft: int = N_FFT
    n_mels: int = N_MELS
    fmin: float = 0.0
    fmax: float = SAMPLE_RATE / 2
    log_floor: float = LOG_FLOOR
    normalize: str = "none"  # one of NORMALIZATIONS
    log: str = "ln"  # one of LOGS
    pad: str = "zero"  # one of PADS
    drop_last_frame: bool = False

    def __post_init__(self):
        problems = self._type_problems()
        if problems:
            raise ValueError("invalid feature config: " + "; ".join(problems))
        problems = self._range_problems()
        if self.n_fft < 4 or self.n_fft % 2 or not _factors_into(self.n_fft // 2, FFT_PRIMES):
            problems.append(f"n_fft must be even with n_fft / 2 a product of 2, 3 and 5 (e.g. 400, 512), got {self.n_fft}")
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
        for name, allowed in (("normalize", NORMALIZATIONS), ("log", LOGS), ("pad", PADS)):
            if getattr(self, name) not in allowed:
                problems.append(f"{name} must be one of {', '.join(map(repr, allowed))}, got {getattr(self, name)!r}")
        if self.normalize == "whisper" and self.log != "log10":
            problems.append(f"normalize 'whisper' needs log 'log10' (its clamp is {WHISPER_RANGE:g} decades), got {self.log!r}")
        if not isinstance(self.drop_last_frame, bool):
            problems.append(f"drop_last_frame must be true or false, got {self.drop_last_frame!r}")
        if problems:
            raise ValueError("invalid feature config: " + "; ".join(problems))

    def _type_problems(self) -> list[str]:
        """Integers where counts are meant, finite numbers for frequencies and the floor (a model
        file's metadata is input: 160.5, `true` or Infinity must be refused, not computed with)."""
        problems = [f"{name} must be an integer, got {getattr(self, name)!r}" for name in INT_FIELDS
                    if not isinstance(getattr(self, name), int) or isinstance(getattr(self, name), bool)]
        for name in FLOAT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                problems.append(f"{name} must be a finite number, got {value!r}")
        return problems

    def _range_problems(self) -> list[str]:
        """Sizes within what any speech front end uses, so a model's metadata cannot make the
        runtime allocate gigabytes or divide by a degenerate filterbank (docs/model-contract.md)."""
        problems = []
        if not MIN_SAMPLE_RATE <= self.sample_rate <= MAX_SAMPLE_RATE:
            problems.append(f"sample_rate must be in {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz, got {self.sample_rate}")
        if self.n_fft > MAX_N_FFT:
            problems.append(f"n_fft must be at most {MAX_N_FFT}, got {self.n_fft}")
        if self.hop_length > self.sample_rate:
            problems.append(f"hop_length must be at most one second ({self.sample_rate} samples), got {self.hop_length}")
        if self.n_mels > MAX_N_MELS:
            problems.append(f"n_mels must be at most {MAX_N_MELS}, got {self.n_mels}")
        if self.fmax - self.fmin < MIN_BAND_HZ:
            problems.append(f"fmax must be at least {MIN_BAND_HZ:g} Hz above fmin, got {self.fmin}, {self.fmax}")
        if not self.log_floor <= MAX_LOG_FLOOR:
            problems.append(f"log_floor must be at most {MAX_LOG_FLOOR:g}, got {self.log_floor}")
        return problems

    def n_frames(self, n_samples: int) -> int:
        """Frames produced for a waveform of `n_samples` samples (0 for an empty one)."""
        return 0 if n_samples <= 0 else n_samples // self.hop_length + (not self.drop_last_frame)

    def samples_for_frames(self, n_frames: int) -> int:
        """The fewest samples that give `n_frames` frames (n_frames >= 1)."""
        return max(1, (n_frames - (not self.drop_last_frame)) * self.hop_length)

    def n_samples(self, seconds: float) -> int:
        return int(round(seconds * self.sample_rate))

    def to_dict(self) -> dict:
        """The metadata form. Fields added after format 1 (`LATER_FIELDS`) are written only when
        they differ from their defaults: a model whose features an older runtime computes stays
        readable by it, and the cache keys of those features do not change."""
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if k not in LATER_FIELDS or v != LATER_FIELDS[k]}

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


def _factors_into(n: int, primes) -> bool:
    """True when n >= 1 has no prime factor outside `primes`."""
    for p in primes:
        while n > 1 and n % p == 0:
            n //= p
    return n == 1


# Whisper's front end (openai/whisper, transformers' WhisperFeatureExtractor): 25 ms periodic
# Hann window in a 400-point FFT, reflect padding, torch.stft's last frame dropped, 80 Slaney
# bands to 8 kHz, log10 and the 8-decade clamp with (x + 4) / 4.
WHISPER_FEATURES = FeatureConfig(
    n_fft=400, win_length=400, hop_length=160, n_mels=80, fmin=0.0, fmax=8000.0, log_floor=1e-10,
    log="log10", normalize="whisper", pad="reflect", drop_last_frame=True,
)
