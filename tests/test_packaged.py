"""Packaged models (edge_ser.packaged): names resolve to files in the package's model folder, a
path is a path, and the CLI's `--model NAME` and `info [NAME]` use them. The folder is
replaced by a temporary one holding tiny test models, so nothing here needs the real ones."""
import json
import pathlib

import pytest

import models
from edge_ser import cli, packaged
from edge_ser.errors import ModelError
from edge_ser.recognizer import Recognizer
from test_cli import assert_one_line_error, noise, write_wav

DEFAULT_LABELS = ("anger", "happiness", "sadness", "neutral", "fear", "disgust")
TINY_LABELS = ("anger", "happiness", "sadness", "neutral")
TINY_UA, TINY_LATENCY_MS = 0.55, 1.25
DEFAULT_UA = 0.625


def shipped_scores(ua: float) -> dict:
    return {"pooled": {"ua": ua, "wa": ua}, "per_corpus": {}}


def tiny_card() -> dict:
    """A card like the exporter writes beside a packaged model: CV scores and file latency."""
    return {"labels": list(TINY_LABELS),
            "cross_validation": {"models": {"student FP32 ONNX": shipped_scores(0.9),
                                            "student INT8 ONNX (shipped)": shipped_scores(TINY_UA)}},
            "files": {"onnx": {"name": "tiny.onnx", "latency_ms": {"median_ms": TINY_LATENCY_MS}}}}


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    """The packaged folder, replaced: default.onnx (card inside only, no latency) and tiny.onnx
    (card file beside it), each a tiny linear model with its own labels."""
    folder = tmp_path / "packaged"
    folder.mkdir()
    default_card = {"cross_validation": {"models": {"student INT8 ONNX (shipped)": shipped_scores(DEFAULT_UA)}}}
    models.save(models.build_model(models.model_info(DEFAULT_LABELS, card=default_card)), folder / "default.onnx")
    models.save(models.build_model(models.model_info(TINY_LABELS)), folder / "tiny.onnx")
    (folder / "tiny.card.json").write_text(json.dumps(tiny_card()))
    monkeypatch.setattr(packaged, "MODELS_DIR", folder)
    return folder


@pytest.fixture
def clip(tmp_path):
    return write_wav(tmp_path / "clip.wav", noise(1.0, 1))


# --- resolve_model ---------------------------------------------------------------------------


def test_packaged_names_resolve_to_their_onnx(models_dir):
    assert packaged.resolve_model("default") == models_dir / "default.onnx"
    assert packaged.resolve_model("tiny") == models_dir / "tiny.onnx"
    assert packaged.installed() == [("default", models_dir / "default.onnx"), ("tiny", models_dir / "tiny.onnx")]


def test_tflite_only_when_no_onnx(models_dir):
    (models_dir / "tiny.tflite").write_bytes(b"not opened by resolve_model")
    assert packaged.resolve_model("tiny").suffix == ".onnx"
    (models_dir / "tiny.onnx").unlink()
    assert packaged.resolve_model("tiny") == models_dir / "tiny.tflite"


def test_missing_packaged_name_names_it_and_the_installed_ones(models_dir):
    (models_dir / "tiny.onnx").unlink()
    with pytest.raises(ModelError) as caught:
        packaged.resolve_model("tiny")
    assert str(caught.value) == "tiny: packaged model not installed (installed packaged models: default)"
    assert packaged.installed() == [("default", models_dir / "default.onnx")]


def test_nothing_installed_says_none(models_dir):
    for path in models_dir.glob("*.onnx"):
        path.unlink()
    with pytest.raises(ModelError, match=r"^default: packaged model not installed \(installed packaged models: none\)$"):
        packaged.resolve_model("default")


def test_paths_are_paths(models_dir, tmp_path):
    other = models.save(models.build_model(), tmp_path / "other.onnx")
    assert packaged.resolve_model(other) == other
    assert packaged.resolve_model(str(other)) == other
    missing = tmp_path / "missing.onnx"
    with pytest.raises(ModelError) as caught:
        packaged.resolve_model(str(missing))
    message = str(caught.value)
    assert message.startswith(f"{missing}: no such model file") and "\n" not in message
    assert message.endswith("(installed packaged models: default, tiny)")


