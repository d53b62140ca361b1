"""The comparison table of model families: scores read from result files (missing ones shown as
not run), the parameter claim's arithmetic, and latency of each row's network shape."""
import json

import pytest

pytest.importorskip("torch")

from train import compare  # noqa: E402


def result_file(path, rows):
    path.write_text(json.dumps({"name": path.stem, "results": rows}))


def row(run, result_set, ua, wa, params, per_corpus=None):
    return {"run": run, "result_set": result_set, "n_parameters": params, "per_corpus": per_corpus or {},
            "summary": {"pooled": {"ua": ua, "wa": wa}}}


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setattr(compare, "RESULTS", tmp_path)
    monkeypatch.setattr(compare, "latency_ms", lambda shape: {"median": 1.0, "p90": 2.0})
    return tmp_path


def test_scores_come_from_the_named_rows_and_missing_ones_are_not_run(results):
    result_file(results / "emodb_loso.json", [row("runs/emodb_loso_cnn", "single", 0.746, 0.75, 390_000),
                                              row("runs/emodb_loso_cnn", "prior", 0.9, 0.9, 390_000)])
    rows = compare.comparison(compare.ROWS[:1])
    assert rows[0]["scores"]["emodb_loso"] == {"ua": pytest.approx(74.6), "wa": pytest.approx(75.0)}
    assert rows[0]["scores"]["spk5"] is None and rows[0]["n_parameters"] == 390_000
    text = compare.markdown("t", rows, {**rows[0], "label": "big"}, [], [])
    assert "| CNN (from scratch) | 74.6 / 75.0 | – | – | 0.39 M | 1.0 / 2.0 |" in text


def test_the_parameter_claim_needs_three_times_the_parameters_and_comparable_accuracy():
    def entry(label, params, ua):
        return {"label": label, "n_parameters": params,
                "scores": {p: {"ua": ua, "wa": ua} for p in compare.PROTOCOLS}}

    fusion = entry(compare.MAIN_FUSION, 2_000_000, 88.0)
    deit = entry("SAMSG-DeiT, conv stem (from scratch)", 1_900_000, 68.0)
    big = entry("Whisper base, one block fine-tuned", 13_500_000, 88.5)
    claims = compare.parameter_claim([fusion, deit], big)
    assert [c["holds"] for c in claims] == [True, False]  # 6.75x fewer and 0.5 points behind; DeiT is smaller
    assert claims[0]["parameter_ratio"] == 6.75
    assert not compare.parameter_claim([fusion, deit], entry("Whisper base, one block fine-tuned", 13_500_000, 90.0))[0]["holds"]
    unscored = {**big, "scores": {p: None for p in compare.PROTOCOLS}}
    assert not compare.parameter_claim([fusion, deit], unscored)[0]["holds"]  # no protocol in common: no evidence


def test_cross_corpus_directions_from_fold_scores_or_per_corpus_scores():
    svm = {"folds": [{"fold": "ravdess->emodb", "scores": {"ua": 0.2, "wa": 0.25}}]}
    assert compare.directions(svm) == {"ravdess->emodb": {"ua": 20.0, "wa": 25.0}}
    run = {"per_corpus": {"emodb": {"ua": 0.5, "wa": 0.6}, "ravdess": {"ua": 0.3, "wa": 0.4}}}
    assert compare.directions(run) == {"ravdess->emodb": {"ua": 50.0, "wa": 60.0},
                                       "emodb->ravdess": {"ua": 30.0, "wa": 40.0}}


@pytest.mark.parametrize("shape", sorted({r.shape for r in (*compare.ROWS, compare.BIGGER_ENCODER)}))
def test_every_latency_shape_builds_and_runs_on_a_3_s_clip(shape):
    net, inputs = compare.latency_model(shape)
    with compare.torch.no_grad():
        out = net(*inputs)
    assert out.shape[0] == 1 and compare.torch.isfinite(out).all()
