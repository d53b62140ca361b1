"""Speaker normalisation a device could do: each speaker's statistics from a few enrolment clips.

A `--speaker-norm` run z-scores every speaker per mel band over all of that speaker's clips,
test speakers included, which a device meeting a new voice never has. What it could have is
the first few clips it hears (or a short recording at set-up). This re-scores such a run's
saved fold models with each test speaker's statistics taken from k of its clips only:

- for each test speaker and each of `repeats` draws, a seeded random order of its clips (or of
  its clips with one of `enrol_labels`, e.g. neutral only); the first k (for every k asked) are
  the enrolment clips, and all its clips but the first max(k) of the draw are scored, so every
  k is scored on the same clips;
- `all` scores those same clips with the run's own statistics (every clip of the speaker, or
  its clips of the run's `speaker_norm_labels`);
- plain runs (`baselines`: same protocol, no speaker normalisation) are scored on the same
  clips from the predictions their fold JSONs keep, so the gain is measured like for like.

Drawn from all of a speaker's clips, enrolment clips hold every emotion in the acted corpus's
proportions; a user's first minutes are likelier to be mostly neutral, which `enrol_labels`
imitates. Nothing is retrained and nothing is chosen on the test folds.
"""
from __future__ import annotations

import json
import pathlib

import numpy as np
import torch

from edge_ser.config import FeatureConfig

from . import metrics, protocols
from .data import label_indices, load_corpus
from .features import band_stats, corpus_features
from .loop import predict_logits
from .records import write_json
from .run_dir import feature_cache, load_fold_model, quick_corpus, read_run_config, stored_config

DEFAULT_KS = (1, 3, 5, 10)
ALL = "all"


def normalised(clips: np.ndarray, enrolment: np.ndarray) -> torch.Tensor:
    """Clips [N, n_mels, frames] z-scored per band with the statistics of `enrolment` [k, ...]."""
    mean, std = band_stats(enrolment)
    return torch.from_numpy((clips - mean) / std)


def read_run(run_dir: pathlib.Path, must_normalise: bool) -> dict:
    config = read_run_config(run_dir)
    if must_normalise and config["run"].get("ensemble_of"):
        raise ValueError(f"{run_dir}: an ensemble has no fold models to re-score; give one of its runs")
    if not config.get("speaker_independent", protocols.is_speaker_independent(config["run"]["protocol"])):
        raise ValueError(f"{run_dir}: protocol {config['run']['protocol']} is not speaker-independent: "
                         "a test speaker's other clips were trained on")
    if bool(config["run"].get("speaker_norm")) != must_normalise:
        kind = "a --speaker-norm run" if must_normalise else "a run without --speaker-norm"
        raise ValueError(f"{run_dir}: needs to be {kind}")
    return config


def result_dir(run_dir: pathlib.Path, config: dict) -> pathlib.Path:
    """Where a run's per-fold results live: `single`, `phase1` (runs with masking variants), or
    `ensemble` (`python -m train ensemble`)."""
    run = config["run"]
    return run_dir / ("ensemble" if run.get("ensemble_of") else "phase1" if run.get("variants") else "single")


def fold_result(run_dir: pathlib.Path, config: dict, fold: str) -> dict:
    path = result_dir(run_dir, config) / f"fold_{fold}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: fold not finished")
    return json.loads(path.read_text())


def fold_predictions(run_dir: pathlib.Path, config: dict, fold: str) -> dict[str, int]:
    """{clip file name: predicted class} of one fold of a finished run."""
    result = fold_result(run_dir, config, fold)
    return dict(zip(result["test_clips"], result["predicted"]))


def run_corpus(config: dict, data: str | None):
    """The run's corpus (cut as `--quick` cut it) and its features [N, n_mels, frames]."""
    cfg = stored_config(config, data)
    corpus = load_corpus(cfg.corpus, cfg.data)
    if cfg.quick:
        corpus = quick_corpus(corpus)
    features = FeatureConfig.from_dict(config["feature_config"])
    return corpus, corpus_features(corpus, features, cfg.seconds, feature_cache(cfg), cfg.progress)


