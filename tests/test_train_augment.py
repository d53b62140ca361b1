"""Training augmentation: SpecAugment masks, mixup and its soft-target loss, random crops, and
that `fit` without augmentation is exactly the original loop (old runs stay reproducible)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training tests need torch (the train extra)")

from torch import nn  # noqa: E402

from train import augment, loop  # noqa: E402
from train.__main__ import parser, run_config  # noqa: E402
from train.run import run  # noqa: E402
from train.run_config import RunConfig  # noqa: E402


def spectrograms(n=6, n_mels=16, frames=40, seed=0):
    return torch.randn(n, n_mels, frames, generator=torch.Generator().manual_seed(seed)) * 3 - 5


def test_frequency_masks_hide_whole_bands_with_the_clip_mean():
    x = spectrograms()
    got = augment.mask_axis(x, 1, n_masks=2, max_width=4, generator=torch.Generator().manual_seed(1))
    changed = (got != x)
    assert changed.any()
    band_hidden = changed.any(dim=2)  # [B, n_mels]
    # A hidden band is hidden over every frame, and set to the clip's mean.
    assert torch.equal(changed.all(dim=2), band_hidden)
    for clip, hidden in zip(range(len(x)), band_hidden):
        assert hidden.sum() <= 2 * 4
        assert torch.allclose(got[clip][hidden], x[clip].mean().expand_as(got[clip][hidden]))


def test_time_masks_hide_whole_frames_within_the_width():
    x = spectrograms()
    got = augment.mask_axis(x, 2, n_masks=1, max_width=5, generator=torch.Generator().manual_seed(2))
    changed = (got != x)
    frame_hidden = changed.any(dim=1)  # [B, frames]
    assert torch.equal(changed.all(dim=1), frame_hidden)
    for hidden in frame_hidden:
        where = torch.nonzero(hidden).flatten()
        assert len(where) <= 5
        if len(where):  # one mask: a contiguous run of frames
            assert where[-1] - where[0] + 1 == len(where)


def test_no_augmentation_changes_nothing_and_draws_nothing():
    x, generator = spectrograms(), torch.Generator().manual_seed(3)
    state = generator.get_state()
    assert augment.spec_augment(x, augment.Augmentation(), generator) is x
    assert torch.equal(generator.get_state(), state)


def test_bad_augmentation_settings_are_errors():
    with pytest.raises(ValueError, match="time_masks"):
        augment.Augmentation(time_masks=-1)
    with pytest.raises(ValueError, match="mixup_alpha"):
        augment.Augmentation(mixup_alpha=-0.2)


def test_frequency_warp_rescales_each_clips_bands_in_hz():
    from edge_ser.config import FeatureConfig

    centres = augment.band_centres_hz(FeatureConfig())
    assert len(centres) == 64 and all(a < b for a, b in zip(centres, centres[1:]))
    # A clip whose log-mel equals each band's centre frequency: linear interpolation is exact for
    # it, so the warped clip must hold c_m / a with one factor a per clip, edges clamped.
    x = torch.tensor(centres).view(1, -1, 1).repeat(6, 1, 4)
    warped = augment.freq_warp(x, 0.1, centres, torch.Generator().manual_seed(0))
    factor = x[:, 20, 0] / warped[:, 20, 0]
    assert ((factor >= 0.9) & (factor <= 1.1)).all() and len(set(factor.tolist())) == 6
    expected = (x / factor.view(-1, 1, 1)).clamp(centres[0], centres[-1])
    assert torch.allclose(warped, expected, rtol=1e-5)
    assert torch.equal(augment.freq_warp(x, 0.0, centres, torch.Generator()), x)


def test_frequency_warp_moves_content_up_for_factors_above_one():
    from edge_ser.config import FeatureConfig

    centres = augment.band_centres_hz(FeatureConfig())
    bump = torch.zeros(2, 64, 3)
    bump[:, 30] = 1.0
    warped = augment.warp_bands(bump, torch.tensor([1.2, 1 / 1.2]), centres)
    up, down = warped[0, :, 0], warped[1, :, 0]
    # The bump's energy lands around the band whose centre is c_30 * factor.
    target_up = min(range(64), key=lambda m: abs(centres[m] - 1.2 * centres[30]))
    target_down = min(range(64), key=lambda m: abs(centres[m] - centres[30] / 1.2))
    assert target_up > 30 > target_down
    assert int(up.argmax()) in (target_up - 1, target_up, target_up + 1) and up[:30].sum() == 0
    assert int(down.argmax()) in (target_down - 1, target_down, target_down + 1) and down[31:].sum() == 0


def test_frequency_warp_needs_band_centres_and_a_sane_range():
    with pytest.raises(ValueError, match="freq_warp"):
        augment.Augmentation(freq_warp=0.6, band_hz=(1.0, 2.0))
    with pytest.raises(ValueError, match="band_hz"):
        augment.Augmentation(freq_warp=0.1)


def test_mixup_mixes_clips_and_the_loss_is_soft_target_cross_entropy():
    x = spectrograms(n=8)
    mixed, partner, lam = augment.mixup(x, 0.4, torch.Generator().manual_seed(4), np.random.default_rng(4))
    assert 0.0 <= lam <= 1.0 and sorted(partner.tolist()) == list(range(8))
    assert torch.allclose(mixed, lam * x + (1 - lam) * x[partner])
    logits, targets = torch.randn(8, 5), torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])
    smoothing = 0.1
    loss = augment.mixed_loss(nn.CrossEntropyLoss(label_smoothing=smoothing), logits, targets, partner, lam)
    soft = lam * nn.functional.one_hot(targets, 5) + (1 - lam) * nn.functional.one_hot(targets[partner], 5)
    soft = soft * (1 - smoothing) + smoothing / 5
    expected = -(soft * logits.log_softmax(dim=1)).sum(dim=1).mean()
    assert torch.allclose(loss, expected, atol=1e-6)


def test_random_crop_takes_contiguous_windows_of_the_clip():
    x = spectrograms(frames=50)
    got = augment.random_crop(x, 30, torch.Generator().manual_seed(5))
    assert got.shape == (len(x), 16, 30)
    starts = set()
    for clip, window in zip(x, got):
        offsets = [s for s in range(21) if torch.equal(clip[:, s : s + 30], window)]
        assert offsets
        starts.add(offsets[0])
    assert len(starts) > 1  # not always the same window
    with pytest.raises(ValueError, match="fewer than the window"):
        augment.random_crop(x, 60, torch.Generator())


def tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16 * 40, 3))


def original_fit(model, features, targets, n_classes, seed):
    """The loop as it was before augmentation existed (time shift only)."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05)
    total = 2 * int(np.ceil(len(features) / 4))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: loop.cosine_lr(s, total, 1))
    loss_fn = nn.CrossEntropyLoss(weight=loop.class_weights(targets, n_classes), label_smoothing=0.1)
    return loop.run_epochs(model, lambda i: loss_fn(model(loop.time_shift(features[i], generator)), targets[i]),
                           len(features), epochs=2, batch_size=4, optimizer=optimizer, schedule=schedule,
                           generator=generator, progress=False)


