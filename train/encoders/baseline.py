"""Frozen pretrained encoder + head under a protocol: the encoder's pooled hidden states of every clip
(cached), then per fold a head fitted on the training clips only and scored on the test clips.

A run directory holds config.json, one fold_<name>.json per finished fold (a rerun skips them:
resumable) and summary.json. Heads: `probe` (one layer chosen by inner cross-validation, linear;
probe.py), `superb` (weighted sum of all layers, projector, linear; superb.py) and `finetune` (the
encoder cut after `depth` blocks, its top `tune` blocks trained with a head; finetune.py).
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
from ..records import environment, write_json
from . import finetune, layer_stats, probe, superb

HEADS = ("probe", "superb", "finetune")


def option(default, help: str):
    """A config field whose command-line option is generated from it (`train.encoders.__main__`)."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class BaselineConfig:
    encoder: str = option("whisper-tiny.en", "whisper-tiny.en | whisper-base | PATH (CTranslate2 model.bin folder, "
                                             "transformers Whisper folder, or OpenAI .pt)")
    corpus: str = option("emodb", "emodb | ravdess | manifest.csv | several joined by + (common labels)")
    protocol: str = option("loso", "loso | groups4 | spk5 (speaker-independent folds)")
    head: str = option("probe", "probe (one layer, linear) | superb (weighted sum of layers, projector, linear) | "
                                "finetune (top blocks of the cut encoder trained with a head)")
    depth: int = option(3, "finetune: blocks of the encoder kept")
    tune: int = option(1, "finetune: top blocks (of those kept) that train")
    seconds: float = option(2.0, "window each clip is fixed to (centre crop / zero pad), seconds")
    seed: int = option(0, "seed of the head's training")
    data: str | None = option(None, "data root (default: EDGE_SER_DATA or ../shared/data)")
    cache: str | None = option(None, "layer-statistics cache folder (default .cache/encoder_stats)")
    max_folds: int | None = option(None, "only the first folds, for a quick look (marked incomplete)")

    def cache_dir(self) -> pathlib.Path:
        return pathlib.Path(self.cache) if self.cache else pathlib.Path(__file__).resolve().parents[2] / ".cache" / "encoder_stats"


def load_inputs(cfg: BaselineConfig, corpus: Corpus) -> tuple[object, dict]:
    """What the head trains on, for every clip: pooled hidden states [N, n_states, 2, D] (probe,
    superb; cached on disk) or the frozen blocks' output frames [N, T, D] (finetune); and what
    produced them."""
    from .sources import load_encoder

    encoder, info = load_encoder(cfg.encoder)
    encoder.eval()
    features = encoder_feature_config(encoder)
    start = time.process_time()
    if cfg.head == "finetune":
        inputs = (encoder, finetune.frozen_frames(encoder, corpus, features, cfg.seconds, finetune_settings(cfg)))
    else:
        inputs = layer_stats.corpus_layer_stats(corpus, encoder, info.sha256, features, cfg.seconds, cfg.cache_dir())
    return inputs, {"encoder": info_dict(info), "features": features.to_dict(),
                    "layer_parameters": layer_parameters(encoder),
                    "probe_grid": {"c": list(probe.C_GRID), "inner_folds": probe.INNER_FOLDS},
                    "stats_cpu_seconds_this_process": time.process_time() - start}


def finetune_settings(cfg: BaselineConfig) -> finetune.FinetuneSettings:
    return finetune.FinetuneSettings(depth=cfg.depth, tune=cfg.tune)


def encoder_feature_config(encoder):
    """The runtime feature configuration the encoder was trained on (Whisper's front-end)."""
    from edge_ser.config import WHISPER_FEATURES

    return dataclasses.replace(WHISPER_FEATURES, n_mels=encoder.config.n_mels)


def encoder_label(name: str) -> str:
    """A published name as it is; a path by its last part (result files carry no machine paths)."""
    from .sources import PUBLISHED

    return name if name in PUBLISHED else pathlib.Path(name).name


