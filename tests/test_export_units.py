"""Export building blocks on tiny models: the distillation loss and loop, structured and
magnitude pruning (really fewer / zero parameters; exactly-unimportant channels and heads are the
ones removed), and model files that rebuild pruned shapes."""
import json
import os

import numpy as np
import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
torch = pytest.importorskip("torch", reason="export tests need the train extra (torch)")
try:
    from train._compat import import_timm

    import_timm()  # timm through the torchvision import fix (see ../shared/notes/toolchain.md)
except ImportError:
    pytest.skip("export tests need the train extra (timm)", allow_module_level=True)
torch.set_num_threads(1)

from export import distill, model_files, prune  # noqa: E402
from train.arch import build, cnn_arch, deit_arch  # noqa: E402
from train import models  # noqa: E402

N_MELS, FRAMES, N_CLASSES = 64, 201, 7


def tiny_cnn(widths=(8, 8, 8, 8), seed=0):
    torch.manual_seed(seed)
    arch = cnn_arch(N_CLASSES, N_MELS, widths)
    return build(arch).eval(), arch


def tiny_deit(seed=0):
    torch.manual_seed(seed)
    arch = deit_arch(N_CLASSES, (N_MELS, FRAMES), (16, 16), depth=1, dim=32, heads=2)
    return build(arch).eval(), arch


