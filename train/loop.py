"""Training and prediction loops on in-memory features (every corpus here fits in RAM)."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .adversary import SpeakerAdversary, ramp
from .augment import Augmentation, freq_warp, mixed_loss, mixup, random_crop, spec_augment
from .kd import kd_loss

MAX_SHIFT_FRAMES = 20  # augmentation: random circular time shift of up to ±0.2 s


def class_weights(targets: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights [n_classes] (mean 1 over present classes): UA is the metric."""
    counts = torch.bincount(targets, minlength=n_classes).float()
    weights = torch.where(counts > 0, counts.sum() / (n_classes * counts.clamp_min(1)), torch.zeros(()))
    return weights


def time_shift(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """[B, n_mels, frames] each rolled along time by a random offset in ±MAX_SHIFT_FRAMES."""
    shifts = torch.randint(-MAX_SHIFT_FRAMES, MAX_SHIFT_FRAMES + 1, (len(batch),), generator=generator)
    return torch.stack([torch.roll(x, int(s), dims=-1) for x, s in zip(batch, shifts)])


def noisy_batch(batch: torch.Tensor, copies: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """[B, n_mels, frames] with each clip, with chance `p`, replaced by a random one of its noisy
    copies [B, copies, n_mels, frames]."""
    use = torch.rand(len(batch), generator=generator) < p
    pick = torch.randint(copies.shape[1], (len(batch),), generator=generator)
    return torch.where(use[:, None, None], copies[torch.arange(len(batch)), pick], batch)


def cosine_lr(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up then cosine decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def run_epochs(module: nn.Module, batch_loss, n: int, *, epochs: int, batch_size: int,
               optimizer: torch.optim.Optimizer, schedule, generator: torch.Generator,
               desc: str = "train", progress: bool = True, on_step=None) -> list[float]:
    """The loop every trainer here shares: each epoch, shuffle the n clips with `generator`,
    call `batch_loss(index)` -> scalar loss on each batch of indices [<= batch_size], step the
    optimizer and the per-step schedule, then `on_step()` if given. `module` is put in train
    mode. Returns per-epoch mean loss."""
    epochs_iter = range(epochs)
    if progress:
        from tqdm import tqdm

        epochs_iter = tqdm(epochs_iter, desc=desc, unit="epoch", leave=False)
    history = []
    module.train()
    for _ in epochs_iter:
        order, losses = torch.randperm(n, generator=generator), []
        for start in range(0, n, batch_size):
            loss = batch_loss(order[start : start + batch_size])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if on_step is not None:
                on_step()
            losses.append(loss.item())
        history.append(float(np.mean(losses)))
        if progress:
            epochs_iter.set_postfix(loss=f"{history[-1]:.3f}")
    return history


def fit(model: nn.Module, features: torch.Tensor, targets: torch.Tensor, n_classes: int, *,
        epochs: int, lr: float, weight_decay: float = 0.05, batch_size: int = 32, seed: int = 0,
        warmup_epochs: float = 1.0, label_smoothing: float = 0.1, desc: str = "train",
        progress: bool = True, augmentation: Augmentation | None = None,
        crop_frames: int | None = None, speakers: torch.Tensor | None = None,
        adversary_weight: float = 0.0, teacher: torch.Tensor | None = None, shift: bool = True,
        ema: float = 0.0, noisy: torch.Tensor | None = None, noise_p: float = 0.5) -> list[float]:
    """Train in place on features [N, n_mels, frames] and targets [N]; returns per-epoch mean loss.

    Each batch: a random `crop_frames` window when given (features then hold longer clips), the
    circular time shift, then `augmentation`'s frequency warp, SpecAugment masks and mixup
    (default: none). With `adversary_weight` > 0, a speaker adversary on the embedding is trained
    alongside (`train.adversary`: the encoder learns to confuse it; `speakers` [N] are speaker ids 0..S-1), not with mixup.
    With `teacher` (log-probabilities [N, classes] of a teacher on the unaugmented clips), the
    loss is `train.kd.kd_loss` instead, both terms class-weighted: a circular shift barely
    moves a clip-level prediction, so the unshifted clip's target stands for the shifted one; no
    other augmentation or random crop (a speaker adversary may run alongside). `shift=False`
    leaves the clips as given (views a teacher's targets were computed on, `train.teachers.teacher_views`).
    `noisy` [N, copies, n_mels, frames] are noisy copies of the clips (`train.copies.training_copies`: noise, rooms or both):
    each time a clip is drawn, with chance `noise_p` one of them replaces it. With `ema` > 0 the model ends with the exponential moving average of its weights over the
    steps (`weight_average`), not with the last step's, and BatchNorm statistics recomputed for
    them on `features` (`use_average`)."""
    augmentation = augmentation or Augmentation()
    augmented = (augmentation.freq_masks or augmentation.time_masks or augmentation.mixup_alpha or augmentation.freq_warp
                 or noisy is not None)
    if teacher is not None and (augmented or crop_frames is not None):
        raise ValueError("distillation: not with augmentation beyond the time shift or random crops")
    if teacher is not None and teacher.shape != (len(features), n_classes):
        raise ValueError(f"teacher targets {tuple(teacher.shape)} for {len(features)} clips of {n_classes} classes")
    generator = torch.Generator().manual_seed(seed)
    # Only drawn from when mixup is on, so runs without it keep their exact random stream.
    rng = np.random.default_rng(seed) if augmentation.mixup_alpha > 0 else None
    adversary = None
    if adversary_weight > 0:
        if rng is not None or speakers is None:
            raise ValueError("a speaker adversary needs speaker ids and no mixup (mixed clips have two speakers)")
        with torch.no_grad():  # on one clip as the model sees it (a ViT takes only its own width)
            dim = model.eval().embedding(features[:1, :, :crop_frames]).shape[1]
        adversary = SpeakerAdversary(dim, int(speakers.max()) + 1)
    parameters = list(model.parameters()) + ([] if adversary is None else list(adversary.parameters()))
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(features) / batch_size)
    total, warmup = epochs * steps_per_epoch, int(warmup_epochs * steps_per_epoch)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: cosine_lr(s, total, warmup))
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(targets, n_classes), label_smoothing=label_smoothing)

    def batch_loss(index: torch.Tensor) -> torch.Tensor:
        batch = features[index]
        if noisy is not None:
            batch = noisy_batch(batch, noisy[index], noise_p, generator)
        if crop_frames is not None:
            batch = random_crop(batch, crop_frames, generator)
        if shift:
            batch = time_shift(batch, generator)
        if augmentation.freq_warp:
            batch = freq_warp(batch, augmentation.freq_warp, augmentation.band_hz, generator)
        batch = spec_augment(batch, augmentation, generator)
        if rng is None:
            embedding = None if adversary is None else model.embedding(batch)
            logits = model(batch) if embedding is None else model.logits(embedding)
            task = (loss_fn(logits, targets[index]) if teacher is None else
                    kd_loss(logits, teacher[index], targets[index], weight=loss_fn.weight, balanced_soft=True))
            if adversary is None:
                return task
            weight = ramp(schedule.last_epoch / total, adversary_weight)
            return task + adversary.loss(embedding, speakers[index], weight)
        batch, partner, lam = mixup(batch, augmentation.mixup_alpha, generator, rng)
        return mixed_loss(loss_fn, model(batch), targets[index], partner, lam)

    average = weight_average(model, ema) if ema else None
    history = run_epochs(model, batch_loss, len(features), epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                         schedule=schedule, generator=generator, desc=desc, progress=progress,
                         on_step=None if average is None else lambda: average.update_parameters(model))
    if average is not None:
        use_average(model, average, features if crop_frames is None else centre_window(features, crop_frames), batch_size)
    return history


