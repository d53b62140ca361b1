"""Evaluation splits. Speaker-independent (the headline): leave-one-speaker-out, groups of
speakers (RAVDESS: actors 1-4, 5-8, ...), 5 speaker-disjoint folds for combined corpora, and
cross-corpus folds for combined corpora (train on all corpora but one, test on that one).
Speaker-dependent: stratified k-fold over clips. `all` is no evaluation split: one "fold" that
trains on every clip (a model to ship), its scores are on the training clips themselves."""
from __future__ import annotations

import dataclasses

import numpy as np

PROTOCOLS = ("loso", "groups4", "spk5", "cross", "sd10", "all")
SPEAKER_INDEPENDENT = ("loso", "groups4", "spk5", "cross")


@dataclasses.dataclass(frozen=True)
class Fold:
    name: str
    train: np.ndarray  # clip indices
    test: np.ndarray


def _speaker_key(speaker: str) -> tuple:
    """Sort key: corpus prefix ("emodb:" of combined corpora), then the id, numerically when it
    is a number (actor 2 before actor 10)."""
    corpus, _, local = speaker.rpartition(":")
    return (corpus, 0, int(local), "") if local.isdigit() else (corpus, 1, 0, local)


def _speaker_order(speakers: np.ndarray) -> list[str]:
    return sorted(set(speakers.tolist()), key=_speaker_key)


def speaker_folds(speakers: np.ndarray, group_size: int = 1) -> list[Fold]:
    """One fold per consecutive group of `group_size` speakers; their clips are the test set."""
    order = _speaker_order(speakers)
    folds = []
    for start in range(0, len(order), group_size):
        group = order[start : start + group_size]
        test = np.isin(speakers, group)
        folds.append(Fold("spk-" + "-".join(group), np.flatnonzero(~test), np.flatnonzero(test)))
    return folds


def dealt_speaker_folds(speakers: np.ndarray, k: int = 5) -> list[Fold]:
    """k speaker-disjoint folds: speakers in `_speaker_order` dealt round-robin, so each corpus of
    a combined set spreads evenly (EmoDB + RAVDESS: 2 EmoDB speakers and 4-5 actors per fold)."""
    order = _speaker_order(speakers)
    groups = [order[i::k] for i in range(k)]
    folds = []
    for i, group in enumerate(groups):
        test = np.isin(speakers, group)
        folds.append(Fold(f"spk5-{i + 1}", np.flatnonzero(~test), np.flatnonzero(test)))
    return folds


def corpus_folds(speakers: np.ndarray) -> list[Fold]:
    """One fold per corpus of a combined corpus ("emodb:03" speakers): test on that corpus, train on
    the others, named "ravdess->emodb" (training corpora, then the tested one)."""
    corpora = np.array([s.rpartition(":")[0] for s in speakers])
    names = sorted(set(corpora.tolist()))
    if len(names) < 2 or "" in names:
        raise ValueError("the cross protocol needs a combined corpus, e.g. emodb+ravdess")
    return [Fold("+".join(n for n in names if n != tested) + "->" + tested, np.flatnonzero(corpora != tested),
                 np.flatnonzero(corpora == tested)) for tested in names]


def stratified_folds(labels: np.ndarray, k: int = 10, seed: int = 0) -> list[Fold]:
    """Speaker-DEPENDENT k-fold: each class's clips are shuffled and dealt round-robin to folds."""
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        fold_of[members] = (np.arange(len(members)) + offset) % k
        offset += len(members)  # continue dealing where the last class stopped: balanced fold sizes
    return [Fold(f"sd-{i:02d}", np.flatnonzero(fold_of != i), np.flatnonzero(fold_of == i)) for i in range(k)]


def make_folds(protocol: str, labels: np.ndarray, speakers: np.ndarray, seed: int = 0) -> list[Fold]:
    """`loso` | `groups4` | `spk5` | `cross` | `sd10` | `all`; speaker-independent folds are checked to share
    no speaker."""
    if protocol == "loso":
        folds = speaker_folds(speakers, 1)
    elif protocol == "groups4":
        folds = speaker_folds(speakers, 4)
    elif protocol == "spk5":
        folds = dealt_speaker_folds(speakers, 5)
    elif protocol == "cross":
        folds = corpus_folds(speakers)
    elif protocol == "sd10":
        return stratified_folds(labels, 10, seed)
    elif protocol == "all":
        everything = np.arange(len(labels))
        return [Fold("all", everything, everything)]
    else:
        raise ValueError(f"unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
    for fold in folds:
        shared = set(speakers[fold.train]) & set(speakers[fold.test])
        assert not shared, f"fold {fold.name}: speakers {shared} in both train and test"
    return folds


def is_speaker_independent(protocol: str) -> bool:
    return protocol in SPEAKER_INDEPENDENT
