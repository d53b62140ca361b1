"""Training package on real clips: data loaders, cached features = the runtime's, quick-mode
end-to-end training, rollout rendering, checkpoint loading, MAE pretraining."""
import json
import pathlib
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training tests need torch (the train extra)")

from edge_ser.config import FeatureConfig  # noqa: E402
from edge_ser.features import log_mel  # noqa: E402
from train import data, features, models, rollout  # noqa: E402
from train.__main__ import main  # noqa: E402


@pytest.fixture(scope="module")
def quick_run(data_dir, tmp_path_factory):
    """A --quick SAMSG run (3 speakers x 10 clips, 2 folds, 1 epoch) shared by several tests."""
    root = tmp_path_factory.mktemp("quick")
    out = root / "run"
    argv = ["samsg", "--quick", "--data", str(data_dir), "--out", str(out), "--cache", str(root / "cache"),
            "--no-progress"]
    main(argv)
    return out, argv


def test_emodb_labels_and_speakers_from_file_names(data_dir):
    corpus = data.load_emodb(data_dir)
    speakers = sorted(set(corpus.speakers()))
    assert len(speakers) == 10 and speakers[0] == "03"
    assert corpus.labels == list(data.EMODB_EMOTIONS.values())
    by_name = {c.path.name: c for c in corpus.clips}
    assert by_name["03a01Fa.wav"].label == "happiness" and by_name["03a01Fa.wav"].speaker == "03"
    assert np.bincount(corpus.targets()).min() > 0


def test_ravdess_labels_and_actors(data_dir):
    if not (data_dir / "ravdess").is_dir():
        pytest.skip(f"RAVDESS not found under {data_dir}")
    corpus = data.load_ravdess(data_dir)
    assert len(set(corpus.speakers())) == 24
    clip = next(c for c in corpus.clips if c.path.stem.startswith("03-01-05-01-02-01-12"))
    assert clip.label == "anger" and clip.speaker == "12"


def test_harmonised_labels_combine_corpora(data_dir):
    emodb = data.harmonise(data.load_emodb(data_dir))
    assert "boredom" not in {c.label for c in emodb.clips}
    assert emodb.labels == ["anger", "disgust", "fear", "happiness", "sadness", "neutral"]
    both = data.combine(emodb, emodb)
    assert len(both.clips) == 2 * len(emodb.clips) and both.speakers()[0].startswith("emodb:")


def test_manifest_corpus(data_dir, tmp_path):
    wavs = sorted((data_dir / "emodb" / "wav").glob("*.wav"))[:3]
    manifest = tmp_path / "mine.csv"
    manifest.write_text("path,label,speaker\n" + "".join(f"{w},{w.stem[5]},{w.stem[:2]}\n" for w in wavs))
    corpus = data.load_corpus(str(manifest))
    assert [c.path for c in corpus.clips] == wavs and corpus.labels == sorted({w.stem[5] for w in wavs})
    bad = tmp_path / "bad.csv"
    bad.write_text("file,emotion\nx.wav,W\n")
    with pytest.raises(ValueError, match="bad.csv"):
        data.load_manifest(bad)


@pytest.mark.parametrize("normalize", ["none", "utterance"])
def test_training_features_equal_the_runtime(data_dir, tmp_path, normalize):
    config = FeatureConfig(normalize=normalize)
    for path in sorted((data_dir / "emodb" / "wav").glob("*.wav"))[:3]:
        audio = data.read_audio(path)
        assert len(audio) == config.n_samples(2.0)  # the processed EmoDB copy: exactly 2.0 s
        expected = log_mel(audio, config)
        assert np.array_equal(features.cached_log_mel(path, config, 2.0, tmp_path), expected)  # computed
        assert np.array_equal(features.cached_log_mel(path, config, 2.0, tmp_path), expected)  # from cache
        assert np.array_equal(features.cached_log_mel(path, config, 2.0, None), expected)


def test_feature_cache_is_keyed_on_the_config(data_dir, tmp_path):
    path = sorted((data_dir / "emodb" / "wav").glob("*.wav"))[0]
    base, fewer_mels = FeatureConfig(), FeatureConfig(n_mels=40)
    features.cached_log_mel(path, base, 2.0, tmp_path)
    entry = tmp_path / f"{features.cache_key(path, base, 2.0)}.npy"
    sentinel = np.full((2, 2), 7.0, dtype=np.float32)
    np.save(entry, sentinel)  # prove the cache is what gets read for an unchanged config ...
    assert np.array_equal(features.cached_log_mel(path, base, 2.0, tmp_path), sentinel)
    # ... and that a changed feature config (or clip length) never sees that entry.
    assert features.cached_log_mel(path, fewer_mels, 2.0, tmp_path).shape == (40, base.n_frames(32000))
    assert features.cached_log_mel(path, base, 1.0, tmp_path).shape == (64, base.n_frames(16000))
    assert len(list(tmp_path.glob("*.npy"))) == 3


