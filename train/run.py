"""Run a protocol: features, folds, training (optionally two-phase with masking variants),
per-fold JSON + checkpoints (a rerun skips finished folds), summaries and confusion PNGs.

Two-phase runs (SAMSG): phase 1 trains on the originals; from that model, each variant
continues training on the originals together with masked copies:
  none   - no masking: the originals twice, so every variant sees the same number of samples;
  random - random patches of the same area masked;
  samsg  - the top-k % patches by attention rollout masked.
All variants of a fold start from the same phase-1 weights and use the same seed.

The configuration is `train.run_config`; what the runner shares with the tools that read its
run directories (config.json, fold models, features) is `train.run_dir`. Only the CLI
and the export recipe (and tests) import this module.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import numpy as np
import torch

from . import adversary, loop, masking, metrics, models, protocols, rollout, teachers
from .data import Corpus, load_corpus, relabel_into
from .features import corpus_speech
from .records import environment, write_json
from .run_config import PHASE1_FIELDS, RESUME_FIELDS, VARIANTS, RunConfig, run_fields
from .run_dir import clip_features, degraded_training_copies, feature_cache, quick_corpus, read_run_config


def unlabelled_features(cfg: RunConfig) -> torch.Tensor | None:
    """Log-mel [N, n_mels, frames] of every audio file under `cfg.pretrain_extra` (or None)."""
    if not cfg.pretrain_extra:
        return None
    from .data import audio_files
    from .features import cached_log_mel

    folder = pathlib.Path(cfg.pretrain_extra)
    paths = audio_files(folder)
    if not paths:
        raise FileNotFoundError(f"{folder}: no .wav/.flac files for pretraining")
    return torch.from_numpy(np.stack([cached_log_mel(p, cfg.feature_config(), cfg.seconds, feature_cache(cfg))
                                      for p in paths]))


def new_model(cfg: RunConfig, n_classes: int, shape: tuple[int, int], train_x: torch.Tensor, seed: int,
              pretrain: bool = True, extra_x: torch.Tensor | None = None):
    """Fresh classifier (seeded), standardiser fitted on the training features only, encoder
    MAE-pretrained on them when `cfg.pretrain_epochs` (and `pretrain`) say so."""
    torch.manual_seed(seed)
    model = models.build(cfg.model, n_classes, shape, **cfg.deit_options())
    if cfg.init_from:
        models.init_backbone_from(model.backbone, pathlib.Path(cfg.init_from), fresh_head=True)
    model.standardize.fit(train_x)
    if cfg.pretrain_epochs and (cfg.model != "deit" or cfg.stem != "patch"):
        raise ValueError("--pretrain-epochs needs --model deit with --stem patch (MAE reconstructs patch pixels)")
    if cfg.pretrain_epochs and pretrain:
        from .pretrain import pretrain as mae_pretrain

        unlabelled = train_x if extra_x is None else torch.cat([train_x, extra_x])
        mae_pretrain(model, unlabelled, epochs=cfg.pretrain_epochs, lr=cfg.pretrain_lr, batch_size=cfg.batch_size,
                 seed=seed, progress=cfg.progress, desc="pretrain")
    return model


@dataclasses.dataclass
class AddedClips:
    """`--extra-train` clips: features [N, n_mels, frames], targets [N], and the features of the
    longer clips when random-cropping (else None)."""

    corpus: Corpus
    x: torch.Tensor
    y: torch.Tensor
    long_x: torch.Tensor | None = None


def training_copies_of(cfg: RunConfig, corpus: Corpus) -> torch.Tensor | None:
    """`--noise-train` / `--reverb-train`: log-mel [n_clips, copies, n_mels, frames], degraded
    copies of every clip (only a fold's training rows are ever used), or None."""
    if not cfg.degraded_training():
        return None
    return degraded_training_copies(run_fields(cfg), [c.path for c in corpus.clips], cfg.feature_config())


def corpus_parts(name: str | None) -> set[str]:
    """The corpora a `--corpus` / `--extra-train` value names: "emodb+ravdess" -> {"emodb",
    "ravdess"}; a manifest by its file stem (as `Corpus.name` has it)."""
    return {pathlib.Path(part).stem for part in (name or "").split("+") if part}


def added_clips(cfg: RunConfig, corpus: Corpus) -> AddedClips | None:
    """The `cfg.extra_train` corpus in `corpus`'s labels; it must be another corpus, so none of
    its speakers can be a test speaker."""
    if not cfg.extra_train:
        return None
    extra = relabel_into(load_corpus(cfg.extra_train, cfg.data), corpus.labels)
    shared = corpus_parts(extra.name) & corpus_parts(corpus.name)
    if shared:
        raise ValueError(f"--extra-train {cfg.extra_train}: {', '.join(sorted(shared))} is the evaluated corpus itself")
    overlap = {c.path.resolve() for c in extra.clips} & {c.path.resolve() for c in corpus.clips}
    if overlap:
        raise ValueError(f"--extra-train {cfg.extra_train}: {len(overlap)} files are also in {corpus.name}, "
                         f"e.g. {sorted(overlap)[0]}")
    if cfg.quick:
        extra = quick_corpus(extra)
    long_x = None if cfg.crop_seconds is None else clip_features(cfg, extra, cfg.crop_seconds)
    return AddedClips(extra, clip_features(cfg, extra, cfg.seconds), torch.from_numpy(extra.targets()), long_x)


def masked_copies(cfg: RunConfig, variant: str, model, train_x: torch.Tensor, seed: int,
                  train_speech: np.ndarray | None = None) -> tuple[torch.Tensor, dict]:
    """The training features as seen in phase 2 by `variant` (originals first), and how much of
    the phase-1 model's rollout the masks cover: mean share of each clip's rollout mass under its
    mask (= the mask ratio for maps that are uniform; SAMSG's top-k is only meaningful above it),
    and for `samsg_speech` (which needs `train_speech`, the clips' speech frames [n_train, frames])
    the share of its masked tokens that are pauses all the same."""
    if variant == "none":
        return torch.cat([train_x, train_x]), {}
    grid, info = model.backbone.patch_embed.grid_size, {}
    importance = rollout.patch_importance(model, train_x, cfg.head_fusion)
    if variant == "samsg":
        mask = masking.top_k_mask(importance, cfg.mask_ratio)
    elif variant == "samsg_speech":
        pauses = masking.pause_tokens(train_speech, tuple(grid), cfg.patch[1])
        mask = masking.top_k_speech_mask(importance, pauses, cfg.mask_ratio)
        info["pause_share_masked"] = masking.pause_share(mask, pauses)  # clips short of speech tokens
    elif variant == "random":
        mask = masking.random_mask(len(train_x), grid, cfg.mask_ratio, torch.Generator().manual_seed(seed))
    else:
        raise ValueError(f"unknown variant {variant!r}: use one of {', '.join(VARIANTS)}")
    share = masking.rollout_share(importance, mask)
    masked = masking.apply_mask(train_x, mask, tuple(cfg.patch), cfg.mask_fill)
    return torch.cat([train_x, masked]), {"rollout_share_masked": share, "mask_ratio": cfg.mask_ratio, **info}


def evaluate(model, test_x, test_y, n_classes: int) -> dict:
    logits = loop.predict_logits(model, test_x)
    predicted = logits.argmax(axis=1)
    matrix = metrics.confusion(test_y.numpy(), predicted, n_classes)
    # Logits too (4 decimals): runs can then be ensembled or calibrated later without retraining.
    return {"scores": metrics.scores(matrix), "confusion": matrix.tolist(), "predicted": predicted.tolist(),
            "logits": np.round(logits, 4).tolist()}


def training_speakers(corpus: Corpus, fold: protocols.Fold, added: AddedClips | None) -> torch.Tensor:
    """Speaker ids [n_train (+ added)] of a fold's training clips, in their order; corpora are
    told apart, so speaker "03" of two corpora is two speakers."""
    names = [f"{corpus.name}:{s}" for s in corpus.speakers()[fold.train]]
    if added is not None:
        names += [f"{added.corpus.name}:{s}" for s in added.corpus.speakers()]
    return adversary.speaker_ids(np.array(names))


def training_inputs(cfg: RunConfig, fold: str, test_clips: list[str], train_x: torch.Tensor, train_y: torch.Tensor,
                    speakers: torch.Tensor | None, seed: int) -> dict:
    """What phase 1 trains on: the clips, or with --distil-views their augmented copies (which
    then carry all the augmentation), and the teacher's targets when distilling."""
    augmentation, teacher = cfg.augmentation(), None
    if cfg.distil_from and cfg.distil_views:
        copies, teacher = teachers.teacher_views(pathlib.Path(cfg.distil_from), fold, test_clips, train_x,
                                               cfg.distil_views, augmentation, seed)
        return {"features": copies, "targets": train_y.repeat(cfg.distil_views), "augmentation": None,
                "teacher": teacher, "speakers": None if speakers is None else speakers.repeat(cfg.distil_views)}
    if cfg.distil_from:
        teacher = teachers.teacher_log_probs(pathlib.Path(cfg.distil_from), fold, test_clips, train_x)
    return {"features": train_x, "targets": train_y, "augmentation": augmentation, "teacher": teacher,
            "speakers": speakers}


def run_fold(cfg: RunConfig, out: pathlib.Path, fold_index: int, fold: protocols.Fold, x: torch.Tensor,
             y: torch.Tensor, corpus: Corpus, extra_x: torch.Tensor | None = None,
             long_x: torch.Tensor | None = None, added: AddedClips | None = None,
             noisy_x: torch.Tensor | None = None, speech: np.ndarray | None = None) -> None:
    """Train and evaluate one fold; each result set is written as soon as it exists. `long_x`
    (clips fixed to `cfg.crop_seconds`) replaces `x` as the training clips when random-cropping;
    `added` clips join every training set; `noisy_x` [N, copies, ...] are noisy copies of `x`;
    `speech` [N, frames] the clips' VAD speech frames (for `samsg_speech`)."""
    n_classes, shape, seed = len(corpus.labels), tuple(x.shape[1:]), cfg.seed + fold_index
    train_x, train_y, test_x, test_y = x[fold.train], y[fold.train], x[fold.test], y[fold.test]
    train_long_x = None if long_x is None else long_x[fold.train]
    if added is not None:
        train_x, train_y = torch.cat([train_x, added.x]), torch.cat([train_y, added.y])
        train_long_x = None if long_x is None else torch.cat([train_long_x, added.long_x])
    names = [corpus.clips[i].path.name for i in fold.test]
    common = {"fold": fold.name, "test_speakers": sorted(set(corpus.speakers()[fold.test].tolist())),
              "n_train": len(fold.train), "n_added_train": 0 if added is None else len(added.x),
              "n_test": len(fold.test), "test_clips": names,
              "test_true": test_y.tolist(), "threads": torch.get_num_threads()}
    speakers = training_speakers(corpus, fold, added) if cfg.speaker_adversary else None
    checkpoint = pathlib.Path(cfg.phase1_from or out) / "checkpoints" / fold.name / "phase1.pt"
    first = "phase1" if cfg.variants else "single"
    if cfg.phase1_from and not checkpoint.exists():
        print(f"{fold.name}: skipped, {checkpoint} does not exist yet (rerun later to resume)")
        return
    start = time.time()  # training seconds include any MAE pretraining
    model = new_model(cfg, n_classes, shape, train_x, seed, pretrain=not checkpoint.exists(), extra_x=extra_x)
    if checkpoint.exists():
        model.load_state_dict(torch.load(checkpoint, weights_only=True))
    else:
        seen = training_inputs(cfg, fold.name, names, train_x if train_long_x is None else train_long_x,
                               train_y, speakers, seed)
        history = loop.fit(model, seen["features"], seen["targets"], n_classes, epochs=cfg.epochs, lr=cfg.lr,
                           weight_decay=cfg.weight_decay, batch_size=cfg.batch_size, seed=seed,
                           warmup_epochs=cfg.warmup_epochs, desc=f"{fold.name} {first}", progress=cfg.progress,
                           augmentation=seen["augmentation"], crop_frames=cfg.crop_frames(),
                           speakers=seen["speakers"], adversary_weight=cfg.speaker_adversary,
                           teacher=seen["teacher"], shift=not cfg.distil_views, ema=cfg.ema,
                           noisy=None if noisy_x is None else noisy_x[fold.train], noise_p=cfg.noise_p)
        result = evaluate(model, test_x, test_y, n_classes)
        write_json(out / first / f"fold_{fold.name}.json",
                   {**common, **result, "epochs": cfg.epochs, "loss": history, "train_seconds": time.time() - start})
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), checkpoint)
    phase1 = {k: v.clone() for k, v in model.state_dict().items()}
    for variant in cfg.variants:
        path = out / variant / f"fold_{fold.name}.json"
        if path.exists():
            continue
        start = time.time()
        model.load_state_dict(phase1)
        seen_x, mask_info = masked_copies(cfg, variant, model, train_x, seed,
                                          None if speech is None else speech[fold.train])
        history = loop.fit(model, seen_x, torch.cat([train_y, train_y]), n_classes, epochs=cfg.continue_epochs,
                           lr=cfg.continue_lr, weight_decay=cfg.weight_decay, batch_size=cfg.batch_size,
                           seed=seed + 1000, warmup_epochs=0.5, desc=f"{fold.name} {variant}",
                           progress=cfg.progress, augmentation=cfg.augmentation(),
                           # A fresh adversary, ramped in again, like the fresh optimizer: phase 2
                           # is short, so the confusion term matters less there than in phase 1.
                           speakers=None if speakers is None else torch.cat([speakers, speakers]),
                           adversary_weight=cfg.speaker_adversary)
        result = evaluate(model, test_x, test_y, n_classes)
        (out / "checkpoints" / fold.name).mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), out / "checkpoints" / fold.name / f"{variant}.pt")
        write_json(path, {**common, **result, "epochs": cfg.continue_epochs, "loss": history, **mask_info,
                          "train_seconds": time.time() - start})


