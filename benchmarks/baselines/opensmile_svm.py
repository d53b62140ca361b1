"""The peer baseline rebuilt: openSMILE ComParE_2016 functionals + linear SVM, speaker-independent.

    OMP_NUM_THREADS=1 taskset -c 0 python -m benchmarks.baselines.opensmile_svm [--corpus emodb ravdess]
    OMP_NUM_THREADS=1 taskset -c 0 python -m benchmarks.baselines.opensmile_svm --corpus emodb+ravdess

Protocols are the training code's (`train.protocols`): EmoDB leave-one-speaker-out, RAVDESS 6
folds of 4 actors, and for the combined corpus `emodb+ravdess` (`train.data.load_corpus`: the six
shared classes) cross-corpus: one fold per direction, `ravdess->emodb` (train on RAVDESS, test on
EmoDB) and `emodb->ravdess`. In every outer fold the SVM's C is chosen by an inner cross-validation over
the *training* speakers only (GroupKFold, INNER_FOLDS groups, UA as the score); the test fold is
never used for a choice. Features are standardised with the outer training fold's statistics
(also inside the inner folds: training speakers' features only, no labels). Two variants:
  plain       features standardised with the training fold's mean/std (inductive);
  spknorm     every speaker's features z-scored with that speaker's own mean/std first, using all
              of that speaker's clips (for the test speakers: their unlabelled clips, i.e.
              transductive, as the peer's per-speaker figure), then as plain.
Writes benchmarks/results/opensmile_<corpus>.json (the training results' schema: rows with a
`summary` of pooled/fold UA, WA, macro-F1 and the pooled confusion) and a .md beside it; a
combined corpus's file also names its protocol (`opensmile_emodb_ravdess_cross`), and its .md has
each fold's (direction's) UA and WA. Under `cross` the inner choice of C is within the training
corpus (its speakers), and `spknorm` z-scores each speaker of either corpus with their own clips.
Features are cached outside the repository (they are derived from the licensed corpora), per
single corpus: a combined corpus's rows are those of its corpora's clips.

`--fuse RUN` (a finished train run or ensemble directory of the same corpus and protocol, not
speaker-normalised) adds
a late-fusion row: each test clip's class probabilities averaged with equal weight between the
plain SVM (calibrated on its training fold only: `fit_calibrator`) and RUN. It asks whether the hand-made
functionals (pitch, voice quality, energy, spectral shape) hold emotion cues the log-mel model
misses: a research figure, since the runtime computes no ComParE features. Its cost column is
the SVM's plus RUN's training time. One command writes one file: the fusion file of a corpus
(`opensmile_<corpus>_fusion`) holds the rows of the --fuse runs of its latest call.
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
PROTOCOL = {"emodb": "loso", "ravdess": "groups4", "emodb+ravdess": "cross"}
DEFAULT_CORPORA = ["emodb", "ravdess"]  # what a bare command evaluates
C_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)  # linear SVM on ~6k standardised features: small C
INNER_FOLDS = 5
VARIANTS = {"plain": "features standardised on the training fold (inductive)",
            "spknorm": "per-speaker z-scoring with each speaker's own clips (test speakers' unlabelled "
                       "clips included: transductive), then standardised on the training fold"}
PEER = {"emodb": {"plain": 0.758, "spknorm": 0.811}, "ravdess": {"plain": 0.576, "spknorm": 0.670}}
DATA = {"emodb": "(the processed EmoDB copy: every utterance cut to 2.0 s or zero-padded; not one-to-one comparable "
                 "with full-utterance figures).",
        "ravdess": "(RAVDESS speech, 8 classes, full clips).",
        "emodb+ravdess": "(EmoDB, processed copy, 2.0 s per utterance, and RAVDESS speech, full clips, relabelled to "
                         "the six classes both have: RAVDESS calm as neutral, EmoDB boredom and RAVDESS surprise left "
                         "out; speakers of each corpus kept apart)."}


def corpus_features(extractor, corpus: data.Corpus, root: pathlib.Path) -> tuple[np.ndarray, float, list]:
    """`extractor`'s features of every clip of `corpus` -> (features, seconds spent, the clips
    extracted). A combined corpus ("emodb+ravdess") takes its rows from each whole corpus's
    features (their caches are the single-corpus runs'), matched by clip path."""
    if "+" not in corpus.name:
        feats, seconds = extractor(corpus)
        return feats, seconds, corpus.clips
    rows, seconds, extracted = {}, 0.0, []
    for part in corpus.name.split("+"):
        whole = data.load_corpus(part, root)
        feats, spent = extractor(whole)
        rows.update(zip((c.path for c in whole.clips), feats))
        seconds, extracted = seconds + spent, extracted + whole.clips
    return np.stack([rows[c.path] for c in corpus.clips]), seconds, extracted


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


SECONDS = {"emodb": 2.0, "ravdess": 3.0}  # the clip length the CNN runs see (train.run --seconds)


def extract_logmel(corpus: data.Corpus) -> tuple[np.ndarray, float]:
    """`functionals.logmel_functionals` of the runtime's log-mel of every clip (fixed to the
    CNN runs' length, from the training code's feature cache) -> ([n_clips, F], seconds spent)."""
    from edge_ser.config import FeatureConfig
    from train.features import corpus_features
    from train.run_config import RunConfig
    from train.run_dir import feature_cache

    from .functionals import logmel_functionals

    start = time.perf_counter()
    log_mel = corpus_features(corpus, FeatureConfig(), SECONDS[corpus.name], feature_cache(RunConfig()))
    return logmel_functionals(log_mel), time.perf_counter() - start


def extract_spectral(corpus: data.Corpus) -> tuple[np.ndarray, float]:
    """`functionals.spectral_functionals` of every whole clip (as openSMILE sees it), from the
    runtime's STFT and MFCC -> ([n_clips, F], seconds spent)."""
    from edge_ser.features import mfcc

    from .functionals import spectral_functionals

    start, rows = time.perf_counter(), []
    for clip in corpus.clips:
        audio = data.read_audio(clip.path)
        rows.append(spectral_functionals(audio, mfcc(audio, n_mfcc=15)))
    return np.nan_to_num(np.array(rows)), time.perf_counter() - start


# ComParE_2016's low-level-descriptor families, by feature-name prefix (its 6373 names).
COMPARE_GROUPS = {
    "voicing": ("F0final", "voicingFinalUnclipped", "jitterLocal", "jitterDDP", "shimmerLocal", "logHNR"),
    "audspec": ("audSpec_Rfilt",),  # RASTA-filtered auditory bands: the closest to a log-mel
    "mfcc": ("mfcc",),
    "spectral": ("audspec_lengthL1norm", "audspecRasta_lengthL1norm", "pcm_"),  # energy, ZCR, spectral shape
}


def compare_columns(groups: list[str]) -> np.ndarray:
    """Column indices of ComParE_2016 features whose LLD belongs to one of `groups`."""
    import opensmile

    names = opensmile.Smile(feature_set=opensmile.FeatureSet.ComParE_2016,
                            feature_level=opensmile.FeatureLevel.Functionals).feature_names
    prefixes = tuple(p for g in groups for p in COMPARE_GROUPS[g])
    return np.array([i for i, n in enumerate(names) if n.startswith(prefixes)])


FEATURES = {"compare": (extract, "ComParE_2016 functionals (6373)"),
            "logmel": (extract_logmel, "functionals of the runtime's 64-band log-mel and its deltas"),
            "spectral": (extract_spectral, "functionals of energy, spectral-shape and MFCC 1-14 descriptors from "
                                           "the runtime's STFT, and their deltas")}


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


def fit_calibrator(gram: np.ndarray, y: np.ndarray, speakers: np.ndarray, c: float):
    """Class probabilities from the SVM's pairwise (one-vs-one) margins, `svm_margins`: a
    multinomial logistic regression on out-of-fold margins of INNER_FOLDS speaker-grouped folds
    of the training data (Platt scaling by hand: sklearn's own cannot split a precomputed kernel,
    and its folds ignore speakers). Not the "ovr" decision values: for SVC those are mostly vote
    counts, too coarse to calibrate."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    n = len(np.unique(y))
    margins = np.zeros((len(y), n * (n - 1) // 2))
    for tr, te in GroupKFold(n_splits=INNER_FOLDS).split(gram, y, speakers):
        margins[te] = svm_margins(fit_svm(gram[np.ix_(tr, tr)], y[tr], c), gram[np.ix_(te, tr)])
    return LogisticRegression(max_iter=2000).fit(margins, y)


def svm_margins(svm, gram: np.ndarray) -> np.ndarray:
    """[n, n_classes * (n_classes - 1) / 2] pairwise decision values of a fitted SVC."""
    svm.decision_function_shape = "ovo"
    try:
        return svm.decision_function(gram).reshape(len(gram), -1)  # two classes: one margin, 1-D
    finally:
        svm.decision_function_shape = "ovr"


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
        svm = fit_svm(gram, y[fold.train], c)
        pred = svm.predict(test_gram)
        matrix = metrics.confusion(y[fold.test], pred, n)
        results.append({"fold": fold.name, "C": c, "scores": metrics.scores(matrix), "confusion": matrix.tolist(),
                        "train_seconds": time.perf_counter() - t0,
                        "test_clips": [corpus.clips[i].path.name for i in fold.test], "test_true": y[fold.test].tolist()})
        if variant == "plain":  # only the plain SVM is fused; its calibration is not SVM time
            calibrator = fit_calibrator(gram, y[fold.train], speakers[fold.train], c)
            results[-1]["probabilities"] = np.round(calibrator.predict_proba(svm_margins(svm, test_gram)), 4).tolist()
        print(f"  {corpus.name} {variant} {fold.name}: C={c:g} UA={results[-1]['scores']['ua']:.3f}", flush=True)
    summary = metrics.summarise(results, corpus.labels)
    summary["train_seconds"] = time.perf_counter() - start
    summary["complete"] = True
    return {"summary": summary, "folds": [{k: r[k] for k in ("fold", "C", "scores", "train_seconds")} for r in results],
            "fold_outputs": results}


def run_probabilities(run_dir: pathlib.Path, fold: str) -> tuple[list[str], np.ndarray]:
    """(test clip names, class probabilities [n_test, classes]) of a train run's or an
    ensemble's fold JSON (`train.ensemble.fold_probabilities`)."""
    from train.ensemble import RESULT_SET, fold_probabilities

    sets = [RESULT_SET, "single"]
    path = next((run_dir / s / f"fold_{fold}.json" for s in sets if (run_dir / s / f"fold_{fold}.json").is_file()), None)
    if path is None:
        raise FileNotFoundError(f"{run_dir}: no finished fold {fold} (looked in {', '.join(sets)})")
    result = json.loads(path.read_text())
    return result["test_clips"], fold_probabilities(result, path)


def fuse(svm: dict, run_dir: pathlib.Path, corpus: data.Corpus) -> dict:
    """The plain SVM's fold outputs and `run_dir`'s averaged with equal weight, clip by clip."""
    from train.run_dir import read_run_config

    config = read_run_config(run_dir)
    run = config["run"]
    if (config["labels"] != corpus.labels or run["protocol"] != PROTOCOL[corpus.name]
            or run["corpus"] != corpus.name):
        raise ValueError(f"{run_dir}: not a {corpus.name} {PROTOCOL[corpus.name]} run with its labels")
    if run.get("speaker_norm") or run.get("quick"):
        raise ValueError(f"{run_dir}: a {'--speaker-norm' if run.get('speaker_norm') else '--quick'} run; "
                         "fusion is with the plain (inductive) SVM and full runs only")
    results = []
    for out in svm["fold_outputs"]:
        clips, probs = run_probabilities(run_dir, out["fold"])
        order = {name: i for i, name in enumerate(clips)}
        if sorted(order) != sorted(out["test_clips"]):
            raise ValueError(f"{run_dir}: fold {out['fold']} tested other clips than the SVM")
        mine = probs[[order[name] for name in out["test_clips"]]]
        fused = 0.5 * (mine + np.array(out["probabilities"]))
        matrix = metrics.confusion(np.array(out["test_true"]), fused.argmax(axis=1), len(corpus.labels))
        results.append({"fold": out["fold"], "scores": metrics.scores(matrix), "confusion": matrix.tolist(),
                        "train_seconds": out["train_seconds"]})
    summary = metrics.summarise(results, corpus.labels)
    summary["complete"], summary["train_seconds"] = True, svm["summary"]["train_seconds"]
    alone = run_summary(run_dir)
    return {"summary": summary, "folds": [{k: r[k] for k in ("fold", "scores")} for r in results],
            "fused_with": str(run_dir), "fused_with_ua": alone["pooled"]["ua"],
            "train_seconds_per_protocol": svm["summary"]["train_seconds"] + alone.get("train_seconds", 0.0)}


def run_summary(run_dir: pathlib.Path) -> dict:
    """The fused run's own summary.json (its UA alone and training seconds, for the table)."""
    for name in ("ensemble", "single"):
        path = run_dir / name / "summary.json"
        if path.is_file():
            return json.loads(path.read_text())
    raise FileNotFoundError(f"{run_dir}: no summary.json (is the run finished?)")


def environment() -> dict:
    import opensmile
    import sklearn

    return {"date": datetime.date.today().isoformat(), "python": platform.python_version(),
            "opensmile": opensmile.__version__, "sklearn": sklearn.__version__, "cpu": platform.processor()}


def evaluate(name: str, root: pathlib.Path, fuse_with: list[pathlib.Path] = (), features: str = "compare",
             groups: list[str] = ()) -> dict:
    corpus = data.load_corpus(name, root)
    extractor, described = FEATURES[features]
    feats, extract_seconds, extracted = corpus_features(extractor, corpus, root)
    if groups:
        feats = feats[:, compare_columns(groups)]
        described += f", only the {'+'.join(groups)} descriptors"
    audio_seconds = sum(len(data.read_audio(c.path)) for c in extracted) / 16000 if extract_seconds else None
    rows = []
    for variant, meaning in VARIANTS.items():
        result = run_protocol(feats, corpus, variant)
        fold_outputs = result.pop("fold_outputs")
        if variant == "plain":
            plain = {**result, "fold_outputs": fold_outputs}
        model = ("opensmile_compare2016" + "".join(f"[{g}]" for g in groups) if features == "compare"
                 else f"{features}_functionals") + "_linear_svm"
        rows.append({"model": model, "result_set": variant, "meaning": meaning,
                     "n_parameters": None, "peer_ua": PEER.get(name, {}).get(variant), **result,
                     "config": {"run": {"corpus": name, "protocol": PROTOCOL[name], "features": f"{described}: {feats.shape[1]}",
                                        "classifier": "standardised on the training fold, SVC(linear kernel, precomputed; class_weight=balanced)",
                                        "c_grid": list(C_GRID), "inner_folds": INNER_FOLDS},
                                "environment": environment()},
                     "train_seconds_per_protocol": result["summary"]["train_seconds"]})
    for run_dir in fuse_with:
        fused = fuse(plain, run_dir, corpus)
        rows.append({**rows[0], **fused, "result_set": f"plain + {run_dir.name}", "peer_ua": PEER.get(name, {}).get("plain"),
                     "meaning": f"late fusion: mean of the plain SVM's and {run_dir}'s class probabilities "
                                "(equal weights, fixed in advance)"})
    if fuse_with and features == "compare" and not groups:
        rows = rows[len(VARIANTS):]  # the SVM's own rows are opensmile_<corpus>.json's already
    fuse_options = "".join(f" --fuse {r}" for r in fuse_with) + ("" if features == "compare" else f" --features {features}")
    fuse_options += f" --compare-groups {','.join(groups)}" if groups else ""
    prefix = "opensmile" if features == "compare" else f"{features}_functionals"
    stem = name if "+" not in name else f"{name.replace('+', '_')}_{PROTOCOL[name]}"
    return {"name": f"{prefix}_{stem}" + "".join(f"_{g}" for g in groups) + ("_fusion" if fuse_with else ""),
            "command": "OMP_NUM_THREADS=1 taskset -c 0 python -m benchmarks.baselines.opensmile_svm "
            f"--corpus {name}{fuse_options}", "features": described,
            # Partial feature sets answer "where does the information sit", they are not results to
            # table beside the models: the benchmark report leaves them out (benchmarks.accuracy).
            "diagnostic": bool(groups) or features != "compare", "extract_seconds": extract_seconds, "audio_seconds": audio_seconds,
            "n_clips": len(corpus.clips), "results": rows}


def markdown(payload: dict) -> str:
    first = payload["results"][0]["config"]
    run, env = first["run"], first["environment"]
    cost = ("features cached from an earlier run" if not payload["extract_seconds"] else
            f"feature extraction {payload['extract_seconds']:.0f} s for {payload['audio_seconds'] / 60:.1f} min of audio "
            f"({payload['extract_seconds'] / payload['audio_seconds']:.3f} x real time)")
    lines = [f"# {payload['name']}: {payload.get('features', 'ComParE_2016 functionals')} + linear SVM, "
             f"{run['corpus']}, {run['protocol']}", "",
             f"Date {env['date']}; opensmile {env['opensmile']}, scikit-learn {env['sklearn']}, Python {env['python']}, "
             f"one core of a shared 2-core machine. Data: {payload['n_clips']} clips from ../shared/data "
             + DATA.get(run["corpus"], f"({run['corpus']})."), "",
             f"Command: `{payload['command']}`. Cost: {cost}.", "",
             f"Protocol: {run['protocol']} (train.protocols); C from {run['c_grid']} chosen per outer fold by "
             f"{run['inner_folds']}-fold GroupKFold over the training speakers only, best pooled UA."
             + (" Cross-corpus: the training speakers are all of the training corpus's; the tested corpus takes no "
                "part in any choice." if run["protocol"] == "cross" else ""), "",
             "| variant | UA % (pooled) | WA % | macro-F1 % | fold UA % mean ± std | peer's UA % | SVM time |",
             "|---|---|---|---|---|---|---|"]
    fused = [row for row in payload["results"] if "fused_with" in row]
    for row in payload["results"]:
        s = row["summary"]
        lines.append(f"| {row['result_set']} | {100 * s['pooled']['ua']:.1f} | {100 * s['pooled']['wa']:.1f} | "
                     f"{100 * s['pooled']['macro_f1']:.1f} | {100 * s['fold_mean']['ua']:.1f} ± {100 * s['fold_std']['ua']:.1f} | "
                     f"{'–' if row['peer_ua'] is None else format(100 * row['peer_ua'], '.1f')} | {s['train_seconds']:.0f} s |")
    if run["protocol"] == "cross":  # two folds, each a question of its own: show them
        lines += ["", "Per direction (fold: training corpus -> tested corpus):", "",
                  "| variant | direction | UA % | WA % | macro-F1 % | C |", "|---|---|---|---|---|---|"]
        lines += [f"| {row['result_set']} | {f['fold']} | {100 * f['scores']['ua']:.1f} | {100 * f['scores']['wa']:.1f} | "
                  f"{100 * f['scores']['macro_f1']:.1f} | {f['C']:g} |" for row in payload["results"] if "fused_with" not in row
                  for f in row["folds"]]
    lines += ["", "Variants:"] + [f"- `{k}`: {v}" for k, v in VARIANTS.items()]
    lines += [f"- `{row['result_set']}`: {row['meaning']}; that run alone: UA "
              + (f"{100 * row['fused_with_ua']:.1f} %" if row["fused_with_ua"] is not None else "unknown")
              for row in fused]
    if fused:
        lines += ["", "A fused row needs ComParE features, which the runtime does not compute: it measures whether "
                  "the functionals add information to the log-mel model, not a deployable model."]
    return "\n".join(lines + [""])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", nargs="+", choices=sorted(PROTOCOL), default=DEFAULT_CORPORA,
                    help="emodb+ravdess: the cross-corpus protocol, one fold per direction")
    ap.add_argument("--data", type=pathlib.Path, default=None, help="data root (default: EDGE_SER_DATA)")
    ap.add_argument("--out", type=pathlib.Path, default=RESULTS)
    ap.add_argument("--features", choices=sorted(FEATURES), default="compare",
                    help="compare: openSMILE ComParE_2016; logmel: functionals of the runtime's log-mel (no openSMILE)")
    ap.add_argument("--fuse", type=pathlib.Path, action="append", default=[],
                    help="a finished train run / ensemble directory of the (one) --corpus to fuse with the plain SVM")
    ap.add_argument("--compare-groups", default="",
                    help=f"ComParE only: keep these descriptor families ({', '.join(COMPARE_GROUPS)}; comma list)")
    args = ap.parse_args(argv)
    groups = [g for g in args.compare_groups.split(",") if g]
    unknown = sorted(set(groups) - set(COMPARE_GROUPS))
    if unknown or (groups and args.features != "compare"):
        ap.error(f"--compare-groups {args.compare_groups}: families of --features compare only "
                 f"({', '.join(COMPARE_GROUPS)})")
    root = args.data or data.default_data_root()
    if args.fuse and len(args.corpus) != 1:
        ap.error("--fuse needs exactly one --corpus (the runs' corpus)")
    for name in args.corpus:
        payload = evaluate(name, root, args.fuse, args.features, groups)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{payload['name']}.json").write_text(json.dumps(payload, indent=1))
        (args.out / f"{payload['name']}.md").write_text(markdown(payload))
        for row in payload["results"]:
            folds = ", ".join(f"{f['fold']} UA {100 * f['scores']['ua']:.1f} % WA {100 * f['scores']['wa']:.1f} %"
                              for f in row["folds"]) if PROTOCOL[name] == "cross" else ""
            peer = "" if row["peer_ua"] is None else f" (peer {100 * row['peer_ua']:.1f} %)"
            print(f"{name} {row['result_set']}: UA {100 * row['summary']['pooled']['ua']:.1f} %{peer}"
                  + (f"; {folds}" if folds else ""), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