def test_fix_length_centre_crops_and_pads():
    audio = np.arange(10, dtype=np.float32)
    assert features.fix_length(audio, 4).tolist() == [3, 4, 5, 6]
    assert features.fix_length(audio[:2], 4).tolist() == [0, 1, 0, 0]


def test_quick_samsg_run_writes_results_and_resumes(quick_run, data_dir):
    out, argv = quick_run
    config = json.loads((out / "config.json").read_text())
    assert config["speaker_independent"] and config["run"]["threads"] == 1
    for name in ("phase1", "none", "samsg"):
        summary = json.loads((out / name / "summary.json").read_text())
        assert summary["n_folds"] == 2 and 0.0 <= summary["pooled"]["ua"] <= 1.0
        assert (out / name / "confusion.png").stat().st_size > 0
        for fold_file in (out / name).glob("fold_*.json"):
            fold = json.loads(fold_file.read_text())
            test_speakers = {n[:2] for n in fold["test_clips"]}
            assert test_speakers == set(fold["test_speakers"]) and len(test_speakers) == 1
            assert len(fold["predicted"]) == fold["n_test"] == sum(map(sum, fold["confusion"]))
            logits = np.array(fold["logits"])  # rounded: the predicted class has the top logit
            assert np.array_equal(logits[np.arange(len(logits)), fold["predicted"]], logits.max(axis=1))
    samsg, random = (json.loads((out / n / "fold_spk-03.json").read_text()) for n in ("samsg", "random"))
    assert samsg["rollout_share_masked"] >= random["rollout_share_masked"]  # top-k covers the most rollout mass
    assert 0 < random["rollout_share_masked"] < 1 and samsg["mask_ratio"] == 0.25
    before = {p: p.stat().st_mtime_ns for p in out.rglob("fold_*.json")}
    main(argv)  # a rerun resumes: finished folds are not trained again
    assert {p: p.stat().st_mtime_ns for p in out.rglob("fold_*.json")} == before
    assert len(json.loads((out / "cost.json").read_text())["sessions"]) == 2


def test_pause_shares_are_measured_on_the_masks_the_run_trained_on(quick_run, tmp_path):
    from train.pauses import run_pause_shares, write_pauses

    out, _ = quick_run
    recorded = {p.stem[len("fold_"):]: json.loads(p.read_text())["rollout_share_masked"]
                for p in sorted((out / "samsg").glob("fold_*.json"))}
    shares = run_pause_shares(out)
    assert [s["fold"] for s in shares] == list(recorded) and len(shares) == 2
    for s in shares:
        assert s["rollout_share_masked"] > 0.25 - 1e-6  # top-k holds at least its area's share of the mass
        assert all(0.0 <= s[k] <= 1.0 for k in ("area", "top_k", "mass")) and s["n_clips"] == 20
    md = write_pauses("pauses", [out], tmp_path / "report").read_text()
    assert "| mean of 2 folds |" in md
    assert json.loads((tmp_path / "report" / "pauses.json").read_text())["diagnostic"] is True
    copy = tmp_path / "copy"  # masks other than the trained ones are refused
    shutil.copytree(out, copy)
    fold = copy / "samsg" / f"fold_{shares[0]['fold']}.json"
    recorded_fold = json.loads(fold.read_text())
    fold.write_text(json.dumps({**recorded_fold, "rollout_share_masked": 0.99}))
    with pytest.raises(ValueError, match="recorded 0.9900"):
        run_pause_shares(copy)
    fold.write_text(json.dumps({k: v for k, v in recorded_fold.items() if k != "rollout_share_masked"}))
    with pytest.raises(ValueError, match="records no rollout_share_masked"):
        run_pause_shares(copy)  # nothing to check the masks against: refused, not passed
    fold.write_text(json.dumps({**recorded_fold, "n_train": recorded_fold["n_train"] + 1}))
    with pytest.raises(ValueError, match="not the ones it was trained and tested on"):
        run_pause_shares(copy)


