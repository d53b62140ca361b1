"""Accuracy on degraded clips: a finished run's saved fold models re-scored on their test clips
mixed with recorded noise at fixed SNRs (`python -m train noisy`: result sets `noisy_10db`, ...)
or in simulated reverberant rooms (`python -m train reverb`: `reverb_0.6s`, ...).

Each test clip gets one noise segment, or one room's random tail, drawn from a seed and the
clip's file name, so every level and every run hears the same degradation on the same clip and
runs compare clip for clip. The degradation is applied to the waveform and goes through the
runtime's extractor, as a device would hear it. Nothing is retrained and nothing is chosen on
the test folds.
"""
from __future__ import annotations

import functools
import pathlib
from typing import Callable

import numpy as np
import torch

from edge_ser.config import FeatureConfig
from edge_ser.features import log_mel

from .data import Corpus, read_audio
from .ensemble import softmax, write_result_set
from .features import fix_length
from .loop import predict_logits
from .noise import clip_rng, draw_noise, file_digests, load_noises, mix_at_snr, noise_files
from .rescore import check_reproduces, fold_models, scored, single_run
from .result_sets import NOISE, REVERB
from .reverb import RT60S, reverberate, room_impulse
from .run_dir import clip_features

SNRS = (20.0, 10.0, 5.0, 0.0)  # dB

# One clip's waveform and its random stream -> {result set: degraded waveform}.
Degrade = Callable[[np.ndarray, np.random.Generator], dict[str, np.ndarray]]

_LAST: dict = {}  # the last corpus's degraded features: a batch of runs on one corpus makes them once


def degraded_features(corpus: Corpus, config: FeatureConfig, seconds: float, degrade: Degrade, key: tuple,
                      seed: int = 0) -> dict[str, torch.Tensor]:
    """{result set: log-mel [n_clips, n_mels, frames]} of every clip fixed to `seconds`, then
    degraded; `key` names the degradation (its settings) for the one-entry cache."""
    full_key = (tuple(c.path for c in corpus.clips), config.key(), seconds, key, seed)
    if full_key not in _LAST:
        _LAST.clear()  # one corpus at a time: RAVDESS at four levels is ~0.5 GB
        n_samples, out = config.n_samples(seconds), {}
        for clip in corpus.clips:
            speech = fix_length(read_audio(clip.path), n_samples)
            for name, wave in degrade(speech, clip_rng(seed, clip.path)).items():
                out.setdefault(name, []).append(log_mel(wave, config))
        _LAST[full_key] = {name: torch.from_numpy(np.stack(x)) for name, x in out.items()}
    return _LAST[full_key]


