"""The default model's recipe (`python -m export default`) end to end on a few real EmoDB clips
split into two manifests (so the combined-corpus path and the per-corpus figures are exercised):
cross-validation fold, all-data model, shipping with the card, and the results file."""
import csv
import json
import os

import numpy as np
import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
torch = pytest.importorskip("torch", reason="the recipe needs the train extra (torch)")
pytest.importorskip("onnx", reason="the recipe needs the export extra (onnx)")
pytest.importorskip("onnxscript", reason="the recipe needs the export extra (onnxscript)")
pytest.importorskip("litert_torch", reason="the recipe needs the export extra (litert-torch)")
torch.set_num_threads(1)

from edge_ser.recognizer import Recognizer  # noqa: E402
from edge_ser.session import open_session  # noqa: E402

EMOTIONS = {"W": "anger", "T": "sadness", "N": "neutral", "F": "happiness"}
SPEAKERS = {"part_a": ("03", "08", "09"), "part_b": ("10", "11")}


def write_manifest(path, wav_dir, speakers):
    """Two clips of each of 4 emotions per speaker, labelled with the common label names."""
    rows = []
    for speaker in speakers:
        for code, label in EMOTIONS.items():
            found = sorted(wav_dir.glob(f"{speaker}???{code}?.wav"))[:2]
            rows += [(str(p), label, speaker) for p in found]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "speaker"])
        writer.writerows(rows)


@pytest.fixture(scope="module")
def shipped(data_dir, tmp_path_factory):
    from export import recipe

    tmp = tmp_path_factory.mktemp("recipe")
    for name, speakers in SPEAKERS.items():
        write_manifest(tmp / f"{name}.csv", data_dir / "emodb" / "wav", speakers)
    spec = recipe.Recipe(corpus=f"{tmp / 'part_a.csv'}+{tmp / 'part_b.csv'}", out=tmp / "work", teacher_epochs=1,
                         student_epochs=1, widths=(4, 8, 8, 8), max_folds=1, tflite_variants=(("minmax", "edges"),),
                         ship_to=tmp / "models",
                         results_to=tmp / "results", progress=False)
    card = recipe.main(spec)
    return {"card": card, "tmp": tmp, "data_dir": data_dir, "spec": spec}


def test_ships_onnx_and_tflite_carrying_the_card(shipped):
    models = shipped["tmp"] / "models"
    for name in ("default.onnx", "default.tflite"):
        info = open_session(models / name).info
        assert list(info.labels) == shipped["card"]["labels"]
        assert info.card["cross_validation"]["folds"] == ["spk5-1"]
        assert info.window_seconds == 2.0
    on_disk = json.loads((models / "default.card.json").read_text())
    assert on_disk["files"]["onnx"]["size_bytes"] == (models / "default.onnx").stat().st_size
    assert "non-commercial" in on_disk["licence"]
    assert "(7-bit weights)" in on_disk["model"]["quantization"]  # right on every CPU (export.quantize)


def test_cross_validated_figures_match_the_test_speakers_truth(shipped):
    """The card's pooled WA of the shipped INT8 recipe equals its predictions scored against the
    labels the training run recorded for the held-out speaker."""
    work = shipped["tmp"] / "work"
    fold = json.loads((work / "spk5" / "single" / "fold_spk5-1.json").read_text())
    assert fold["test_speakers"] == ["part_a:03"]
    deployed = json.loads((work / "spk5_export" / "spk5-1" / "result.json").read_text())["deployed_onnx_int8"]
    predicted = json.loads((work / "spk5_export" / "spk5-1" / f"{deployed}.card.json").read_text())["test"]["predicted"]
    wa = float(np.mean(np.array(predicted) == np.array(fold["test_true"])))
    scores = shipped["card"]["cross_validation"]["models"]["student INT8 ONNX (shipped)"]
    assert scores["pooled"]["wa"] == pytest.approx(wa)
    assert set(scores["per_corpus"]) == {"part_a"}


def test_shipped_model_runs_in_the_recognizer(shipped):
    clip = sorted((shipped["data_dir"] / "emodb" / "wav").glob("12*.wav"))[0]
    prediction = Recognizer(shipped["tmp"] / "models" / "default.onnx").predict(clip)
    assert prediction.label in shipped["card"]["labels"]


def test_results_file_feeds_the_benchmark_report(shipped):
    from benchmarks import accuracy

    rows, problems = accuracy.load(shipped["tmp"] / "results")
    assert not problems
    assert {r.corpus for r in rows} >= {"part_a (of part_a+part_b)"}
    assert (shipped["tmp"] / "results" / "default_model_confusion.png").stat().st_size > 0


def test_a_candidate_is_scored_under_its_own_name_and_not_shipped(shipped, tmp_path):
    """The same recipe as a candidate (it resumes the built stages): its files and figures go
    elsewhere, and its rows cannot be read as the packaged model's."""
    import dataclasses

    from export import recipe

    spec = dataclasses.replace(shipped["spec"], ship_to=tmp_path / "ship", results_to=tmp_path, candidate="small")
    card = recipe.main(spec)
    assert card["candidate"] == "small" and (tmp_path / "ship" / "default.onnx").exists()
    assert card["recipe"] == "python -m export default --clean --teacher-epochs 1 --student-epochs 1 --widths 4,8,8,8"
    text = (tmp_path / "default_model_small.md").read_text()
    assert "A variant of the CNN student" in text and "(shipped)" not in text and "| student INT8 ONNX [small] |" in text
    rows = json.loads((tmp_path / "default_model_small.json").read_text())["results"]
    assert all(r["model"].endswith("[small]") for r in rows)
    assert not (tmp_path / "default_model.json").exists()
    with pytest.raises(ValueError, match="not shipped"):
        dataclasses.replace(spec, ship_to=recipe.PACKAGE_MODELS / "sub")
    # Resuming reuses files by name: a student built with other settings is refused, not relabelled.
    with pytest.raises(ValueError, match="distilled with widths"):
        recipe.main(dataclasses.replace(spec, widths=(4, 8, 8, 16)))
    with pytest.raises(ValueError, match="candidate name"):
        dataclasses.replace(spec, candidate="a/b")


def test_deployed_students_are_scored_in_noise_and_in_rooms(shipped, tmp_path):
    from export import degraded

    work, noise = shipped["tmp"] / "work", shipped["data_dir"] / "noise" / "household"
    md = degraded.write(work / "spk5_export", degraded.noise_condition(noise, (200.0, 0.0)), "n", "student", tmp_path)
    rows = json.loads(md.with_suffix(".json").read_text())["results"]
    assert [r["result_set"] for r in rows] == ["single", "noisy_200db", "noisy_0db"]
    # Noise 200 dB down is the clean clips: the deployed file's own card figures, through the session.
    assert rows[1]["summary"]["pooled"] == rows[0]["summary"]["pooled"]
    md = degraded.write(work / "spk5_export", degraded.room_condition((0.6,)), "r", "student", tmp_path)
    assert [r["result_set"] for r in json.loads(md.with_suffix(".json").read_text())["results"]] == ["single", "reverb_0.6s"]
    assert "simulated rooms" in md.read_text()
    with pytest.raises(FileNotFoundError, match="no fold folders"):
        degraded.write(tmp_path, degraded.noise_condition(noise, (10.0,)), "n", "student", tmp_path)
