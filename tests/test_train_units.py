"""Training package, pure logic: rollout maths, masking, splits, metrics, checkpoint loading."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training tests need torch (the train extra)")

from train import masking, metrics, protocols, rollout  # noqa: E402


def test_rollout_matches_hand_computation():
    a1 = torch.tensor([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.2, 0.2, 0.6]])
    a2 = torch.tensor([[0.0, 0.0, 1.0], [0.5, 0.0, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    # One head each, [B=1, H=1, N=3, N=3]; rows already sum to 1, so 0.5A + 0.5I needs no rescaling.
    l1, l2 = 0.5 * a1 + 0.5 * torch.eye(3), 0.5 * a2 + 0.5 * torch.eye(3)
    got = rollout.rollout([a1[None, None], a2[None, None]])
    assert torch.allclose(got[0], l2 @ l1)
    assert torch.allclose(got[0].sum(dim=-1), torch.ones(3))
    assert torch.allclose(rollout.cls_importance(got)[0], (l2 @ l1)[0, 1:])


def test_rollout_head_fusion_and_row_normalisation():
    heads = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]])[None]  # [1, 2, 2, 2]
    mean = rollout.rollout([heads], "mean")[0]
    assert torch.allclose(mean, torch.tensor([[0.75, 0.25], [0.25, 0.75]]))
    # max fusion gives all-ones rows: 0.5*1 + 0.5*I = [[1, .5], [.5, 1]], normalised -> 2/3, 1/3.
    maxed = rollout.rollout([heads], "max")[0]
    assert torch.allclose(maxed, torch.tensor([[2 / 3, 1 / 3], [1 / 3, 2 / 3]]))
    minned = rollout.rollout([heads], "min")[0]
    assert torch.allclose(minned, torch.eye(2))
    with pytest.raises(ValueError, match="head fusion"):
        rollout.rollout([heads], "median")


def test_rollout_identity_attention_keeps_tokens_separate():
    eye = torch.eye(5)[None, None].repeat(2, 3, 1, 1)
    assert torch.allclose(rollout.rollout([eye, eye, eye]), torch.eye(5).expand(2, 5, 5))


def test_to_spectrogram_places_patches():
    importance = torch.tensor([[[1.0, 2.0, 3.0]]])  # grid 1 x 3, patches 2 x 4, spectrogram 2 x 13
    spec = rollout.to_spectrogram(importance, (2, 4), (2, 13))
    assert spec.shape == (1, 2, 13)
    assert torch.equal(spec[0, :, :4], torch.ones(2, 4))
    assert torch.equal(spec[0, :, 8:12], torch.full((2, 4), 3.0))
    assert torch.equal(spec[0, :, 12], torch.zeros(2))  # frames past the last whole patch


def test_top_k_mask_masks_exactly_the_most_attended():
    importance = torch.tensor([[[0.1, 0.9, 0.3], [0.8, 0.2, 0.7]]])
    mask = masking.top_k_mask(importance, 0.5)
    assert mask.sum() == 3
    assert torch.equal(mask, torch.tensor([[[False, True, False], [True, False, True]]]))
    assert masking.top_k_mask(importance, 0.0).sum() == 0
    with pytest.raises(ValueError, match="mask ratio"):
        masking.top_k_mask(importance, 1.5)


def test_random_mask_has_the_same_area_and_is_seeded():
    a = masking.random_mask(4, (4, 12), 0.25, torch.Generator().manual_seed(1))
    b = masking.random_mask(4, (4, 12), 0.25, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert a.flatten(1).sum(dim=1).tolist() == [12] * 4


def test_apply_mask_fills_only_masked_patches():
    features = torch.arange(2 * 4 * 9, dtype=torch.float32).view(2, 4, 9)
    mask = torch.zeros(2, 2, 2, dtype=torch.bool)
    mask[0, 1, 0] = True  # mels 2-3, frames 0-3 of clip 0
    out = masking.apply_mask(features, mask, (2, 4), fill=-5.0)
    assert torch.equal(out[0, 2:4, 0:4], torch.full((2, 4), -5.0))
    changed = out != features
    assert changed.sum() == 8 and torch.equal(out[1], features[1])
    by_mean = masking.apply_mask(features, mask, (2, 4), fill="mean")
    assert torch.allclose(by_mean[0, 2, 0], features[0].mean())


def test_loso_folds_never_share_a_speaker():
    speakers = np.array(["03", "08", "03", "10", "08", "10", "10"])
    labels = np.zeros(len(speakers), dtype=int)
    folds = protocols.make_folds("loso", labels, speakers)
    assert [f.name for f in folds] == ["spk-03", "spk-08", "spk-10"]
    for fold in folds:
        assert not set(speakers[fold.train]) & set(speakers[fold.test])
        assert sorted(np.concatenate([fold.train, fold.test]).tolist()) == list(range(len(speakers)))


def test_groups_of_four_actors_in_numeric_order():
    speakers = np.array([f"{a:02d}" for a in range(1, 25)] * 2)
    folds = protocols.make_folds("groups4", np.zeros(48, dtype=int), speakers)
    assert len(folds) == 6 and folds[0].name == "spk-01-02-03-04" and folds[2].name == "spk-09-10-11-12"
    assert all(len(f.test) == 8 for f in folds)


def test_speaker_dependent_folds_are_stratified_and_partition():
    labels = np.repeat(np.arange(3), [30, 20, 10])
    folds = protocols.make_folds("sd10", labels, np.array(["a"] * 60), seed=3)
    tests = np.concatenate([f.test for f in folds])
    assert sorted(tests.tolist()) == list(range(60))
    for fold in folds:
        assert np.bincount(labels[fold.test], minlength=3).tolist() == [3, 2, 1]


def test_unknown_protocol_is_an_error():
    with pytest.raises(ValueError, match="unknown protocol"):
        protocols.make_folds("kfold", np.zeros(2), np.array(["a", "b"]))


def test_scores_from_confusion():
    matrix = np.array([[3, 1, 0], [0, 2, 0], [0, 0, 0]])  # class 2 absent from this fold's truth
    s = metrics.scores(matrix)
    assert s["ua"] == pytest.approx((0.75 + 1.0) / 2)
    assert s["wa"] == pytest.approx(5 / 6)
    f1_0, f1_1 = 2 * 1.0 * 0.75 / 1.75, 2 * (2 / 3) * 1.0 / (5 / 3)
    assert s["macro_f1"] == pytest.approx((f1_0 + f1_1) / 2)
    assert metrics.confusion(np.array([0, 1, 1]), np.array([1, 1, 0]), 2).tolist() == [[0, 1], [1, 1]]


def test_cli_rejects_bad_input_in_one_line(tmp_path):
    from train.__main__ import main

    with pytest.raises(SystemExit, match="unknown corpus 'nope'"):
        main(["fit", "--corpus", "nope", "--out", str(tmp_path / "a")])
    with pytest.raises(SystemExit, match="masking variants need --model deit"):
        main(["samsg", "--model", "cnn", "--out", str(tmp_path / "b")])
    with pytest.raises(SystemExit, match="no EmoDB audio found"):
        main(["fit", "--data", str(tmp_path), "--out", str(tmp_path / "c")])
    with pytest.raises(SystemExit):
        main(["fit", "--patch", "16by16", "--out", str(tmp_path / "d")])


def test_speaker_normalise_uses_each_speakers_own_clips_only():
    from train.features import speaker_normalise

    rng = np.random.default_rng(0)
    x = rng.normal(size=(9, 4, 20)).astype(np.float32) * np.array([1, 2, 3, 4], np.float32)[:, None] + 5
    speakers = np.array(["a"] * 4 + ["b"] * 5)
    z = speaker_normalise(x, speakers)
    for s in ("a", "b"):
        own = z[speakers == s]
        assert np.allclose(own.mean(axis=(0, 2)), 0, atol=1e-5)
        assert np.allclose(own.std(axis=(0, 2)), 1, atol=1e-4)
    changed = x.copy()
    changed[speakers == "b"] *= 10  # another speaker's audio does not move speaker a's features
    assert np.array_equal(speaker_normalise(changed, speakers)[speakers == "a"], z[speakers == "a"])


def test_speaker_normalise_with_reference_clips_takes_their_statistics_only():
    from train.features import speaker_normalise

    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, 3, 10)).astype(np.float32) + 2
    speakers = np.array(["a"] * 4 + ["b"] * 4)
    reference = np.array([True, True, False, False, False, True, False, False])
    z = speaker_normalise(x, speakers, reference)
    for s in ("a", "b"):
        ref = z[(speakers == s) & reference]  # the reference clips are z-scored exactly ...
        assert np.allclose(ref.mean(axis=(0, 2)), 0, atol=1e-5) and np.allclose(ref.std(axis=(0, 2)), 1, atol=1e-4)
    changed = x.copy()
    changed[~reference] *= 10  # ... and the other clips never move the statistics
    assert np.allclose(speaker_normalise(changed, speakers, reference)[reference], z[reference])
    with pytest.raises(ValueError, match="speaker b has no reference clips"):
        speaker_normalise(x, speakers, np.array([True] + [False] * 7))


def test_report_labels_name_what_a_run_changed():
    from train.report import augmentation_label, data_label

    assert augmentation_label({"freq_masks": 0, "mixup": 0.0}) == "" and data_label({"seed": 0}) == ""
    assert augmentation_label({"freq_warp": 0.1, "time_masks": 2, "crop_seconds": 3.5}) == "+warp+SpecAug+crop"
    assert data_label({"normalize": "utterance", "stem": "conv", "speaker_norm": True, "seed": 2,
                       "extra_train": "ravdess"}) == "+uttnorm+convstem+xravdess+spknorm+seed2"
    assert data_label({"speaker_norm": True, "speaker_norm_labels": ["neutral", "calm"]}) == "+spknorm-neutral-calm"
    assert data_label({"init_from": "runs/r/checkpoints/all/phase1.pt", "speaker_adversary": 1.0}) == "+init+spkadv"


def test_fit_with_a_teacher_follows_the_teacher_over_the_labels():
    """Teacher targets that name another class than the labels: the distilled model follows them
    (the soft term weighs 0.7 * T^2 against 0.3 for the labels), a label-only model does not."""
    from train import loop, models

    generator = torch.Generator().manual_seed(0)
    y = torch.arange(40) % 4
    x = torch.randn(40, 64, 64, generator=generator) * 0.1
    x[torch.arange(40), y * 16] += 3.0  # the label is plain to see in the features
    teacher = torch.full((40, 4), -6.0)
    teacher[torch.arange(40), (y + 1) % 4] = 0.0
    speakers = torch.arange(40) % 5
    follows, weights = {}, {}
    for name, targets, adversary in (("labels", None, 0.0), ("teacher", teacher.log_softmax(dim=1), 1e-12),
                                     ("teacher+adversary", teacher.log_softmax(dim=1), 1.0)):
        torch.manual_seed(0)  # both teacher runs build the adversary (one random stream); only its weight differs
        model = models.build("cnn", 4, (64, 64))
        model.standardize.fit(x)
        loop.fit(model, x, y, 4, epochs=30, lr=3e-3, batch_size=8, progress=False, teacher=targets,
                 speakers=speakers, adversary_weight=adversary)
        predicted = torch.from_numpy(loop.predict(model, x))
        follows[name] = (predicted == (y + 1) % 4).float().mean().item()
        weights[name] = [p.detach().clone() for p in model.parameters()]
    assert follows["teacher"] > 0.9 and follows["teacher+adversary"] > 0.9 and follows["labels"] < 0.1
    # The adversary's confusion term reached the encoder beside the distillation loss.
    assert any(not torch.allclose(a, b) for a, b in zip(weights["teacher"], weights["teacher+adversary"]))
    with pytest.raises(ValueError, match="teacher targets"):
        loop.fit(model, x, y, 4, epochs=1, lr=1e-3, progress=False, teacher=teacher[:5])


def test_prior_corrected_decision_weighs_each_fold_by_its_training_classes(tmp_path):
    from train.decision import decide_with_prior, training_counts
    from train.report import collect

    run = tmp_path / "run"
    (run / "single").mkdir(parents=True)
    folds = {"a": [0, 0, 1], "b": [0, 1, 1, 1]}  # training classes: a -> [1, 3], b -> [2, 1]
    logits = np.log([[0.4, 0.6]] * 7)  # a balanced model, unsure: 0.4 vs 0.6 on every clip
    start = 0
    for name, true in folds.items():
        fold = {"fold": name, "test_speakers": [name], "n_train": 7 - len(true), "n_test": len(true),
                "test_clips": [f"{name}{i}.wav" for i in range(len(true))], "test_true": true, "train_seconds": 1.0,
                "logits": logits[start:start + len(true)].tolist()}
        matrix = metrics.confusion(np.array(true), np.ones(len(true), dtype=int), 2)  # the balanced argmax: y
        fold.update(confusion=matrix.tolist(), scores=metrics.scores(matrix))
        (run / "single" / f"fold_{name}.json").write_text(json.dumps(fold))
        start += len(true)
    config = {"run": {"model": "cnn", "corpus": "toy", "protocol": "loso", "seed": 0}, "labels": ["x", "y"],
              "n_clips": 7, "folds": list(folds), "input_shape": [64, 201], "n_parameters": 10,
              "environment": {"date": "-", "torch": "-", "commit": "0" * 10}}
    (run / "config.json").write_text(json.dumps(config))
    summary = decide_with_prior(run)
    a, b = (json.loads((run / "prior" / f"fold_{n}.json").read_text()) for n in folds)
    assert a["training_class_counts"] == [1, 3] and a["predicted"] == [1, 1, 1]  # 0.4 x 1/4 < 0.6 x 3/4
    assert b["training_class_counts"] == [2, 1] and b["predicted"] == [0, 0, 0, 0]  # 0.4 x 2/3 > 0.6 x 1/3
    assert summary["pooled"]["wa"] == pytest.approx(2 / 7)
    assert [r["result_set"] for r in collect(run)] == ["single", "prior"]
    # Another result set (test-time shift averaging keeps probabilities, not logits): SET_prior.
    (run / "shifts").mkdir()
    for name in folds:
        fold = json.loads((run / "single" / f"fold_{name}.json").read_text())
        fold["probabilities"] = np.exp(fold.pop("logits")).tolist()
        (run / "shifts" / f"fold_{name}.json").write_text(json.dumps(fold))
    decide_with_prior(run, "shifts")
    assert json.loads((run / "shifts_prior" / "fold_b.json").read_text())["predicted"] == b["predicted"]
    assert [r["result_set"] for r in collect(run)] == ["single", "prior", "shifts", "shifts_prior"]
    with pytest.raises(ValueError, match="do not partition"):
        training_counts([{"n_train": 5, "n_test": 2, "test_true": [0, 1], "test_clips": ["x", "y"]}], 7, 2)
    twice = [{"n_train": 1, "n_test": 1, "test_true": [0], "test_clips": ["x"]}] * 2  # one clip tested twice
    with pytest.raises(ValueError, match="do not partition"):
        training_counts(twice, 2, 2)


def test_report_pairs_two_runs_fold_by_fold():
    from train.report import pair_differences

    def row(run, result_set, ua):
        return {"run": run, "result_set": result_set,
                "folds": [{"fold": f, "scores": {"ua": u, "wa": u / 2}} for f, u in zip("abc", ua)]}

    rows = [row("runs/x", "single", [0.7, 0.8, 0.6]), row("runs/x", "prior", [0.9, 0.9, 0.9]),
            row("runs/y", "single", [0.6, 0.8, 0.7])]
    assert pair_differences(rows, ["runs/x=runs/y/"]) == [
        "- `runs/x` single − `runs/y` single: +0.0 ± 8.2 points of fold UA (better on 1 of 3 folds), +0.0 of fold WA"]
    assert "prior − `runs/y` single: +20.0 ± 8.2 points of fold UA (better on 3 of 3" in pair_differences(rows, ["runs/x:prior=runs/y"])[0]
    with pytest.raises(ValueError, match="no such run"):
        pair_differences(rows, ["runs/z=runs/y"])
    with pytest.raises(ValueError, match="RUN=BASELINE"):
        pair_differences(rows, ["runs/x"])


def test_report_pools_the_masking_variants_of_seeds_of_one_recipe_only():
    from train.report import pooled_variant_differences

    def rows(run, seed, sets, recipe=None):
        config = {"run": {"model": "deit", "epochs": 10, "mask_ratio": 0.25, "seed": seed, "threads": 1,
                          "variants": list(sets), **(recipe or {})}}
        return [{"run": run, "result_set": name, "config": config, "summary": {"pooled": {"ua": sum(ua) / 2}},
                 "folds": [{"fold": f, "scores": {"ua": u}, **({"rollout_share_masked": share} if share else {})}
                           for f, u in zip("ab", ua)]}
                for name, (ua, share) in sets.items()]

    seed0 = rows("runs/s0", 0, {"phase1": ((0.5, 0.5), None), "none": ((0.6, 0.4), None),
                                "random": ((0.6, 0.6), 0.25), "samsg": ((0.7, 0.5), 0.35)})
    seed1 = rows("runs/s1", 1, {"phase1": ((0.5, 0.5), None), "none": ((0.5, 0.5), None),
                                "random": ((0.4, 0.4), 0.25), "samsg": ((0.6, 0.6), 0.45)})
    # Another variant later, from seed 0's phase 1 (the path typed another way): paired with seed 0's folds.
    speech0 = rows("runs/speech_s0", 0, {"samsg_speech": ((0.8, 0.5), 0.3)}, {"phase1_from": "/work/x/runs/s0/"})
    speech0[0]["folds"][0]["pause_share_masked"] = 0.1
    other = rows("runs/longer", 0, {"none": ((0.9, 0.9), None), "samsg": ((0.9, 0.9), 0.3)}, {"epochs": 20})
    lines = pooled_variant_differences(seed0 + seed1 + speech0 + other)
    assert lines[0] == "- runs `runs/s0`, `runs/s1`, `runs/speech_s0` (seeds 0, 1):"
    # samsg − none over the 4 (phase 1, fold) pairs: +0.1 each; random − none: 0, +0.2, -0.1, -0.1
    assert lines[1] == "  - samsg − none: +10.0 ± 0.0 points of fold UA (better on 4 of 4 folds)"
    assert lines[2] == "  - random − none: +0.0 ± 12.2 points of fold UA (better on 1 of 4 folds)"
    assert "  - samsg_speech − samsg: +5.0 ± 5.0 points of fold UA (better on 1 of 2 folds)" in lines  # +0.1, 0
    assert "  - samsg_speech − none: +15.0 ± 5.0 points of fold UA (better on 2 of 2 folds)" in lines
    assert lines[8] == ("  - pooled UA, mean over runs: phase1 50.0 % (2 runs), none 50.0 % (2 runs), random 50.0 % "
                        "(2 runs), samsg 60.0 % (2 runs), samsg_speech 65.0 % (1 runs)")
    assert lines[10] == ("  - samsg masks covered 40.0 % of each clip's phase-1 rollout mass (35.0-45.0 % per fold, "
                         "4 folds; mask area 25 %)")
    assert lines[12] == "  - samsg_speech masks still on pauses (clips with fewer speech tokens than the mask): 10.0 % " \
                        "of the masked tokens"
    assert len(lines) == 13  # another recipe (runs/longer) is never pooled with these
    assert pooled_variant_differences(seed0 + speech0 + other) == []  # one seed per recipe: nothing to pool


def test_pause_tokens_follow_the_vad_and_shares_count_tokens_and_mass(tmp_path):
    import wave

    from edge_ser import features, vad
    from edge_ser.config import SAMPLE_RATE
    from train.features import clip_speech
    from train.pauses import pause_shares

    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE  # a 3-s file: quiet noise, a voiced tone from 0.9 to 1.8 s
    audio = 1e-3 * np.random.default_rng(0).standard_normal(len(t))
    voiced = (t >= 0.9) & (t < 1.8)
    audio[voiced] += 0.3 * sum(np.sin(2 * np.pi * 140 * k * t[voiced]) / k for k in range(1, 28))
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(SAMPLE_RATE)
        out.writeframes((audio * 32767).astype("<i2").tobytes())
    speech = clip_speech(path, 2.0)  # the centre 2 s (0.5-2.5 s of the file): the tone at 0.4-1.3 s
    assert speech.shape == (201,) and speech[50:120].all() and not speech[:30].any() and not speech[150:].any()
    whole = vad.speech_frames(features.log_mel(audio.astype(np.float32)))
    assert np.array_equal(speech, whole[50:251])  # the whole file's decisions, 50 frames (0.5 s) in
    pauses = masking.pause_tokens(speech[None], (4, 12), patch_w=16)[0]  # 16-frame columns: 0.16 s each
    assert pauses.shape == (4, 12) and (pauses == pauses[0]).all()  # a column is a pause in every mel row
    assert pauses[0, [0, 1, 9, 10, 11]].all() and not pauses[0, 3:7].any()
    padded = clip_speech(path, 4.0)  # longer than the file: its end is padding, a pause
    assert padded.shape == (401,) and not padded[310:].any() and padded[100:170].all()

    importance = torch.tensor([[[5.0, 1, 1, 1], [4, 1, 1, 1]]])  # the two top tokens sit in column 0
    column0 = torch.tensor([[[True, False, False, False]] * 2])
    shares = pause_shares(importance, column0, ratio=0.25)
    assert shares == pytest.approx({"area": 0.25, "top_k": 1.0, "mass": 9 / 15, "rollout_share_masked": 9 / 15})
    shares = pause_shares(importance, ~column0, ratio=0.25)
    assert shares == pytest.approx({"area": 0.75, "top_k": 0.0, "mass": 6 / 15, "rollout_share_masked": 9 / 15})


def test_speech_masks_take_the_top_k_among_speech_tokens_and_fill_up_with_pauses():
    importance = torch.tensor([[[0.9, 0.5, 0.1, 0.3], [0.8, 0.2, 0.0, 0.4]]])
    pauses = torch.tensor([[[True, False, False, False]] * 2])
    assert masking.top_k_mask(importance, 0.25)[0, :, 0].all()  # plain SAMSG: the two pause tokens
    mask = masking.top_k_speech_mask(importance, pauses, 0.25)[0]
    assert mask.tolist() == [[False, True, False, False], [False, False, False, True]]  # 0.5 and 0.4
    all_pauses = torch.ones_like(pauses)  # fewer speech tokens than k: the most attended pauses
    assert masking.top_k_speech_mask(importance, all_pauses, 0.25).equal(masking.top_k_mask(importance, 0.25))
    few = pauses.clone()
    few[0, :, 1:] = True
    few[0, 1, 3] = False  # one speech token (0.4), then the most attended pause (0.9)
    assert masking.top_k_speech_mask(importance, few, 0.25)[0].nonzero().tolist() == [[0, 0], [1, 3]]


def test_weight_average_is_an_exponential_moving_average_of_the_steps():
    from train.loop import weight_average

    layer = torch.nn.Linear(2, 1, bias=False)
    average = weight_average(layer, 0.75)
    seen = []
    for value in (1.0, 3.0, 5.0):
        with torch.no_grad():
            layer.weight.fill_(value)
        average.update_parameters(layer)
        seen.append(value)
    expected = seen[0]  # the first step is copied, then each one weighs 1 - decay
    for value in seen[1:]:
        expected = 0.75 * expected + 0.25 * value
    assert torch.allclose(average.module.weight, torch.full((1, 2), expected))
    with pytest.raises(ValueError, match="EMA decay 1.0"):
        weight_average(layer, 1.0)


def test_fit_with_ema_keeps_the_random_stream_and_ends_on_averaged_weights():
    from train import loop, models

    x, y = torch.randn(24, 64, 201), torch.arange(24) % 4
    states, histories = {}, {}
    for ema in (0.0, 0.9):
        torch.manual_seed(0)
        model = models.build("cnn", 4, (64, 201))
        model.standardize.fit(x)
        histories[ema] = loop.fit(model, x, y, 4, epochs=2, lr=1e-2, batch_size=8, progress=False, ema=ema)
        states[ema] = {k: v.clone() for k, v in model.state_dict().items()}
    # The same batches and losses: only the weights the model ends with differ.
    assert histories[0.0] == histories[0.9]
    changed = [k for k in states[0.0] if states[0.0][k].is_floating_point() and not torch.allclose(states[0.0][k], states[0.9][k])]
    assert any(k.endswith("weight") for k in changed)
    # BatchNorm statistics recomputed for the averaged weights: the first BatchNorm's running
    # mean is the mean of what reaches it over the training clips (3 equal batches of 8).
    probe = models.build("cnn", 4, (64, 201))
    probe.load_state_dict(states[0.9])
    bn = next(m for m in probe.modules() if isinstance(m, torch.nn.BatchNorm2d))
    inputs = []
    hook = bn.register_forward_hook(lambda module, args, out: inputs.append(args[0]))
    with torch.no_grad():
        probe.eval()(x)
    hook.remove()
    assert torch.allclose(bn.running_mean, inputs[0].mean(dim=(0, 2, 3)), atol=1e-5)


def test_mix_at_snr_sets_the_power_ratio_and_noise_segments_loop():
    from train.noise import mix_at_snr, noise_segment

    rng = np.random.default_rng(0)
    speech, noise = rng.standard_normal(16000).astype(np.float32), 3 * rng.standard_normal(16000).astype(np.float32)
    for snr in (20.0, 5.0, 0.0):
        mixed = mix_at_snr(speech, noise, snr)
        added = mixed - speech
        assert 10 * np.log10(np.mean(speech.astype(np.float64) ** 2) / np.mean(added.astype(np.float64) ** 2)) == \
            pytest.approx(snr, abs=1e-3)
    short = np.arange(5, dtype=np.float32)
    segment = noise_segment(short, 12, np.random.default_rng(1))
    assert len(segment) == 12 and set(np.diff(segment) % 5) == {1}  # consecutive samples of the looped noise


def test_noisy_batch_replaces_clips_by_their_own_copies():
    from train.loop import noisy_batch

    batch = torch.zeros(6, 2, 3)
    copies = torch.arange(6).float()[:, None, None, None] + torch.tensor([0.1, 0.2])[None, :, None, None]
    copies = copies.expand(6, 2, 2, 3)
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(noisy_batch(batch, copies, 1e-9, generator), batch)
    replaced = noisy_batch(batch, copies, 1.0, generator)
    for i in range(6):  # clip i became one of clip i's copies, whole
        assert replaced[i].unique().item() in (pytest.approx(i + 0.1), pytest.approx(i + 0.2))


def test_fit_trains_on_the_noisy_copies_it_is_given():
    from train import loop, models

    x, y = torch.randn(16, 64, 201), torch.arange(16) % 4
    poisoned = torch.full((16, 2, 64, 201), float("nan"))  # copies that make any loss they reach NaN
    for p, reached in ((1.0, True), (1e-9, False)):
        torch.manual_seed(0)
        model = models.build("cnn", 4, (64, 201))
        model.standardize.fit(x)
        history = loop.fit(model, x, y, 4, epochs=1, lr=1e-3, batch_size=8, progress=False, noisy=poisoned, noise_p=p)
        assert np.isnan(history).all() == reached


def test_runs_table_means_per_corpus_and_refuses_a_missing_or_partial_set(tmp_path):
    from train.runs_table import write_table

    def fake_run(name, corpus, scores: dict, complete=True):
        run = tmp_path / name
        (run).mkdir()
        (run / "config.json").write_text(json.dumps({"run": {"corpus": corpus, "protocol": "loso"}}))
        for result_set, ua in scores.items():
            (run / result_set).mkdir()
            (run / result_set / "summary.json").write_text(json.dumps(
                {"pooled": {"ua": ua, "wa": ua, "macro_f1": ua}, "complete": complete, "n_folds": 10}))
        return run

    runs = [fake_run("a", "emodb", {"single": 0.70, "reverb_0.3s": 0.40}),
            fake_run("b", "emodb", {"single": 0.80, "reverb_0.3s": 0.50})]
    md = write_table("t", "two runs", runs, ["single", "reverb_0.3s"], tmp_path / "out")
    assert "| **mean of 2 emodb loso runs** | 75.0 | 45.0 |" in md.read_text()
    assert json.loads(md.with_suffix(".json").read_text())["runs"][1]["reverb_0.3s"]["ua"] == 0.50
    with pytest.raises(ValueError, match="no result set 'reverb_0.9s'"):
        write_table("t", "x", runs, ["reverb_0.9s"], tmp_path / "out")
    for bad_name, sets in (("../x", ["single"]), ("t", []), ("t", ["single", "single"])):
        with pytest.raises(ValueError, match="table name|result sets must be"):
            write_table(bad_name, "x", runs, sets, tmp_path / "out")
    partial = fake_run("c", "emodb", {"single": 0.7}, complete=False)
    with pytest.raises(ValueError, match="lacks folds"):
        write_table("t", "x", [partial], ["single"], tmp_path / "out")