def enrolment_predictions(run_dir: pathlib.Path, baselines: list[pathlib.Path] = (),
                          ks: tuple[int, ...] = DEFAULT_KS, repeats: int = 5, seed: int = 0,
                          data: str | None = None, enrol_labels: tuple[str, ...] = ()) -> dict:
    """Per draw r: the scored clips' names and true targets, and each set's predictions for them
    ({"k=1": ..., ALL: ..., str(baseline): ...}): {"names": [r][...], "true": [r][...],
    "predicted": {set: [r][...]}, "config": the run's config.json}."""
    run_dir, baselines = pathlib.Path(run_dir), [pathlib.Path(b) for b in baselines]
    config = read_run(run_dir, must_normalise=True)
    others = [read_run(b, must_normalise=False) for b in baselines]
    for baseline, other in zip(baselines, others):
        if (other["folds"], other["labels"], other["run"]["corpus"]) != (config["folds"], config["labels"], config["run"]["corpus"]):
            raise ValueError(f"{baseline}: not the same corpus, labels and folds as {run_dir}")
    corpus, x = run_corpus(config, data)
    enrol_from = label_indices(enrol_labels, corpus, "--enrol-labels") or None
    # The run's own statistics ("all"): every clip of the speaker, or its reference-label clips.
    trained_from = label_indices(config["run"].get("speaker_norm_labels") or (), corpus, "speaker_norm_labels") or None
    row_of = {clip.path.name: i for i, clip in enumerate(corpus.clips)}
    if len(row_of) != len(corpus.clips):
        raise ValueError(f"{corpus.name}: clip file names repeat, so fold results cannot name their clips")
    speakers, targets = corpus.speakers(), corpus.targets()
    sets = [*(f"k={k}" for k in ks), ALL, *(str(b) for b in baselines)]
    out = {"names": [[] for _ in range(repeats)], "true": [[] for _ in range(repeats)],
           "predicted": {name: [[] for _ in range(repeats)] for name in sets}, "config": config}
    rng = np.random.default_rng(seed)
    for fold in config["folds"]:
        model, _ = load_fold_model(pathlib.Path(config["run"].get("phase1_from") or run_dir), fold)
        plain = [fold_predictions(b, other, fold) for b, other in zip(baselines, others)]
        names = fold_result(run_dir, config, fold)["test_clips"]
        missing = sorted(set(names) - set(row_of))
        if missing:
            raise ValueError(f"{run_dir}: fold {fold} tested {missing[0]}, which {corpus.name} here lacks (other --data?)")
        for baseline, predicted in zip(baselines, plain):
            if set(predicted) != set(names):
                raise ValueError(f"{baseline}: fold {fold} tested other clips than {run_dir}")
        rows = np.array([row_of[name] for name in names])
        for speaker in sorted(set(speakers[rows].tolist())):
            own = rows[speakers[rows] == speaker]
            pool = own if enrol_from is None else own[np.isin(targets[own], enrol_from)]
            if len(pool) < max(ks) or len(own) <= max(ks):
                raise ValueError(f"{fold}: speaker {speaker} has {len(pool)} clips to enrol from and {len(own)} in "
                                 f"all, too few to enrol {max(ks)} and score the rest")
            as_trained = own if trained_from is None else own[np.isin(targets[own], trained_from)]
            # The run's own statistics do not depend on the draw: predict the speaker's clips once.
            all_predicted = dict(zip(own, predict_logits(model, normalised(x[own], x[as_trained])).argmax(axis=1)))
            for r in range(repeats):
                drawn = pool[rng.permutation(len(pool))]
                scored = np.setdiff1d(own, drawn[: max(ks)])
                scored_names = [corpus.clips[i].path.name for i in scored]
                out["names"][r] += scored_names
                out["true"][r] += targets[scored].tolist()
                for k in ks:
                    logits = predict_logits(model, normalised(x[scored], x[drawn[:k]]))
                    out["predicted"][f"k={k}"][r] += logits.argmax(axis=1).tolist()
                out["predicted"][ALL][r] += [int(all_predicted[i]) for i in scored]
                for baseline, predicted in zip(baselines, plain):
                    out["predicted"][str(baseline)][r] += [predicted[n] for n in scored_names]
    return out