def info_dict(info) -> dict:
    """What identifies the weights, without machine paths: published encoders by their pinned
    packages, others by file name; the sha256 says exactly which weights they were."""
    from .sources import PUBLISHED

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


def fit_fold(cfg: BaselineConfig, inputs, targets: np.ndarray, speakers: np.ndarray,
             fold: protocols.Fold, n_classes: int) -> dict:
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
                "choice": {"layer_weights": head.layer_weights().detach().numpy().round(4).tolist(),
                           "settings": dataclasses.asdict(superb.SuperbSettings())},
                "n_states_used": inputs.shape[1], "head_parameters": sum(p.numel() for p in head.parameters())}
    encoder, frames = inputs
    settings = finetune_settings(cfg)
    top = finetune.fit_top(encoder, frames[train], targets[train], n_classes, cfg.seed, settings)
    head_parameters = sum(p.numel() for name, p in top.named_parameters() if not name.startswith("blocks."))
    return {"probabilities": finetune.predict_top(top, frames[test]),
            "choice": {"settings": dataclasses.asdict(settings)},
            "n_states_used": settings.depth + 1, "head_parameters": head_parameters}


def run_fold(cfg: BaselineConfig, out: pathlib.Path, fold: protocols.Fold, inputs,
             targets: np.ndarray, speakers: np.ndarray, n_classes: int) -> dict:
    """One fold, or its stored result when it already ran."""
    path = out / f"fold_{fold.name}.json"
    if path.exists():
        return json.loads(path.read_text())
    start = time.process_time()
    torch.manual_seed(cfg.seed)
    fitted = fit_fold(cfg, inputs, targets, speakers, fold, n_classes)
    predicted = fitted.pop("probabilities").argmax(axis=1)
    matrix = metrics.confusion(targets[fold.test], predicted, n_classes)
    result = {"fold": fold.name, "scores": metrics.scores(matrix), "confusion": matrix.tolist(),
              "test_clips": fold.test.tolist(), "predicted": predicted.tolist(),
              "train_seconds": time.process_time() - start, **fitted}
    write_json(path, result)
    return result


def run(cfg: BaselineConfig, out: pathlib.Path, progress=print) -> dict:
    """The whole protocol; returns (and writes) the summary."""
    if cfg.head not in HEADS:
        raise ValueError(f"unknown head {cfg.head!r}: use one of {', '.join(HEADS)}")
    out.mkdir(parents=True, exist_ok=True)
    check_resume(cfg, out)
    corpus = load_corpus(cfg.corpus, cfg.data and pathlib.Path(cfg.data))
    targets, speakers = corpus.targets(), corpus.speakers()
    folds = protocols.make_folds(cfg.protocol, targets, speakers, cfg.seed)[: cfg.max_folds]
    inputs, produced = load_inputs(cfg, corpus)
    write_json(out / "config.json", {"run": dataclasses.asdict(cfg), "produced": produced,
                                     "environment": environment(), "n_clips": len(corpus.clips)})
    results = []
    for i, fold in enumerate(folds):
        results.append(run_fold(cfg, out, fold, inputs, targets, speakers, len(corpus.labels)))
        progress(f"fold {i + 1}/{len(folds)} {fold.name}: UA {100 * results[-1]['scores']['ua']:.1f}%")
    summary = metrics.summarise(results, corpus.labels)
    summary["complete"] = cfg.max_folds is None
    summary["train_seconds"] = float(sum(r["train_seconds"] for r in results))
    write_json(out / "summary.json", summary)
    return summary


def check_resume(cfg: BaselineConfig, out: pathlib.Path) -> None:
    """A run directory resumes only the run it was made for: every setting but the paths must match."""
    path = out / "config.json"
    if not path.exists():
        return
    stored = json.loads(path.read_text())["run"]
    differing = [k for k, v in dataclasses.asdict(cfg).items()
                 if k not in ("data", "cache", "max_folds") and stored.get(k) != v]
    if differing:
        raise ValueError(f"{out}: holds a run with other settings ({', '.join(differing)}); use another --out")
