"""Knowledge distillation: a student trained on soft teacher targets plus the labels, with
`train.kd.kd_loss` (the loss training runs distil with too).

The teacher is either a module taking the same log-mel batch as the student (run on the very
same augmented batch, so targets stay consistent with what the student sees) or a tensor of
precomputed logits [N, n_classes] for the training clips: a teacher with other inputs (e.g. a
fusion model with an SSL encoder) is distilled by computing its logits once, and the student
stays log-mel only, so the device needs no SSL encoder. Training on the training folds only.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from train.kd import ALPHA, TEMPERATURE, kd_loss  # noqa: F401 (one loss for train and export)
from train.loop import class_weights, cosine_lr, noisy_batch, run_epochs, time_shift

EPOCHS = 40  # as the CNN baseline run (runs/emodb_loso_cnn)
LR = 2e-3
WEIGHT_DECAY = 0.05
BATCH_SIZE = 32


@torch.no_grad()
def teacher_targets(teacher, batch: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Teacher logits [B, C] for a batch: run a module, or index precomputed logits."""
    if isinstance(teacher, torch.Tensor):
        return teacher[index]
    return teacher(batch)


def distill(student: nn.Module, teacher, features: torch.Tensor, targets: torch.Tensor, n_classes: int, *,
            epochs: int = EPOCHS, lr: float = LR, temperature: float = TEMPERATURE, alpha: float = ALPHA,
            weight_decay: float = WEIGHT_DECAY, batch_size: int = BATCH_SIZE, seed: int = 0,
            augment: bool = True, desc: str = "distil", progress: bool = True,
            noisy: torch.Tensor | None = None, noise_p: float = 0.0) -> list[float]:
    """Train `student` in place on features [N, n_mels, frames] and class ids [N]; returns the
    mean loss per epoch. `teacher`: module or precomputed logits [N, n_classes] (then the time
    shift augmentation is off, since the logits belong to the unshifted clips). `noisy` [N,
    copies, ...]: noisy copies of the clips, one of which replaces a drawn clip with chance
    `noise_p` (a teacher module then answers for the noisy clip the student sees)."""
    precomputed = isinstance(teacher, torch.Tensor)
    if precomputed and len(teacher) != len(features):
        raise ValueError(f"teacher logits cover {len(teacher)} clips, the training set has {len(features)}")
    if precomputed and noisy is not None:
        raise ValueError("noisy copies need a teacher module (precomputed logits belong to the clean clips)")
    if not precomputed:
        teacher.eval()
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=weight_decay)
    steps = math.ceil(len(features) / batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine_lr(s, epochs * steps, steps))
    weight = class_weights(targets, n_classes)

    def batch_loss(index: torch.Tensor) -> torch.Tensor:
        batch = features[index]
        if noisy is not None:
            batch = noisy_batch(batch, noisy[index], noise_p, generator)
        if augment and not precomputed:
            batch = time_shift(batch, generator)
        return kd_loss(student(batch), teacher_targets(teacher, batch, index), targets[index],
                       temperature, alpha, weight)

    history = run_epochs(student, batch_loss, len(features), epochs=epochs, batch_size=batch_size,
                         optimizer=optimizer, schedule=schedule, generator=generator, desc=desc,
                         progress=progress)
    student.eval()
    return history


@torch.no_grad()
def logits_of(model: nn.Module, features: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Logits [N, C] of a log-mel model for features [N, n_mels, frames] (eval mode)."""
    model.eval()
    return torch.cat([model(features[s:s + batch_size]) for s in range(0, len(features), batch_size)])
