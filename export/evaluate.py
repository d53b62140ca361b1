"""Scoring exported models through the runtime itself (`edge_ser.session.open_session`: the same
code `edge-ser infer` runs): logits, UA/WA, top-1 agreement between two models, latency."""
from __future__ import annotations

import pathlib
import statistics
import time

import numpy as np

from train import metrics

LATENCY_REPEATS = 30  # timed single-clip calls (after warm-up) per model
WARMUP = 3
BATCH = 16


def session_logits(path: pathlib.Path, features: np.ndarray, batch: int = BATCH) -> np.ndarray:
    """Model file -> logits [N, C] for features [N, n_mels, frames], one thread."""
    from edge_ser.session import open_session

    session = open_session(path, threads=1)
    features = np.asarray(features, dtype=np.float32)
    return np.concatenate([session(features[s:s + batch]) for s in range(0, len(features), batch)])


def scores(targets: np.ndarray, predicted: np.ndarray, n_classes: int) -> dict:
    """UA (mean per-class recall over present classes), WA, macro-F1, the confusion matrix and
    the predicted class of every clip (so any two models can be compared later)."""
    matrix = metrics.confusion(np.asarray(targets), np.asarray(predicted), n_classes)
    return {**metrics.scores(matrix), "confusion": matrix.tolist(), "predicted": np.asarray(predicted).tolist()}


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of clips whose top-1 class is the same under logits `a` and `b` [N, C]."""
    return float(np.mean(np.argmax(a, axis=1) == np.argmax(b, axis=1)))


def latency_ms(path: pathlib.Path, n_mels: int, frames: int, repeats: int = LATENCY_REPEATS) -> dict:
    """Median / p90 wall time of one single-clip call [1, n_mels, frames], one thread (the
    machine is shared: compare models measured in the same session, not across sessions)."""
    from edge_ser.session import open_session

    from edge_ser.bench import percentiles, time_calls

    session = open_session(path, threads=1)
    x = np.random.default_rng(0).normal(-5, 3, (1, n_mels, frames)).astype(np.float32)
    times = sorted(time_calls(lambda: session(x), repeats, WARMUP))
    median, p95 = percentiles(times)
    return {"median_ms": median, "p90_ms": times[int(0.9 * (len(times) - 1))], "p95_ms": p95,
            "repeats": repeats, "threads": 1}


def torch_latency_ms(model, n_mels: int, frames: int, repeats: int = LATENCY_REPEATS) -> dict:
    """The same measurement for a PyTorch model (eval, no grad)."""
    import torch

    x = torch.from_numpy(np.random.default_rng(0).normal(-5, 3, (1, n_mels, frames)).astype(np.float32))
    model.eval()
    times = []
    with torch.no_grad():
        for i in range(WARMUP + repeats):
            start = time.perf_counter()
            model(x)
            if i >= WARMUP:
                times.append(1000 * (time.perf_counter() - start))
    times.sort()
    return {"median_ms": statistics.median(times), "p90_ms": times[int(0.9 * (len(times) - 1))],
            "repeats": repeats, "threads": torch.get_num_threads()}