def summarise_run(cfg: RunConfig, out: pathlib.Path, corpus: Corpus, folds: list) -> dict:
    """Summary JSON + confusion PNG per result set, from the fold JSONs on disk."""
    summaries = {}
    for name in (["phase1", *cfg.variants] if cfg.variants else ["single"]):
        results = [json.loads(p.read_text()) for f in folds if (p := out / name / f"fold_{f.name}.json").exists()]
        if not results:
            continue
        summary = metrics.summarise(results, corpus.labels)
        summary["train_seconds"] = float(sum(r["train_seconds"] for r in results))
        summary["complete"] = len(results) == len(folds)
        write_json(out / name / "summary.json", summary)
        title = (f"{corpus.name} {cfg.protocol} {cfg.model} {name}: UA {100 * summary['pooled']['ua']:.1f}% "
                 f"(folds {100 * summary['fold_mean']['ua']:.1f}±{100 * summary['fold_std']['ua']:.1f})")
        metrics.plot_confusion(np.array(summary["pooled_confusion"]), corpus.labels, out / name / "confusion.png", title)
        summaries[name] = summary
    return summaries


def _differing(path: pathlib.Path, cfg: RunConfig, fields: tuple[str, ...]) -> list[str]:
    """The `fields` in which the run stored at `path` (config.json) differs from `cfg`."""
    source = {**run_fields(RunConfig()), **json.loads(path.read_text())["run"]}  # older runs lack newer fields
    mine = run_fields(cfg)
    return [k for k in fields if source.get(k) != mine.get(k)]


