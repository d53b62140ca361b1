"""The peer baseline rebuilt: openSMILE ComParE_2016 functionals + linear SVM, speaker-independent.

    OMP_NUM_THREADS=1 taskset -c 0 python -m benchmarks.baselines.opensmile_svm [--corpus emodb ravdess]

Protocols are the training code's (`train.protocols`): EmoDB leave-one-speaker-out, RAVDESS 6
folds of 4 actors. In every outer fold the SVM's C is chosen by an inner cross-validation over
the *training* speakers only (GroupKFold, INNER_FOLDS groups, UA as the score); the test fold is
never used for a choice. Features are standardised with the outer training fold's statistics
(also inside the inner folds: training speakers' features only, no labels). Two variants:
  plain       features standardised with the training fold's mean/std (inductive);
  spknorm     every speaker's features z-scored with that speaker's own mean/std first, using all
              of that speaker's clips (for the test speakers: their unlabelled clips, i.e.
              transductive, as the peer's per-speaker figure), then as plain.
Writes benchmarks/results/opensmile_<corpus>.json (the training results' schema: rows with a
`summary` of pooled/fold UA, WA, macro-F1 and the pooled confusion) and a .md beside it.
Features are cached outside the repository (they are derived from the licensed corpora).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

import numpy as np

from train import data, metrics, protocols

RESULTS = pathlib.Path(__file__).resolve().parents[1] / "results"
CACHE = pathlib.Path(tempfile.gettempdir()) / "edge-ser-opensmile"
PROTOCOL = {"emodb": "loso", "ravdess": "groups4"}
C_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)  # linear SVM on ~6k standardised features: small C
INNER_FOLDS = 5
VARIANTS = {"plain": "features standardised on the training fold (inductive)",
            "spknorm": "per-speaker z-scoring with each speaker's own clips (test speakers' unlabelled "
                       "clips included: transductive), then standardised on the training fold"}
PEER = {"emodb": {"plain": 0.758, "spknorm": 0.811}, "ravdess": {"plain": 0.576, "spknorm": 0.670}}


def extract(corpus: data.Corpus) -> tuple[np.ndarray, float]:
    """ComParE_2016 functionals for every clip -> ([n_clips, 6373] float64, seconds spent),
    cached per corpus in CACHE."""
    import opensmile

    cache = CACHE / f"{corpus.name}_compare2016_{len(corpus.clips)}.npy"
    if cache.exists():
        return np.load(cache), 0.0
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.ComParE_2016,
                            feature_level=opensmile.FeatureLevel.Functionals)
    start = time.perf_counter()
    rows = [smile.process_signal(data.read_audio(c.path), 16000).to_numpy()[0] for c in corpus.clips]
    seconds = time.perf_counter() - start
    feats = np.nan_to_num(np.array(rows, dtype=np.float64))
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, feats)
    return feats, seconds


def speaker_normalise(x: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """[n, d] features -> the same, z-scored within each speaker's clips."""
    out = np.empty_like(x)
    for s in np.unique(speakers):
        rows = speakers == s
        out[rows] = (x[rows] - x[rows].mean(0)) / np.maximum(x[rows].std(0), 1e-8)
    return out


