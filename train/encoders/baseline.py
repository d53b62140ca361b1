"""Frozen pretrained encoder + head under a protocol: the encoder's pooled hidden states of every clip
(cached), then per fold a head fitted on the training clips only and scored on the test clips.

A run directory holds config.json, one fold_<name>.json per finished fold (a rerun skips them:
resumable) and summary.json. Heads: `probe` (one layer chosen by inner cross-validation, linear;
probe.py), `superb` (weighted sum of all layers, projector, linear; superb.py), `finetune` (the
encoder cut after `depth` blocks, its top `tune` blocks trained with a head; finetune.py) and
`fusion` (the same cut, fused by cross-attention with an acoustic branch, pooled by GAP and/or
SAP; train/fusion/).
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import numpy as np
import torch

from .. import metrics, protocols
from ..data import Corpus, load_corpus
from ..fitting import predict_probabilities
from ..fusion import head as fusion_head
from ..fusion.fit import FusionSettings
from ..fusion.head import fusion_config
from ..fusion.inputs import EncodedWindows
from ..fusion.samsg import VARIANTS as MASKING_VARIANTS
from ..fusion.samsg import MaskingSettings
from ..options import option
from ..records import environment, write_json
from . import finetune, layer_stats, probe, superb
from .sources import PUBLISHED, load_encoder

HEADS = ("probe", "superb", "finetune", "fusion")
TUNED_HEADS = ("finetune", "fusion")  # heads that cut the encoder and train its top blocks
MIN_SECONDS, MAX_SECONDS = 0.1, 30.0  # a few encoder frames .. the positional table


@dataclasses.dataclass(frozen=True)
class BaselineConfig:
    encoder: str = option("whisper-tiny.en", "whisper-tiny.en | whisper-base | PATH (CTranslate2 model.bin folder, "
                                             "transformers Whisper folder, or OpenAI .pt)")
    corpus: str = option("emodb", "emodb | ravdess | manifest.csv | several joined by + (common labels)")
    protocol: str = option("loso", "loso | groups4 | spk5 | cross (speaker-independent folds) | all (finetune, fusion "
                                   "with --depth: one model on every clip, the one that ships; its scores are on "
                                   "its own training clips)")
    head: str = option("probe", "probe (one layer, linear) | superb (weighted sum of layers, projector, linear) | "
                                "finetune (top blocks of the cut encoder trained with a head) | "
                                "fusion (finetune's cut, fused with an acoustic branch by cross-attention)")
    fusion: str = option("gated+gap+sap", "fusion: a named model of train.fusion.model.MODELS (encoder+gap, "
                                           "encoder+sap, encoder+gap+sap, fusion+gap, fusion+sap, fusion+gap+sap, gated+gap, "
                                           "gated+sap, gated+gap+sap)")
    direction: str = option("", "fusion: a2s (acoustic frames query the encoder's) | s2a | both (gated sum); "
                                "empty: the named model's own")
    combine: str = option("mean", "fusion with SAP: segments combined by mean | attention")
    masking: str = option("", "fusion: phase 2 on the originals plus copies masked by none (the originals again) | "
                              "random | samsg (frames under the top rolled-out tokens); empty: no phase 2")
    phase1_from: str | None = option(None, "fusion with --masking: the fusion run (same settings) whose fold models "
                                           "are phase 1, instead of training them again")
    depth: int = option(0, "finetune, fusion: blocks of the encoder kept; 0 = per fold, one block above the layer the "
                           "probe chose on that fold's training speakers (needs --probe-run)")
    tune: int = option(1, "finetune, fusion: top blocks (of those kept) that train")
    probe_run: str | None = option(None, "finetune, fusion with --depth 0: the probe run (same encoder, corpus, protocol, "
                                         "window) whose per-fold layer choices set the depth")
    seconds: float = option(2.0, "window each clip is fixed to (centre crop / zero pad), seconds")
    seed: int = option(0, "seed of the head's training")
    data: str | None = option(None, "data root (default: EDGE_SER_DATA or ../shared/data)")
    cache: str | None = option(None, "layer-statistics cache folder (default .cache/encoder_stats)")
    max_folds: int | None = option(None, "only the first folds, for a quick look (marked incomplete)")

    def __post_init__(self):
        problems = []
        if self.head not in HEADS:
            problems.append(f"--head {self.head}: use one of {', '.join(HEADS)}")
        if self.protocol == "all":
            if self.head not in TUNED_HEADS or not self.depth:
                problems.append("--protocol all trains the model that ships: only for finetune or fusion with --depth")
        elif self.protocol not in protocols.SPEAKER_INDEPENDENT:
            problems.append(f"--protocol {self.protocol}: use a speaker-independent one "
                            f"({', '.join(protocols.SPEAKER_INDEPENDENT)}), or all")
        if not MIN_SECONDS <= self.seconds <= MAX_SECONDS:
            problems.append(f"--seconds {self.seconds:g}: must be in {MIN_SECONDS:g}..{MAX_SECONDS:g} "
                            "(Whisper's positional table covers 30 s)")
        if self.tune < 1 or self.depth < 0 or (self.depth and self.tune > self.depth):
            problems.append(f"--depth {self.depth} --tune {self.tune}: need 1 <= tune <= depth (or depth 0)")
        if self.head == "fusion":
            fusion_config(self.fusion, self.direction, self.combine)  # raises on unknown names
            if self.masking not in ("", *MASKING_VARIANTS):
                problems.append(f"--masking {self.masking}: use one of {', '.join(MASKING_VARIANTS)} (or none given)")
            if self.phase1_from and not self.masking:
                problems.append("--phase1-from is for phase 2: give --masking")
        if self.head in TUNED_HEADS and not self.depth and not self.probe_run:
            problems.append("--depth 0 takes each fold's depth from a probe run: give --probe-run")
        if self.max_folds is not None and self.max_folds < 1:
            problems.append(f"--max-folds {self.max_folds}: must be at least 1")
        if problems:
            raise ValueError("; ".join(problems))

    def cache_dir(self) -> pathlib.Path:
        return pathlib.Path(self.cache) if self.cache else pathlib.Path(__file__).resolve().parents[2] / ".cache" / "encoder_stats"


def head_settings(cfg: BaselineConfig) -> dict:
    """The head's fixed settings, recorded with the run and compared on resume."""
    if cfg.head == "probe":
        return {"c_grid": list(probe.C_GRID), "inner_folds": probe.INNER_FOLDS}
    if cfg.head == "superb":
        return dataclasses.asdict(superb.SuperbSettings())
    if cfg.head == "fusion":
        fixed = {**dataclasses.asdict(FusionSettings()),
                 "model": dataclasses.asdict(fusion_config(cfg.fusion, cfg.direction, cfg.combine))}
        if cfg.masking:
            fixed["masking"] = dataclasses.asdict(MaskingSettings())
    else:
        fixed = dataclasses.asdict(finetune.FinetuneSettings(depth=max(cfg.depth, cfg.tune), tune=cfg.tune))
    return {**fixed, "depth": cfg.depth or "per fold: the probe's layer + 1"}


