"""The model contract: what a model file must carry and look like for the runtime to use it.

A model maps log-mel features to class logits:
    input  `log_mel` float32 [batch, n_mels, frames]  (TFLite: any name, float32 or int8)
    output `logits`  float32 [batch, n_classes]        (TFLite: any name, float32 or int8)
and carries, as string key/value metadata (ONNX `metadata_props`; TFLite: one JSON object of
the same keys in the flatbuffer `metadata` entry named `edge_ser`):
    edge_ser.format_version   "1"
    edge_ser.labels           JSON list of class names, in logit order
    edge_ser.feature_config   JSON of `FeatureConfig.to_dict()`
    edge_ser.window_seconds   clip length the model was trained on, e.g. "2.0"
    edge_ser.model_card       optional JSON object (data, metrics, licence, ...)
    edge_ser.temperature      optional: the runtime's scores are softmax(logits / temperature),
                              fitted so that a score of 0.9 is right about 90 % of the time
The full text is docs/model-contract.md. Only `write_onnx_metadata` and `write_tflite_metadata`
(exporter side) import `onnx` / the TFLite schema; the device reads metadata through
onnxruntime or the small flatbuffer reader below.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import struct

from .config import FeatureConfig
from .errors import ModelError

FORMAT_VERSION = "1"
KEY_FORMAT_VERSION = "edge_ser.format_version"
KEY_LABELS = "edge_ser.labels"
KEY_FEATURE_CONFIG = "edge_ser.feature_config"
KEY_WINDOW_SECONDS = "edge_ser.window_seconds"
KEY_MODEL_CARD = "edge_ser.model_card"
KEY_TEMPERATURE = "edge_ser.temperature"
REQUIRED_KEYS = (KEY_FORMAT_VERSION, KEY_LABELS, KEY_FEATURE_CONFIG, KEY_WINDOW_SECONDS)
MAX_LABELS = 1000  # classes a model may have: every output format lists a score per label
MAX_THREADS = 256  # inference threads a session may ask for: far more hang onnxruntime or crash LiteRT
NO_SPEECH = "no speech"  # the runtime's label for audio without enough speech: no class may be called so
# Audio with less VAD speech than this share of one model window (0.4 s for a 2-s model) is
# labelled NO_SPEECH by the runtime. Chosen on the training corpora (benchmarks/results/
# speech_share.md): no EmoDB or RAVDESS clip has less than 0.59; silence, tones, white noise 0.
MIN_SPEECH_SHARE = 0.2
# A model's window: the runtime holds up to 1.5 windows of audio and pads to whole windows.
MIN_WINDOW_SECONDS, MAX_WINDOW_SECONDS = 0.1, 60.0
# The longest input the runtime feeds a model, in its windows (short audio runs as one window up
# to this length): a static frame axis may not ask for more.
SINGLE_WINDOW_FACTOR = 1.5
# Softmax temperatures a model may carry: outside this range scores become one-hot or uniform,
# which no calibration fit gives for a trained model.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0

INPUT_NAME = "log_mel"  # ONNX input name; TFLite names are free
OUTPUT_NAME = "logits"
TFLITE_METADATA_NAME = "edge_ser"  # name of the TFLite flatbuffer metadata entry
TFLITE_FILE_IDENTIFIER = b"TFL3"


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the runtime needs to know about a model, read from its metadata."""

    labels: tuple[str, ...]
    feature_config: FeatureConfig
    window_seconds: float
    format_version: str = FORMAT_VERSION
    card: dict | None = None
    temperature: float = 1.0

    def max_frames(self) -> int:
        """Frames of the longest input the runtime feeds this model (SINGLE_WINDOW_FACTOR windows)."""
        config = self.feature_config
        return config.n_frames(config.n_samples(SINGLE_WINDOW_FACTOR * self.window_seconds))

    def check_fixed_frames(self, frames: int | None, source) -> None:
        """ModelError unless a static frame axis (None: dynamic) is one the runtime can fill: a
        model file must not make the runtime pad every window to a million frames."""
        if frames is not None and frames > self.max_frames():
            raise ModelError(f"{source}: its input is fixed at {frames} frames, more than the {self.max_frames()} of "
                             f"{SINGLE_WINDOW_FACTOR:g} of its {self.window_seconds:g}-s windows")

    def to_metadata(self) -> dict[str, str]:
        """-> the string key/value pairs stored in the model file."""
        meta = {
            KEY_FORMAT_VERSION: self.format_version,
            KEY_LABELS: json.dumps(list(self.labels)),
            KEY_FEATURE_CONFIG: json.dumps(self.feature_config.to_dict(), sort_keys=True),
            KEY_WINDOW_SECONDS: repr(float(self.window_seconds)),
        }
        if self.card is not None:
            meta[KEY_MODEL_CARD] = json.dumps(self.card, sort_keys=True)
        if self.temperature != 1.0:
            meta[KEY_TEMPERATURE] = repr(float(self.temperature))
        # Round-trip through the validator so a bad ModelInfo never reaches a file.
        ModelInfo.from_metadata(meta, source="<to_metadata>")
        return meta

    @classmethod
    def from_metadata(cls, meta: dict, source: str | os.PathLike = "<model>") -> "ModelInfo":
        """Validate metadata (str -> str) and build a ModelInfo; ModelError names `source`."""

        def fail(problem: str):
            raise ModelError(f"{source}: {problem}")

        missing = [k for k in REQUIRED_KEYS if k not in meta]
        if missing:
            fail(f"not an edge-ser model: metadata key {missing[0]} is missing "
                 f"(see docs/model-contract.md)")
        version = meta[KEY_FORMAT_VERSION]
        if version != FORMAT_VERSION:
            fail(f"unknown {KEY_FORMAT_VERSION} {version!r} (this runtime reads {FORMAT_VERSION!r})")
        labels = _parse_json(meta, KEY_LABELS, fail)
        if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
            fail(f"{KEY_LABELS} must be a JSON list of non-empty strings")
        if not labels:
            fail(f"{KEY_LABELS} is empty")
        if len(labels) > MAX_LABELS:
            fail(f"{KEY_LABELS} has {len(labels)} labels, more than the {MAX_LABELS} a model may have")
        if NO_SPEECH in labels:
            fail(f"{KEY_LABELS} has the label {NO_SPEECH!r}, which the runtime keeps for audio without speech")
        dupes = sorted(label for label, n in collections.Counter(labels).items() if n > 1)
        if dupes:
            fail(f"{KEY_LABELS} has duplicate labels {dupes[:10]}")
        config_dict = _parse_json(meta, KEY_FEATURE_CONFIG, fail)
        if not isinstance(config_dict, dict):
            fail(f"{KEY_FEATURE_CONFIG} must be a JSON object")
        try:
            config = FeatureConfig.from_dict(config_dict)
        except (TypeError, ValueError) as e:
            fail(f"bad {KEY_FEATURE_CONFIG}: {e}")
        try:
            window = float(meta[KEY_WINDOW_SECONDS])
        except (TypeError, ValueError):
            fail(f"{KEY_WINDOW_SECONDS} is not a number: {meta[KEY_WINDOW_SECONDS]!r}")
        if not (math.isfinite(window) and window > 0):
            fail(f"{KEY_WINDOW_SECONDS} must be a positive number of seconds, got {window}")
        if not MIN_WINDOW_SECONDS <= window <= MAX_WINDOW_SECONDS:
            fail(f"{KEY_WINDOW_SECONDS} must be in {MIN_WINDOW_SECONDS:g}..{MAX_WINDOW_SECONDS:g} s, got {window:g}")
        card = None
        if KEY_MODEL_CARD in meta:
            card = _parse_json(meta, KEY_MODEL_CARD, fail)
            if not isinstance(card, dict):
                fail(f"{KEY_MODEL_CARD} must be a JSON object")
        return cls(tuple(labels), config, window, version, card, _temperature(meta, fail))