def enrolment_scores(run_dir: pathlib.Path, baselines: list[pathlib.Path] = (), ks: tuple[int, ...] = DEFAULT_KS,
                     repeats: int = 5, seed: int = 0, data: str | None = None,
                     enrol_labels: tuple[str, ...] = ()) -> dict:
    """UA, WA, macro-F1 per draw of every set of `enrolment_predictions`, with what they were
    measured on: {"sets": {name: {"ua": [per draw], ...}}, "n_scored": clips per draw, ...}."""
    found = enrolment_predictions(run_dir, baselines, ks, repeats, seed, data, enrol_labels)
    config, n_classes = found["config"], len(found["config"]["labels"])
    sets = {}
    for name, per_draw in found["predicted"].items():
        draws = [metrics.scores(metrics.confusion(np.array(t), np.array(p), n_classes))
                 for t, p in zip(found["true"], per_draw)]
        sets[name] = {m: [d[m] for d in draws] for m in ("ua", "wa", "macro_f1")}
    return {"run": str(run_dir), "corpus": config["run"]["corpus"], "protocol": config["run"]["protocol"],
            "ks": list(ks), "enrol_labels": list(enrol_labels),
            "trained_from_labels": list(config["run"].get("speaker_norm_labels") or []), "repeats": repeats, "seed": seed, "n_scored": len(found["true"][0]),
            "clip_seconds": config["run"]["seconds"], "baselines": [str(b) for b in baselines], "sets": sets}


def write_enrolment_report(result: dict, name: str, out_dir: pathlib.Path) -> pathlib.Path:
    """`{name}.json`, `{name}.md` (table) and `{name}.png` (UA against enrolment clips)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / f"{name}.json", result)
    plot_enrolment(result, out_dir / f"{name}.png")
    mean = lambda v: 100 * float(np.mean(v))  # noqa: E731
    std = lambda v: 100 * float(np.std(v))  # noqa: E731
    labels = result.get("enrol_labels") or []
    from_labels = result.get("trained_from_labels") or []
    trained = f", statistics from {'/'.join(from_labels)} clips" if from_labels else ""
    source = (f"of its {' / '.join(labels)} clips only" if labels else "of all its clips (the corpus's emotion mix; "
              "a real user's first clips may be mostly neutral)")
    lines = [f"# {result['corpus']} {result['protocol']}: speaker normalisation from k enrolment clips", "",
             f"Fold models of `{result['run']}` (trained with `--speaker-norm`{trained}), re-scored with each test speaker's "
             f"statistics from k of its {result['clip_seconds']:g}-s clips drawn at random {source}; "
             f"{result['n_scored']} clips scored per draw (all of each speaker's clips but the first "
             f"{max(result['ks'])} of the draw, the same for every row), {result['repeats']} draws "
             f"(seed {result['seed']}); mean ± std over draws.",
             "", "| statistics from | UA % | WA % | macro-F1 % |", "|---|---|---|---|"]
    for key, s in result["sets"].items():
        label = {ALL: "all of the speaker's clips, as trained (transductive)"}.get(key, key)
        if key in result["baselines"]:
            label = f"no speaker normalisation: `{key}`"
        elif key.startswith("k="):
            label = f"{key[2:]} enrolment clip{'s' if key != 'k=1' else ''} ({float(key[2:]) * result['clip_seconds']:g} s)"
        lines.append(f"| {label} | {mean(s['ua']):.1f} ± {std(s['ua']):.1f} | {mean(s['wa']):.1f} ± {std(s['wa']):.1f} "
                     f"| {mean(s['macro_f1']):.1f} |")
    lines += ["", f"![UA against enrolment clips]({name}.png)", ""]
    path = out_dir / f"{name}.md"
    path.write_text("\n".join(lines))
    return path


def plot_enrolment(result: dict, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = result["ks"]
    ua = [result["sets"][f"k={k}"]["ua"] for k in ks]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.errorbar(ks, [100 * np.mean(v) for v in ua], yerr=[100 * np.std(v) for v in ua], marker="o", capsize=3,
                label="speaker norm., k enrolment clips")
    ax.axhline(100 * np.mean(result["sets"][ALL]["ua"]), color="C1", ls="--", label="speaker norm., all clips")
    for i, baseline in enumerate(result["baselines"]):
        ax.axhline(100 * np.mean(result["sets"][baseline]["ua"]), color=f"C{i + 2}", ls=":",
                   label=f"no normalisation ({pathlib.Path(baseline).name})")
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("enrolment clips per speaker")
    ax.set_ylabel("UA % (same scored clips)")
    ax.set_title(f"{result['corpus']} {result['protocol']}", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