def load_inputs(cfg: BaselineConfig, corpus: Corpus) -> tuple[object, dict]:
    """What the heads train on, for every clip: pooled hidden states [N, n_states, 2, D] (probe,
    superb; cached on disk) or the frozen blocks' output frames (finetune); and what produced them."""
    encoder, info = load_encoder(cfg.encoder)
    encoder.eval()
    if cfg.depth > encoder.config.n_layers:
        raise ValueError(f"--depth {cfg.depth}: {encoder_label(cfg.encoder)} has {encoder.config.n_layers} blocks")
    features = encoder_feature_config(encoder)
    produced = {"encoder": info_dict(info), "features": features.to_dict(), "head_settings": head_settings(cfg),
                "layer_parameters": layer_parameters(encoder)}
    if cfg.head == "finetune":
        return finetune.FrozenFrames(encoder, corpus, features, cfg.seconds), produced
    if cfg.head == "fusion":
        return EncodedWindows(encoder, corpus, features, cfg.seconds), produced
    stats, cpu_seconds = layer_stats.corpus_layer_stats(corpus, encoder, info.sha256, features, cfg.seconds,
                                                        cfg.cache_dir())
    return stats, {**produced, "encoder_cpu_seconds": cpu_seconds}


def encoder_feature_config(encoder):
    """The runtime feature configuration the encoder was trained on (Whisper's front-end)."""
    from edge_ser.config import WHISPER_FEATURES

    return dataclasses.replace(WHISPER_FEATURES, n_mels=encoder.config.n_mels)


def encoder_label(name: str) -> str:
    """A published name as it is; a path by its last part (result files carry no machine paths)."""
    return name if name in PUBLISHED else pathlib.Path(name).name


