"""The fusion model's parts: segment ids from VAD decisions, SAP arithmetic on hand-built
segments (and its GAP fall-back), padded frames masked in cross-attention, part sizes, and a
fold checkpoint that reloads and scores the same."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge_ser.config import SAMPLE_RATE, WHISPER_FEATURES  # noqa: E402
from train.encoders.whisper import WhisperEncoder, WhisperEncoderConfig  # noqa: E402
from train.fusion import cross_attention, head, inputs, model, segment_pool  # noqa: E402

TINY = WhisperEncoderConfig(n_mels=80, n_ctx=150, d_model=32, n_heads=2, n_layers=2)


def test_segment_ids_number_speech_runs():
    speech = np.array([0, 1, 1, 0, 0, 1, 1, 1, 0, 1], dtype=bool)
    assert segment_pool.segment_ids(speech).tolist() == [-1, 0, 0, -1, -1, 1, 1, 1, -1, 2]
    # stride 2: an output frame is speech if either 10-ms frame is; the pauses here are too short to survive
    assert segment_pool.segment_ids(speech, 2).tolist() == [0, 0, 0, 0, 0]
    assert segment_pool.segment_ids(np.array([1, 1, 0, 0, 0, 0, 1], bool), 2).tolist() == [0, -1, -1, 1]
    many = np.tile([True, False], 40)
    assert segment_pool.segment_ids(many).max() == segment_pool.MAX_SEGMENTS - 1


def frames_of(values):
    """[T] numbers -> frames [1, T, 2]: (value, 10 * value) per frame."""
    v = torch.tensor(values, dtype=torch.float32)
    return torch.stack([v, 10 * v], dim=1)[None]


def test_sap_averages_segment_means_and_concatenates_gap():
    frames = frames_of([1.0, 3.0, 100.0, 5.0, 7.0, 9.0, 0.0])
    valid = torch.tensor([[True] * 6 + [False]])
    ids = torch.tensor([[0, 0, -1, 1, 1, 1, -1]])
    pool = segment_pool.SegmentPooling(2, "gap+sap", "mean")
    out = pool(frames, valid, ids)[0]
    gap = (1 + 3 + 100 + 5 + 7 + 9) / 6  # the padded last frame is left out
    sap = (2.0 + 7.0) / 2  # the mean of the two segments' means, not of their frames
    assert torch.allclose(out, torch.tensor([gap, 10 * gap, sap, 10 * sap]))
    assert segment_pool.SegmentPooling(2, "sap")(frames, valid, ids).shape == (1, 2)


def test_attention_combine_starts_as_a_weighted_mean_of_segments():
    pool = segment_pool.SegmentPooling(2, "sap", "attention")
    torch.nn.init.zeros_(pool.score.weight)
    torch.nn.init.zeros_(pool.score.bias)  # equal scores: the plain mean of the segment means
    frames, valid = frames_of([1.0, 3.0, 5.0, 7.0, 9.0]), torch.ones(1, 5, dtype=torch.bool)
    out = pool(frames, valid, torch.tensor([[0, 0, 1, 1, 1]]))
    assert torch.allclose(out, torch.tensor([[(2.0 + 7.0) / 2, 45.0]]))


@pytest.mark.parametrize("ids", [[-1, -1, -1, -1], [-1, 0, -1, -1]])
def test_no_segment_or_one_speech_frame_falls_back_to_gap(ids):
    frames, valid = frames_of([1.0, 2.0, 3.0, 6.0]), torch.ones(1, 4, dtype=torch.bool)
    for combine in segment_pool.COMBINES:
        out = segment_pool.SegmentPooling(2, "sap", combine)(frames, valid, torch.tensor([ids]))
        assert torch.allclose(out, torch.tensor([[3.0, 30.0]])) and torch.isfinite(out).all()


def test_cross_attention_ignores_padded_key_frames():
    torch.manual_seed(0)
    block = cross_attention.CrossAttention(16, 2).eval()
    queries, keys = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    valid = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    changed = keys.clone()
    changed[1, 4:] = 1000 * torch.randn(3, 16)  # what padding holds must not matter
    assert torch.allclose(block(queries, keys, valid), block(queries, changed, valid), atol=1e-5)
    real = keys.clone()
    real[1, 2] = 3 * torch.randn(16)  # ... while a real frame does
    assert not torch.allclose(block(queries, keys, valid)[1], block(queries, real, valid)[1], atol=1e-3)


@pytest.mark.parametrize("direction", cross_attention.DIRECTIONS)
def test_fusion_directions_keep_the_frame_shape(direction):
    fusion = cross_attention.CrossFusion(16, 2, direction).eval()
    out = fusion(torch.randn(2, 6, 16), torch.randn(2, 6, 16), torch.ones(2, 6, dtype=torch.bool))
    assert out.shape == (2, 6, 16)


def encoder():
    torch.manual_seed(0)
    return WhisperEncoder(TINY).eval()


def window(n_clips=3, seconds=1.0):
    """Inputs of `n_clips` random 1-s windows: mel, frozen frames after block 1, valid, and
    hand-made segments of 10 frames each (noise has none for the VAD: SAP would fall back to GAP)."""
    rng = np.random.default_rng(0)
    arrays = [inputs.window_arrays(rng.normal(scale=0.1, size=int(SAMPLE_RATE * s)).astype(np.float32),
                                   WHISPER_FEATURES, seconds) for s in (1.0, 0.5, 0.02)[:n_clips]]
    mel = torch.from_numpy(np.stack([a[0] for a in arrays]))
    valid = torch.from_numpy(np.stack([a[1] for a in arrays]))
    segments = torch.where(valid, torch.arange(valid.shape[1]) // 10, -1)
    return mel, inputs.frozen_frames(encoder(), mel, 1), valid, segments


def bursts(pause_seconds: float) -> np.ndarray:
    """1 s: two voiced-like tone bursts of 0.25 s and 0.15 s, `pause_seconds` apart, in faint noise."""
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    audio = 0.002 * np.random.default_rng(0).normal(size=SAMPLE_RATE)
    for start, end in ((0.05, 0.3), (0.3 + pause_seconds, 0.45 + pause_seconds)):
        inside = (t >= start) & (t < end)
        audio[inside] += 0.3 * np.sin(2 * np.pi * 220 * t[inside]) + 0.1 * np.sin(2 * np.pi * 660 * t[inside])
    return audio.astype(np.float32)


def test_window_segments_follow_the_vads_speech_runs():
    _, valid, apart = inputs.window_arrays(bursts(0.5), WHISPER_FEATURES, 1.0)
    assert set(apart.tolist()) == {-1, 0, 1}  # a 0.5-s pause parts two segments ...
    assert apart[0] == -1 and apart.max() == 1
    _, _, bridged = inputs.window_arrays(bursts(0.2), WHISPER_FEATURES, 1.0)
    assert set(bridged.tolist()) == {-1, 0}  # ... the VAD bridges a 0.2-s one (MIN_GAP 0.4 s)
    _, short_valid, short = inputs.window_arrays(bursts(0.5)[:8000], WHISPER_FEATURES, 1.0)
    assert short_valid.sum() == 25 and (short[~short_valid] == -1).all()


def test_window_arrays_mark_end_padding_invalid():
    mel, frames, valid, segments = window()
    assert mel.shape == (3, 80, 100) and frames.shape == (3, 50, TINY.d_model)
    assert valid.sum(dim=1).tolist() == [50, 25, 1]  # 1 s, 0.5 s, 20 ms of audio in a 1-s window


@pytest.mark.parametrize("name", list(model.MODELS))
def test_named_models_run_and_count_their_parts(name):
    net = model.FusionModel(model.MODELS[name], encoder(), 1, 1, n_classes=4).eval()
    logits = net(*window())
    assert logits.shape == (3, 4) and torch.isfinite(logits).all()
    parts = net.part_parameters()
    assert sum(parts.values()) == sum(p.numel() for p in net.parameters())
    assert (parts["acoustic"] > 0) == (not name.startswith("encoder"))


def test_closed_gates_start_the_gated_model_as_the_encoder_alone():
    torch.manual_seed(0)
    enc = encoder()
    gated = model.FusionModel(model.MODELS["gated+gap+sap"], enc, 1, 1, n_classes=3).eval()
    alone = model.FusionModel(model.MODELS["encoder+gap+sap"], enc, 1, 1, n_classes=3).eval()
    alone.load_state_dict({k: v for k, v in gated.state_dict().items() if k in alone.state_dict()})
    x = window()
    with torch.no_grad():
        assert torch.allclose(gated(*x), alone(*x), atol=1e-6)
        gated.fusion.s2a.gates.fill_(0.5)
        assert not torch.allclose(gated(*x), alone(*x), atol=1e-3)


def test_a_fold_checkpoint_reloads_and_scores_the_same(tmp_path):
    config = model.FusionConfig(direction="both", combine="attention")
    torch.manual_seed(1)
    net = model.FusionModel(config, encoder(), 1, 1, n_classes=3)
    net.train()(*window())  # one training-mode pass moves the BatchNorm statistics off their defaults
    net.eval()
    head.save_fold_model(net, tmp_path / "fold.pt", depth=2, tune=1, n_classes=3)
    loaded, meta = head.load_fold_model(tmp_path / "fold.pt", encoder())
    assert meta == {"depth": 2, "tune": 1, "n_classes": 3}
    with torch.no_grad():
        assert torch.equal(net(*window()), loaded(*window()))
    (tmp_path / "other.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a fusion checkpoint"):
        head.load_fold_model(tmp_path / "other.pt", encoder())


def test_unknown_fusion_settings_are_refused():
    with pytest.raises(ValueError, match="fusion"):
        head.fusion_config("fusion+max", "a2s", "mean")
    with pytest.raises(ValueError, match="direction"):
        model.FusionConfig(direction="sideways")


def test_rollout_over_the_encoders_attention_gives_one_importance_per_real_token():
    from train.fusion import samsg

    enc = encoder()
    net = model.FusionModel(model.MODELS["fusion+gap+sap"], enc, 1, 1, n_classes=2).eval()
    mel, _, valid, _ = window()
    with samsg.recorded_attention(list(enc.blocks)) as attentions:
        enc.hidden_states(mel, upto=2)
    assert [a.shape for a in attentions] == [(3, TINY.n_heads, 50, 50)] * 2
    assert all(block.attn.recorded is None for block in enc.blocks)  # switched off again
    importance = samsg.token_importance(enc, net, mel, 1, valid)
    assert importance.shape == (3, 50) and (importance[~valid] == 0).all()
    # rows of the rolled-out attention sum to 1: a window without padding has importance summing to 1;
    # Whisper's frames also attend to end padding (it has no padding mask), whose share is dropped
    assert torch.allclose(importance[0].sum(), torch.tensor(1.0), atol=1e-5)
    assert (importance[1:].sum(dim=1) < 1).all()


def test_top_tokens_mask_the_ratio_of_real_tokens_and_masked_mel_fills_their_frames():
    from train.fusion import samsg

    scores = torch.tensor([[0.1, 0.9, 0.5, 0.3, 0.8, 0.0], [0.9, 0.8, 0.1, 0.2, 0.0, 0.0]])
    valid = torch.tensor([[True] * 6, [True, True, True, True, False, False]])
    tokens = samsg.top_tokens(scores, valid, 0.5)
    assert tokens.tolist() == [[False, True, True, False, True, False], [True, True, False, False, False, False]]
    mel = torch.arange(2 * 2 * 12, dtype=torch.float32).view(2, 2, 12)
    masked = samsg.masked_mel(mel, tokens, valid)
    fill = torch.stack([mel[0].mean(), mel[1, :, :8].mean()])  # the mean of the real frames only
    assert (masked[0, :, 2:6] == fill[0]).all() and (masked[0, :, 8:10] == fill[0]).all()
    assert torch.equal(masked[0, :, :2], mel[0, :, :2]) and torch.equal(masked[1, :, 4:], mel[1, :, 4:])
    random = samsg.variant_tokens("random", scores, valid, 0.5, seed=0)
    assert random.sum(dim=1).tolist() == [3, 2] and not (random & ~valid).any()
    assert samsg.variant_tokens("none", scores, valid, 0.5, seed=0) is None
