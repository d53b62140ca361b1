"""The encoder-baseline runner end to end, on a tiny random Whisper checkpoint and a synthetic corpus:
fold files, resume, the result files the benchmark report reads, and the feature path."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge_ser.config import SAMPLE_RATE, WHISPER_FEATURES  # noqa: E402
from edge_ser.features import log_mel  # noqa: E402
from test_cli import write_wav  # noqa: E402  (the tests' one WAV writer)
from train.encoders import baseline, layer_stats, report  # noqa: E402
from train.encoders.whisper import WhisperEncoder, WhisperEncoderConfig  # noqa: E402

TINY = WhisperEncoderConfig(n_mels=80, n_ctx=150, d_model=32, n_heads=2, n_layers=2)
LABELS = ("low", "high")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An OpenAI-format .pt of a random tiny encoder (what a user with official weights passes)."""
    torch.manual_seed(0)
    encoder = WhisperEncoder(TINY)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    dims = {"n_mels": TINY.n_mels, "n_audio_ctx": TINY.n_ctx, "n_audio_state": TINY.d_model,
            "n_audio_head": TINY.n_heads, "n_audio_layer": TINY.n_layers}
    torch.save({"dims": dims, "model_state_dict": {f"encoder.{k}": v for k, v in encoder.state_dict().items()}}, path)
    return path


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    """4 speakers x 2 classes x 4 clips of 1 s: a low or a high tone, each speaker at its own pitch."""
    folder = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    rows = ["path,label,speaker"]
    for speaker in range(4):
        for label, base in zip(LABELS, (200.0, 1600.0)):
            for k in range(4):
                f0 = base * (1 + 0.05 * speaker) * (1 + 0.02 * k)
                audio = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.normal(size=len(t))
                write_wav(folder / f"s{speaker}_{label}_{k}.wav", audio)
                rows.append(f"s{speaker}_{label}_{k}.wav,{label},s{speaker}")
    (folder / "tones.csv").write_text("\n".join(rows) + "\n")
    return folder / "tones.csv"


def config(checkpoint, manifest, tmp_path, head="probe", **kw):
    settings = {"protocol": "loso", "seconds": 1.0, **kw}
    return baseline.BaselineConfig(encoder=str(checkpoint), corpus=str(manifest), head=head,
                                   cache=str(tmp_path / "cache"), **settings)


def test_layer_stats_come_from_the_runtime_features(checkpoint):
    from train.encoders.sources import load_encoder

    encoder, _ = load_encoder(checkpoint)
    audio = np.random.default_rng(1).normal(scale=0.1, size=SAMPLE_RATE).astype(np.float32)
    stats = layer_stats.clip_layer_stats(encoder, audio, WHISPER_FEATURES, 1.0)
    with torch.no_grad():
        states = encoder.hidden_states(torch.from_numpy(log_mel(audio, WHISPER_FEATURES))[None])
    assert stats.shape == (TINY.n_layers + 1, 2, TINY.d_model)
    assert np.allclose(stats[1, 0], states[1][0].mean(0).numpy(), atol=1e-6)
    assert np.allclose(stats[2, 1], states[2][0].std(0, unbiased=False).numpy(), atol=1e-6)


@pytest.mark.parametrize("head", baseline.HEADS)
def test_a_protocol_runs_resumes_and_reports(checkpoint, manifest, tmp_path, head):
    # fusion: the acoustic branch's direction, which learns the tones from the mel itself (a random
    # encoder's frames alone need more steps than 24 clips give)
    extra = {"fusion": "fusion+gap+sap"} if head == "fusion" else {}
    cfg = config(checkpoint, manifest, tmp_path, head=head, depth=2 if head in baseline.TUNED_HEADS else 0, **extra)
    out = tmp_path / "run"
    summary = baseline.run(cfg, out, progress=lambda line: None)
    assert summary["n_folds"] == 4 and summary["complete"]
    assert summary["pooled"]["ua"] > 0.75  # tones three octaves apart, chance 0.5: every head must learn them
    folds = sorted(out.glob("fold_*.json"))
    assert len(folds) == 4
    stamp = [f.stat().st_mtime_ns for f in folds]
    assert baseline.run(cfg, out, progress=lambda line: None) == summary  # resumed: nothing refitted
    assert [f.stat().st_mtime_ns for f in folds] == stamp

    md = report.write_results("toy", [out], tmp_path)
    row = json.loads((tmp_path / "toy.json").read_text())["results"][0]
    name = "tiny.pt fusion+gap+sap" if head == "fusion" else f"tiny.pt+{head}"
    assert row["model"] == name and row["result_set"] == report.RESULT_SETS[head]
    assert row["n_parameters"] > 0 and (tmp_path / row["confusion_png"]).is_file()
    assert (tmp_path / "toy_layers.png").is_file() == (head == "probe")
    assert "toy" in md.read_text()
    assert str(tmp_path) not in (tmp_path / "toy.json").read_text()  # no machine paths