def _temperature(meta: dict, fail) -> float:
    """The optional softmax temperature (1.0 when absent), bounded like every other value."""
    if KEY_TEMPERATURE not in meta:
        return 1.0
    try:
        value = float(meta[KEY_TEMPERATURE])
    except (TypeError, ValueError):
        fail(f"{KEY_TEMPERATURE} is not a number: {meta[KEY_TEMPERATURE]!r}")
    if not (math.isfinite(value) and MIN_TEMPERATURE <= value <= MAX_TEMPERATURE):
        fail(f"{KEY_TEMPERATURE} must be in {MIN_TEMPERATURE:g}..{MAX_TEMPERATURE:g}, got {meta[KEY_TEMPERATURE]}")
    return value


def _parse_json(meta: dict, key: str, fail):
    try:
        return json.loads(meta[key])
    except (TypeError, ValueError) as e:
        fail(f"{key} is not valid JSON ({e})")
    except RecursionError:
        fail(f"{key} is nested too deeply to read")


# --- ONNX (exporter side) ------------------------------------------------------------------


def write_onnx_metadata(model, info: ModelInfo) -> None:
    """Store `info` in an onnx.ModelProto's metadata_props, replacing earlier edge_ser keys."""
    import onnx  # exporter-only dependency; the device never gets here

    meta = info.to_metadata()
    kept = [p for p in model.metadata_props if not p.key.startswith("edge_ser.")]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in meta.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))


