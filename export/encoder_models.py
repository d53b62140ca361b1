"""Encoder models to the device: a fusion run's GAP model (Whisper stem, its blocks, the head) as
one ONNX file from log-mel to logits, its INT8 variants, their parity with FP32 on every
cross-validation fold, and the same files for the model trained on every clip: a candidate for
the packaged models (`export.packaged` chooses among candidates).

    python -m export encoder --cv runs/fusion/spk5_encoder_gap --all runs/fusion/all_encoder_gap \\
        --name tiny.en-3 --out runs/encoder_export

Files, in `OUT/NAME/<fold>/` for every fold of the cross-validation run and in `OUT/NAME/all/`:
    fp32.onnx          `train.fusion.standalone.LogMelClassifier`, dynamic batch and frames
    int8_dynamic.onnx  int8 per-channel weights, activations quantized at run time
    int8_static.onnx   static QDQ: U8 activations, 7-bit per-channel weights, only the weighted
                       ops (Conv, MatMul, Gemm) quantized; the attention MatMuls and the first
                       conv stay in float; calibrated on `N_CALIBRATION` training clips of the fold
    int8.tflite        dynamic-range INT8 TFLite (int8 weights, activations quantized per call) at a
                       fixed input of 1.5 windows (3 s): the runtime zero-pads every window to it
                       (GAP leaves the padding out, train/fusion/standalone.py)
    logits.npz         every file's logits on the fold's test speakers (cross-validation folds);
                       the TFLite file's on the same windows zero-padded to its 3 s
and `OUT/NAME/candidate.json`: parameters, file sizes, latency (a 3-s clip, one thread) and the
cross-validated scores of each file, pooled and per corpus, with the parity gates. Every file is
written once (atomically) and reused, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import tempfile
import time

import numpy as np

from edge_ser.config import FeatureConfig
from edge_ser.contract import ModelInfo
from edge_ser.features import log_mel

from train import metrics, protocols
from train.data import corpus_of, load_corpus, read_audio
from train.features import fix_length
from train.records import environment, write_json

from . import evaluate, onnx_export, quantize, tflite

FP32 = "fp32"
VARIANTS = ("int8_dynamic", "int8_static")  # the INT8 ONNX files, in the order tables list them
TFLITE = "int8_tflite"  # the TFLite twin, scored beside them
TFLITE_FILE = "int8.tflite"  # its file name, beside the ONNX files
N_CALIBRATION = 128  # training clips the static variant's ranges come from
CALIBRATION_SEED = 0
CLIP_SECONDS = 3.0  # latency is measured on the mission's 3-s clip, run as one window
LATENCY_REPEATS = 200  # timed calls per file (p95 needs more than the 30 of a fold card)
MIN_GATE_AGREEMENT = 0.98  # INT8 vs FP32 top-1 agreement on the test speakers, pooled over folds
MAX_GATE_UA_DROP = 0.01  # INT8 UA may fall at most 1 point below FP32's (pooled)


@dataclasses.dataclass(frozen=True)
class FusionRun:
    """What a fusion run directory (`python -m train.encoders run --head fusion`) says about its models."""

    path: pathlib.Path
    encoder: str
    corpus: str
    protocol: str
    seconds: float
    data: str | None
    labels: tuple[str, ...]
    features: FeatureConfig
    folds: tuple[str, ...]

    @classmethod
    def read(cls, path: pathlib.Path) -> "FusionRun":
        path = pathlib.Path(path)
        config_path = path / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(f"{path}: not a run directory (no config.json)")
        config = json.loads(config_path.read_text())
        run = config["run"]
        if run.get("head") != "fusion":
            raise ValueError(f"{path}: a {run.get('head')} run; only fusion runs have standalone models")
        folds = tuple(sorted(p.stem for p in (path / "checkpoints").glob("*.pt") if not p.stem.endswith(".phase1")))
        if not folds:
            raise FileNotFoundError(f"{path}/checkpoints: the run kept no fold models")
        summary = json.loads((path / "summary.json").read_text())
        return cls(path, run["encoder"], run["corpus"], run["protocol"], float(run["seconds"]), run.get("data"),
                   tuple(summary["labels"]), FeatureConfig.from_dict(config["produced"]["features"]), folds)

    def info(self, card: dict | None = None) -> ModelInfo:
        return ModelInfo(self.labels, self.features, self.seconds, card=card)


def window_features(run: FusionRun, corpus, padded_to: float | None = None) -> np.ndarray:
    """Every clip's log-mel [N, n_mels, frames] exactly as the run's model saw it in training, or
    (`padded_to` seconds) as the runtime feeds a fixed-frame file: the window zero-padded to it."""
    def window(audio):
        audio = fix_length(audio, run.features.n_samples(run.seconds))
        if padded_to is not None:
            audio = fix_length(audio, run.features.n_samples(padded_to))
        return log_mel(audio, run.features)

    return np.stack([window(read_audio(c.path)) for c in corpus.clips])


def atomic(path: pathlib.Path, make) -> pathlib.Path:
    """`make(tmp_path)` writes a file; it lands at `path` only when complete. Existing: reused."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        staged = pathlib.Path(tmp) / path.name
        make(staged)
        os.replace(staged, path)
    return path


