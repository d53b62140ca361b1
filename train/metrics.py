"""Scores of a fold and of a protocol: UA (mean per-class recall), WA (accuracy), macro-F1,
confusion matrix; summaries carry mean ± std over folds and the pooled figures."""
from __future__ import annotations

import pathlib

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """[n_classes, n_classes] counts, rows = true class, columns = predicted."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def scores(matrix: np.ndarray) -> dict:
    """UA, WA and macro-F1 (fractions) from a confusion matrix; classes absent from the truth
    are left out of UA and F1 (a LOSO test speaker may lack a class)."""
    present = matrix.sum(axis=1) > 0
    tp = np.diag(matrix).astype(float)
    recall = tp[present] / matrix.sum(axis=1)[present]
    predicted = matrix.sum(axis=0)[present]
    precision = np.divide(tp[present], predicted, out=np.zeros_like(recall), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(recall),
                   where=precision + recall > 0)
    return {"ua": float(recall.mean()), "wa": float(tp.sum() / matrix.sum()), "macro_f1": float(f1.mean())}


def group_scores(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray, n_classes: int) -> dict:
    """`scores` of each group's clips (e.g. each corpus of a combined corpus): {group: scores}."""
    return {g: scores(confusion(y_true[groups == g], y_pred[groups == g], n_classes)) for g in sorted(set(groups.tolist()))}


def summarise(fold_results: list[dict], labels: list[str]) -> dict:
    """Per-fold results (each with "scores" and "confusion") -> mean/std over folds + pooled."""
    pooled = np.sum([np.array(r["confusion"]) for r in fold_results], axis=0)
    summary = {"n_folds": len(fold_results), "labels": labels, "pooled": scores(pooled),
               "pooled_confusion": pooled.tolist(), "fold_mean": {}, "fold_std": {}}
    for name in ("ua", "wa", "macro_f1"):
        values = np.array([r["scores"][name] for r in fold_results])
        summary["fold_mean"][name] = float(values.mean())
        summary["fold_std"][name] = float(values.std())
    return summary


def plot_confusion(matrix: np.ndarray, labels: list[str], path: pathlib.Path, title: str) -> None:
    """Row-normalised confusion matrix as a PNG, counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(labels), 0.8 + 0.7 * len(labels)))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                    color="white" if rates[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
