"""Are the packaged models' scores probabilities? Reliability diagrams, expected calibration
error (ECE) and a softmax temperature, from the cross-validation logits `export encoder` kept:

    python -m export calibrate [--candidates runs/encoder_export] [--ship-to edge_ser/models]

For each packaged model (the choice `python -m export package` recorded), the shipped file's
logits on every fold's test speakers are scored as they are (temperature 1) and cross-fitted:
fold k's clips are scaled by the temperature fitted on the other folds' test logits only, so no
clip helps fit the temperature it is scored with. The temperature that ships is the one fitted
on every fold's test logits (held-out predictions of the fold models, as the every-clip model's
would be). It is written into the packaged file's metadata (`edge_ser.temperature`, applied by
the runtime) and card; figures and diagrams go to benchmarks/results/calibration.*.
A temperature does not change any label: UA and WA stay as they were.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np

from edge_ser.contract import MAX_TEMPERATURE, MIN_TEMPERATURE
from edge_ser.recognizer import softmax  # the runtime's own: scores are judged as it computes them

from train.records import environment, write_json, write_text

N_BINS = 10  # reliability-diagram bins of equal width over the top score
GOLDEN = (np.sqrt(5) - 1) / 2


def reliability(probs: np.ndarray, truth: np.ndarray, bins: int = N_BINS) -> dict:
    """Probabilities [N, C] and true classes [N] -> the reliability diagram's bins (top score in
    (lo, hi]: count, mean top score, accuracy) and the ECE: the count-weighted mean gap between
    a bin's accuracy and its mean top score."""
    top, correct = probs.max(axis=1), probs.argmax(axis=1) == truth
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, top, side="left") - 1, 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        confidence = float(top[inside].mean()) if n else None
        accuracy = float(correct[inside].mean()) if n else None
        if n:
            ece += n / len(truth) * abs(accuracy - confidence)
        rows.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": n,
                     "confidence": confidence, "accuracy": accuracy})
    return {"ece": float(ece), "mean_confidence": float(top.mean()), "accuracy": float(correct.mean()),
            "bins": rows}


