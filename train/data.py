"""Corpora as lists of clips: EmoDB and RAVDESS (labels and speakers from the file names) and any
folder described by a CSV manifest (`path,label,speaker`).

Label names are shared across corpora so they can be combined: see `COMMON_LABELS` and
`harmonise`. Audio is read by `read_audio`, the one place that touches files.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import pathlib

import numpy as np

EMODB_EMOTIONS = {  # the 6th character of an EmoDB file name (German initials)
    "W": "anger", "L": "boredom", "E": "disgust", "A": "fear",
    "F": "happiness", "T": "sadness", "N": "neutral",
}
RAVDESS_EMOTIONS = {  # the 3rd field of a RAVDESS file name
    "01": "neutral", "02": "calm", "03": "happiness", "04": "sadness",
    "05": "anger", "06": "fear", "07": "disgust", "08": "surprise",
}
# Combining corpora: the six emotions both corpora have. RAVDESS "calm" is closest to neutral;
# EmoDB "boredom" and RAVDESS "surprise" have no counterpart and are dropped (mapped to None).
COMMON_LABELS = {
    "anger": "anger", "disgust": "disgust", "fear": "fear", "happiness": "happiness",
    "sadness": "sadness", "neutral": "neutral", "calm": "neutral",
    "boredom": None, "surprise": None,
}
AUDIO_SUFFIXES = (".wav", ".flac")


@dataclasses.dataclass(frozen=True)
class Clip:
    path: pathlib.Path
    label: str
    speaker: str


@dataclasses.dataclass
class Corpus:
    """A labelled corpus: `labels` fixes the class order (index = class id)."""

    name: str
    clips: list[Clip]
    labels: list[str]

    def targets(self) -> np.ndarray:
        """Class ids [n_clips] int64, in `labels` order."""
        index = {label: i for i, label in enumerate(self.labels)}
        return np.array([index[c.label] for c in self.clips], dtype=np.int64)

    def speakers(self) -> np.ndarray:
        return np.array([c.speaker for c in self.clips])

    def subset(self, keep) -> "Corpus":
        return Corpus(self.name, [c for c, k in zip(self.clips, keep) if k], self.labels)


def default_data_root() -> pathlib.Path:
    """`EDGE_SER_DATA`, else `<repo>/../shared/data`: the one default of every command, test and
    benchmark. A relative EDGE_SER_DATA (CI passes ../shared/data) is taken from the repository root."""
    repo = pathlib.Path(__file__).resolve().parents[1]
    return repo / os.environ.get("EDGE_SER_DATA", "../shared/data")


def read_audio(path: pathlib.Path) -> np.ndarray:
    """Decode a file to float32 mono [samples] at 16 kHz, through the runtime's reader if present."""
    try:
        from edge_ser.audio import load_audio
    except ImportError:  # the runtime's reader is not there yet: same contract via soundfile
        return _read_with_soundfile(path)
    return load_audio(path)


def _read_with_soundfile(path: pathlib.Path) -> np.ndarray:
    import soundfile

    from edge_ser.config import SAMPLE_RATE
    from edge_ser.errors import AudioError

    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError) as error:
        raise AudioError(f"{path}: cannot read audio ({error})") from None
    if rate != SAMPLE_RATE:
        raise AudioError(f"{path}: sample rate {rate} Hz, expected {SAMPLE_RATE}")
    return audio.mean(axis=1).astype(np.float32)


