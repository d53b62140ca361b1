"""The knowledge-distillation loss (Hinton et al., 2015), one for training runs distilling
from a teacher (train.loop with train.teachers' targets) and for the export chain's students
(`export.distill`, without `balanced_soft`, as its students always did):

loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))
       + (1 - alpha) * cross-entropy(student, labels)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

TEMPERATURE = 4.0  # softens the teacher's distribution (dark knowledge between emotions)
ALPHA = 0.7  # weight of the soft-target term


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
            temperature: float = TEMPERATURE, alpha: float = ALPHA, weight: torch.Tensor | None = None,
            balanced_soft: bool = False) -> torch.Tensor:
    """Logits [B, C], teacher logits (or log-probabilities) [B, C], class ids [B] -> scalar loss.
    `weight` [C] weighs the hard term's classes; with `balanced_soft` the soft term's clips too
    (by their label's weight, normalised as the weighted cross-entropy is). On its own training
    clips a teacher is close to the labels, so an unweighted soft term, which carries most of
    the loss, trains for the training prior (WA) whatever the hard term's weights say."""
    per_clip = F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                        F.softmax(teacher_logits / temperature, dim=1), reduction="none").sum(dim=1)
    clip_weight = weight[targets] if balanced_soft and weight is not None else torch.ones_like(per_clip)
    soft = (clip_weight * per_clip).sum() / clip_weight.sum()
    hard = F.cross_entropy(student_logits, targets, weight=weight)
    return alpha * temperature ** 2 * soft + (1 - alpha) * hard