def nll(logits: np.ndarray, truth: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the true classes under softmax(logits / temperature)."""
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(truth)), truth]))


def fit_temperature(logits: np.ndarray, truth: np.ndarray, iterations: int = 60) -> float:
    """The temperature in the contract's range that minimises the NLL of `truth`: golden-section
    search over log T (the NLL is convex in 1/T, hence unimodal in log T)."""
    if len(truth) == 0:
        raise ValueError("fit_temperature needs at least one clip")
    lo, hi = np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE)
    for _ in range(iterations):
        a, b = hi - GOLDEN * (hi - lo), lo + GOLDEN * (hi - lo)
        if nll(logits, truth, np.exp(a)) <= nll(logits, truth, np.exp(b)):
            hi = b
        else:
            lo = a
    return float(np.exp((lo + hi) / 2))


def cross_fitted(logits: np.ndarray, truth: np.ndarray, folds: np.ndarray) -> tuple[np.ndarray, dict]:
    """Held-out logits [N, C] of cross-validation, their classes [N] and fold ids [N] ->
    (probabilities [N, C], {fold: temperature}), each fold scaled by the temperature fitted on
    the other folds only."""
    probs, temperatures = np.empty(logits.shape, np.float64), {}
    for fold in sorted(set(folds.tolist())):
        test = folds == fold
        temperatures[fold] = fit_temperature(logits[~test], truth[~test])
        probs[test] = softmax(logits[test] / temperatures[fold])
    return probs, temperatures


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """One file's logits on every fold's test clips, with their classes, corpora and folds."""

    logits: np.ndarray  # float [N, C]
    truth: np.ndarray  # int [N]
    corpus: np.ndarray  # str [N]
    fold: np.ndarray  # str [N]


def calibration(held_out: HeldOut) -> dict:
    """Pooled and per-corpus reliability as exported (T = 1) and cross-fitted, the fold
    temperatures, and the temperature to ship (fitted on every held-out clip)."""
    raw = softmax(held_out.logits)
    fitted, fold_temperatures = cross_fitted(held_out.logits, held_out.truth, held_out.fold)
    groups = {"pooled": np.ones(len(held_out.truth), bool),
              **{c: held_out.corpus == c for c in sorted(set(held_out.corpus.tolist()))}}
    return {"temperature": fit_temperature(held_out.logits, held_out.truth),
            "fold_temperatures": fold_temperatures, "clips": int(len(held_out.truth)),
            "before": {g: reliability(raw[m], held_out.truth[m]) for g, m in groups.items()},
            "after": {g: reliability(fitted[m], held_out.truth[m]) for g, m in groups.items()}}


def card_entry(result: dict) -> dict:
    """The model card's `calibration` section: what the temperature is and what it did."""
    def ece(side):
        return {g: round(r["ece"], 4) for g, r in result[side].items()}

    return {"temperature": round(result["temperature"], 4),
            "fitted_on": f"the {result['clips']} held-out clips of the {len(result['fold_temperatures'])} "
                         "cross-validation folds (fold models' "
                         "test logits of the shipped file's format)",
            "ece_before": ece("before"), "ece_after_cross_fitted": ece("after"),
            "note": f"expected calibration error over {N_BINS} equal-width bins of the top score; 'after' scales "
                    "each fold by a temperature fitted on the other folds only"}


# --- the packaged models ---------------------------------------------------------------------


def held_out(candidate_dir: pathlib.Path, variant: str, runs_dir: pathlib.Path) -> HeldOut:
    """The held-out logits of one candidate's `variant` file over its cross-validation folds
    (`export encoder`'s logits.npz), with the classes and corpora of the clips, listed from the
    corpus as `export encoder` listed them (its metadata only: no audio is read)."""
    from train.data import corpus_of, load_corpus

    from .encoder_models import FusionRun, fold_splits

    candidate = json.loads((candidate_dir / "candidate.json").read_text())
    run = FusionRun.read(runs_dir / candidate["cv_run"])
    corpus = load_corpus(run.corpus, run.data and pathlib.Path(run.data))
    targets, speakers, splits = corpus.targets(), corpus.speakers(), fold_splits(run, corpus)
    parts = []
    for fold in run.folds:
        test = splits[fold].test
        with np.load(candidate_dir / fold / "logits.npz") as saved:
            logits = saved[variant]
        if len(logits) != len(test):
            raise ValueError(f"{candidate_dir / fold}: {len(logits)} logits for {len(test)} test clips")
        parts.append((logits, targets[test], np.array([corpus_of(s) for s in speakers[test]]),
                      np.full(len(test), fold)))
    return HeldOut(*(np.concatenate(p) for p in zip(*parts)))


# --- results ---------------------------------------------------------------------------------


def table(results: dict[str, dict]) -> str:
    """Markdown: per packaged model and corpus, ECE and mean top score against accuracy, before
    and after the temperature."""
    lines = ["| model | clips | temperature | corpus | accuracy | mean top score, T = 1 | ECE, T = 1 | "
             "mean top score, cross-fitted T | ECE, cross-fitted T |", "|---" * 9 + "|"]
    for role, r in results.items():
        for group, before in r["before"].items():
            after = r["after"][group]
            lines.append(f"| {role} ({r['file']}) | {sum(b['count'] for b in before['bins'])} | "
                         f"{r['temperature']:.2f} | {group} | {100 * before['accuracy']:.1f} % | "
                         f"{before['mean_confidence']:.3f} | {before['ece']:.3f} | {after['mean_confidence']:.3f} | "
                         f"{after['ece']:.3f} |")
    return "\n".join(lines)


def plot(results: dict[str, dict], path: pathlib.Path) -> None:
    """Reliability diagrams, one panel per packaged model: accuracy against mean top score per
    bin, before and after the temperature, with the diagonal a calibrated model follows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 4.2), squeeze=False)
    for ax, (role, r) in zip(axes[0], results.items()):
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8)
        for side, label in (("before", "T = 1"), ("after", f"cross-fitted T (ships {r['temperature']:.2f})")):
            bins = [b for b in r[side]["pooled"]["bins"] if b["count"]]
            ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o",
                    label=f"{label}: ECE {r[side]['pooled']['ece']:.3f}")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("mean top score in bin")
        ax.set_ylabel("accuracy in bin")
        ax.set_title(f"{role} ({r['file']}), {r['clips']} held-out clips", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_results(results: dict[str, dict], results_to: pathlib.Path) -> None:
    """benchmarks/results/calibration.{json,md,png}."""
    write_json(results_to / "calibration.json", {"bins": N_BINS, "models": results, "environment": environment()})
    write_text(results_to / "calibration.md",
               "# Calibration of the packaged models\n\n"
               "Held-out logits of the 5 speaker-disjoint folds (EmoDB + RAVDESS), the shipped file's format. "
               f"ECE: expected calibration error over {N_BINS} equal-width bins of the top score. Cross-fitted: "
               "each fold scaled by the temperature fitted on the other folds only; the temperature that ships "
               "(fitted on every fold) is in the model's metadata and the runtime applies it.\n\n"
               f"{table(results)}\n\n![reliability diagrams](calibration.png)\n")
    plot(results, results_to / "calibration.png")
