"""A training run's configuration: `RunConfig` (what `python -m train fit|samsg` runs; each field
is also its command-line option, its help and which runs must agree on it in its metadata), the
masking variants, and how config.json stores it. Imported by the runner (train.run) and by
everything that reads runs; imports neither."""
from __future__ import annotations

import argparse
import dataclasses
import json

from edge_ser.config import FeatureConfig

from .augment import Augmentation, band_centres_hz
from .options import PHASE1 as P1
from .options import RESUME, comma_list, fields_matching, option, patch_size, rt60_range, snr_range
from .protocols import PROTOCOLS

VARIANTS = ("none", "random", "samsg", "samsg_speech")


def variant_list(text: str) -> tuple[str, ...]:
    """"none,samsg" -> ("none", "samsg"), each one of VARIANTS."""
    variants = comma_list(text)
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown variants {unknown}: use {','.join(VARIANTS)}")
    return variants


@dataclasses.dataclass
class RunConfig:
    """Everything a training run depends on. Each field is also its command-line option
    (`train.options`), and says which other runs must agree on it."""
    corpus: str = option("emodb", "emodb | ravdess | path/to/manifest.csv | several joined by + (common labels)",
                         match=P1)
    data: str | None = option(None, "data root (default: EDGE_SER_DATA or ../shared/data)")
    protocol: str = option("loso", "spk5: 5 speaker-disjoint folds (combined corpora); cross: train on one corpus of a "
                           "combined corpus, test on the other; all: train on every clip, no test", choices=PROTOCOLS, match=P1)
    model: str = option("cnn", "the network", choices=("cnn", "deit"), match=P1)
    seconds: float = option(2.0, "clip length fed to the model (centre crop / zero pad), seconds", match=P1)
    n_mels: int = option(64, "mel bands of the log-mel features", match=P1)
    normalize: str = option("none", "utterance: z-score each band over the clip's own frames (the runtime does the "
                            "same)", choices=("none", "utterance"), match=P1)
    epochs: int = option(60, "phase 1 (or the only phase), passes over the training clips", match=P1)
    lr: float = option(1e-3, "peak learning rate of phase 1", match=P1)
    weight_decay: float = option(0.05, "AdamW weight decay", match=P1)
    batch_size: int = option(32, "clips per step", match=P1)
    warmup_epochs: float = option(2.0, "linear warm-up before the cosine decay, epochs", match=P1)
    ema: float = option(0.0, "end phase 1 with the exponential moving average of the weights, this decay per step "
                        "(e.g. 0.99); 0 = the last step's weights", match=P1)
    variants: tuple[str, ...] = option((), "comma list of none,random,samsg,samsg_speech: phase 2 continues phase 1 "
                                       "once per variant (empty: one phase)", parse=variant_list, match=RESUME)
    continue_epochs: int = option(10, "phase 2, in passes over originals + masked copies", match=RESUME)
    continue_lr: float = option(3e-4, "learning rate of phase 2", match=RESUME)
    mask_ratio: float = option(0.25, "share of the patches masked in phase 2", match=RESUME)
    mask_fill: str = option("mean", '"mean" or a number (log-mel value) for masked patches', match=RESUME)
    head_fusion: str = option("mean", "how attention rollout fuses the heads", choices=("mean", "max", "min"),
                              match=RESUME)
    patch: tuple[int, int] = option((16, 16), "DeiT patch, mel bands x frames", parse=patch_size, match=P1)
    depth: int = option(4, "DeiT blocks", match=P1)
    dim: int = option(192, "DeiT width", match=P1)
    heads: int = option(3, "DeiT attention heads", match=P1)
    drop_path: float = option(0.1, "DeiT stochastic depth", match=P1)
    stem: str = option("patch", "DeiT token embedding: patch (linear, as DeiT) or conv (small conv stem, same 16x16 "
                       "token grid)", choices=("patch", "conv"), match=P1)
    freq_masks: int = option(0, "SpecAugment frequency masks per clip", match=P1)
    freq_mask_width: int = option(8, "max mel bands per frequency mask", match=P1)
    time_masks: int = option(0, "SpecAugment time masks per clip", match=P1)
    time_mask_width: int = option(20, "max frames (10 ms each) per time mask", match=P1)
    mixup: float = option(0.0, "mixup Beta(alpha, alpha); 0 = off", match=P1)
    freq_warp: float = option(0.0, "VTLP-style frequency warp: each training clip's bands rescaled in Hz by a factor "
                              "uniform in [1-W, 1+W]; 0 = off", match=P1)
    crop_seconds: float | None = option(None, "train on random --seconds windows of clips fixed to this length "
                                        "(test: centre crop)", match=P1)
    noise_train: str | None = option(None, "folder of noise recordings mixed into training clips (train.copies), e.g. "
                                     "DATA/noise/background; test noise should come from another folder", match=P1)
    noise_snr: tuple[float, float] = option((0.0, 20.0), "low,high dB of the training noise", parse=snr_range,
                                            match=P1)
    reverb_train: tuple[float, float] | None = option(
        None, "low,high RT60 (s) of simulated rooms training clips are put in (train.copies; before any noise), "
        "e.g. 0.2,1.0", parse=rt60_range, match=P1)
    noise_p: float = option(0.5, "chance that a drawn training clip is replaced by one of its degraded copies",
                            match=P1)
    noise_copies: int = option(4, "degraded copies made of each clip (on the waveform, through the extractor, once "
                               "per run)", match=P1)
    extra_train: str | None = option(None, "another labelled corpus added to every fold's training set (never "
                                     "tested on), relabelled into this corpus's labels, e.g. --corpus emodb "
                                     "--extra-train ravdess", match=P1)
    speaker_adversary: float = option(0.0, "weight of the confusion loss against a speaker classifier on the "
                                      "embedding (train.adversary; 0 = off; not with --mixup)", match=P1)
    speaker_norm: bool = option(False, "z-score each speaker's clips over its own clips (uses test speakers' "
                                "unlabelled audio: report apart)", match=P1)
    speaker_norm_labels: tuple[str, ...] = option(
        (), "with --speaker-norm: each speaker's statistics from its clips of these labels only, e.g. neutral (what a "
        "user could record at set-up)", parse=comma_list, match=P1)
    init_from: str | None = option(None, "local checkpoint to start from (its head stays fresh): a train run's "
                                   "checkpoint (runs/RUN/checkpoints/FOLD/phase1.pt) of the same model, or for DeiT "
                                   "a timm ViT state dict", match=P1)
    distil_from: str | None = option(None, "a finished run or ensemble of this protocol: distil from its per-fold "
                                     "predictions on the training clips (train.teachers; the same clips and "
                                     "features)", match=P1)
    distil_views: int = option(0, "with --distil-from: train on this many augmented views of each clip (time shift, "
                               "plus --freq-masks/--time-masks), each with the teacher's targets on that view; "
                               "--epochs then counts passes over all the views", match=P1)
    phase1_from: str | None = option(None, "reuse the phase-1 checkpoints of this run directory", match=RESUME)
    pretrain_epochs: int = option(0, "DeiT: MAE pretraining epochs per fold on the training speakers' audio first",
                                  match=P1)
    pretrain_lr: float = option(1e-3, "learning rate of that pretraining", match=P1)
    pretrain_extra: str | None = option(None, "folder of more unlabelled audio for the pretraining", match=P1)
    seed: int = option(0, "seed of initialisation, batches and augmentation", match=P1)
    threads: int = option(1, "torch threads")
    max_folds: int | None = option(None, "only the first folds", match=RESUME)
    only_folds: tuple[str, ...] = option((), "comma list of fold names to train in this process, e.g. to run the "
                                         "folds of one run directory in two processes at once (default: all)",
                                         parse=comma_list, flag="--folds")
    quick: bool = option(False, "a few clips, tiny model, 1 epoch (tests)", match=P1)
    cache: str | None = option(None, "feature cache folder (default <repo>/.cache/features)")
    progress: bool = option(True, "progress bars")

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


# What must match for another run's phase-1 checkpoints to be this run's phase 1, and for a run
# directory to be resumed (or shared by --folds processes).
PHASE1_FIELDS = fields_matching(RunConfig, P1)
RESUME_FIELDS = fields_matching(RunConfig, RESUME)