def audio_files(folder: pathlib.Path) -> list[pathlib.Path]:
    """The .wav/.flac files under `folder`, sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)


def load_emodb(root: pathlib.Path) -> Corpus:
    """EmoDB from `<root>/emodb/wav`: name `03a01Fa.wav` = speaker 03, emotion F."""
    folder = pathlib.Path(root) / "emodb" / "wav"
    clips = []
    for path in audio_files(folder):
        code = path.stem
        if len(code) != 7 or code[5] not in EMODB_EMOTIONS:
            raise ValueError(f"{path}: not an EmoDB file name (expected e.g. 03a01Fa.wav)")
        clips.append(Clip(path, EMODB_EMOTIONS[code[5]], code[:2]))
    if not clips:
        raise FileNotFoundError(f"{folder}: no EmoDB audio found")
    return Corpus("emodb", clips, list(EMODB_EMOTIONS.values()))


def load_ravdess(root: pathlib.Path) -> Corpus:
    """RAVDESS speech from `<root>/ravdess/Actor_*`: name `03-01-05-01-02-01-12` = emotion 05, actor 12."""
    folder = pathlib.Path(root) / "ravdess"
    clips = []
    for path in audio_files(folder):
        fields = path.stem.split("-")
        if len(fields) != 7 or fields[2] not in RAVDESS_EMOTIONS:
            raise ValueError(f"{path}: not a RAVDESS file name (expected e.g. 03-01-05-01-02-01-12)")
        clips.append(Clip(path, RAVDESS_EMOTIONS[fields[2]], fields[6]))
    if not clips:
        raise FileNotFoundError(f"{folder}: no RAVDESS audio found")
    return Corpus("ravdess", clips, list(RAVDESS_EMOTIONS.values()))


def load_manifest(csv_path: pathlib.Path) -> Corpus:
    """A CSV with header `path,label,speaker`; relative paths are relative to the CSV's folder."""
    csv_path = pathlib.Path(csv_path)
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"path", "label", "speaker"} <= set(rows[0]):
        raise ValueError(f"{csv_path}: manifest needs a header with columns path,label,speaker")
    clips = []
    for line, row in enumerate(rows, start=2):
        if not row["path"] or not row["label"] or not row["speaker"]:
            raise ValueError(f"{csv_path}:{line}: empty path, label or speaker")
        clips.append(Clip(csv_path.parent / row["path"], row["label"], row["speaker"]))
    labels = sorted({c.label for c in clips})
    return Corpus(csv_path.stem, clips, labels)


def load_corpus(name: str, root: pathlib.Path | None = None) -> Corpus:
    """`emodb`, `ravdess`, a path to a CSV manifest, or several joined by `+` (e.g.
    `emodb+ravdess`): those are relabelled to `COMMON_LABELS` and combined."""
    root = default_data_root() if root is None else pathlib.Path(root)
    if "+" in name:
        return combine(*(harmonise(load_corpus(part, root)) for part in name.split("+")))
    if name == "emodb":
        return load_emodb(root)
    if name == "ravdess":
        return load_ravdess(root)
    if name.endswith(".csv"):
        return load_manifest(pathlib.Path(name))
    raise ValueError(f"unknown corpus {name!r}: use emodb, ravdess or a manifest .csv path")


def harmonise(corpus: Corpus, mapping: dict = COMMON_LABELS) -> Corpus:
    """Relabel through `mapping` (dropping clips mapped to None) so corpora can be combined."""
    unknown = sorted(set(corpus.labels) - set(mapping))
    if unknown:
        raise ValueError(f"{corpus.name}: labels {unknown} have no entry in the common label mapping")
    clips = [dataclasses.replace(c, label=mapping[c.label]) for c in corpus.clips if mapping.get(c.label)]
    labels = [l for l in dict.fromkeys(mapping.values()) if l is not None]
    return Corpus(corpus.name, clips, labels)


def relabel_into(corpus: Corpus, labels: list[str], mapping: dict = COMMON_LABELS) -> Corpus:
    """`corpus` in another corpus's label set `labels`, for added training data: a clip keeps its
    label when `labels` has it, else takes its `mapping` label when `labels` has that (RAVDESS
    calm -> neutral), else is dropped (RAVDESS surprise for EmoDB, EmoDB boredom for RAVDESS)."""
    def target(label: str) -> str | None:
        return label if label in labels else (mapping.get(label) if mapping.get(label) in labels else None)

    clips = [dataclasses.replace(c, label=target(c.label)) for c in corpus.clips if target(c.label)]
    if not clips:
        raise ValueError(f"{corpus.name}: no clip has a label of {', '.join(labels)} (even through the common mapping)")
    return Corpus(corpus.name, clips, list(labels))


def combine(*corpora: Corpus) -> Corpus:
    """Concatenate harmonised corpora; speakers are prefixed with the corpus name to stay distinct."""
    clips = [dataclasses.replace(c, speaker=f"{k.name}:{c.speaker}") for k in corpora for c in k.clips]
    labels = list(dict.fromkeys(l for k in corpora for l in k.labels))
    return Corpus("+".join(k.name for k in corpora), clips, labels)


def corpus_of(speaker: str) -> str:
    """The corpus a speaker of `combine` came from: "emodb:03" -> "emodb"; "all" for a single
    corpus's speakers (they have no prefix)."""
    return speaker.rpartition(":")[0] or "all"


def label_indices(wanted: tuple[str, ...], corpus: Corpus, option: str) -> list[int]:
    """Class indices of the label names `wanted` in `corpus`; an unknown name is an error
    naming `option` (the command-line option it came from)."""
    unknown = sorted(set(wanted) - set(corpus.labels))
    if unknown:
        raise ValueError(f"{option} {','.join(unknown)}: not labels of {corpus.name} ({', '.join(corpus.labels)})")
    return [corpus.labels.index(label) for label in wanted]