def fit(model, features, targets, **options):
    return loop.fit(model, features, targets, 3, epochs=2, lr=1e-2, batch_size=4, seed=7,
                    warmup_epochs=1 / 3, progress=False, **options)


def test_fit_without_augmentation_is_the_original_loop():
    x, y = spectrograms(n=12), torch.arange(12) % 3
    old, new = tiny_model(), tiny_model()
    assert original_fit(old, x, y, 3, seed=7) == fit(new, x, y)
    assert all(torch.equal(a, b) for a, b in zip(old.parameters(), new.parameters()))


def test_fit_with_augmentation_is_seeded_and_differs_from_plain():
    x, y = spectrograms(n=12, frames=50), torch.arange(12) % 3
    options = {"augmentation": augment.Augmentation(freq_masks=2, time_masks=2, time_mask_width=5, mixup_alpha=0.2),
               "crop_frames": 40}
    first, second, plain = tiny_model(), tiny_model(), tiny_model()
    assert fit(first, x, y, **options) == fit(second, x, y, **options)
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters()))
    fit(plain, x[..., 5:45], y)
    assert not torch.equal(first[1].weight, plain[1].weight)


def test_cli_options_reach_the_run_config():
    args = parser().parse_args(["fit", "--out", "x", "--freq-masks", "2", "--freq-mask-width", "6",
                                "--time-masks", "1", "--time-mask-width", "15", "--mixup", "0.3",
                                "--crop-seconds", "4", "--seconds", "3"])
    cfg = run_config(args)
    assert cfg.augmentation() == augment.Augmentation(2, 6, 1, 15, 0.3)
    assert cfg.crop_frames() == 301
    defaults = run_config(parser().parse_args(["fit", "--out", "x"]))
    assert defaults.augmentation() == augment.Augmentation() and defaults.crop_frames() is None
    assert defaults.feature_config().normalize == "none"
    warped = run_config(parser().parse_args(["fit", "--out", "x", "--freq-warp", "0.1", "--normalize", "utterance"]))
    assert warped.augmentation().freq_warp == 0.1 and len(warped.augmentation().band_hz) == 64
    assert warped.feature_config().normalize == "utterance"


def test_utterance_normalisation_with_random_crops_is_refused(tmp_path):
    with pytest.raises(ValueError, match="--normalize utterance: not with --crop-seconds"):
        run(RunConfig(seconds=2.0, crop_seconds=3.0, normalize="utterance"), tmp_path / "run")


def test_crop_shorter_than_the_window_is_refused(tmp_path):
    with pytest.raises(ValueError, match="crop-seconds 1.0"):
        run(RunConfig(seconds=2.0, crop_seconds=1.0), tmp_path / "run")


def test_quick_run_with_random_crops_and_augmentation(data_dir, tmp_path):
    cfg = run_config(parser().parse_args(["fit", "--quick", "--no-progress", "--data", str(data_dir), "--out", "x",
                                          "--cache", str(tmp_path / "cache"), "--seconds", "1.5",
                                          "--crop-seconds", "2.0", "--freq-masks", "1", "--time-masks", "1",
                                          "--mixup", "0.2", "--freq-warp", "0.1"]))
    summaries = run(cfg, tmp_path / "run")
    assert summaries["single"]["n_folds"] == 2
    # Features at both lengths: 1.5 s (test clips, standardiser) and the 2.0-s pool of training windows.
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2 * 30