# --- TFLite --------------------------------------------------------------------------------
# The device reads the `edge_ser` metadata entry with the minimal flatbuffer reader below, so
# it needs neither the `flatbuffers` package nor a schema module (tflite_runtime has none).
# Field numbers are from the TFLite schema (tensorflow/compiler/mlir/lite/schema/schema.fbs):
# Model.buffers = 4, Model.metadata = 6; Metadata.name = 0, .buffer = 1;
# Buffer.data = 0, .offset = 1, .size = 2 (offset/size are used by models over 2 GB).
_MODEL_BUFFERS, _MODEL_METADATA = 4, 6
_METADATA_NAME, _METADATA_BUFFER = 0, 1
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2


def is_tflite(head: bytes) -> bool:
    """True if the first bytes of a file carry the TFLite flatbuffer identifier."""
    return len(head) >= 8 and head[4:8] == TFLITE_FILE_IDENTIFIER


def _field_pos(buf: bytes, table: int, field: int) -> int | None:
    """Absolute position of a table field's value, or None when the field is absent."""
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    vtable_size = struct.unpack_from("<H", buf, vtable)[0]
    slot = 4 + 2 * field
    if slot >= vtable_size:
        return None
    offset = struct.unpack_from("<H", buf, vtable + slot)[0]
    return table + offset if offset else None


def _deref(buf: bytes, pos: int) -> int:
    return pos + struct.unpack_from("<I", buf, pos)[0]


def _vector(buf: bytes, table: int, field: int) -> tuple[int, int]:
    """(position of the first element, length) of a vector field; (0, 0) when absent."""
    pos = _field_pos(buf, table, field)
    if pos is None:
        return 0, 0
    vec = _deref(buf, pos)
    return vec + 4, struct.unpack_from("<I", buf, vec)[0]