def test_the_model_that_ships_trains_on_every_clip_and_stands_alone(checkpoint, manifest, tmp_path):
    """--protocol all: one fold holding every clip (its scores are on its own training clips), whose
    checkpoint the export turns into the standalone log-mel -> logits model."""
    from train.encoders.sources import load_encoder
    from train.fusion.standalone import load_standalone

    cfg = config(checkpoint, manifest, tmp_path, head="fusion", fusion="encoder+gap", protocol="all", depth=2)
    summary = baseline.run(cfg, tmp_path / "all", progress=lambda line: None)
    n_clips = len(manifest.read_text().splitlines()) - 1  # the header row
    assert summary["n_folds"] == 1 and sum(map(sum, summary["pooled_confusion"])) == n_clips
    model, saved = load_standalone(tmp_path / "all" / "checkpoints" / "all.pt", load_encoder(checkpoint)[0])
    assert saved["depth"] == 2
    with torch.no_grad():
        assert model(torch.zeros(1, TINY.n_mels, 100)).shape == (1, len(LABELS))


def test_a_run_directory_refuses_other_settings(checkpoint, manifest, tmp_path):
    out = tmp_path / "run"
    baseline.run(config(checkpoint, manifest, tmp_path, max_folds=1), out, progress=lambda line: None)
    with pytest.raises(ValueError, match="other settings.*seconds"):
        baseline.run(config(checkpoint, manifest, tmp_path, max_folds=1).__class__(
            **{**config(checkpoint, manifest, tmp_path, max_folds=1).__dict__, "seconds": 2.0}), out)


def test_the_stats_cache_is_keyed_on_the_weights(checkpoint, manifest, tmp_path):
    from train.data import load_corpus
    from train.encoders.sources import load_encoder

    encoder, info = load_encoder(checkpoint)
    corpus = load_corpus(str(manifest))
    clip = corpus.clips[0].path
    key = layer_stats.cache_key(clip, info.sha256, WHISPER_FEATURES, 1.0)
    assert key != layer_stats.cache_key(clip, "0" * 64, WHISPER_FEATURES, 1.0)
    assert key != layer_stats.cache_key(clip, info.sha256, WHISPER_FEATURES, 2.0)
    first, cost = layer_stats.cached_layer_stats(clip, encoder, info.sha256, WHISPER_FEATURES, 1.0, tmp_path)
    assert (tmp_path / f"{key}.npz").is_file() and cost > 0
    again, cached_cost = layer_stats.cached_layer_stats(clip, encoder, info.sha256, WHISPER_FEATURES, 1.0, tmp_path)
    assert np.array_equal(first, again) and cached_cost == cost  # the cost it took, not the reading's


def test_fine_tuning_depth_comes_from_each_folds_own_probe_choice(checkpoint, manifest, tmp_path):
    probe_run = tmp_path / "probe"
    baseline.run(config(checkpoint, manifest, tmp_path, max_folds=2), probe_run, progress=lambda line: None)
    cfg = config(checkpoint, manifest, tmp_path, head="finetune", depth=0, probe_run=str(probe_run), max_folds=2)
    baseline.run(cfg, tmp_path / "tuned", progress=lambda line: None)
    for fold in sorted((tmp_path / "tuned").glob("fold_*.json")):
        chosen = json.loads((probe_run / fold.name).read_text())["choice"]["layer"]
        assert json.loads(fold.read_text())["choice"]["depth"] == min(chosen + 1, TINY.n_layers)
    other = config(checkpoint, manifest, tmp_path, head="finetune", depth=0, probe_run=str(probe_run), seconds=2.0)
    with pytest.raises(ValueError, match="not a probe run of this encoder.*seconds"):
        baseline.run(other, tmp_path / "other", progress=lambda line: None)


@pytest.mark.parametrize("bad, message", [
    ({"seconds": -1.0}, "--seconds -1"), ({"seconds": 0.005}, "--seconds 0.005"), ({"tune": 0}, "--tune 0"),
    ({"protocol": "sd10"}, "speaker-independent"), ({"protocol": "all"}, "model that ships"),
    ({"protocol": "all", "head": "fusion"}, "model that ships"),
    ({"max_folds": 0}, "--max-folds 0"), ({"head": "finetune", "depth": 0}, "--probe-run"),
    ({"head": "mlp"}, "--head mlp")])
def test_bad_settings_are_one_line_naming_the_option(bad, message):
    with pytest.raises(ValueError, match=message) as error:
        baseline.BaselineConfig(**bad)
    assert "\n" not in str(error.value)