def features(n, seed=0):
    """Class-dependent synthetic log-mel: class c raises bands 8c..8c+8."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % N_CLASSES
    x = rng.normal(-5, 1, (n, N_MELS, FRAMES)).astype(np.float32)
    for i, c in enumerate(y):
        x[i, 8 * c:8 * c + 8] += 3
    return torch.from_numpy(x), torch.from_numpy(y)


def test_kd_loss_reduces_to_cross_entropy():
    s, t = torch.randn(5, N_CLASSES), torch.randn(5, N_CLASSES)
    y = torch.tensor([0, 1, 2, 3, 4])
    ce = torch.nn.functional.cross_entropy(s, y)
    assert torch.allclose(distill.kd_loss(s, t, y, alpha=0.0), ce)
    # a student equal to its teacher has no soft-target loss left
    assert torch.allclose(distill.kd_loss(s, s, y, alpha=0.5), 0.5 * ce, atol=1e-6)
    assert distill.kd_loss(s, t, y, alpha=1.0) > 0
    # balanced_soft: the soft term weighs each clip by its label's weight (weight 0: the clip is out)
    weight = torch.tensor([1.0] + [0.0] * (s.shape[1] - 1))
    first = y == 0
    assert first.any() and not first.all()
    assert torch.allclose(distill.kd_loss(s, t, y, alpha=1.0, weight=weight, balanced_soft=True),
                          distill.kd_loss(s[first], t[first], y[first], alpha=1.0))


def test_quick_distillation_learns_from_teacher():
    x, y = features(28)
    teacher, _ = tiny_cnn(seed=1)
    teacher.standardize.fit(x)
    distill.distill(teacher, distill.logits_of(teacher, x) * 0, x, y, N_CLASSES, epochs=3, alpha=0.0,
                    batch_size=7, progress=False)  # labels only: a teacher that knows something
    student, _ = tiny_cnn((8, 8, 8, 8), seed=2)
    student.standardize.fit(x)
    before = distill.kd_loss(distill.logits_of(student, x), distill.logits_of(teacher, x), y)
    history = distill.distill(student, teacher, x, y, N_CLASSES, epochs=10, batch_size=7, progress=False)
    after = distill.kd_loss(distill.logits_of(student, x), distill.logits_of(teacher, x), y)
    assert len(history) == 10 and after < before
    with pytest.raises(ValueError, match="teacher logits cover 3 clips"):
        distill.distill(student, torch.zeros(3, N_CLASSES), x, y, N_CLASSES, epochs=1, progress=False)


def test_structured_cnn_pruning_really_shrinks():
    model, arch = tiny_cnn()
    small, small_arch = prune.structured(model, arch, 0.5)
    assert small_arch["widths"] == [4, 4, 4, 4]
    assert models.n_parameters(small) < models.n_parameters(model) / 2
    x, _ = features(2)
    assert small(x).shape == (2, N_CLASSES)
    unchanged, _ = prune.structured(model, arch, 1.0)
    assert torch.allclose(unchanged(x), model(x), atol=1e-5)


def test_pruning_dead_first_stage_channels_keeps_logits():
    model, arch = tiny_cnn()
    x, _ = features(4)
    model.standardize.fit(x)
    bn = model.backbone.features[0][1]
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0, 0, 0, 0, 1.0, 1.1, 1.2, 1.3]))
        bn.bias[:4] = 0
    # The criterion picks the live channels; removing only those dead ones keeps the logits.
    first_only = build({**arch, "widths": [4, 8, 8, 8]})
    kept = prune.kept(bn.weight.detach().abs(), 4)
    assert kept.tolist() == [4, 5, 6, 7]
    state = model.state_dict()
    for name, value in first_only.state_dict().items():
        source = state[name]
        if name.startswith("backbone.features.0."):
            source = source[kept] if source.ndim else source
        elif name == "backbone.features.2.0.weight":
            source = source[:, kept]
        value.copy_(source)
    assert torch.allclose(first_only.eval()(x), model(x), atol=1e-5)


def test_deit_head_and_mlp_pruning_and_reload(tmp_path):
    model, arch = tiny_deit()
    x, _ = features(2)
    attn = model.backbone.blocks[0].attn
    with torch.no_grad():  # head 0 does not reach the output: it must be the one removed
        attn.proj.weight[:, :attn.head_dim] = 0
    before = model(x)
    small, small_arch = prune.structured(model, arch, 0.5)
    assert small_arch["block_heads"] == [1] and small_arch["block_mlp"] == [64]
    assert models.n_parameters(small) < models.n_parameters(model)
    heads_only, _ = prune.prune_deit(model, arch, 0.5, 1.0)
    assert torch.allclose(heads_only(x), before, atol=1e-5)
    path = model_files.save(tmp_path / "pruned.pt", small, small_arch, {"labels": list("abcdefg"),
                            "feature_config": {}, "window_seconds": 2.0}, {"note": "test"})
    reloaded, saved = model_files.load(path)
    assert torch.allclose(reloaded(x), small.eval()(x), atol=1e-6)
    assert model_files.read_card(path) == {"note": "test"} and saved["arch"] == small_arch


def test_magnitude_pruning_zeroes_weights_and_sticks_through_training():
    model, _ = tiny_cnn()
    x, y = features(14)
    dense = model_files.n_nonzero(model)
    prune.magnitude(model, 0.75)
    distill.distill(model, torch.zeros(14, N_CLASSES), x, y, N_CLASSES, epochs=1, alpha=0.0, progress=False)
    prune.finalise_magnitude(model)
    assert prune.sparsity_of(model) == pytest.approx(0.75, abs=0.01)
    assert model_files.n_nonzero(model) < dense
    assert not any(name.endswith("_orig") for name, _ in model.named_parameters())
    with pytest.raises(ValueError, match="sparsity must be in"):
        prune.magnitude(model, 1.0)


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt: no such model file"):
        model_files.load(tmp_path / "missing.pt")
    torch.save({"x": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt: not an export model file"):
        model_files.load(tmp_path / "other.pt")
    model, arch = tiny_cnn()
    with pytest.raises(ValueError, match="keep ratio must be in"):
        prune.structured(model, arch, 0.0)
    with pytest.raises(ValueError, match="unknown architecture kind 'rnn'"):
        build({**arch, "kind": "rnn"})


def fake_fold(name, predicted_by_model, truth):
    """A fold result as export.pipeline.fold_result writes it, from predictions per model."""
    from train import metrics

    models = {}
    for model, predicted in predicted_by_model.items():
        matrix = metrics.confusion(np.array(truth), np.array(predicted), 3)
        models[model] = {"test": {**metrics.scores(matrix), "confusion": matrix.tolist(), "predicted": predicted},
                         "parameters": 1000 if model.startswith("teacher") else 100,
                         "size_bytes": 400 if model in ("student.onnx", "student.tflite") else 100,
                         "latency_ms": 1.0}
    return {"fold": name, "models": models}


def test_report_pools_agreement_and_gates():
    from export import report

    truth = [0, 1, 2, 0]
    folds = [fake_fold("a", {"teacher.pt": [0, 1, 2, 0], "student.pt": [0, 1, 2, 1], "student.onnx": [0, 1, 2, 1],
                             report.DEPLOYED: [0, 1, 2, 2], "student.tflite": [0, 1, 2, 1],
                             report.DEPLOYED_TFLITE: [0, 1, 2, 1]}, truth),
             fake_fold("b", {"student.onnx": [0, 0, 0, 0], report.DEPLOYED: [0, 0, 0, 0]}, truth)]
    assert report.pooled_agreement(folds, "student.onnx", report.DEPLOYED) == pytest.approx(7 / 8)
    assert report.pooled_agreement(folds, "student.pt", "missing.onnx") is None
    rows = report.model_rows(folds)
    assert rows["student.onnx"]["n_folds"] == 2 and rows["teacher.pt"]["n_folds"] == 1
    gates = {g["gate"]: g for g in report.gates(folds, rows)}
    assert gates[f"top-1 agreement student.onnx vs {report.DEPLOYED}"]["pass"] is False  # 87.5 % < 98 %
    assert gates["parameters teacher / student"]["value"] == pytest.approx(10.0)
    assert gates[f"file size {report.DEPLOYED} / student.onnx"]["pass"] is True  # 100 / 400
    assert gates[f"top-1 agreement student.tflite vs {report.DEPLOYED_TFLITE}"]["pass"] is True  # 4 / 4
    assert gates[f"top-1 agreement {report.DEPLOYED} vs {report.DEPLOYED_TFLITE}"]["value"] == pytest.approx(3 / 4)
    assert "| gate | value | limit | pass |" in report.markdown("t", {
        "protocol": {"folds": ["a", "b"]}, "source": {}, "data_note": "", "gates": report.gates(folds, rows),
        "models": rows, "agreements": {}, "deployed_onnx_int8_per_fold": {}, "fold_dates": {"a": "x"},
        "environment": report.environment()})


def test_pruning_curve_rows_and_plot(tmp_path):
    from export import report

    truth = [0, 1, 2, 0]
    folds = [fake_fold(f, {"student.pt": [0, 1, 2, 0], "sparse0.9.pt": [0, 0, 2, 0], "pruned_keep0.5.pt": [0, 1, 1, 1],
                           "sparse0.5.pt": [0, 1, 2, 0]}, truth) for f in ("a", "b")]
    folds.append(fake_fold("c", {"student.pt": [1, 1, 1, 1]}, truth))  # a fold without the curve
    for fold in folds[:2]:
        fold["models"]["sparse0.9.pt"]["pruning"] = {"mode": "magnitude", "sparsity_target": 0.9, "sparsity": 0.9,
                                                     "fine_tune_epochs": 1}
        fold["models"]["sparse0.5.pt"]["pruning"] = {"mode": "magnitude", "sparsity_target": 0.5, "sparsity": 0.5,
                                                     "fine_tune_epochs": 1}
        fold["models"]["pruned_keep0.5.pt"]["pruning"] = {"mode": "structured", "keep": 0.5, "sparsity": 0.0,
                                                          "fine_tune_epochs": 1}
        for entry in fold["models"].values():
            entry["nonzero_parameters"] = 100 * (1 - entry.get("pruning", {}).get("sparsity", 0))
    points = report.pruning_rows(folds, report.model_rows(folds))
    assert [p["model"] for p in points] == ["student.pt", "pruned_keep0.5.pt", "sparse0.5.pt", "sparse0.9.pt"]
    assert points[0]["folds"] == ["a", "b"] and points[0]["ua"] == pytest.approx(1.0)  # only the curve's folds
    assert points[3]["nonzero_parameters"] == pytest.approx(10) and points[3]["ua"] == pytest.approx(2 / 3)
    assert points[1]["student_ua_same_folds"] == pytest.approx(1.0) and points[1]["mode"] == "structured"
    assert "| pruned_keep0.5.pt | structured | 0.5 | 2 |" in "\n".join(report.pruning_markdown("t", points))
    png = report.pruning_plot(points, tmp_path / "curve.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_deployed_tflite_is_closest_to_fp32_on_held_out_training_clips(tmp_path):
    from export import pipeline

    assert pipeline.deployed_tflite_int8(tmp_path) is None
    errors = {("histogram", "none"): 0.05, ("histogram", "edges"): 0.02, ("minmax", "edges"): 0.03}
    for variant, error in errors.items():
        path = tmp_path / pipeline.tflite_name(*variant)
        path.write_bytes(b"")
        model_files.write_card(path, {"selection_logit_error_vs_fp32": error})
    assert pipeline.tflite_name("histogram") == "student_int8.tflite"  # the fully quantized file keeps its name
    assert pipeline.deployed_tflite_int8(tmp_path).name == "student_int8_histogram_edgesfloat.tflite"


def test_cli_errors_are_one_line(tmp_path, capsys):
    from export.__main__ import main

    assert main(["onnx", "--model", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.onnx")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.pt: no such model file" in err[0]
    assert main(["teacher", "--run", str(tmp_path), "--fold", "spk-03", "--out", str(tmp_path / "t.pt")]) == 1
    assert "not a training run directory" in capsys.readouterr().err


def test_the_chain_takes_a_single_phase_runs_checkpoint_by_default(tmp_path):
    from export.__main__ import default_variant, trained_folds

    for variants, expected in (([], "phase1"), (["none", "random", "samsg"], "samsg"), (["none"], "none")):
        (tmp_path / "config.json").write_text(json.dumps({"run": {"variants": variants}, "folds": ["spk-03"]}))
        assert default_variant(tmp_path) == expected
    (tmp_path / "checkpoints" / "spk-03").mkdir(parents=True)
    (tmp_path / "checkpoints" / "spk-03" / "none.pt").write_bytes(b"")
    assert trained_folds(tmp_path, "none") == ["spk-03"]
    with pytest.raises(ValueError, match="no fold has a samsg.pt checkpoint"):  # was: nothing done, exit 0
        trained_folds(tmp_path, "samsg")


def test_students_learn_on_the_noisy_copies_their_teacher_run_trained_on():
    x, y = features(16)
    teacher, poisoned = tiny_cnn(seed=1)[0], torch.full((16, 2, *x.shape[1:]), float("nan"))
    for p, reached in ((1.0, True), (1e-9, False)):
        history = distill.distill(tiny_cnn()[0], teacher, x, y, N_CLASSES, epochs=1, batch_size=8, progress=False,
                                  noisy=poisoned, noise_p=p)
        assert np.isnan(history).all() == reached
    with pytest.raises(ValueError, match="noisy copies need a teacher module"):
        distill.distill(tiny_cnn()[0], torch.zeros(16, N_CLASSES), x, y, N_CLASSES, epochs=1, progress=False,
                        noisy=poisoned, noise_p=1.0)