def read_tflite_metadata(buf: bytes) -> dict[str, bytes]:
    """TFLite flatbuffer bytes -> {metadata entry name: its buffer's bytes}.

    Raises ValueError (or struct.error) on a malformed flatbuffer; the caller names the file.
    """
    if not is_tflite(buf):
        raise ValueError("not a TFLite flatbuffer (no TFL3 identifier)")
    model = _deref(buf, 0)
    buffers, n_buffers = _vector(buf, model, _MODEL_BUFFERS)
    entries, n_entries = _vector(buf, model, _MODEL_METADATA)
    out = {}
    for i in range(n_entries):
        entry = _deref(buf, entries + 4 * i)
        name_pos = _field_pos(buf, entry, _METADATA_NAME)
        if name_pos is None:
            continue
        name_at = _deref(buf, name_pos)
        name_len = struct.unpack_from("<I", buf, name_at)[0]
        name = bytes(buf[name_at + 4:name_at + 4 + name_len]).decode("utf-8", "replace")
        index_pos = _field_pos(buf, entry, _METADATA_BUFFER)
        index = struct.unpack_from("<I", buf, index_pos)[0] if index_pos is not None else 0
        if index >= n_buffers:
            raise ValueError(f"metadata {name!r} points at buffer {index} of {n_buffers}")
        out[name] = _buffer_bytes(buf, _deref(buf, buffers + 4 * index))
    return out


def _buffer_bytes(buf: bytes, table: int) -> bytes:
    data, n = _vector(buf, table, _BUFFER_DATA)
    if n:
        return bytes(buf[data:data + n])
    offset_pos = _field_pos(buf, table, _BUFFER_OFFSET)
    size_pos = _field_pos(buf, table, _BUFFER_SIZE)
    if offset_pos is None or size_pos is None:
        return b""
    offset = struct.unpack_from("<Q", buf, offset_pos)[0]
    size = struct.unpack_from("<Q", buf, size_pos)[0]
    return bytes(buf[offset:offset + size])


def tflite_info(buf: bytes, source: str | os.PathLike) -> ModelInfo:
    """TFLite flatbuffer bytes -> ModelInfo from its `edge_ser` metadata entry."""
    try:
        entries = read_tflite_metadata(buf)
    except struct.error:  # its message is about unpack_from, not the file
        raise ModelError(f"{source}: corrupt TFLite file (an offset in it points outside the file)") from None
    except ValueError as e:
        raise ModelError(f"{source}: corrupt TFLite file ({e})") from None
    if TFLITE_METADATA_NAME not in entries:
        raise ModelError(f"{source}: not an edge-ser model: TFLite metadata entry "
                         f"{TFLITE_METADATA_NAME!r} is missing (see docs/model-contract.md)")
    try:
        meta = json.loads(entries[TFLITE_METADATA_NAME].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ModelError(f"{source}: TFLite metadata {TFLITE_METADATA_NAME!r} is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ModelError(f"{source}: TFLite metadata {TFLITE_METADATA_NAME!r} must be a JSON object of strings")
    return ModelInfo.from_metadata(meta, source)


def write_tflite_metadata(buf: bytes, info: ModelInfo) -> bytes:
    """TFLite flatbuffer bytes -> the same model with `info` as its `edge_ser` metadata entry.

    Exporter side: needs `flatbuffers` and the TFLite schema bindings of `ai_edge_litert`.
    """
    import flatbuffers
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(buf), 0)
    # Re-packing writes only data held inside the flatbuffer, so weights the quantizer stored
    # after it (offset/size; offset 1 marks an empty buffer) are moved inside first.
    for b in model.buffers or []:
        if b.offset > 1 and b.size:
            b.data = np.frombuffer(buf[b.offset:b.offset + b.size], dtype=np.uint8)
        b.offset = b.size = 0
    blob = json.dumps(info.to_metadata(), sort_keys=True).encode("utf-8")
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(blob, dtype=np.uint8)
    model.buffers = list(model.buffers or []) + [buffer]
    entry = schema.MetadataT()
    entry.name = TFLITE_METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    others = [m for m in (model.metadata or []) if _name(m.name) != TFLITE_METADATA_NAME]
    model.metadata = others + [entry]
    builder = flatbuffers.Builder(len(buf) + len(blob) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_FILE_IDENTIFIER)
    return bytes(builder.Output())


def _name(name) -> str:
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