def test_speech_masking_continues_another_runs_phase1(quick_run, data_dir, tmp_path):
    out, argv = quick_run
    base = [a for a in argv if a != str(out)]
    base.remove("--out")
    speech = tmp_path / "speech"
    main([*base, "--out", str(speech), "--variants", "samsg_speech", "--phase1-from", str(out)])
    for fold_file in sorted((out / "samsg").glob("fold_*.json")):
        samsg = json.loads(fold_file.read_text())
        mine = json.loads((speech / "samsg_speech" / fold_file.name).read_text())
        assert mine["test_clips"] == samsg["test_clips"] and 0.0 <= mine["pause_share_masked"] <= 1.0
        # Among speech tokens only, the masks cannot cover more rollout mass than the unrestricted top-k.
        assert 0.0 < mine["rollout_share_masked"] <= samsg["rollout_share_masked"] + 1e-6
    with pytest.raises(SystemExit, match="samsg_speech: not with --extra-train"):
        main([*base, "--out", str(tmp_path / "added"), "--variants", "samsg_speech", "--extra-train", "ravdess"])


def test_rollout_png_from_a_run(quick_run, data_dir, tmp_path):
    out, _ = quick_run
    png = tmp_path / "rollout.png"
    clip = sorted((data_dir / "emodb" / "wav").glob("08*.wav"))[0]
    main(["rollout", "--run", str(out), "--fold", "spk-03", "--audio", str(clip), "--png", str(png)])
    assert png.stat().st_size > 0
    with pytest.raises(SystemExit, match="no such checkpoint"):
        main(["rollout", "--run", str(out), "--fold", "spk-99", "--audio", str(clip), "--png", str(png)])


def tiny_deit(**kw):
    return models.build("deit", 7, (32, 40), patch=(16, 8), depth=2, dim=32, heads=2, **kw)


def test_recorded_attention_equals_softmax_qk():
    torch.manual_seed(0)
    model = tiny_deit().eval()
    x = torch.randn(2, 32, 40)
    qkv_out = []
    hook = model.backbone.blocks[1].attn.qkv.register_forward_hook(lambda m, i, o: qkv_out.append(o))
    with torch.no_grad(), rollout.recorded_attention(model.backbone) as attentions:
        logits = model(x)
    hook.remove()
    attn = model.backbone.blocks[1].attn
    q, k, _ = qkv_out[0].reshape(2, -1, 3, 2, 16).permute(2, 0, 3, 1, 4)
    expected = (q @ k.transpose(-2, -1) * attn.scale).softmax(dim=-1)
    assert len(attentions) == 2 and torch.allclose(attentions[1], expected, atol=1e-6)
    assert all(b.attn.fused_attn == f for b, f in zip(model.backbone.blocks, [attn.fused_attn] * 2))
    with torch.no_grad():
        assert torch.allclose(model(x), logits, atol=1e-5)  # fused path restored, same function
    importance = rollout.patch_importance(model, x)
    assert importance.shape == (2, 2, 5) and torch.all(importance > 0)


def test_init_from_a_local_timm_checkpoint(tmp_path):
    from train._compat import import_timm

    import_timm()
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(1)
    rgb = VisionTransformer(img_size=(32, 32), patch_size=(16, 8), in_chans=3, num_classes=10, embed_dim=32,
                            depth=2, num_heads=2)
    path = tmp_path / "tiny.pth"
    torch.save({"model": rgb.state_dict()}, path)
    model = tiny_deit()
    fresh = models.init_backbone_from(model.backbone, path)
    vit, source = model.backbone, rgb.state_dict()
    assert torch.allclose(vit.patch_embed.proj.weight, source["patch_embed.proj.weight"].sum(1, keepdim=True))
    assert torch.equal(vit.blocks[1].mlp.fc2.weight, source["blocks.1.mlp.fc2.weight"])
    assert vit.pos_embed.shape == (1, 1 + 2 * 5, 32)
    assert fresh == ["head.bias", "head.weight"]
    torch.save({"model": {"unrelated": torch.zeros(3)}}, path)
    with pytest.raises(ValueError, match="no tensor matches"):
        models.init_backbone_from(vit, path)


