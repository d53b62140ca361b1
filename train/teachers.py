"""The teachers of knowledge distillation (Hinton et al., 2015): which finished run or ensemble
a training run may distil from (`--distil-from`, same protocol), and that teacher's targets; the
loss is `train.kd.kd_loss`.

A teacher's targets for one fold are its class probabilities on that fold's *training* clips,
computed from the checkpoints it trained on that fold (an ensemble: every member's, averaged),
so no test speaker reaches the student through them.
"""
from __future__ import annotations

import json
import pathlib

import torch

from .augment import spec_augment
from .loop import predict_logits, time_shift
from .run_dir import load_fold_model, read_run_config

# What a teacher must share with the run distilling from it (its config.json "run" fields).
SHARED_RUN_FIELDS = ("corpus", "protocol", "seconds")


def teacher_members(teacher: pathlib.Path, config: dict) -> list[pathlib.Path]:
    """The run directories whose checkpoints make up `teacher`: an ensemble's members, or itself."""
    if "ensemble_of" not in config["run"]:
        if config["run"].get("variants"):
            raise ValueError(f"--distil-from {teacher}: a run with masking variants (which checkpoint?); "
                             "use a single-phase run or an ensemble of them")
        return [teacher]
    if config["run"].get("ensemble_result_set") != "single":
        raise ValueError(f"--distil-from {teacher}: an ensemble of {config['run'].get('ensemble_result_set')!r} "
                         "results; only ensembles of single-phase runs can teach")
    return [pathlib.Path(member) for member in config["run"]["ensemble_of"]]


def check_teacher(teacher: pathlib.Path, config: dict, student: dict) -> None:
    """Refuse a teacher that saw other features or folds than the student `student` (the
    student run's config.json payload) will, or one trained on per-speaker statistics."""
    for key in SHARED_RUN_FIELDS:
        if config["run"].get(key) != student["run"].get(key):
            raise ValueError(f"--distil-from {teacher}: its {key} {config['run'].get(key)!r} is not this run's "
                             f"{student['run'].get(key)!r}")
    for key in ("labels", "feature_config", "input_shape"):
        if config[key] != student[key]:
            raise ValueError(f"--distil-from {teacher}: its {key} differ from this run's")
    if config["run"].get("speaker_norm"):
        raise ValueError(f"--distil-from {teacher}: trained on speaker-normalised features")
    for member in teacher_members(teacher, config):
        if not (member / "config.json").is_file():
            raise FileNotFoundError(f"--distil-from {teacher}: its member {member} is not a run directory "
                                    "(member paths are relative to the directory the ensemble was made in)")
        for fold in student["folds"]:
            _fold_test_clips(member, fold)  # every fold finished, before any is trained


def _fold_test_clips(run_dir: pathlib.Path, fold: str) -> list[str]:
    path = run_dir / "single" / f"fold_{fold}.json"  # teacher_members are single-phase runs
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the teacher has not finished fold {fold} (or has no such fold)")
    return json.loads(path.read_text())["test_clips"]


@torch.no_grad()
def teacher_views(teacher: pathlib.Path, fold: str, test_clips: list[str], train_x: torch.Tensor, views: int,
                  augmentation, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`views` augmented copies of a fold's training features [N, n_mels, frames] (each: the
    circular time shift, then `augmentation`'s SpecAugment masks; seeded) stacked as
    [views * N, n_mels, frames] (copy k of clip i at k * N + i), and the teacher's
    log-probabilities on each copy [views * N, C]. The student then sees exactly the inputs its targets were computed on
    ("consistent teaching", Beyer et al., CVPR 2022), on more of the teacher's function than
    the clips alone show."""
    generator = torch.Generator().manual_seed(seed)
    copies = torch.cat([spec_augment(time_shift(train_x, generator), augmentation, generator) for _ in range(views)])
    return copies, teacher_log_probs(teacher, fold, test_clips, copies)


@torch.no_grad()
def teacher_log_probs(teacher: pathlib.Path, fold: str, test_clips: list[str], train_x: torch.Tensor) -> torch.Tensor:
    """Log of the teacher's mean class probabilities [N, C] on a fold's training features (or
    views of them) [N, n_mels, frames]. Every checkpoint used must have held out exactly
    `test_clips`."""
    teacher = pathlib.Path(teacher)
    probabilities = []
    for member in teacher_members(teacher, read_run_config(teacher)):
        if _fold_test_clips(member, fold) != test_clips:
            raise ValueError(f"--distil-from {teacher}: {member}'s fold {fold} held out other clips than this run's")
        model, _ = load_fold_model(member, fold)
        probabilities.append(torch.from_numpy(predict_logits(model, train_x)).softmax(dim=1))
    return torch.stack(probabilities).mean(dim=0).clamp_min(1e-8).log()