def in_noise(noise_dir: pathlib.Path, snrs: tuple[float, ...]) -> tuple[Degrade, tuple]:
    """One noise segment per clip (the same at every SNR), mixed at each SNR."""
    noises = []  # read on first use: a cached corpus needs none

    def degrade(speech: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        noises[:] = noises or load_noises(noise_dir)
        noise = draw_noise(noises, len(speech), rng)
        return {NOISE.name(snr): mix_at_snr(speech, noise, snr) for snr in snrs}

    return degrade, ("noise", pathlib.Path(noise_dir).resolve(), tuple(snrs))


def in_rooms(rt60s: tuple[float, ...], sample_rate: int) -> tuple[Degrade, tuple]:
    """One random room tail per clip (the same noise sequence at every RT60), convolved."""
    def degrade(speech: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        room = int(rng.integers(2**63))
        return {REVERB.name(rt60): reverberate(speech, room_impulse(rt60, sample_rate, np.random.default_rng(room)))
                for rt60 in rt60s}

    return degrade, ("reverb", tuple(rt60s), sample_rate)


def noisy_corpus_features(corpus: Corpus, config: FeatureConfig, seconds: float, noise_dir: pathlib.Path,
                          snrs: tuple[float, ...], seed: int = 0) -> dict[str, torch.Tensor]:
    """{`noisy_<snr>db`: log-mel [n_clips, n_mels, frames]}: every clip mixed with its noise segment."""
    return degraded_features(corpus, config, seconds, *in_noise(noise_dir, snrs), seed)


def reverberant_corpus_features(corpus: Corpus, config: FeatureConfig, seconds: float, rt60s: tuple[float, ...],
                                seed: int = 0) -> dict[str, torch.Tensor]:
    """{`reverb_<rt60>s`: log-mel [n_clips, n_mels, frames]}: every clip in its simulated room."""
    return degraded_features(corpus, config, seconds, *in_rooms(rt60s, config.sample_rate), seed)


def score_degraded(run_dir: pathlib.Path, features: Callable, describe: Callable[[str], tuple[dict, str]],
                   data: str | None = None, refuse: Callable | None = None) -> dict[str, dict]:
    """Write `<run_dir>/<result set>/` for each set `features(cfg, corpus)` returns; `describe(set)`
    -> (what each fold records about it, the set's title); `refuse(cfg)` raises ValueError for a
    run the degradation cannot test fairly. Returns {result set: summary}."""
    run_dir = pathlib.Path(run_dir)
    config, cfg, corpus = single_run(run_dir, data)
    if refuse is not None:
        refuse(cfg)
    if cfg.speaker_norm:
        raise ValueError(f"{run_dir}: speaker-normalised runs are not supported (their statistics would come "
                         "from the degraded clips)")
    clean, degraded = clip_features(cfg, corpus, cfg.seconds), features(cfg, corpus)
    results = {name: [] for name in degraded}
    for source, model, rows, where in fold_models(run_dir, config, corpus):
        check_reproduces(source, predict_logits(model, clean[rows]), where)
        for name, x in degraded.items():
            probabilities = softmax(predict_logits(model, x[rows]).astype(np.float64))
            results[name].append(scored(source, probabilities, len(config["labels"]), **describe(name)[0]))
    return {name: write_result_set(run_dir / name, results[name], config["labels"], f"{run_dir.name}, {describe(name)[1]}")
            for name in degraded}


@functools.lru_cache(maxsize=8)
def folder_digests(folder: pathlib.Path) -> frozenset[str]:
    """The recordings of a noise folder by content, hashed once per batch of runs."""
    return frozenset(file_digests(noise_files(folder)))


def score_in_noise(run_dir: pathlib.Path, noise_dir: pathlib.Path, snrs: tuple[float, ...] = SNRS,
                   seed: int = 0, data: str | None = None) -> dict[str, dict]:
    """Write `<run_dir>/noisy_<snr>db/` for each SNR; returns {result set: summary}. Refuses noise
    the run trained with (by file hash)."""
    def refuse(cfg):
        heard = folder_digests(pathlib.Path(cfg.noise_train).resolve()) if cfg.noise_train else frozenset()
        if heard & folder_digests(pathlib.Path(noise_dir).resolve()):
            raise ValueError(f"{run_dir}: trained with noise from {cfg.noise_train}, which holds recordings of "
                             f"--noise {noise_dir}: test on noise it never heard")

    def features(cfg, corpus):
        return noisy_corpus_features(corpus, cfg.feature_config(), cfg.seconds, noise_dir, snrs, seed)

    def describe(name: str) -> tuple[dict, str]:
        snr = NOISE.value_of(name)
        return {"snr_db": snr, "noise": str(noise_dir), "noise_seed": seed}, f"in noise at {snr:g} dB SNR"

    return score_degraded(run_dir, features, describe, data, refuse)


def score_in_rooms(run_dir: pathlib.Path, rt60s: tuple[float, ...] = RT60S, seed: int = 0,
                   data: str | None = None) -> dict[str, dict]:
    """Write `<run_dir>/reverb_<rt60>s/` for each RT60; returns {result set: summary}."""
    def features(cfg, corpus):
        return reverberant_corpus_features(corpus, cfg.feature_config(), cfg.seconds, rt60s, seed)

    def describe(name: str) -> tuple[dict, str]:
        rt60 = REVERB.value_of(name)
        return {"rt60_s": rt60, "room": "statistical (train/reverb.py)", "room_seed": seed}, \
            f"in a simulated room, RT60 {rt60:g} s"

    return score_degraded(run_dir, features, describe, data)