def centre_window(features: torch.Tensor, frames: int) -> torch.Tensor:
    """[N, n_mels, frames] from the middle of longer clips [N, n_mels, T]: the window tested on."""
    start = (features.shape[-1] - frames) // 2
    return features[..., start : start + frames]


def weight_average(model: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
    """Exponential moving average of `model`'s parameters, `decay` per step."""
    if not 0 < decay < 1:
        raise ValueError(f"EMA decay {decay}: must be in (0, 1)")
    return torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay))


@torch.no_grad()
def use_average(model: nn.Module, average: torch.optim.swa_utils.AveragedModel, features: torch.Tensor,
                batch_size: int) -> None:
    """Give `model` the averaged parameters, then recompute its BatchNorm statistics over
    `features` [N, n_mels, frames] (as SWA does): an average of weights that pointed different
    ways is smaller than they were, so the statistics the steps kept no longer fit it (averaged
    statistics along with the weights collapsed EmoDB folds to chance)."""
    for mine, averaged in zip(model.parameters(), average.module.parameters()):
        mine.copy_(averaged)
    torch.optim.swa_utils.update_bn([features[s : s + batch_size] for s in range(0, len(features), batch_size)], model)
    model.eval()


@torch.no_grad()
def predict_logits(model: nn.Module, features: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Logits [N, classes] float32 for features [N, n_mels, frames] (eval mode)."""
    model.eval()
    logits = [model(features[s : s + batch_size]) for s in range(0, len(features), batch_size)]
    return torch.cat(logits).numpy()


def predict(model: nn.Module, features: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Class ids [N] for features [N, n_mels, frames]."""
    return predict_logits(model, features, batch_size).argmax(axis=1)
