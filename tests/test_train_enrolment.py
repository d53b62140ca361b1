"""`python -m train enrolment`: speaker statistics from k clips, on quick runs over real clips."""
import json

import numpy as np
import pytest

pytest.importorskip("torch")

from train import enrolment  # noqa: E402
from train.__main__ import main  # noqa: E402


def quick_run(data_dir, tmp_path, name, *options):
    out = tmp_path / name
    main(["fit", "--quick", "--data", str(data_dir), "--out", str(out), "--cache", str(tmp_path / "cache"),
          "--no-progress", *options])
    return out


def test_enrolment_scores_every_k_on_the_same_clips(data_dir, tmp_path):
    normed = quick_run(data_dir, tmp_path, "spknorm", "--speaker-norm")
    plain = quick_run(data_dir, tmp_path, "plain")
    found = enrolment.enrolment_predictions(normed, [plain], ks=(1, 3), repeats=2, seed=1, data=str(data_dir))
    config = found["config"]
    for r in range(2):
        names = found["names"][r]
        assert len(names) == len(set(names)) == 2 * (10 - 3)  # 2 quick folds of 1 speaker x 10 clips, 3 enrolled
        assert set(found["predicted"]) == {"k=1", "k=3", enrolment.ALL, str(plain)}
        # With every clip of the speaker, the statistics are the run's own: its predictions come back.
        for s, expected in ((enrolment.ALL, normed), (str(plain), plain)):
            recorded = {}
            for fold in config["folds"]:
                recorded.update(enrolment.fold_predictions(expected, config, fold))
            assert found["predicted"][s][r] == [recorded[n] for n in names]
    assert found["names"][0] != found["names"][1]  # draws differ

    result = enrolment.enrolment_scores(normed, [plain], ks=(1, 3), repeats=2, seed=1, data=str(data_dir))
    assert result["n_scored"] == 14 and len(result["sets"]["k=1"]["ua"]) == 2
    md = enrolment.write_enrolment_report(result, "enrol", tmp_path / "report")
    assert "| 3 enrolment clips (6 s) |" in md.read_text() and (tmp_path / "report" / "enrol.png").stat().st_size > 0
    assert json.loads((tmp_path / "report" / "enrol.json").read_text())["ks"] == [1, 3]


def test_enrolment_refuses_wrong_runs_in_one_line(data_dir, tmp_path):
    plain = quick_run(data_dir, tmp_path, "plain")
    with pytest.raises(SystemExit, match="needs to be a --speaker-norm run"):
        main(["enrolment", "--run", str(plain), "--name", "x", "--out", str(tmp_path)])
    normed = quick_run(data_dir, tmp_path, "spknorm", "--speaker-norm")
    with pytest.raises(SystemExit, match="too few to enrol 10"):
        main(["enrolment", "--run", str(normed), "--clips", "10", "--name", "x", "--out", str(tmp_path),
              "--data", str(data_dir)])
    with pytest.raises(SystemExit, match="--clips must be a comma list"):
        main(["enrolment", "--run", str(normed), "--clips", "a", "--name", "x", "--out", str(tmp_path)])


def test_normalised_uses_the_enrolment_statistics_only():
    rng = np.random.default_rng(0)
    enrol, clips = rng.normal(3, 2, (4, 5, 7)).astype(np.float32), rng.normal(0, 1, (2, 5, 7)).astype(np.float32)
    z = enrolment.normalised(enrol, enrol).numpy()
    assert np.allclose(z.mean(axis=(0, 2)), 0, atol=1e-5) and np.allclose(z.std(axis=(0, 2)), 1, atol=1e-4)
    expected = (clips - enrol.mean(axis=(0, 2), keepdims=True)) / enrol.std(axis=(0, 2), keepdims=True)
    assert np.allclose(enrolment.normalised(clips, enrol).numpy(), expected, atol=1e-5)


def test_enrolment_needs_a_speaker_independent_protocol(data_dir, tmp_path):
    normed = quick_run(data_dir, tmp_path, "sd", "--speaker-norm", "--protocol", "sd10")
    with pytest.raises(SystemExit, match="not speaker-independent"):
        main(["enrolment", "--run", str(normed), "--name", "x", "--out", str(tmp_path)])


def test_enrolment_from_one_label_draws_only_that_label(data_dir, tmp_path):
    normed = quick_run(data_dir, tmp_path, "spknorm", "--speaker-norm")
    found = enrolment.enrolment_predictions(normed, ks=(1,), repeats=3, data=str(data_dir), enrol_labels=("anger",))
    labels = found["config"]["labels"]
    for r in range(3):
        # Exactly one clip per test speaker is held out for enrolment, and it is an anger clip.
        assert len(found["names"][r]) == 2 * (10 - 1)
    from train.data import load_corpus
    from train.run_dir import quick_corpus

    corpus = quick_corpus(load_corpus("emodb", str(data_dir)))
    label_of = {c.path.name: labels[t] for c, t in zip(corpus.clips, corpus.targets())}
    tested = {n for f in found["config"]["folds"] for n in enrolment.fold_result(normed, found["config"], f)["test_clips"]}
    for r in range(3):
        held_out = tested - set(found["names"][r])
        assert len(held_out) == 2 and all(label_of[n] == "anger" for n in held_out)
    with pytest.raises(ValueError, match="not labels of emodb"):
        enrolment.enrolment_predictions(normed, ks=(1,), data=str(data_dir), enrol_labels=("calm",))
