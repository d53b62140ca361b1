"""Collect encoder-baseline run directories into `benchmarks/results/<name>.{json,md}` and a confusion
PNG per run, in the shape the benchmark report reads (benchmarks/accuracy.py)."""
from __future__ import annotations

import json
import pathlib
import re

import numpy as np

from .. import metrics
from ..data import corpus_of, load_corpus
from ..fusion.model import MODELS
from ..records import write_json, write_text
from .baseline import encoder_label

RESULT_SETS = {"probe": "frozen", "superb": "frozen", "finetune": "finetuned", "fusion": "fusion"}  # benchmarks/accuracy.py reads these
HEAD_NAMES = {
    "probe": "mean+std of one layer (chosen by inner speaker-disjoint CV on the training speakers), standardised, "
             "logistic regression (C chosen with the layer)",
    "superb": "SUPERB head: softmax-weighted sum of all hidden states, linear projector (256), mean pooling, "
              "linear classifier; settings fixed in advance",
    "finetune": "the encoder cut after `depth` blocks (per fold: one above the layer the probe chose on that "
                "fold's training speakers), its top block fine-tuned with a head (LayerNorm, mean+std pooling, "
                "linear); the frozen blocks run once per clip; settings fixed in advance",
    "fusion": "finetune's cut and tuned block, then (fusion+*) cross-attention with an acoustic branch (1-D convs over "
              "the same log-mel, stride 2 to the encoder's rate), pooled by GAP (mean over real frames), SAP (mean "
              "over each VAD speech segment, segments combined) or both concatenated, linear; settings fixed in advance",
}


def model_name(run: dict) -> str:
    """"whisper-tiny.en+probe"; a fusion run by its named model and any non-default option."""
    if run["head"] != "fusion":
        return f"{encoder_label(run['encoder'])}+{run['head']}"
    own = MODELS[run["fusion"]].direction if run["fusion"] in MODELS else ""
    options = [o for o in (run.get("direction", ""), run.get("combine", "mean")) if o not in ("", own, "mean")]
    masks = f" + phase 2 {run['masking']}" if run.get("masking") else ""
    return f"{encoder_label(run['encoder'])} {run['fusion']}" + (f" ({', '.join(options)})" if options else "") + masks


def per_corpus(folds: list[dict], targets: np.ndarray, speakers: np.ndarray, n_classes: int) -> dict:
    """Pooled scores of each corpus of a combined corpus ({} for a single corpus)."""
    test = np.concatenate([f["test_clips"] for f in folds])
    predicted = np.concatenate([f["predicted"] for f in folds])
    groups = np.array([corpus_of(s) for s in speakers[test]])
    by_corpus = metrics.group_scores(targets[test], predicted, groups, n_classes)
    return by_corpus if len(by_corpus) > 1 else {}


