"""The heads over a frozen encoder: the probe's choices are made on training speakers only, and the
SUPERB head trained on per-layer means is the frame-level SUPERB head."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from train.encoders import probe, superb  # noqa: E402


def toy_stats(informative_layer: int, n_speakers: int = 6, per_class: int = 8, n_states: int = 4, dim: int = 6,
              seed: int = 0):
    """[N, n_states, 2, dim] where only `informative_layer` carries the class; labels; speakers."""
    rng = np.random.default_rng(seed)
    y = np.tile(np.repeat(np.arange(3), per_class), n_speakers)
    speakers = np.repeat([f"s{i}" for i in range(n_speakers)], 3 * per_class)
    stats = rng.normal(size=(len(y), n_states, 2, dim))
    stats[:, informative_layer, 0, 0] += 3.0 * y
    return stats, y, speakers


def test_probe_chooses_the_informative_layer_by_inner_cv():
    stats, y, speakers = toy_stats(informative_layer=2)
    choice = probe.choose(stats, y, speakers, n_classes=3)
    assert choice.layer == 2
    assert choice.inner_ua > 0.8
    assert len(choice.grid) == stats.shape[1] * len(probe.C_GRID)


def test_probe_choice_never_depends_on_the_test_clips():
    stats, y, speakers = toy_stats(informative_layer=1)
    train, test = speakers != "s5", speakers == "s5"
    rng = np.random.default_rng(1)
    probabilities_a, choice_a = probe.probe_fold(stats[train], y[train], speakers[train], stats[test], 3)
    noisy_test = stats[test] + rng.normal(scale=10.0, size=stats[test].shape)
    probabilities_b, choice_b = probe.probe_fold(stats[train], y[train], speakers[train], noisy_test, 3)
    assert choice_a == choice_b
    assert not np.allclose(probabilities_a, probabilities_b)
    assert (probabilities_a.argmax(axis=1) == y[test]).mean() > 0.8


def test_superb_head_on_layer_means_equals_the_frame_level_head_mean_pooled():
    torch.manual_seed(0)
    head = superb.SuperbHead(n_states=5, dim=16, n_classes=4, settings=superb.SuperbSettings()).eval()
    with torch.no_grad():
        head.layer_logits.copy_(torch.randn(5))
    frames = torch.randn(3, 5, 40, 16)  # [B, n_states, T, D]
    with torch.no_grad():
        mixed = torch.einsum("l,bltd->btd", head.layer_weights(), frames)
        frame_level = head.classifier(head.projector(mixed).mean(dim=1))  # s3prl: project, pool, classify
        from_means = head(frames.mean(dim=2))
    assert torch.allclose(frame_level, from_means, atol=1e-5)


def test_superb_head_learns_and_weights_the_informative_layer():
    stats, y, speakers = toy_stats(informative_layer=3, per_class=40)
    means = stats[:, :, 0]
    train, test = speakers != "s5", speakers == "s5"
    head, scaler = superb.fit_superb(means[train], y[train], 3, seed=0)
    probabilities = superb.predict_superb(head, scaler, means[test])
    assert (probabilities.argmax(axis=1) == y[test]).mean() > 0.8
    assert head.layer_weights().argmax() == 3
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