def test_init_a_cnn_from_another_corpus_run_keeps_the_body_and_a_fresh_head(tmp_path):
    torch.manual_seed(4)
    source = models.build("cnn", 8, (64, 201))  # e.g. a RAVDESS run: 8 classes
    path = tmp_path / "phase1.pt"
    torch.save(source.state_dict(), path)  # as run_fold saves it: the Classifier's state dict
    model = models.build("cnn", 7, (64, 201))
    head_before = model.backbone.head[1].weight.clone()
    assert models.init_backbone_from(model.backbone, path, fresh_head=True) == ["head.1.bias", "head.1.weight"]
    assert torch.equal(model.backbone.features[0][0].weight, source.backbone.features[0][0].weight)
    assert torch.equal(model.backbone.features[0][1].running_var, source.backbone.features[0][1].running_var)
    assert torch.equal(model.backbone.head[1].weight, head_before)
    narrow = models.Classifier(64, models.SmallCNN(7, widths=(16, 32, 64, 128)))
    with pytest.raises(ValueError, match="a CNN of another shape"):
        models.init_backbone_from(narrow.backbone, path)


def test_mae_patches_and_pretraining_update_the_encoder():
    from train.pretrain import MaskedAutoencoder, pretrain

    torch.manual_seed(2)
    model = tiny_deit()
    mae = MaskedAutoencoder(model)
    image = torch.arange(32 * 40, dtype=torch.float32).view(1, 1, 32, 40)
    patches = mae.patches(image)
    assert patches.shape == (1, 10, 128)
    assert torch.equal(patches[0, 6], image[0, 0, 16:32, 8:16].reshape(-1))  # row 1, column 1
    x = torch.randn(16, 32, 40)
    model.standardize.fit(x)
    before = model.backbone.blocks[0].attn.qkv.weight.clone()
    history = pretrain(model, x, epochs=2, batch_size=8, progress=False)
    assert len(history) == 2 and np.isfinite(history).all()
    assert not torch.equal(model.backbone.blocks[0].attn.qkv.weight, before)


def test_ablation_reuses_phase1_only_when_trained_the_same_way(quick_run, tmp_path):
    out, argv = quick_run
    ablation = tmp_path / "random"
    i = argv.index("--out")
    common = argv[:i] + argv[i + 2 :]
    main([*common, "--out", str(ablation), "--variants", "random", "--phase1-from", str(out)])
    for fold in ("spk-03", "spk-08"):
        assert (ablation / "random" / f"fold_{fold}.json").exists()
        assert not (ablation / "checkpoints" / fold / "phase1.pt").exists()
    with pytest.raises(SystemExit, match="trained differently.*seed"):
        main([*common, "--out", str(tmp_path / "other"), "--variants", "random", "--phase1-from", str(out),
              "--seed", "5"])


def test_report_tables_a_run(quick_run, tmp_path):
    from train.report import write_report

    out, _ = quick_run
    md = write_report("quick", [out], tmp_path)
    text = md.read_text()
    summary = json.loads((out / "samsg" / "summary.json").read_text())
    assert f"| deit | samsg |" in text and f"{100 * summary['pooled']['ua']:.1f}" in text
    assert "processed copy" in text and "speaker-independent" in text
    fold_ua = {name: [json.loads(f.read_text())["scores"]["ua"] for f in sorted((out / name).glob("fold_*.json"))]
               for name in ("none", "samsg")}
    diff = np.mean(np.subtract(fold_ua["samsg"], fold_ua["none"]))  # paired by fold
    assert f"samsg − none = {100 * diff:+.1f}" in text
    assert json.loads((tmp_path / "quick.json").read_text())["results"][0]["result_set"] == "phase1"


def test_quick_run_with_mae_pretraining_on_extra_audio(data_dir, tmp_path):
    extra = data_dir / "noise" / "household"
    if not extra.is_dir():
        pytest.skip(f"no unlabelled audio folder at {extra}")
    out = tmp_path / "run"
    main(["fit", "--model", "deit", "--quick", "--data", str(data_dir), "--out", str(out), "--cache",
          str(tmp_path / "cache"), "--pretrain-epochs", "1", "--pretrain-extra", str(extra), "--no-progress"])
    assert json.loads((out / "single" / "summary.json").read_text())["n_folds"] == 2
    with pytest.raises(SystemExit, match="no .wav/.flac files"):
        main(["fit", "--model", "deit", "--quick", "--data", str(data_dir), "--out", str(tmp_path / "x"),
              "--pretrain-epochs", "1", "--pretrain-extra", str(tmp_path / "run" / "single")])