def linear_kernel(x_train: np.ndarray, x_other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardise with the training rows' mean/std, then Gram matrices
    ([n_train, n_train], [n_other, n_train]) for a linear SVM on precomputed kernels
    (computing the kernel once per outer fold makes the C search ~50x cheaper)."""
    mean, std = x_train.mean(0), np.maximum(x_train.std(0), 1e-8)
    a, b = (x_train - mean) / std, (x_other - mean) / std
    return a @ a.T, b @ a.T


def fit_svm(gram: np.ndarray, y: np.ndarray, c: float):
    from sklearn.svm import SVC

    # Balanced class weights: UA (mean recall) is the headline metric and classes are uneven.
    return SVC(kernel="precomputed", C=c, class_weight="balanced").fit(gram, y)


def choose_c(gram: np.ndarray, y: np.ndarray, speakers: np.ndarray, n_classes: int) -> float:
    """C with the best pooled UA over INNER_FOLDS speaker-grouped folds of the training data
    (`gram` is the training fold's kernel: the test speakers take no part)."""
    from sklearn.model_selection import GroupKFold

    splits = list(GroupKFold(n_splits=INNER_FOLDS).split(gram, y, speakers))
    best = None
    for c in C_GRID:
        pooled = np.zeros((n_classes, n_classes), np.int64)
        for tr, te in splits:
            model = fit_svm(gram[np.ix_(tr, tr)], y[tr], c)
            pooled += metrics.confusion(y[te], model.predict(gram[np.ix_(te, tr)]), n_classes)
        ua = metrics.scores(pooled)["ua"]
        if best is None or ua > best[0]:
            best = (ua, c)
    return best[1]


def run_protocol(x: np.ndarray, corpus: data.Corpus, variant: str) -> dict:
    """Outer folds of the corpus's protocol -> a summary (train.metrics.summarise) + per fold."""
    y, speakers = corpus.targets(), corpus.speakers()
    if variant == "spknorm":
        x = speaker_normalise(x, speakers)
    folds, n = protocols.make_folds(PROTOCOL[corpus.name], y, speakers), len(corpus.labels)
    results, start = [], time.perf_counter()
    for fold in folds:
        t0 = time.perf_counter()
        gram, test_gram = linear_kernel(x[fold.train], x[fold.test])
        c = choose_c(gram, y[fold.train], speakers[fold.train], n)
        pred = fit_svm(gram, y[fold.train], c).predict(test_gram)
        matrix = metrics.confusion(y[fold.test], pred, n)
        results.append({"fold": fold.name, "C": c, "scores": metrics.scores(matrix), "confusion": matrix.tolist(),
                        "train_seconds": time.perf_counter() - t0})
        print(f"  {corpus.name} {variant} {fold.name}: C={c:g} UA={results[-1]['scores']['ua']:.3f}", flush=True)
    summary = metrics.summarise(results, corpus.labels)
    summary["train_seconds"] = time.perf_counter() - start
    summary["complete"] = True
    return {"summary": summary, "folds": [{k: r[k] for k in ("fold", "C", "scores", "train_seconds")} for r in results]}


def environment() -> dict:
    import opensmile
    import sklearn

    return {"date": datetime.date.today().isoformat(), "python": platform.python_version(),
            "opensmile": opensmile.__version__, "sklearn": sklearn.__version__, "cpu": platform.processor()}


def evaluate(name: str, root: pathlib.Path) -> dict:
    corpus = data.load_corpus(name, root)
    feats, extract_seconds = extract(corpus)
    audio_seconds = sum(len(data.read_audio(c.path)) for c in corpus.clips) / 16000 if extract_seconds else None
    rows = []
    for variant, meaning in VARIANTS.items():
        result = run_protocol(feats, corpus, variant)
        rows.append({"model": "opensmile_compare2016_linear_svm", "result_set": variant, "meaning": meaning,
                     "n_parameters": None, "peer_ua": PEER[name][variant], **result,
                     "config": {"run": {"corpus": name, "protocol": PROTOCOL[name], "features": "ComParE_2016 functionals (6373)",
                                        "classifier": "standardised on the training fold, SVC(linear kernel, precomputed; class_weight=balanced)",
                                        "c_grid": list(C_GRID), "inner_folds": INNER_FOLDS},
                                "environment": environment()},
                     "train_seconds_per_protocol": result["summary"]["train_seconds"]})
    return {"name": f"opensmile_{name}", "command": "OMP_NUM_THREADS=1 taskset -c 0 python -m benchmarks.baselines.opensmile_svm "
            f"--corpus {name}", "extract_seconds": extract_seconds, "audio_seconds": audio_seconds,
            "n_clips": len(corpus.clips), "results": rows}


def markdown(payload: dict) -> str:
    first = payload["results"][0]["config"]
    run, env = first["run"], first["environment"]
    cost = ("features cached from an earlier run" if not payload["extract_seconds"] else
            f"feature extraction {payload['extract_seconds']:.0f} s for {payload['audio_seconds'] / 60:.1f} min of audio "
            f"({payload['extract_seconds'] / payload['audio_seconds']:.3f} x real time)")
    lines = [f"# {payload['name']}: openSMILE ComParE_2016 + linear SVM, {run['corpus']}, {run['protocol']}", "",
             f"Date {env['date']}; opensmile {env['opensmile']}, scikit-learn {env['sklearn']}, Python {env['python']}, "
             f"one core of a shared 2-core machine. Data: {payload['n_clips']} clips from ../shared/data "
             + ("(the processed EmoDB copy: every utterance cut to 2.0 s or zero-padded; not one-to-one comparable with "
                "full-utterance figures)." if run["corpus"] == "emodb" else "(RAVDESS speech, 8 classes, full clips)."), "",
             f"Command: `{payload['command']}`. Cost: {cost}.", "",
             f"Protocol: {run['protocol']} (train.protocols); C from {run['c_grid']} chosen per outer fold by "
             f"{run['inner_folds']}-fold GroupKFold over the training speakers only, best pooled UA.", "",
             "| variant | UA % (pooled) | WA % | macro-F1 % | fold UA % mean ± std | peer's UA % | SVM time |",
             "|---|---|---|---|---|---|---|"]
    for row in payload["results"]:
        s = row["summary"]
        lines.append(f"| {row['result_set']} | {100 * s['pooled']['ua']:.1f} | {100 * s['pooled']['wa']:.1f} | "
                     f"{100 * s['pooled']['macro_f1']:.1f} | {100 * s['fold_mean']['ua']:.1f} ± {100 * s['fold_std']['ua']:.1f} | "
                     f"{100 * row['peer_ua']:.1f} | {s['train_seconds']:.0f} s |")
    lines += ["", "Variants:"] + [f"- `{k}`: {v}" for k, v in VARIANTS.items()] + [""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", nargs="+", choices=sorted(PROTOCOL), default=sorted(PROTOCOL))
    ap.add_argument("--data", type=pathlib.Path, default=None, help="data root (default: EDGE_SER_DATA)")
    ap.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = ap.parse_args(argv)
    root = args.data or data.default_data_root()
    for name in args.corpus:
        payload = evaluate(name, root)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{payload['name']}.json").write_text(json.dumps(payload, indent=1))
        (args.out / f"{payload['name']}.md").write_text(markdown(payload))
        for row in payload["results"]:
            print(f"{name} {row['result_set']}: UA {100 * row['summary']['pooled']['ua']:.1f} % "
                  f"(peer {100 * row['peer_ua']:.1f} %)", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
