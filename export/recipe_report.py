"""The default model's cross-validated figures as benchmarks/results/default_model.{json,md,png}:
rows in the accuracy-table shape `benchmarks/accuracy.py` reads, a short markdown table and the
pooled confusion matrix of the shipped INT8 model. A candidate recipe (card["candidate"], not
shipped, or no longer) writes default_model_<candidate>.* and its rows carry its name."""
from __future__ import annotations

import pathlib

import numpy as np

from train import metrics
from train.records import write_json

NAME = "default_model"


def name_of(card: dict) -> str:
    """Results file stem: default_model, or default_model_<candidate>."""
    return NAME if card.get("candidate") is None else f"{NAME}_{card['candidate']}"


def model_label(card: dict, model: str) -> str:
    """A candidate's rows must not read as the packaged model's in the accuracy table."""
    if card.get("candidate") is None:
        return model
    return f"{model.replace(' (shipped)', '')} [{card['candidate']}]"


def rows(card: dict) -> list[dict]:
    """One accuracy row per model and test subset (both corpora pooled, then each corpus)."""
    cv, out = card["cross_validation"], []
    folds = len(cv["folds"])
    for model, s in cv["models"].items():
        subsets = {card["training_data"]["corpus"]: s["pooled"]}
        subsets.update({f"{c} (of {card['training_data']['corpus']})": v for c, v in s["per_corpus"].items()})
        for corpus, scores in subsets.items():
            pooled = corpus == card["training_data"]["corpus"]
            summary = {"pooled": scores, "n_folds": folds, "labels": cv["labels"], "complete": True}
            if pooled:
                summary.update(fold_mean={"ua": s["fold_ua_mean"]}, fold_std={"ua": s["fold_ua_std"]},
                               pooled_confusion=s.get("confusion", []))
            out.append({"model": model_label(card, model), "result_set": "default recipe",
                        "n_parameters": card["model"]["teacher_parameters" if "teacher" in model else "parameters"],
                        "summary": summary,
                        "config": {"run": {"corpus": corpus, "protocol": "spk5"}, "environment": {"date": card["date"]}},
                        "train_seconds_per_protocol": card["cost"]["cv_thread_seconds"] if pooled else None})
    return out


def markdown(card: dict) -> str:
    cv, files, name = card["cross_validation"], card.get("files", {}), name_of(card)
    corpora = sorted({c for s in cv["models"].values() for c in s["per_corpus"]})
    title = ("The CNN student (`python -m export default`; a candidate of `python -m export package`)"
             if card.get("candidate") is None else f"A variant of the CNN student's recipe: `{card['candidate']}`")
    lines = [f"# {title}, {card['date']}", "",
             f"Recipe: `{card['recipe']}`. {card['task']}; labels: {', '.join(cv['labels'])}.", "",
             f"Cross-validation: {cv['protocol']}. Scores pool the test speakers of the folds "
             f"({', '.join(cv['folds'])}); every fold ran the whole recipe (teacher, distillation, INT8) "
             "on its training speakers only. " + ("The shipped model is" if card.get("candidate") is None else
                                                   "The model it would ship is") + " the same recipe trained on every clip.", "",
             "| model | params | UA % | WA % | macro-F1 % | fold UA % | " + " | ".join(f"{c} UA % / WA %" for c in corpora) + " |",
             "|---|---:|---:|---:|---:|---|" + "---|" * len(corpora)]
    for model, s in cv["models"].items():
        params = card["model"]["teacher_parameters" if "teacher" in model else "parameters"]
        p = s["pooled"]
        per = " | ".join(f"{100 * s['per_corpus'][c]['ua']:.1f} / {100 * s['per_corpus'][c]['wa']:.1f}" for c in corpora)
        lines.append(f"| {model_label(card, model)} | {params / 1e3:.1f} k | {100 * p['ua']:.1f} | {100 * p['wa']:.1f} | "
                     f"{100 * p['macro_f1']:.1f} | {100 * s['fold_ua_mean']:.1f} ± {100 * s['fold_ua_std']:.1f} | {per} |")
    lines += ["", ("Shipped files: " if card.get("candidate") is None else "Its files: ") + ", ".join(
        f"`{f['name']}` {f['size_bytes'] / 1024:.0f} KB, {f['latency_ms']['median_ms']:.2f} ms median"
        for f in files.values()) + f" ({card.get('latency_note', '')}).", "",
        f"Cost: cross-validation {card['cost']['cv_thread_seconds'] / 60:.0f} min and the shipped model "
        f"{card['cost']['all_thread_seconds'] / 60:.0f} min of one CPU thread ({card['cost']['machine']}).", "",
        f"Licence: {card['licence']}", "", f"Confusion matrix of the INT8 model's recipe: [{name}_confusion.png]({name}_confusion.png)"]
    return "\n".join(lines) + "\n"


def write_results(card: dict, results_dir: pathlib.Path) -> pathlib.Path:
    """-> results_dir/<name_of(card)>.json, with the markdown and confusion PNG beside it."""
    results_dir, name = pathlib.Path(results_dir), name_of(card)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    write_json(path, {"name": name, "results": rows(card), "card": card})
    staged = path.with_suffix(".md.tmp")
    staged.write_text(markdown(card))
    staged.replace(path.with_suffix(".md"))
    shipped = next(s for m, s in card["cross_validation"]["models"].items() if "shipped" in m and "ONNX" in m)
    metrics.plot_confusion(np.array(shipped["confusion"]), card["cross_validation"]["labels"],
                           results_dir / f"{name}_confusion.png",
                           f"default model (INT8 ONNX recipe), spk5 CV: UA {100 * shipped['pooled']['ua']:.1f}%")
    return path