def model_files(run: FusionRun, fold: str, encoder, calibration: np.ndarray, out: pathlib.Path) -> dict[str, pathlib.Path]:
    """The fold's FP32 and INT8 ONNX files in `out` (made unless already there)."""
    from train.fusion.standalone import load_standalone

    def fp32(path):
        model, _ = load_standalone(run.path / "checkpoints" / f"{fold}.pt", encoder)
        onnx_export.export(model, path, run.features.n_mels, dynamic_frames=True,
                           frames=run.features.n_frames(run.features.n_samples(run.seconds)))
        onnx_export.set_metadata(path, run.info())

    def twin(path):
        model, _ = load_standalone(run.path / "checkpoints" / f"{fold}.pt", encoder)
        buf = tflite.convert_dynamic_int8(model, run.features.n_mels, tflite_frames(run))
        tflite.write(path, buf, run.info(), resizable=False)

    files = {FP32: atomic(out / f"{FP32}.onnx", fp32)}
    files["int8_dynamic"] = atomic(out / "int8_dynamic.onnx", lambda p: int8(files[FP32], p, None))
    files["int8_static"] = atomic(out / "int8_static.onnx", lambda p: int8(files[FP32], p, calibration))
    files[TFLITE] = atomic(out / TFLITE_FILE, twin)
    return files


def tflite_frames(run: FusionRun) -> int:
    """The TFLite file's fixed frame count: the longest input the runtime feeds a model of this
    window (1.5 windows: 3 s for the 2-s models; litert cannot lower a dynamic frame axis through
    the Whisper stem's positional slice)."""
    return run.info().max_frames()


def int8(fp32: pathlib.Path, path: pathlib.Path, calibration: np.ndarray | None) -> None:
    """Dynamic INT8 (no calibration) or the static variant; the contract metadata carried over."""
    if calibration is None:
        quantize.dynamic(fp32, path)
    else:
        quantize.static_qdq(fp32, path, calibration, "minmax", "u8", keep_float="attention+first", linear_only=True)
    onnx_export.set_metadata(path, session_info(fp32))


def session_info(path: pathlib.Path) -> ModelInfo:
    """The contract metadata of a model file, read as the runtime reads it."""
    from edge_ser.session import open_session

    return open_session(path, threads=1).info


def fold_logits(files: dict[str, pathlib.Path], test_x: np.ndarray, padded_x: np.ndarray,
                out: pathlib.Path) -> dict[str, np.ndarray]:
    """Every file's logits on the test clips, through the runtime's session (cached in logits.npz;
    the fixed-frame TFLite file on the windows padded as the runtime pads them)."""
    def make(path):
        with open(path, "wb") as f:
            np.savez(f, **{name: evaluate.session_logits(p, padded_x if name == TFLITE else test_x)
                           for name, p in files.items()})

    with np.load(atomic(out / "logits.npz", make)) as saved:
        return {name: saved[name] for name in saved.files}


