"""A training run's configuration: `RunConfig` (what `python -m train fit|samsg` runs), the
masking variants, the fields a resumed run (or a reused phase 1) must match, how config.json
stores it, and the `--patch` value parser. Imported by the runner (train.run) and by
everything that reads runs; imports neither."""
from __future__ import annotations

import argparse
import dataclasses
import json

from edge_ser.config import FeatureConfig

from .augment import Augmentation, band_centres_hz

VARIANTS = ("none", "random", "samsg", "samsg_speech")


@dataclasses.dataclass
class RunConfig:
    corpus: str = "emodb"
    data: str | None = None
    protocol: str = "loso"
    model: str = "cnn"  # cnn | deit
    seconds: float = 2.0  # clip length fed to the model (crop/pad), seconds
    n_mels: int = 64
    # Per-clip per-band z-scoring, done by the runtime's extractor too (FeatureConfig.normalize):
    # "none" | "utterance".
    normalize: str = "none"
    epochs: int = 60  # phase 1 (or the only phase)
    lr: float = 1e-3
    weight_decay: float = 0.05
    batch_size: int = 32
    warmup_epochs: float = 2.0
    ema: float = 0.0  # phase 1: end with the moving average of the weights, this decay per step; 0 = off
    variants: tuple[str, ...] = ()  # empty: one phase; else a subset of VARIANTS
    continue_epochs: int = 10  # phase 2, in passes over originals + masked copies
    continue_lr: float = 3e-4
    mask_ratio: float = 0.25
    mask_fill: str = "mean"
    head_fusion: str = "mean"
    patch: tuple[int, int] = (16, 16)
    depth: int = 4
    dim: int = 192
    heads: int = 3
    drop_path: float = 0.1
    stem: str = "patch"  # DeiT token embedding: patch (linear, as DeiT) | conv (models.conv_stem)
    # Augmentation (defaults: none beyond the circular time shift, as in the first runs).
    freq_masks: int = 0  # SpecAugment frequency masks per clip
    freq_mask_width: int = 8  # mel bands, each mask 0..width wide
    time_masks: int = 0  # SpecAugment time masks per clip
    time_mask_width: int = 20  # frames (10 ms each), each mask 0..width wide
    mixup: float = 0.0  # mixup Beta(alpha, alpha); 0 = off
    freq_warp: float = 0.0  # VTLP-style warp of each clip's mel bands by a factor in [1 - w, 1 + w]
    crop_seconds: float | None = None  # train on random `seconds` windows of clips fixed to this length
    noise_train: str | None = None  # folder of noise mixed into training clips (train.copies)
    noise_snr: tuple[float, float] = (0.0, 20.0)  # dB range of that noise
    reverb_train: tuple[float, float] | None = None  # RT60 range (s) of the simulated rooms clips are put in
    noise_p: float = 0.5  # chance that a training clip is replaced by one of its degraded copies, each time it is drawn
    noise_copies: int = 4  # degraded copies made of each clip (waveform, once per run)
    # Labelled clips of another corpus added to every fold's training set (never to a test set),
    # relabelled into this corpus's labels (train.data.relabel_into).
    extra_train: str | None = None
    # Weight of the speaker-confusion loss (train.adversary); 0 = no adversary.
    speaker_adversary: float = 0.0
    speaker_norm: bool = False  # z-score each speaker's clips over its own clips (transductive)
    # With speaker_norm: statistics from each speaker's clips of these labels only (e.g. neutral:
    # what a user could record at set-up); empty: all its clips.
    speaker_norm_labels: tuple[str, ...] = ()
    init_from: str | None = None
    # A finished run or ensemble of this protocol whose per-fold predictions on the training clips
    # the model is distilled from (train.distil), instead of learning from the labels alone.
    distil_from: str | None = None
    # With distil_from: train on this many augmented views of each clip (time shift + the
    # SpecAugment masks below), each with the teacher's targets on that very view; 0 = the clips.
    distil_views: int = 0
    phase1_from: str | None = None  # reuse another run's phase-1 checkpoints (same config)
    pretrain_epochs: int = 0  # DeiT only: MAE pretraining per fold on the training speakers' audio
    pretrain_lr: float = 1e-3
    pretrain_extra: str | None = None  # folder of more unlabelled audio for pretraining
    seed: int = 0
    threads: int = 1
    max_folds: int | None = None
    only_folds: tuple[str, ...] = ()  # train just these folds in this process (others may run elsewhere)
    quick: bool = False
    cache: str | None = None
    progress: bool = True

    def feature_config(self) -> FeatureConfig:
        return FeatureConfig(n_mels=self.n_mels, normalize=self.normalize)

    def augmentation(self) -> Augmentation:
        return Augmentation(freq_masks=self.freq_masks, freq_mask_width=self.freq_mask_width,
                            time_masks=self.time_masks, time_mask_width=self.time_mask_width,
                            mixup_alpha=self.mixup, freq_warp=self.freq_warp,
                            band_hz=band_centres_hz(self.feature_config()) if self.freq_warp else ())

    def degraded_training(self) -> bool:
        """Training draws degraded copies of the clips (noise, simulated rooms or both)."""
        return bool(self.noise_train or self.reverb_train)

    def crop_frames(self) -> int | None:
        """Window length in frames for random crops (None: no random crop)."""
        return None if self.crop_seconds is None else self.feature_config().n_frames(
            self.feature_config().n_samples(self.seconds))

    def deit_options(self) -> dict:
        return {"patch": tuple(self.patch), "depth": self.depth, "dim": self.dim, "heads": self.heads,
                "drop_path": self.drop_path, "stem": self.stem}


def run_fields(cfg: RunConfig) -> dict:
    """The config as config.json stores it (tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


# What must match for another run's phase-1 checkpoints to be this run's phase 1.
PHASE1_FIELDS = ("corpus", "protocol", "model", "seconds", "n_mels", "epochs", "lr", "weight_decay", "batch_size",
                 "warmup_epochs", "patch", "depth", "dim", "heads", "drop_path", "stem", "init_from", "pretrain_epochs",
                 "pretrain_lr", "pretrain_extra", "seed", "quick", "freq_masks", "freq_mask_width", "time_masks",
                 "time_mask_width", "mixup", "crop_seconds", "extra_train", "speaker_norm", "speaker_norm_labels", "normalize",
                 "freq_warp", "speaker_adversary", "distil_from", "distil_views", "ema", "noise_train", "noise_snr", "noise_p", "noise_copies",
                 "reverb_train")


# What else must match for a run directory to be resumed (or shared by --folds processes).
RESUME_FIELDS = PHASE1_FIELDS + ("variants", "continue_epochs", "continue_lr", "mask_ratio", "mask_fill",
                                 "head_fusion", "phase1_from", "max_folds")


def patch_size(text: str) -> tuple[int, int]:
    """"16x16" -> (16, 16); "64x4" spans 64 mel bands by 4 frames."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"patch must look like 16x16, got {text!r}") from None
    return h, w