def info_dict(info) -> dict:
    """What identifies the weights, without machine paths: published encoders by their pinned
    packages, others by file name; the sha256 says exactly which weights they were."""
    published = PUBLISHED.get(info.name)
    source = " + ".join(part.pip for part in published.parts) if published else pathlib.Path(info.source).name
    return {"name": encoder_label(info.name), "source": source, "format": info.format, "sha256": info.sha256,
            "config": dataclasses.asdict(info.config)}


def layer_parameters(encoder) -> list[int]:
    """Parameters of the encoder cut after each hidden state: [stem + positions, + block 1, ...];
    the last entry includes the final LayerNorm (hidden state n_layers has it applied)."""
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    blocks = list(encoder.blocks)
    stem = count(encoder) - sum(count(b) for b in blocks) - count(encoder.ln_post)
    cumulative = np.cumsum([stem] + [count(b) for b in blocks]).tolist()
    cumulative[-1] += count(encoder.ln_post)
    return [int(c) for c in cumulative]


def fold_depth(cfg: BaselineConfig, fold: protocols.Fold, n_layers: int) -> int:
    """Blocks kept for fine-tuning this fold: `--depth`, or one above the layer the probe chose
    on this fold's training speakers (the last block when it chose the last layer)."""
    if cfg.depth:
        return cfg.depth
    path = pathlib.Path(cfg.probe_run) / f"fold_{fold.name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the probe run has no fold {fold.name}")
    return min(json.loads(path.read_text())["choice"]["layer"] + 1, n_layers)


def check_probe_run(cfg: BaselineConfig) -> None:
    """The probe run that sets the depths must be of the same encoder, corpus, protocol and window."""
    if cfg.head not in TUNED_HEADS or cfg.depth:
        return
    path = pathlib.Path(cfg.probe_run) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: --probe-run is not a run directory")
    stored = json.loads(path.read_text())["run"]
    differing = [k for k in ("encoder", "corpus", "protocol", "seconds") if stored.get(k) != getattr(cfg, k)]
    if stored.get("head") != "probe" or differing:
        raise ValueError(f"--probe-run {cfg.probe_run}: not a probe run of this encoder, corpus, protocol and "
                         f"window ({', '.join(differing) or 'head'} differ)")


# What a phase-1 source run must share with a masking run (all but the masking and paths).
PHASE1_SHARED = ("encoder", "corpus", "protocol", "head", "depth", "tune", "probe_run", "seconds", "seed")


def check_phase1_run(cfg: BaselineConfig) -> None:
    """`--phase1-from` must be a fusion run of the same settings (its phase 1 is this run's)."""
    if not cfg.phase1_from:
        return
    path = pathlib.Path(cfg.phase1_from) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: --phase1-from is not a run directory")
    stored = json.loads(path.read_text())["run"]
    differing = [k for k in PHASE1_SHARED if stored.get(k) != getattr(cfg, k)]
    theirs = fusion_config(stored.get("fusion", cfg.fusion), stored.get("direction") or None, stored.get("combine", "mean"))
    if theirs != fusion_config(cfg.fusion, cfg.direction or None, cfg.combine):
        differing.append("fusion model")  # compared as built: "" and the named model's own direction agree
    if differing:
        raise ValueError(f"--phase1-from {cfg.phase1_from}: its phase 1 was trained differently "
                         f"({', '.join(differing)})")


def fit_fold(cfg: BaselineConfig, inputs, targets: np.ndarray, speakers: np.ndarray,
             fold: protocols.Fold, n_classes: int, out: pathlib.Path | None = None) -> dict:
    """The head of `cfg.head` fitted on the fold's training clips; probabilities of its test clips."""
    train, test = fold.train, fold.test
    if cfg.head == "probe":
        probabilities, choice = probe.probe_fold(inputs[train], targets[train], speakers[train], inputs[test], n_classes)
        return {"probabilities": probabilities, "choice": dataclasses.asdict(choice),
                "n_states_used": choice.layer + 1, "head_parameters": int((2 * inputs.shape[-1] + 1) * n_classes)}
    if cfg.head == "superb":
        means = inputs[:, :, 0]
        head, scaler = superb.fit_superb(means[train], targets[train], n_classes, cfg.seed)
        return {"probabilities": superb.predict_superb(head, scaler, means[test]),
                "choice": {"layer_weights": head.layer_weights().detach().numpy().round(4).tolist()},
                "n_states_used": inputs.shape[1], "head_parameters": sum(p.numel() for p in head.parameters())}
    depth = fold_depth(cfg, fold, inputs.encoder.config.n_layers)
    if cfg.head == "fusion":
        config = fusion_config(cfg.fusion, cfg.direction, cfg.combine)
        return fusion_head.fit_fold(inputs, config, depth, cfg.tune, targets, train, test, n_classes, cfg.seed,
                             checkpoints=out / "checkpoints" if out is not None else None, fold=fold.name,
                             masking=cfg.masking,
                             phase1_from=pathlib.Path(cfg.phase1_from) / "checkpoints" if cfg.phase1_from else None)
    settings = finetune.FinetuneSettings(depth=depth, tune=cfg.tune)
    frames = inputs.upto(settings.depth - settings.tune)
    top = finetune.fit_top(inputs.encoder, frames[train], targets[train], n_classes, cfg.seed, settings)
    head_parameters = sum(p.numel() for name, p in top.named_parameters() if not name.startswith("blocks."))
    return {"probabilities": predict_probabilities(top, frames[test]), "choice": {"depth": settings.depth},
            "n_states_used": settings.depth + 1, "head_parameters": head_parameters}