def test_extra_training_corpus_joins_training_never_testing(data_dir, tmp_path):
    out = tmp_path / "run"
    main(["fit", "--quick", "--data", str(data_dir), "--out", str(out), "--cache", str(tmp_path / "cache"),
          "--extra-train", "ravdess", "--speaker-norm", "--no-progress"])
    config = json.loads((out / "config.json").read_text())
    added = config["added_training_clips"]
    assert added["corpus"] == "ravdess" and added["n_clips"] == 30 == sum(added["per_label"].values())
    assert config["run"]["speaker_norm"] is True
    for fold in config["folds"]:
        result = json.loads((out / "single" / f"fold_{fold}.json").read_text())
        assert result["n_added_train"] == 30 and result["n_train"] == 20  # 2 of 3 quick speakers; added apart
        assert all(data.EMODB_EMOTIONS.get(name[5]) for name in result["test_clips"])  # EmoDB names only
    with pytest.raises(SystemExit, match="emodb is the evaluated corpus itself"):
        main(["fit", "--quick", "--data", str(data_dir), "--out", str(tmp_path / "x"), "--extra-train", "emodb",
              "--no-progress"])
    with pytest.raises(SystemExit, match="started with other settings.*speaker_norm"):
        main(["fit", "--quick", "--data", str(data_dir), "--out", str(out), "--extra-train", "ravdess",
              "--no-progress"])
    with pytest.raises(SystemExit, match="not with --crop-seconds"):
        main(["fit", "--quick", "--data", str(data_dir), "--out", str(tmp_path / "y"), "--speaker-norm",
              "--crop-seconds", "3", "--no-progress"])


def test_init_from_a_train_run_checkpoint(quick_run):
    out, _ = quick_run
    checkpoint = out / "checkpoints" / "spk-03" / "phase1.pt"
    source = torch.load(checkpoint, weights_only=True)
    model = models.build("deit", 7, (64, 201), depth=1, dim=32, heads=2)
    assert models.init_backbone_from(model.backbone, checkpoint) == []  # same classes: nothing left fresh
    assert torch.equal(model.backbone.blocks[0].attn.qkv.weight, source["backbone.blocks.0.attn.qkv.weight"])
    assert not any(k.startswith("standardize") for k in models.read_state_dict(checkpoint))
    assert models.init_backbone_from(model.backbone, checkpoint, fresh_head=True) == ["head.bias", "head.weight"]
    with pytest.raises(SystemExit, match="trained on emodb, the corpus evaluated here"):
        main(["samsg", "--quick", "--out", str(out.parent / "leak"), "--init-from", str(checkpoint), "--no-progress"])


def test_conv_stem_deit_tokens_sit_on_the_16x16_patch_grid():
    torch.manual_seed(3)
    model = models.build("deit", 7, (64, 201), depth=1, dim=32, heads=2, stem="conv").eval()
    patch = models.build("deit", 7, (64, 201), depth=1, dim=32, heads=2)
    assert tuple(model.backbone.patch_embed.grid_size) == tuple(patch.backbone.patch_embed.grid_size) == (4, 12)
    x = torch.randn(2, 64, 201)
    assert model(x).shape == (2, 7)
    importance = rollout.patch_importance(model, x)
    assert importance.shape == (2, 4, 12) and torch.all(importance > 0)
    with pytest.raises(ValueError, match="needs --patch 16x16"):
        models.build("deit", 7, (64, 201), patch=(64, 4), stem="conv")
    with pytest.raises(ValueError, match="351 frames give"):  # pools round up where patches drop the rest
        models.build("deit", 7, (64, 351), depth=1, dim=32, heads=2, stem="conv")
    assert models.build("deit", 7, (64, 301), depth=1, dim=32, heads=2, stem="conv").backbone.patch_embed.grid_size == (4, 18)


def test_folds_option_trains_only_those_folds_and_the_rest_resume(data_dir, tmp_path):
    out = tmp_path / "run"
    common = ["fit", "--quick", "--data", str(data_dir), "--cache", str(tmp_path / "cache"), "--out", str(out),
              "--no-progress"]
    main([*common, "--folds", " spk-08"])
    assert [p.name for p in (out / "single").glob("fold_*.json")] == ["fold_spk-08.json"]
    whole = tmp_path / "whole"
    main([*common[:-2], str(whole), "--no-progress"])  # the same fold in a run of all folds: same seed, same result
    alone, within = (json.loads((d / "single" / "fold_spk-08.json").read_text()) for d in (out, whole))
    assert alone["logits"] == within["logits"] and alone["loss"] == within["loss"]
    assert json.loads((out / "single" / "summary.json").read_text())["complete"] is False
    main(common)
    assert sorted(p.name for p in (out / "single").glob("fold_*.json")) == ["fold_spk-03.json", "fold_spk-08.json"]
    assert json.loads((out / "single" / "summary.json").read_text())["complete"] is True
    with pytest.raises(SystemExit, match="not folds of emodb loso"):
        main([*common, "--folds", "spk-99"])