def test_an_existing_file_wins_over_a_packaged_name(models_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    models.save(models.build_model(), tmp_path / "tiny")
    assert packaged.resolve_model("tiny") == pathlib.Path("tiny")
    assert Recognizer("tiny").labels == list(models.LABELS)  # the file's labels, not the packaged model's


def test_recognizer_takes_packaged_names(models_dir):
    assert Recognizer("tiny").labels == list(TINY_LABELS)
    assert Recognizer("default").labels == list(DEFAULT_LABELS)


# --- the CLI ---------------------------------------------------------------------------------


def test_info_lists_the_installed_packaged_models(models_dir, capsys):
    assert cli.main(["info"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    default, tiny = captured.out.splitlines()
    assert default.split()[:2] == ["default", "default.onnx"]
    assert f"{len(DEFAULT_LABELS)} labels" in default
    assert f"UA {100 * DEFAULT_UA:.1f} % (cross-validated)" in default  # the card inside the model
    assert default.endswith("latency n/a")  # that card has no file latency
    assert tiny.split()[:2] == ["tiny", "tiny.onnx"]
    assert f"{len(TINY_LABELS)} labels" in tiny
    assert f"UA {100 * TINY_UA:.1f} % (cross-validated)" in tiny  # the shipped entry, not FP32
    assert tiny.endswith(f"latency {TINY_LATENCY_MS:.2f} ms/window")
    assert default.index("labels") == tiny.index("labels")  # aligned columns


def test_info_lists_the_others_when_one_is_broken(models_dir, capsys):
    (models_dir / "tiny.onnx").write_bytes(b"not a model")
    assert cli.main(["info"]) == 1
    captured = capsys.readouterr()
    assert [line.split()[0] for line in captured.out.splitlines()] == ["default"]
    assert_one_line_error(captured.err, "edge-ser: tiny: ")


def test_info_without_any_packaged_model_exits_2(models_dir, capsys):
    for path in models_dir.glob("*.onnx"):
        path.unlink()
    assert cli.main(["info"]) == 2
    assert_one_line_error(capsys.readouterr().err, "no packaged model is installed")


@pytest.mark.parametrize("argv", [["info", "tiny"], ["info", "--model", "tiny"]])
def test_info_name_describes_the_packaged_model(models_dir, capsys, argv):
    assert cli.main(argv) == 0
    fields = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    assert fields["model"].strip() == str(models_dir / "tiny.onnx")
    assert fields["labels"].strip() == f"{', '.join(TINY_LABELS)} ({len(TINY_LABELS)})"


def test_info_missing_name_is_one_line(models_dir, capsys):
    (models_dir / "tiny.onnx").unlink()
    assert cli.main(["info", "tiny"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert_one_line_error(captured.err, "edge-ser: tiny: packaged model not installed",
                          "installed packaged models: default")


def test_info_takes_one_model(models_dir, capsys):
    assert cli.main(["info", "tiny", "--model", "default"]) == 2
    assert_one_line_error(capsys.readouterr().err, "not both")


def test_infer_model_name(models_dir, clip, capsys):
    assert cli.main(["infer", "--model", "tiny", "--format", "json", str(clip)]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert set(row["scores"]) == set(TINY_LABELS)


def test_infer_missing_model_name_exits_2(models_dir, clip, capsys):
    (models_dir / "tiny.onnx").unlink()
    assert cli.main(["infer", "--model", "tiny", str(clip)]) == 2
    assert_one_line_error(capsys.readouterr().err, "tiny: packaged model not installed")


def test_model_help_names_the_packaged_models(capsys):
    assert cli.main(["infer", "--help"]) == 0
    assert "a packaged model (default, tiny) or an ONNX/TFLite file" in " ".join(capsys.readouterr().out.split())