def calibration_clips(train: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(CALIBRATION_SEED)
    return np.sort(rng.choice(train, min(N_CALIBRATION, len(train)), replace=False))


def fold_splits(run: FusionRun, corpus) -> dict:
    """{fold name: its train/test split} of the run's protocol over `corpus`."""
    return {f.name: f for f in protocols.make_folds(run.protocol, corpus.targets(), corpus.speakers())}


def cross_validate(run: FusionRun, encoder, corpus, features: np.ndarray, out: pathlib.Path,
                   progress: bool = True) -> dict:
    """Files and test logits of every fold -> pooled scores of FP32 and each INT8 variant;
    `features`: every clip's `window_features`."""
    targets, speakers, splits = corpus.targets(), corpus.speakers(), fold_splits(run, corpus)
    padded_seconds = run.features.samples_for_frames(tflite_frames(run)) / run.features.sample_rate
    padded = window_features(run, corpus, padded_seconds)
    truth, groups, logits = [], [], {}
    for i, fold in enumerate(run.folds):
        split = splits[fold]
        files = model_files(run, fold, encoder, features[calibration_clips(split.train)], out / fold)
        for name, values in fold_logits(files, features[split.test], padded[split.test], out / fold).items():
            logits.setdefault(name, []).append(values)
        truth.append(targets[split.test])
        groups.append(np.array([corpus_of(s) for s in speakers[split.test]]))
        if progress:
            print(f"  fold {i + 1}/{len(run.folds)} {fold}: files and test logits done", flush=True)
    return pooled_scores(np.concatenate(truth), np.concatenate(groups),
                         {k: np.concatenate(v) for k, v in logits.items()}, len(run.labels), [len(t) for t in truth])


def pooled_scores(truth: np.ndarray, groups: np.ndarray, logits: dict[str, np.ndarray], n_classes: int,
                  fold_sizes: list[int]) -> dict:
    """Per file: pooled UA/WA/F1, per corpus, per-fold UA mean/std, confusion; INT8 files also their
    agreement with FP32 and UA drop, and whether both parity gates pass."""
    result = {}
    for name, values in logits.items():
        predicted = values.argmax(1)
        matrix = metrics.confusion(truth, predicted, n_classes)
        edges = np.cumsum([0] + fold_sizes)
        fold_ua = [metrics.scores(metrics.confusion(truth[a:b], predicted[a:b], n_classes))["ua"]
                   for a, b in zip(edges[:-1], edges[1:])]
        result[name] = {"pooled": metrics.scores(matrix), "confusion": matrix.tolist(),
                        "per_corpus": {g: metrics.scores(metrics.confusion(truth[groups == g], predicted[groups == g],
                                                                           n_classes))
                                       for g in sorted(set(groups))},
                        "fold_ua_mean": float(np.mean(fold_ua)), "fold_ua_std": float(np.std(fold_ua))}
    for name in (*VARIANTS, TFLITE):
        if name not in logits:
            continue
        agreement = evaluate.agreement(logits[name], logits[FP32])
        drop = result[FP32]["pooled"]["ua"] - result[name]["pooled"]["ua"]
        result[name]["parity"] = {"agreement_with_fp32": agreement, "ua_drop": drop,
                                  "passes": agreement >= MIN_GATE_AGREEMENT and drop <= MAX_GATE_UA_DROP}
    if TFLITE in logits:
        result[TFLITE]["agreement_with_onnx"] = {v: evaluate.agreement(logits[TFLITE], logits[v]) for v in VARIANTS}
    return result


def deployed_files(run: FusionRun, encoder, features: np.ndarray, out: pathlib.Path) -> dict:
    """The every-clip model's files (calibrated on its own training clips, `features`) with size,
    the ops left in float, and latency for a 3-s clip at one thread."""
    (fold,) = run.folds
    files = model_files(run, fold, encoder, features[calibration_clips(np.arange(len(features)))], out)
    frames = run.features.n_frames(run.features.n_samples(CLIP_SECONDS))
    return {name: {"file": str(path.relative_to(out.parent)), "size_bytes": path.stat().st_size,
                   "float_ops": quantize.float_ops(path) if name in VARIANTS else None,
                   "latency_3s": evaluate.latency_ms(path, run.features.n_mels, frames, LATENCY_REPEATS)}
            for name, path in files.items()}


def parameters(run: FusionRun, encoder) -> int:
    from train.fusion.standalone import load_standalone

    model, _ = load_standalone(run.path / "checkpoints" / f"{run.folds[0]}.pt", encoder)
    return sum(p.numel() for p in model.parameters())


def build_candidate(cv_run: pathlib.Path, all_run: pathlib.Path, name: str, out: pathlib.Path,
                    progress: bool = True) -> dict:
    """Cross-validated scores and the deployable files of one encoder model -> candidate.json."""
    from train.encoders.sources import load_encoder

    started = time.process_time()
    cv, final = FusionRun.read(cv_run), FusionRun.read(all_run)
    if final.protocol != "all" or (cv.encoder, cv.corpus, cv.seconds) != (final.encoder, final.corpus, final.seconds):
        raise ValueError(f"{all_run}: must be the every-clip run (--protocol all) of {cv_run}'s encoder, corpus and window")
    encoder, _ = load_encoder(cv.encoder)
    encoder.eval()
    # Both runs read the same corpus at the same window (checked above): one pass over the audio.
    corpus = load_corpus(cv.corpus, cv.data and pathlib.Path(cv.data))
    features = window_features(cv, corpus)
    folder = out / name
    candidate = {"name": name, "kind": "encoder", "encoder": cv.encoder, "corpus": cv.corpus,
                 "protocol": cv.protocol, "labels": list(cv.labels), "window_seconds": cv.seconds,
                 "cv_run": cv_run.name, "all_run": all_run.name, "parameters": parameters(final, encoder),
                 "training": run_cost(cv_run, all_run),
                 "cross_validation": cross_validate(cv, encoder, corpus, features, folder, progress),
                 "files": deployed_files(final, encoder, features, folder / "all"),
                 "gates": {"min_agreement": MIN_GATE_AGREEMENT, "max_ua_drop": MAX_GATE_UA_DROP},
                 "export_cpu_seconds": time.process_time() - started, "environment": environment()}
    write_json(folder / "candidate.json", candidate)
    return candidate


def run_cost(*runs: pathlib.Path) -> dict:
    """Training CPU seconds of each run (one thread), from its summary."""
    return {r.name: json.loads((r / "summary.json").read_text()).get("train_seconds") for r in runs}
