"""Accuracy in noise: a finished run's saved fold models re-scored on their test clips mixed with
recorded noise at fixed SNRs (`python -m train noisy`), one result set per SNR (`noisy_10db`, ...).

Each test clip gets one noise file and offset, drawn from a seed and the clip's file name, so
every SNR and every run hears the same noise on the same clip and runs compare clip for clip.
The mix is made on the waveform and goes through the runtime's extractor, as a device would
hear it. Nothing is retrained and nothing is chosen on the test folds.
"""
from __future__ import annotations

import pathlib

import numpy as np
import torch

from edge_ser.config import FeatureConfig
from edge_ser.features import log_mel

from .data import Corpus, read_audio
from .ensemble import softmax, write_result_set
from .features import fix_length
from .loop import predict_logits
from .noise import clip_rng, draw_noise, file_digests, load_noises, mix_at_snr, noise_files
from .result_sets import noisy_name
from .rescore import check_reproduces, fold_models, scored, single_run
from .run import clip_features

SNRS = (20.0, 10.0, 5.0, 0.0)  # dB


_LAST: dict = {}  # the last corpus's noisy features: a batch of runs on one corpus mixes its clips once


def noisy_corpus_features(corpus: Corpus, config: FeatureConfig, seconds: float, noise_dir: pathlib.Path,
                          snrs: tuple[float, ...], seed: int = 0) -> dict[float, torch.Tensor]:
    """{snr: log-mel [n_clips, n_mels, frames]} of every clip, fixed to `seconds`, mixed with its
    noise segment (the same segment at every SNR)."""
    key = (tuple(c.path for c in corpus.clips), config.key(), seconds, pathlib.Path(noise_dir).resolve(),
           tuple(snrs), seed)
    if key not in _LAST:
        _LAST.clear()  # one corpus at a time: RAVDESS at four SNRs is ~0.5 GB
        _LAST[key] = _mixed_features(corpus, config, seconds, noise_dir, snrs, seed)
    return _LAST[key]


def _mixed_features(corpus: Corpus, config: FeatureConfig, seconds: float, noise_dir: pathlib.Path,
                    snrs: tuple[float, ...], seed: int) -> dict[float, torch.Tensor]:
    noises, n_samples = load_noises(noise_dir), config.n_samples(seconds)
    out = {snr: [] for snr in snrs}
    for clip in corpus.clips:
        noise = draw_noise(noises, n_samples, clip_rng(seed, clip.path))
        speech = fix_length(read_audio(clip.path), n_samples)
        for snr in snrs:
            out[snr].append(log_mel(mix_at_snr(speech, noise, snr), config))
    return {snr: torch.from_numpy(np.stack(x)) for snr, x in out.items()}


def score_in_noise(run_dir: pathlib.Path, noise_dir: pathlib.Path, snrs: tuple[float, ...] = SNRS,
                   seed: int = 0, data: str | None = None) -> dict[str, dict]:
    """Write `<run_dir>/noisy_<snr>db/` for each SNR; returns {result set: summary}."""
    run_dir = pathlib.Path(run_dir)
    config, cfg, corpus = single_run(run_dir, data)
    if cfg.speaker_norm:
        raise ValueError(f"{run_dir}: speaker-normalised runs are not supported (their statistics would come "
                         "from the noisy clips)")
    heard = file_digests(noise_files(pathlib.Path(cfg.noise_train))) if cfg.noise_train else set()
    if heard & file_digests(noise_files(noise_dir)):
        raise ValueError(f"{run_dir}: trained with noise from {cfg.noise_train}, which holds recordings of "
                         f"--noise {noise_dir}: test on noise it never heard")
    clean = clip_features(cfg, corpus, cfg.seconds)
    noisy = noisy_corpus_features(corpus, cfg.feature_config(), cfg.seconds, noise_dir, snrs, seed)
    results = {snr: [] for snr in snrs}
    for source, model, rows, where in fold_models(run_dir, config, corpus):
        check_reproduces(source, predict_logits(model, clean[rows]), where)
        for snr in snrs:
            probabilities = softmax(predict_logits(model, noisy[snr][rows]).astype(np.float64))
            results[snr].append(scored(source, probabilities, len(config["labels"]), snr_db=snr,
                                       noise=str(noise_dir), noise_seed=seed))
    return {noisy_name(snr): write_result_set(run_dir / noisy_name(snr), results[snr], config["labels"],
                                              f"{run_dir.name}, in noise at {snr:g} dB SNR")
            for snr in snrs}
