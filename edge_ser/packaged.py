"""The models that ship inside the package, and how a model argument names one.

Packaged model NAME is MODELS_DIR/NAME.onnx and/or NAME.tflite, with its model card
NAME.card.json beside it; PACKAGED_NAMES are the names the package may ship (not every one need
be installed: `installed()` says which are).

A model argument (`Recognizer(model)`, every `--model`, `edge-ser info MODEL`) is a packaged
name or a path, by one rule (`resolve_model`):
  1. an existing file is that file, so a file called `tiny` in the current directory is used
     as a path, not as the packaged model;
  2. otherwise a packaged name is that packaged model: its .onnx, its .tflite only when no
     .onnx is installed;
  3. anything else is a path, and must exist; a FIFO or device is refused before it is
     opened (reading one could wait for ever).
"""
from __future__ import annotations

import json
import os
import pathlib
import stat

from .errors import ModelError

MODELS_DIR = pathlib.Path(__file__).resolve().parent / "models"
PACKAGED_NAMES = ("default", "tiny")
DEFAULT_NAME = "default"
DEFAULT_MODEL = MODELS_DIR / f"{DEFAULT_NAME}.onnx"  # what Recognizer() and the CLI use without a model
MODEL_SUFFIXES = (".onnx", ".tflite")  # a packaged model's files, preferred first
CARD_SUFFIX = ".card.json"


def packaged_file(name: str) -> pathlib.Path | None:
    """The installed file of packaged model `name` (its .onnx, else its .tflite), None if neither is."""
    for suffix in MODEL_SUFFIXES:
        path = MODELS_DIR / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def installed() -> list[tuple[str, pathlib.Path]]:
    """[(name, file)] of the packaged models that are installed, in PACKAGED_NAMES order."""
    found = [(name, packaged_file(name)) for name in PACKAGED_NAMES]
    return [(name, path) for name, path in found if path is not None]


def installed_summary() -> str:
    """The installed packaged models' names for error messages: "installed packaged models: default"."""
    names = [name for name, _ in installed()]
    return "installed packaged models: " + (", ".join(names) or "none")


def resolve_model(model: str | os.PathLike) -> pathlib.Path:
    """A packaged model name or a path -> the model file, by the module docstring's rule.
    ModelError, one line naming `model` and the installed packaged models, when a packaged
    name is not installed or a path does not exist; naming `model`, when a path cannot be
    looked at or is a FIFO, device or socket."""
    path = pathlib.Path(model)
    mode = _file_mode(path, model)
    if mode is not None and stat.S_ISREG(mode):
        return path
    if os.fspath(model) in PACKAGED_NAMES:
        found = packaged_file(os.fspath(model))
        if found is None:
            raise ModelError(f"{model}: packaged model not installed ({installed_summary()})")
        return found
    if mode is None:
        raise ModelError(f"{model}: no such model file, nor a packaged model name ({installed_summary()})")
    if stat.S_ISDIR(mode):  # opening it says what is wrong with it
        return path
    raise not_a_file(model)


def not_a_file(model) -> ModelError:
    """A FIFO or a terminal would block the read for ever: refused before it is opened."""
    return ModelError(f"{model}: not a regular file (a FIFO, device or socket), so not a model file")


def _file_mode(path: pathlib.Path, model) -> int | None:
    """st_mode of `path` (symbolic links followed), None when nothing is there; ModelError
    naming `model` when it cannot be looked at (a name too long, a symbolic link loop)."""
    try:
        return os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise ModelError(f"{model}: cannot open model file ({e.strerror or e})") from None


def packaged_card(name: str) -> dict | None:
    """Packaged model `name`'s card file (NAME.card.json), None when absent. It holds what is
    known only once the files exist (their sizes and latency), which the card inside the model
    cannot; a card that is not valid JSON is a ModelError naming the file."""
    path = MODELS_DIR / f"{name}{CARD_SUFFIX}"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: unreadable model card ({e})") from None