def test_the_command_line_reports_a_bad_depth_in_one_line(checkpoint, manifest, tmp_path, capsys):
    from train.encoders.__main__ import main

    rc = main(["run", "--encoder", str(checkpoint), "--corpus", str(manifest), "--protocol", "loso", "--head",
               "finetune", "--depth", "9", "--seconds", "1", "--cache", str(tmp_path), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--depth 9" in err and len(err.splitlines()) == 1


def test_a_fusion_runs_fold_checkpoints_reproduce_its_predictions(checkpoint, manifest, tmp_path):
    from train.data import load_corpus
    from train.encoders.sources import load_encoder
    from train.fusion import head, inputs

    cfg = config(checkpoint, manifest, tmp_path, head="fusion", depth=2, max_folds=2, fusion="fusion+sap",
                 direction="both", combine="attention")
    out = tmp_path / "run"
    baseline.run(cfg, out, progress=lambda line: None)
    encoder, _ = load_encoder(checkpoint)
    windows = inputs.EncodedWindows(encoder.eval(), load_corpus(str(manifest)), baseline.encoder_feature_config(encoder),
                                    cfg.seconds, progress=False)
    for fold_file in sorted(out.glob("fold_*.json")):
        fold = json.loads(fold_file.read_text())
        model, meta = head.load_fold_model(out / "checkpoints" / f"{fold['fold']}.pt", encoder)
        test = np.array(fold["test_clips"])
        x = (windows.mel, windows.upto(meta["depth"] - meta["tune"]), windows.valid, windows.segments)
        with torch.no_grad():
            predicted = model(*(v[test] for v in x)).argmax(dim=1)
        assert predicted.tolist() == fold["predicted"]


def test_samsg_phase_two_continues_from_another_runs_phase_one(checkpoint, manifest, tmp_path):
    base = dict(head="fusion", depth=2, max_folds=2)
    first = tmp_path / "phase1"
    baseline.run(config(checkpoint, manifest, tmp_path, **base), first, progress=lambda line: None)
    for variant in ("none", "random", "samsg"):
        out = tmp_path / variant
        cfg = config(checkpoint, manifest, tmp_path, **base, masking=variant, phase1_from=str(first))
        summary = baseline.run(cfg, out, progress=lambda line: None)
        assert summary["n_folds"] == 2
        fold = json.loads(sorted(out.glob("fold_*.json"))[0].read_text())
        assert fold["masking"]["variant"] == variant and fold["phase1_from"] == "phase1"
        assert (fold["masking"]["masked_share"] is None) == (variant == "none")
        if variant != "none":
            assert 0.2 < fold["masking"]["masked_share"] < 0.3
        # the phase 1 it started from is the source run's fold model, kept beside its own phase 2
        kept = torch.load(out / "checkpoints" / f"{fold['fold']}.phase1.pt", weights_only=True)["state_dict"]
        source = torch.load(first / "checkpoints" / f"{fold['fold']}.pt", weights_only=True)["state_dict"]
        assert all(torch.equal(kept[k], source[k]) for k in source)
    samsg = json.loads(sorted((tmp_path / "samsg").glob("fold_*.json"))[0].read_text())["masking"]
    random = json.loads(sorted((tmp_path / "random").glob("fold_*.json"))[0].read_text())["masking"]
    assert samsg["rollout_share_masked"] > random["rollout_share_masked"]  # SAMSG masks what rollout ranks highest
    # a chain starts from the same phase 1, never from a masking run's phase 2
    chained = config(checkpoint, manifest, tmp_path, **base, masking="samsg", phase1_from=str(tmp_path / "none"))
    baseline.run(chained, tmp_path / "chained", progress=lambda line: None)
    assert json.loads(sorted((tmp_path / "chained").glob("fold_*.json"))[0].read_text())["predicted"] == \
        json.loads(sorted((tmp_path / "samsg").glob("fold_*.json"))[0].read_text())["predicted"]
    explicit = config(checkpoint, manifest, tmp_path, **base, direction="s2a", masking="none", phase1_from=str(first))
    baseline.check_phase1_run(explicit)  # the named model's own direction, spelled out: the same model
    flipped = config(checkpoint, manifest, tmp_path, **base, direction="a2s", masking="none", phase1_from=str(first))
    with pytest.raises(ValueError, match="fusion model"):
        baseline.check_phase1_run(flipped)
    other = config(checkpoint, manifest, tmp_path, **{**base, "seed": 1}, masking="samsg", phase1_from=str(first))
    with pytest.raises(ValueError, match="seed"):
        baseline.run(other, tmp_path / "other", progress=lambda line: None)