def run_fold(cfg: BaselineConfig, out: pathlib.Path, fold: protocols.Fold, inputs,
             targets: np.ndarray, speakers: np.ndarray, n_classes: int) -> dict:
    """One fold, or its stored result when it already ran."""
    path = out / f"fold_{fold.name}.json"
    if path.exists():
        return json.loads(path.read_text())
    start = time.process_time()
    torch.manual_seed(cfg.seed)
    fitted = fit_fold(cfg, inputs, targets, speakers, fold, n_classes, out)
    predicted = fitted.pop("probabilities").argmax(axis=1)
    matrix = metrics.confusion(targets[fold.test], predicted, n_classes)
    result = {"fold": fold.name, "scores": metrics.scores(matrix), "confusion": matrix.tolist(),
              "test_clips": fold.test.tolist(), "predicted": predicted.tolist(),
              "train_seconds": time.process_time() - start, **fitted}
    write_json(path, result)
    return result


def run(cfg: BaselineConfig, out: pathlib.Path, progress=print) -> dict:
    """The whole protocol; returns (and writes) the summary."""
    check_probe_run(cfg)
    check_phase1_run(cfg)
    corpus = load_corpus(cfg.corpus, cfg.data and pathlib.Path(cfg.data))
    targets, speakers = corpus.targets(), corpus.speakers()
    folds = protocols.make_folds(cfg.protocol, targets, speakers, cfg.seed)[: cfg.max_folds]
    inputs, produced = load_inputs(cfg, corpus)
    out.mkdir(parents=True, exist_ok=True)
    check_resume(cfg, produced, out)
    config = {"run": dataclasses.asdict(cfg), "produced": produced, "environment": environment(),
              "n_clips": len(corpus.clips)}
    write_json(out / "config.json", config)  # before any fold: a resume is checked against it
    results = []
    for i, fold in enumerate(folds):
        results.append(run_fold(cfg, out, fold, inputs, targets, speakers, len(corpus.labels)))
        progress(f"fold {i + 1}/{len(folds)} {fold.name}: UA {100 * results[-1]['scores']['ua']:.1f}%")
    summary = metrics.summarise(results, corpus.labels)
    summary["complete"] = cfg.max_folds is None
    summary["train_seconds"] = float(sum(r["train_seconds"] for r in results))
    if cfg.head in TUNED_HEADS:  # the frozen blocks' pass, counted once however many cuts it needed
        config["produced"]["encoder_cpu_seconds"] = inputs.cpu_seconds
    write_json(out / "config.json", config)
    write_json(out / "summary.json", summary)
    return summary


def check_resume(cfg: BaselineConfig, produced: dict, out: pathlib.Path) -> None:
    """A run directory resumes only the run it was made for: the same settings (but paths), the
    same weights and the same fixed head settings."""
    path = out / "config.json"
    if not path.exists():
        return
    stored = json.loads(path.read_text())
    defaults = dataclasses.asdict(BaselineConfig())  # runs from before a field existed had its default
    differing = [k for k, v in dataclasses.asdict(cfg).items()
                 if k not in ("data", "cache", "max_folds") and stored["run"].get(k, defaults[k]) != v]
    differing += [k for k in ("head_settings", "features") if stored["produced"].get(k) != produced[k]]
    if stored["produced"]["encoder"]["sha256"] != produced["encoder"]["sha256"]:
        differing.append("encoder weights")
    if differing:
        raise ValueError(f"{out}: holds a run with other settings ({', '.join(differing)}); use another --out")