def test_ensemble_averages_the_members_probabilities(data_dir, tmp_path):
    from train.ensemble import ensemble
    from train.report import write_report

    runs = [tmp_path / f"seed{s}" for s in (0, 1)]
    for seed, run in enumerate(runs):
        main(["fit", "--quick", "--data", str(data_dir), "--cache", str(tmp_path / "cache"), "--out", str(run),
              "--seed", str(seed), "--no-progress"])
    summary = ensemble(runs, tmp_path / "ens")
    for fold in ("spk-03", "spk-08"):
        members = [json.loads((r / "single" / f"fold_{fold}.json").read_text()) for r in runs]
        probs = [torch.softmax(torch.tensor(m["logits"], dtype=torch.float64), dim=1) for m in members]
        result = json.loads((tmp_path / "ens" / "ensemble" / f"fold_{fold}.json").read_text())
        assert result["predicted"] == ((probs[0] + probs[1]) / 2).argmax(dim=1).tolist()
        assert result["test_clips"] == members[0]["test_clips"]
    assert summary["n_folds"] == 2
    text = write_report("ens", [tmp_path / "ens"], tmp_path / "report").read_text()
    assert "| cnn+ens2 | ensemble |" in text
    config = json.loads((runs[1] / "config.json").read_text())
    config["labels"] = config["labels"][::-1]
    (runs[1] / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="labels differ"):
        ensemble(runs, tmp_path / "bad")


def test_distil_from_an_ensemble_learns_its_training_clip_probabilities(data_dir, tmp_path):
    from train.augment import Augmentation
    from train.teachers import teacher_log_probs, teacher_views
    from train.ensemble import ensemble
    from train.run_dir import load_fold_model

    common = ["fit", "--quick", "--data", str(data_dir), "--cache", str(tmp_path / "cache"), "--no-progress"]
    runs = [tmp_path / f"seed{s}" for s in (0, 1)]
    for seed, run in enumerate(runs):
        main([*common, "--out", str(run), "--seed", str(seed)])
    ensemble(runs, tmp_path / "ens")
    student = tmp_path / "student"
    main([*common, "--out", str(student), "--distil-from", str(tmp_path / "ens")])
    config = json.loads((student / "config.json").read_text())
    assert config["run"]["distil_from"] == str(tmp_path / "ens")
    assert config["teacher"]["members"] == [str(r) for r in runs]
    fold = json.loads((student / "single" / "fold_spk-03.json").read_text())
    assert fold["test_clips"] == json.loads((runs[0] / "single" / "fold_spk-03.json").read_text())["test_clips"]
    # The targets: the members' own checkpoints of that fold, averaged.
    train_x = torch.randn(5, 64, 201)
    targets = teacher_log_probs(tmp_path / "ens", "spk-03", fold["test_clips"], train_x)
    members = [torch.softmax(torch.from_numpy(load_fold_model(r, "spk-03")[0](train_x).detach().numpy()), dim=1)
               for r in runs]
    assert torch.allclose(targets.exp(), (members[0] + members[1]) / 2, atol=1e-6)
    with pytest.raises(ValueError, match="held out other clips"):
        teacher_log_probs(tmp_path / "ens", "spk-03", fold["test_clips"][1:], train_x)
    # Views: augmented copies (shifted, masked), each with the teacher's targets on that copy.
    views, view_targets = teacher_views(tmp_path / "ens", "spk-03", fold["test_clips"], train_x, 3,
                                        Augmentation(freq_masks=1), seed=0)
    assert views.shape == (15, 64, 201) and not torch.equal(views[:5], views[5:10])
    assert torch.allclose(view_targets, teacher_log_probs(tmp_path / "ens", "spk-03", fold["test_clips"], views))
    main([*common, "--out", str(tmp_path / "viewed"), "--distil-from", str(tmp_path / "ens"), "--distil-views", "2",
          "--freq-masks", "1", "--epochs", "1"])
    assert json.loads((tmp_path / "viewed" / "config.json").read_text())["run"]["distil_views"] == 2
    assert (tmp_path / "viewed" / "single" / "fold_spk-03.json").exists()
    with pytest.raises(SystemExit, match="--distil-views 2: needs --distil-from and a count"):
        main([*common, "--out", str(tmp_path / "bad4"), "--distil-views", "2"])
    with pytest.raises(SystemExit, match="^error: --distil-from .*without augmentation"):
        main([*common, "--out", str(tmp_path / "bad"), "--distil-from", str(tmp_path / "ens"), "--mixup", "0.2"])
    with pytest.raises(SystemExit, match="its seconds 2.0 is not this run's 1.5"):
        main([*common, "--out", str(tmp_path / "bad2"), "--distil-from", str(runs[0]), "--seconds", "1.5"])
    (runs[1] / "single" / "fold_spk-08.json").unlink()  # a member that has not finished a fold: refused up front
    with pytest.raises(SystemExit, match="has not finished fold spk-08"):
        main([*common, "--out", str(tmp_path / "bad3"), "--distil-from", str(tmp_path / "ens")])
    assert not list((tmp_path / "bad3").glob("single/fold_*.json"))