def check_phase1_source(cfg: RunConfig) -> None:
    """`cfg.phase1_from` must be a run whose phase 1 was trained exactly as this one's would be."""
    path = pathlib.Path(cfg.phase1_from) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: --phase1-from needs a run directory")
    differ = _differing(path, cfg, PHASE1_FIELDS)
    if differ:
        raise ValueError(f"{path}: phase 1 was trained differently ({', '.join(differ)})")


def check_resume(cfg: RunConfig, out: pathlib.Path) -> None:
    """A run directory is resumed only with the settings it was started with."""
    path = out / "config.json"
    differ = _differing(path, cfg, RESUME_FIELDS) if path.exists() else []
    if differ:
        raise ValueError(f"{out}: started with other settings ({', '.join(differ)}); use another --out")


def check_init_source(cfg: RunConfig) -> None:
    """`--init-from` a train run's checkpoint: that run must not have trained on this corpus,
    or another fold's test speakers would be in the starting weights."""
    if not cfg.init_from:
        return
    path = pathlib.Path(cfg.init_from).resolve().parents[2] / "config.json"  # RUN/checkpoints/FOLD/X.pt
    if not path.is_file():
        return  # a plain timm checkpoint
    source = json.loads(path.read_text())["run"]
    shared = (corpus_parts(source["corpus"]) | corpus_parts(source.get("extra_train"))) & corpus_parts(cfg.corpus)
    if shared:
        raise ValueError(f"--init-from {cfg.init_from}: that run trained on {', '.join(sorted(shared))}, "
                         "the corpus evaluated here (its test speakers could be in the starting weights)")


