"""No speech, no emotion: audio in which the VAD finds (almost) no speech gets the label
NO_SPEECH in every output mode, with its scores still there; speech still gets an emotion."""
from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from edge_ser import NO_SPEECH, Recognizer
from edge_ser.config import SAMPLE_RATE
from edge_ser.contract import KEY_LABELS, MIN_SPEECH_SHARE, ModelInfo
from edge_ser.errors import ModelError
import models
from test_cli import run, write_wav

RNG = np.random.default_rng(11)


def non_speech(kind: str, seconds: float) -> np.ndarray:
    n = int(seconds * SAMPLE_RATE)
    if kind == "tone":
        return (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / SAMPLE_RATE)).astype(np.float32)
    if kind == "silence":
        return np.zeros(n, np.float32)
    return RNG.normal(0, 0.1, n).astype(np.float32)  # white noise


KINDS = ("tone", "silence", "white noise")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return models.save(models.build_model(), tmp_path_factory.mktemp("m") / "tiny.onnx")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Each kind as a short clip (one window) and a long one (VAD-placed windows, fallback)."""
    folder = tmp_path_factory.mktemp("clips")
    return [write_wav(folder / f"{kind.replace(' ', '_')}_{s}s.wav", non_speech(kind, s))
            for kind in KINDS for s in (2.5, 9.0)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seconds", [1.0, 2.5, 9.0])
def test_api_labels_no_speech_everywhere_and_keeps_the_scores(model, kind, seconds):
    prediction = Recognizer(model).predict(non_speech(kind, seconds))
    rows = [prediction, *prediction.segments, *prediction.timeline]
    assert all(r.label == NO_SPEECH and r.speech < MIN_SPEECH_SHARE for r in rows)
    assert sum(prediction.scores.values()) == pytest.approx(1.0)
    # With the threshold at 0 the same audio gets the model's own top label.
    scored = Recognizer(model, min_speech=0).predict(non_speech(kind, seconds))
    assert scored.label == max(scored.scores, key=scored.scores.get) in models.LABELS


def test_infer_table_csv_json_segments_timeline(model, clips):
    code, out, err = run("infer", "--model", model, "--segments", "--timeline", *clips)
    assert code == 0, err
    labels = [line.split(None, 2)[1:] for line in out.splitlines()]
    assert all(" ".join(rest).startswith(NO_SPEECH) for rest in labels), out

    code, out, err = run("infer", "--model", model, "--format", "csv", "--segments", "--timeline", *clips)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and {r["row"] for r in rows} == {"file", "segment", "window"}
    assert all(r["label"] == NO_SPEECH and float(r["speech"]) < MIN_SPEECH_SHARE for r in rows)

    code, out, err = run("infer", "--model", model, "--format", "json", "--segments", "--timeline", *clips)
    assert code == 0, err
    for result in json.loads(out):
        spans = [result, *result["segments"], *result["timeline"]]
        assert all(s["label"] == NO_SPEECH and s["speech"] < MIN_SPEECH_SHARE for s in spans)
        assert sum(result["scores"].values()) == pytest.approx(1.0)  # the scores are still given


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_stream_labels_windows_without_speech(model, clips, fmt):
    code, out, err = run("stream", "--model", model, "--format", fmt, clips[1])
    assert code == 0, err
    lines = out.splitlines()[1:] if fmt == "csv" else out.splitlines()
    assert lines
    if fmt == "json":
        assert all(json.loads(x)["label"] == NO_SPEECH for x in lines)
    elif fmt == "csv":
        assert all(x.split(",")[2] == NO_SPEECH for x in lines)
    else:
        assert all(x.split(None, 1)[1].startswith(NO_SPEECH) for x in lines)


def test_min_speech_option_is_checked(model, clips):
    code, _, err = run("infer", "--model", model, "--min-speech", "1.5", clips[0])
    assert code == 2 and "--min-speech" in err and "0..1" in err
    code, out, _ = run("infer", "--model", model, "--min-speech", "0", clips[0])
    assert code == 0 and NO_SPEECH not in out


def test_real_speech_gets_an_emotion(data_dir):
    clip = sorted((data_dir / "emodb" / "wav").glob("*.wav"))[0]
    prediction = Recognizer("default").predict(str(clip))
    assert prediction.label != NO_SPEECH and prediction.speech >= MIN_SPEECH_SHARE


def test_a_model_may_not_call_a_class_no_speech():
    meta = models.model_info().to_metadata()
    meta[KEY_LABELS] = json.dumps(["anger", NO_SPEECH])
    with pytest.raises(ModelError, match="keeps for audio without speech"):
        ModelInfo.from_metadata(meta, source="m.onnx")


def test_the_speech_measure_is_the_same_whatever_the_length(model, data_dir):
    """Half a second of real speech in faint noise: one window at 2.9 s, VAD-placed windows at
    3.1 and 40 s; the measure (seconds of speech over one model window) must not jump there."""
    from edge_ser import vad
    from edge_ser.audio import load_audio

    speech = load_audio(str(sorted((data_dir / "emodb" / "wav").glob("*.wav"))[0]))
    start = vad.speech_segments(speech)[0][0]
    blip = speech[int(start * SAMPLE_RATE):int((start + 0.5) * SAMPLE_RATE)]
    shares = []
    for seconds in (2.9, 3.1, 40.0):
        audio = np.random.default_rng(0).normal(0, 5e-4, int(seconds * SAMPLE_RATE)).astype(np.float32)
        audio[SAMPLE_RATE // 2:SAMPLE_RATE // 2 + len(blip)] += blip
        shares.append(Recognizer(model).predict(audio).speech)
    assert max(shares) - min(shares) < 0.05, shares
    assert 0.15 < shares[-1] < 0.5  # 40 s with one blip is not "all speech"