def test_shift_averaging_rescores_the_saved_fold_models(data_dir, tmp_path):
    from train.run_dir import load_fold_model
    from train.shifts import average_over_shifts, shift_averaged

    run = tmp_path / "run"
    main(["fit", "--quick", "--data", str(data_dir), "--cache", str(tmp_path / "cache"), "--out", str(run), "--no-progress"])
    single = json.loads((run / "single" / "fold_spk-03.json").read_text())
    # No shift but 0: the run's own predictions, from its checkpoint and the same features.
    average_over_shifts(run, (0,))
    assert json.loads((run / "shifts" / "fold_spk-03.json").read_text())["predicted"] == single["predicted"]
    summary = average_over_shifts(run)
    result = json.loads((run / "shifts" / "fold_spk-03.json").read_text())
    assert result["shifts"] == [-20, -10, 0, 10, 20] and result["test_clips"] == single["test_clips"]
    assert summary["n_folds"] == 2
    model, _ = load_fold_model(run, "spk-03")
    x = torch.randn(3, 64, 201)
    expected = sum(torch.softmax(model(torch.roll(x, s, dims=-1)), dim=1) for s in (-5, 5)) / 2
    assert np.allclose(shift_averaged(model, x, (-5, 5)), expected.detach().numpy(), atol=1e-6)
    # A batch with a bad run still re-scores the others, then fails naming it.
    (run / "shifts" / "summary.json").unlink()
    with pytest.raises(SystemExit, match=f"1 of 2 runs failed: {tmp_path / 'missing'}"):
        main(["shifts", str(tmp_path / "missing"), str(run)])
    assert (run / "shifts" / "summary.json").exists()
    # Runs from before fold JSONs kept logits: checked on their predictions instead.
    path = run / "single" / "fold_spk-08.json"
    old = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in old.items() if k != "logits"}))
    average_over_shifts(run)
    path.write_text(json.dumps({**{k: v for k, v in old.items() if k != "logits"},
                                "predicted": [(p + 1) % 7 for p in old["predicted"]]}))
    with pytest.raises(ValueError, match="predictions differ from the fold's saved ones"):
        average_over_shifts(run)
    path.write_text(json.dumps(old))
    # A checkpoint that is not the one tested is refused, not re-scored.
    path = run / "checkpoints" / "spk-03" / "phase1.pt"
    state = torch.load(path, weights_only=True)
    last_bias = [k for k in state if k.endswith("bias")][-1]  # the head's: every logit moves by 1
    state[last_bias] = state[last_bias] + 1.0
    torch.save(state, path)
    with pytest.raises(ValueError, match="differ from the fold's saved ones"):
        average_over_shifts(run)