def run(cfg: RunConfig, out: pathlib.Path) -> dict:
    """The whole protocol; returns {result set: summary}. Resumes from what `out` already holds."""
    torch.set_num_threads(cfg.threads)
    cfg.augmentation()  # validates the augmentation settings before any work
    if cfg.crop_seconds is not None and (cfg.crop_seconds < cfg.seconds or cfg.variants):
        raise ValueError(f"--crop-seconds {cfg.crop_seconds}: needs >= --seconds ({cfg.seconds}) and no masking variants")
    if cfg.speaker_norm and (cfg.crop_seconds is not None or cfg.pretrain_extra):
        raise ValueError("--speaker-norm: not with --crop-seconds or --pretrain-extra (their clips would be "
                         "normalised differently or not at all)")
    if cfg.speaker_adversary and (cfg.mixup or cfg.speaker_adversary < 0):
        raise ValueError(f"--speaker-adversary {cfg.speaker_adversary}: needs a weight > 0 and no --mixup "
                         "(a mixed clip has two speakers)")
    if cfg.speaker_norm_labels and not cfg.speaker_norm:
        raise ValueError("--speaker-norm-labels: needs --speaker-norm")
    if cfg.normalize != "none" and cfg.crop_seconds is not None:
        raise ValueError(f"--normalize {cfg.normalize}: not with --crop-seconds (clips would be normalised over "
                         "the long clip, not over the window the model and the runtime see)")
    if cfg.distil_views and (not cfg.distil_from or cfg.distil_views < 0):
        raise ValueError(f"--distil-views {cfg.distil_views}: needs --distil-from and a count >= 0")
    masks = (cfg.freq_masks or cfg.time_masks) and not cfg.distil_views  # views may carry SpecAugment masks
    if cfg.distil_from and (cfg.variants or cfg.mixup or cfg.freq_warp or masks or cfg.degraded_training()
                            or cfg.crop_seconds is not None or cfg.extra_train or cfg.speaker_norm):
        raise ValueError(f"--distil-from {cfg.distil_from}: a single phase on the corpus's own clips, without "
                         "augmentation beyond the time shift (the targets are the unaugmented clips'; SpecAugment "
                         "masks only with --distil-views), noise, random crops or speaker normalisation")
    degraded = cfg.degraded_training()
    if not 0 <= cfg.ema < 1 or (cfg.ema and degraded):
        raise ValueError(f"--ema {cfg.ema}: needs a decay in [0, 1) (0 = off), and not with --noise-train or "
                         "--reverb-train (the averaged weights' BatchNorm statistics are recomputed on the clean clips)")
    defaults = RunConfig()
    if not cfg.noise_train and tuple(cfg.noise_snr) != tuple(defaults.noise_snr):
        raise ValueError("--noise-snr: needs --noise-train")
    if not degraded and (cfg.noise_p, cfg.noise_copies) != (defaults.noise_p, defaults.noise_copies):
        raise ValueError("--noise-p/--noise-copies: need --noise-train or --reverb-train")
    if degraded and (cfg.speaker_norm or cfg.crop_seconds is not None or cfg.extra_train or cfg.variants
                     or not 0 < cfg.noise_p <= 1 or cfg.noise_copies < 1 or len(cfg.noise_snr) != 2
                     or cfg.noise_snr[0] > cfg.noise_snr[1]
                     or cfg.reverb_train is not None and not (len(cfg.reverb_train) == 2
                                                              and 0 < cfg.reverb_train[0] <= cfg.reverb_train[1])):
        raise ValueError(f"--noise-train {cfg.noise_train} / --reverb-train {cfg.reverb_train}: one phase on the "
                         "corpus's own clips (not with --speaker-norm, --crop-seconds, --extra-train or masking "
                         f"variants), --noise-p in (0, 1] (got {cfg.noise_p}), --noise-copies >= 1 (got "
                         f"{cfg.noise_copies}), --noise-snr LOW,HIGH (got {cfg.noise_snr}), --reverb-train LOW,HIGH "
                         "seconds above 0")
    if "samsg_speech" in cfg.variants and cfg.extra_train:
        raise ValueError("--variants samsg_speech: not with --extra-train (the VAD runs on the corpus's own files)")
    if cfg.phase1_from:
        check_phase1_source(cfg)
    out.mkdir(parents=True, exist_ok=True)
    corpus = load_corpus(cfg.corpus, cfg.data)
    if cfg.quick:
        corpus = quick_corpus(corpus)
    check_init_source(cfg)
    check_resume(cfg, out)
    folds = protocols.make_folds(cfg.protocol, corpus.targets(), corpus.speakers(), cfg.seed)
    if cfg.max_folds:
        folds = folds[: cfg.max_folds]
    empty = [f.name for f in folds if len(f.train) == 0 or len(f.test) == 0]
    if empty:
        raise ValueError(f"{corpus.name} {cfg.protocol}: folds {empty} have no training or no test clips")
    unknown = sorted(set(cfg.only_folds) - {f.name for f in folds})
    if unknown:
        raise ValueError(f"--folds {','.join(unknown)}: not folds of {corpus.name} {cfg.protocol} "
                         f"({', '.join(f.name for f in folds)})")
    feature_config = cfg.feature_config()
    x = clip_features(cfg, corpus, cfg.seconds)
    extra_x = unlabelled_features(cfg)
    long_x = None if cfg.crop_seconds is None else clip_features(cfg, corpus, cfg.crop_seconds)
    added = added_clips(cfg, corpus)
    noisy_x = training_copies_of(cfg, corpus)
    speech = corpus_speech(corpus, cfg.seconds) if "samsg_speech" in cfg.variants else None
    y = torch.from_numpy(corpus.targets())
    n_params = models.n_parameters(models.build(cfg.model, len(corpus.labels), tuple(x.shape[1:]), **cfg.deit_options()))
    payload = {"run": dataclasses.asdict(cfg), "feature_config": feature_config.to_dict(), "labels": corpus.labels,
               "n_clips": len(corpus.clips), "input_shape": list(x.shape[1:]), "n_parameters": n_params,
               "added_training_clips": None if added is None else
               {"corpus": added.corpus.name, "n_clips": len(added.x),
                "per_label": dict(zip(corpus.labels, np.bincount(added.y.numpy(), minlength=len(corpus.labels)).tolist()))},
               "speaker_independent": protocols.is_speaker_independent(cfg.protocol),
               "folds": [f.name for f in folds], "environment": environment()}
    if cfg.distil_from:
        teacher = pathlib.Path(cfg.distil_from)
        teacher_config = read_run_config(teacher)
        teachers.check_teacher(teacher, teacher_config, payload)
        payload["teacher"] = {"members": [str(m) for m in teachers.teacher_members(teacher, teacher_config)],
                              "commit": teacher_config["environment"].get("commit")}  # provenance
    write_json(out / "config.json", payload)
    start = time.time()
    for index, fold in enumerate(folds):
        if not cfg.only_folds or fold.name in cfg.only_folds:
            run_fold(cfg, out, index, fold, x, y, corpus, extra_x, long_x, added, noisy_x, speech)
    summaries = summarise_run(cfg, out, corpus, folds)
    cost_path = out / "cost.json"
    cost = json.loads(cost_path.read_text()) if cost_path.exists() else {"sessions": []}
    cost["sessions"].append({"wall_seconds": time.time() - start, "threads": torch.get_num_threads(),
                             "ended": environment()["date"]})
    write_json(cost_path, cost)
    return summaries