def row(run_dir: pathlib.Path) -> dict:
    """One result row from a finished (or partial) run directory."""
    config = json.loads((run_dir / "config.json").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    folds = [json.loads(p.read_text()) for p in sorted(run_dir.glob("fold_*.json"))]
    run = config["run"]
    config = {**config, "run": portable(run)}
    layers = config["produced"]["layer_parameters"]
    deepest = max(f["n_states_used"] for f in folds)
    corpus = load_corpus(run["corpus"], run.get("data") and pathlib.Path(run["data"]))
    result = {
        "run": run_dir.name, "result_set": RESULT_SETS[run["head"]], "model": model_name(run),
        "head": HEAD_NAMES[run["head"]],
        "n_parameters": int(layers[deepest - 1] + max(f["head_parameters"] for f in folds)),
        "summary": summary, "config": config,
        "per_corpus": per_corpus(folds, corpus.targets(), corpus.speakers(), len(corpus.labels)),
        "choices": {f["fold"]: f["choice"] for f in folds},
        "train_seconds_per_protocol": summary["train_seconds"] + config["produced"]["encoder_cpu_seconds"],
    }
    return result


def portable(run: dict) -> dict:
    """A run's settings as a result file keeps them: no folders of this machine (data root, cache),
    encoders and manifests by name."""
    kept = {k: v for k, v in run.items() if k not in ("data", "cache")}
    kept["encoder"] = encoder_label(run["encoder"])
    kept["corpus"] = "+".join(pathlib.Path(part).name if part.endswith(".csv") else part for part in run["corpus"].split("+"))
    return kept


def markdown(name: str, rows: list[dict], layers_png: str | None = None) -> str:
    lines = [f"# {name}: pretrained encoder + head", "",
             "Encoder features: the runtime's Whisper front-end (`edge_ser.features.log_mel`, "
             "`WHISPER_FEATURES` at the encoder's band count), clip fixed to the run's window, encoder with its positional table sliced to "
             "the window (no 30-s padding), weights checked by sha256. Heads are fitted on the training fold only; "
             "every choice (a probe's layer and C, and with it a fine-tuned model's depth) is made by inner "
             "speaker-disjoint cross-validation on the training speakers. Cost: the encoder's pass over every clip "
             "plus the heads' fitting, CPU seconds on one thread.", "",
             "| model | corpus | protocol | window | params used | UA % | WA % | macro-F1 % | fold UA % | per corpus UA % | "
             "choices | cost (thread-min) |", "|---|---|---|---|---:|---:|---:|---:|---|---|---|---:|"]
    for r in rows:
        s, run = r["summary"], r["config"]["run"]
        pooled = s["pooled"]
        corpora = ", ".join(f"{c} {100 * v['ua']:.1f}" for c, v in r["per_corpus"].items()) or "-"
        lines.append(f"| {r['model']} | {run['corpus']} | {run['protocol']}{'' if s['complete'] else ' (incomplete)'} | "
                     f"{run['seconds']:g} s | {r['n_parameters'] / 1e6:.2f} M | {100 * pooled['ua']:.1f} | "
                     f"{100 * pooled['wa']:.1f} | {100 * pooled['macro_f1']:.1f} | {100 * s['fold_mean']['ua']:.1f} ± "
                     f"{100 * s['fold_std']['ua']:.1f} | {corpora} | {choice_summary(r)} | "
                     f"{r['train_seconds_per_protocol'] / 60:.1f} |")
    lines += ["", "Heads:"] + [f"- `{k}`: {v}" for k, v in HEAD_NAMES.items()]
    if layers_png:
        lines += ["", f"Where the emotion sits, per layer (the probe's inner CV on training speakers, best C per layer, "
                      f"mean over folds): [{layers_png}]({layers_png})"]
    lines += ["", "Confusion matrices: " + ", ".join(f"[{r['confusion_png']}]({r['confusion_png']})" for r in rows), ""]
    return "\n".join(lines)


def choice_summary(r: dict) -> str:
    """Which layers the probe chose across folds (e.g. "layer 2 x7, 3 x3"), or the SUPERB weights' peak."""
    choices = list(r["choices"].values())
    if "layer" in choices[0]:
        layers = [c["layer"] for c in choices]
        return "layer " + ", ".join(f"{layer} x{layers.count(layer)}" for layer in sorted(set(layers)))
    if "depth" in choices[0]:
        depths = [c["depth"] for c in choices]
        return "blocks kept " + ", ".join(f"{d} x{depths.count(d)}" for d in sorted(set(depths)))
    mean = np.mean([c["layer_weights"] for c in choices], axis=0)
    return f"weights peak at layer {int(mean.argmax())} ({mean.max():.2f})"


def layer_curve(r: dict) -> np.ndarray | None:
    """A probe row's inner-CV UA per hidden state (best C of each), averaged over folds; None for
    other heads. Training speakers only: where the information sits, not a test score."""
    grids = [c["grid"] for c in r["choices"].values() if "grid" in c]
    if not grids:
        return None
    n_states = 1 + max(int(k.split(",")[0]) for k in grids[0])
    best = [[max(v for k, v in g.items() if int(k.split(",")[0]) == layer) for layer in range(n_states)] for g in grids]
    return np.mean(best, axis=0)


def plot_layers(rows: list[dict], path: pathlib.Path, title: str) -> bool:
    """Inner-CV UA per hidden state of every probe row, one line each; False when there is none."""
    curves = [(r["model"], layer_curve(r)) for r in rows]
    curves = [(m, c) for m, c in curves if c is not None]
    if not curves:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for model, curve in curves:
        ax.plot(range(len(curve)), 100 * curve, marker="o", label=model.split("+")[0])
    ax.set_xlabel("hidden state (0 = conv stem, i = after block i)")
    ax.set_ylabel("inner-CV UA % (training speakers)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)  # a reader never sees half a picture
    return True


def write_results(name: str, run_dirs: list[pathlib.Path], out_dir: pathlib.Path) -> pathlib.Path:
    """`<out_dir>/<name>.json`, `.md` and one confusion PNG per run; returns the .md path."""
    rows = [row(pathlib.Path(d)) for d in run_dirs]
    out_dir.mkdir(parents=True, exist_ok=True)
    for r in rows:
        s = r["summary"]
        r["confusion_png"] = f"{name}_{re.sub(r'[^A-Za-z0-9._-]+', '_', r['model'])}_confusion.png"
        metrics.plot_confusion(s["pooled_confusion"], s["labels"], out_dir / r["confusion_png"],
                               f"{name} {r['model']}: pooled UA {100 * s['pooled']['ua']:.1f}% ({s['n_folds']} folds)")
    layers_png = f"{name}_layers.png"
    if not plot_layers(rows, out_dir / layers_png, f"{name}: linear probe per layer, inner CV"):
        (out_dir / layers_png).unlink(missing_ok=True)  # a stale plot of an earlier report
        layers_png = None
    write_json(out_dir / f"{name}.json", {"name": name, "results": rows})
    md = out_dir / f"{name}.md"
    write_text(md, markdown(name, rows, layers_png))
    return md