def test_noise_in_training_and_in_testing(data_dir, tmp_path, capsys):
    from train.copies import training_copies
    from train.degraded import score_in_noise, score_in_rooms

    clips = sorted((data_dir / "emodb").rglob("*.wav"))[:2]
    copies = training_copies(clips, FeatureConfig(), 2.0, 3, 0, data_dir / "noise" / "background", (0.0, 20.0))
    assert copies.shape == (2, 3, 64, 201) and not torch.equal(copies[0, 0], copies[0, 1])
    again = training_copies(clips[::-1], FeatureConfig(), 2.0, 3, 0, data_dir / "noise" / "background", (0.0, 20.0))
    assert torch.equal(again[1], copies[0])  # a clip's noise depends on its name, not on the order asked
    run = tmp_path / "run"
    common = ["fit", "--quick", "--data", str(data_dir), "--cache", str(tmp_path / "cache"), "--no-progress"]
    main([*common, "--out", str(run), "--noise-train", str(data_dir / "noise" / "background")])
    assert json.loads((run / "config.json").read_text())["run"]["noise_copies"] == 4
    single = json.loads((run / "single" / "fold_spk-03.json").read_text())
    # Noise 200 dB down changes nothing: the mix goes through the same extractor as the clean clips.
    sets = score_in_noise(run, data_dir / "noise" / "household", (200.0, 0.0))
    assert list(sets) == ["noisy_200db", "noisy_0db"]
    assert json.loads((run / "noisy_200db" / "fold_spk-03.json").read_text())["predicted"] == single["predicted"]
    loud = json.loads((run / "noisy_0db" / "fold_spk-03.json").read_text())["probabilities"]
    assert not np.allclose(loud, torch.softmax(torch.tensor(single["logits"]), dim=1).numpy(), atol=1e-3)
    with pytest.raises(ValueError, match="test on noise it never heard"):
        score_in_noise(run, data_dir / "noise" / "background", (10.0,))
    # Reverberation: one set per RT60, each reproducible, a longer room further from the clean clips.
    rooms = score_in_rooms(run, (0.3, 0.9))
    assert list(rooms) == ["reverb_0.3s", "reverb_0.9s"]
    clean = torch.softmax(torch.tensor(single["logits"]), dim=1).numpy()
    short, long = (np.array(json.loads((run / s / "fold_spk-03.json").read_text())["probabilities"]) for s in rooms)
    assert np.abs(long - clean).mean() > np.abs(short - clean).mean() > 0
    import train.degraded

    train.degraded._LAST.clear()  # draw the rooms again, not from the cache
    assert score_in_rooms(run, (0.3, 0.9))["reverb_0.9s"] == rooms["reverb_0.9s"]
    # The export chain's students train in the same noise: fold_data carries the run's copies.
    from export.folds import fold_data

    fold = fold_data(run, "spk-03", str(data_dir))
    assert fold.train_noisy.shape == (len(fold.train_x), 4, 64, 201) and fold.noise_p == 0.5
    assert fold.protocol["noise_train"]["noise_train"] == str(data_dir / "noise" / "background")
    # Rooms alone: the run and its students train on reverberant copies.
    main([*common, "--out", str(tmp_path / "rooms"), "--reverb-train", "0.2,1.0", "--noise-copies", "2"])
    assert json.loads((tmp_path / "rooms" / "config.json").read_text())["run"]["reverb_train"] == [0.2, 1.0]
    fold = fold_data(tmp_path / "rooms", "spk-03", str(data_dir))
    assert fold.train_noisy.shape == (len(fold.train_x), 2, 64, 201) and fold.protocol["noise_train"]["noise_train"] is None
    assert not torch.allclose(fold.train_noisy[:, 0], fold.train_x)
    with pytest.raises(SystemExit, match="--noise-p/--noise-copies: need --noise-train or --reverb-train"):
        main([*common, "--out", str(tmp_path / "bad_noise"), "--noise-p", "0.9"])
    with pytest.raises(SystemExit, match="--noise-snr: needs --noise-train"):
        main([*common, "--out", str(tmp_path / "bad_noise"), "--reverb-train", "0.2,1", "--noise-snr", "5,10"])
    with pytest.raises(SystemExit):
        main([*common, "--out", str(tmp_path / "bad_noise"), "--reverb-train", "0.9,0.2"])
    assert "the RT60 range (s) must be LOW,HIGH" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="--noise-copies >= 1"):
        main([*common, "--out", str(tmp_path / "bad_noise"), "--noise-train", str(data_dir / "noise"), "--noise-copies", "0"])
    assert not (tmp_path / "bad_noise" / "config.json").exists()
    with pytest.raises(SystemExit, match="--ema 1.5: needs a decay in"):
        main([*common, "--out", str(tmp_path / "bad_ema"), "--ema", "1.5"])
    assert not (tmp_path / "bad_ema" / "config.json").exists()
    with pytest.raises(SystemExit, match="--noise-train .* / --reverb-train None: .*not with --speaker-norm"):
        main([*common, "--out", str(tmp_path / "bad"), "--noise-train", str(data_dir / "noise"), "--speaker-norm"])
    with pytest.raises(SystemExit, match="1 of 1 runs failed"):
        main(["noisy", "--noise", str(tmp_path), str(run)])
    assert "no .wav/.flac noise files" in capsys.readouterr().err
