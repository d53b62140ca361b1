"""Checks a TFLite file before LiteRT sees it: a corrupt or hostile flatbuffer must be refused in
one line naming the file, not crash the process, allocate gigabytes or hang.

LiteRT verifies the flatbuffer's layout but then trusts its indices and shapes: an operator
whose weights are tensor -1 crashes its XNNPACK delegate, a tensor of 2^31 elements makes it
allocate without bound. `check_tflite(buf, source)` reads the flatbuffer with `struct` only
(the device has no `flatbuffers` package or schema module) and raises ModelError
"<source>: corrupt TFLite file: <problem>" unless:
  - the file carries the "TFL3" identifier, and every table, vtable, field, vector and string
    the check reads lies inside the file (Model, OperatorCode, SubGraph, Tensor, Operator,
    Buffer, Metadata, SignatureDef, TensorMap, QuantizationParameters; of the operator options,
    quantization details and sparsity tables, the table and its vtable);
  - each buffer's data lies inside the file: the inline `data` vector, or `offset` + `size`
    for weights stored after the flatbuffer (the layout of models over 2 GB);
  - each tensor has rank <= MAX_RANK, dims >= 0 in `shape`, a `shape_signature` (if any) that
    is its shape with some dims -1 (dynamic), at most MAX_TENSOR_BYTES, a known type, a buffer index in range, at
    least its size of data when it is a constant, a UTF-8 name, and per-channel quantization
    with one scale and zero point per channel of its axis;
  - each operator's opcode index and tensor indices are in range, an input is absent (-1) only
    where its operator allows it (_OPTIONAL_INPUTS), and every tensor an operator or the graph
    reads is a graph input, a constant, a variable or an earlier operator's output; no graph
    input is a constant;
  - metadata entries and signatures point at existing buffers, subgraphs and tensors, and
    their names are UTF-8.
Field numbers are those of the TFLite schema (tensorflow/compiler/mlir/lite/schema/schema.fbs).
"""
from __future__ import annotations

import math
import os
import struct

from .contract import (_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE, _METADATA_BUFFER, _METADATA_NAME, _MODEL_BUFFERS,
                       _MODEL_METADATA, TFLITE_FILE_IDENTIFIER)
from .errors import ModelError

MAX_RANK = 8
# Largest tensor a model may declare: far above any speech model's activations (Whisper
# base's attention over 1.5 windows is ~100 MB) and far below what takes a device down.
MAX_TENSOR_BYTES = 1 << 30
NO_TENSOR = -1  # an operator's optional input that is absent
# Where an operator may leave an input absent (NO_TENSOR), by builtin code: the bias of the
# convolutions, fully connected layer and SVDF; any input but the first of the recurrent
# layers and of custom operators. Elsewhere an absent input crashes LiteRT's XNNPACK delegate.
_ANY_BUT_FIRST = range(1, 1 << 31)
_OPTIONAL_INPUTS = {3: {2}, 4: {2}, 9: {2}, 27: {3}, 67: {3}, 132: {2}, 141: {3},  # conv, FC, SVDF, transposed conv
                    16: _ANY_BUT_FIRST, 44: _ANY_BUT_FIRST, 46: _ANY_BUT_FIRST, 52: _ANY_BUT_FIRST,  # LSTM, RNN
                    32: _ANY_BUT_FIRST}  # CUSTOM

# Model fields
_MODEL_OPERATOR_CODES, _MODEL_SUBGRAPHS, _MODEL_DESCRIPTION = 1, 2, 3
_MODEL_SIGNATURE_DEFS = 7  # buffers (4) and metadata (6), as the metadata reader in contract.py
# OperatorCode: deprecated_builtin_code (int8), custom_code, version, builtin_code (int32)
_OPCODE_DEPRECATED_BUILTIN, _OPCODE_CUSTOM_CODE, _OPCODE_BUILTIN = 0, 1, 3
# SubGraph
_GRAPH_TENSORS, _GRAPH_INPUTS, _GRAPH_OUTPUTS, _GRAPH_OPERATORS, _GRAPH_NAME = 0, 1, 2, 3, 4
# Tensor
_TENSOR_SHAPE, _TENSOR_TYPE, _TENSOR_BUFFER, _TENSOR_NAME, _TENSOR_QUANTIZATION = 0, 1, 2, 3, 4
_TENSOR_IS_VARIABLE, _TENSOR_SPARSITY, _TENSOR_SHAPE_SIGNATURE = 5, 6, 7
# QuantizationParameters: min, max, scale, zero_point, details_type, details, quantized_dimension
_QUANT_MIN, _QUANT_MAX, _QUANT_SCALE, _QUANT_ZERO_POINT, _QUANT_DETAILS, _QUANT_DIMENSION = 0, 1, 2, 3, 5, 6
# Operator
_OP_OPCODE_INDEX, _OP_INPUTS, _OP_OUTPUTS, _OP_OPTIONS, _OP_CUSTOM_OPTIONS = 0, 1, 2, 4, 5
_OP_MUTATING_VARIABLE_INPUTS, _OP_INTERMEDIATES, _OP_OPTIONS_2 = 7, 8, 12
# Buffer (data, or offset/size in the file; offset 0 or 1: none) and Metadata: contract.py's numbers
# SignatureDef: inputs, outputs (TensorMap: name, tensor_index), signature_key, subgraph_index
_SIGNATURE_INPUTS, _SIGNATURE_OUTPUTS, _SIGNATURE_KEY, _SIGNATURE_SUBGRAPH = 0, 1, 2, 4
_TENSOR_MAP_NAME, _TENSOR_MAP_INDEX = 0, 1

# Bytes per element of each TensorType with a whole-byte element; None: variable or packed
# (STRING, RESOURCE, VARIANT, INT4, INT2, UINT4), whose data size the runtime checks itself.
_ELEMENT_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 5: None, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8,
                  13: None, 14: None, 15: 4, 16: 2, 17: None, 18: 2, 19: None, 20: None, 21: 1, 22: 1}
_LARGEST_ELEMENT = max(n for n in _ELEMENT_BYTES.values() if n)


class _Corrupt(Exception):
    """A problem found in the flatbuffer; check_tflite adds the file's name."""


def check_tflite(buf: bytes, source: str | os.PathLike) -> None:
    """ModelError "<source>: corrupt TFLite file: <problem>" unless `buf` is a TFLite
    flatbuffer LiteRT can be given safely (see the module docstring)."""
    try:
        _check_model(_Flatbuffer(buf))
    except _Corrupt as e:
        raise ModelError(f"{source}: corrupt TFLite file: {e}") from None


class _Flatbuffer:
    """Bounds-checked reads from flatbuffer bytes; each read raises _Corrupt when it would
    leave the buffer. Tables are (position, vtable position, vtable size, table size)."""

    def __init__(self, buf: bytes):
        self.buf, self.size = buf, len(buf)

    def _unpack(self, fmt: str, pos: int, what: str):
        if pos < 0 or pos + struct.calcsize(fmt) > self.size:
            raise _Corrupt(f"{what} at byte {pos} lies outside the {self.size}-byte file")
        return struct.unpack_from(fmt, self.buf, pos)[0]

    def _target(self, pos: int, what: str) -> int:
        """Where the 32-bit unsigned offset stored at `pos` points."""
        return pos + self._unpack("<I", pos, what)

    def root(self) -> tuple:
        if self.size < 8 or self.buf[4:8] != TFLITE_FILE_IDENTIFIER:
            raise _Corrupt('no "TFL3" identifier (not a TFLite flatbuffer)')
        return self.table(self._target(0, "the root offset"), "the Model table")

    def table(self, pos: int, what: str) -> tuple:
        vtable = pos - self._unpack("<i", pos, what)
        vtable_size = self._unpack("<H", vtable, f"the vtable of {what}")
        table_size = self._unpack("<H", vtable + 2, f"the vtable of {what}")
        if vtable_size < 4 or vtable_size % 2 or vtable + vtable_size > self.size:
            raise _Corrupt(f"the vtable of {what} has a bad size ({vtable_size} bytes at byte {vtable})")
        if table_size < 4 or pos + table_size > self.size:
            raise _Corrupt(f"{what} at byte {pos} ({table_size} bytes) lies outside the {self.size}-byte file")
        return pos, vtable, vtable_size, table_size

    def field(self, table: tuple, field: int, width: int, what: str) -> int | None:
        """Position of a field of `width` bytes, None when the table does not set it."""
        pos, vtable, vtable_size, table_size = table
        slot = 4 + 2 * field
        if slot >= vtable_size:
            return None
        offset = self._unpack("<H", vtable + slot, what)
        if not offset:
            return None
        if offset + width > table_size:
            raise _Corrupt(f"{what} lies outside its table (byte {offset} of {table_size})")
        return pos + offset

    def scalar(self, table: tuple, field: int, fmt: str, default, what: str):
        pos = self.field(table, field, struct.calcsize(fmt), what)
        return default if pos is None else self._unpack(fmt, pos, what)

    def vector(self, table: tuple, field: int, element_bytes: int, what: str) -> tuple[int, int]:
        """(position of the first element, length) of a vector field; (0, 0) when absent."""
        pos = self.field(table, field, 4, what)
        if pos is None:
            return 0, 0
        start = self._target(pos, what)
        n = self._unpack("<I", start, what)
        if start + 4 + n * element_bytes > self.size:
            raise _Corrupt(f"{what} ({n} entries at byte {start}) runs past the end of the {self.size}-byte file")
        return start + 4, n

    def ints(self, table: tuple, field: int, what: str, fmt: str = "i") -> list[int]:
        """A vector of integers (int32 by default) as a list."""
        start, n = self.vector(table, field, struct.calcsize(fmt), what)
        return list(struct.unpack_from(f"<{n}{fmt}", self.buf, start)) if n else []

    def tables(self, table: tuple, field: int, what: str) -> list[tuple]:
        """A vector of tables, each checked."""
        start, n = self.vector(table, field, 4, what)
        return [self.table(self._target(start + 4 * i, what), f"{what}[{i}]") for i in range(n)]

    def string(self, table: tuple, field: int, what: str) -> str | None:
        """A string field decoded as UTF-8; None when absent."""
        start, n = self.vector(table, field, 1, what)
        if not start:
            return None
        try:
            return bytes(self.buf[start:start + n]).decode("utf-8")
        except UnicodeDecodeError:
            raise _Corrupt(f"{what} is not valid UTF-8") from None

    def optional_table(self, table: tuple, field: int, what: str) -> tuple | None:
        pos = self.field(table, field, 4, what)
        return None if pos is None else self.table(self._target(pos, what), what)


def _check_model(fb: _Flatbuffer) -> None:
    model = fb.root()
    buffers = [_buffer_bytes(fb, b, i) for i, b in enumerate(fb.tables(model, _MODEL_BUFFERS, "Model.buffers"))]
    builtins = [_builtin_code(fb, code, i) for i, code in enumerate(fb.tables(model, _MODEL_OPERATOR_CODES,
                                                                               "Model.operator_codes"))]
    fb.vector(model, _MODEL_DESCRIPTION, 1, "Model.description")
    graphs = fb.tables(model, _MODEL_SUBGRAPHS, "Model.subgraphs")
    if not graphs:
        raise _Corrupt("the model has no subgraph")
    for i, graph in enumerate(graphs):
        _check_subgraph(fb, graph, f"subgraph {i}", buffers, builtins)
    _check_metadata(fb, model, len(buffers))
    _check_signatures(fb, model, graphs)


def _builtin_code(fb: _Flatbuffer, code: tuple, index: int) -> int:
    """An OperatorCode's builtin operator: the larger of its two fields, as LiteRT reads it
    (codes up to 127 were stored in the int8 field before the int32 one existed)."""
    what = f"operator code {index}"
    fb.vector(code, _OPCODE_CUSTOM_CODE, 1, f"{what}'s custom_code")
    return max(fb.scalar(code, _OPCODE_DEPRECATED_BUILTIN, "<b", 0, what),
               fb.scalar(code, _OPCODE_BUILTIN, "<i", 0, what))


def _buffer_bytes(fb: _Flatbuffer, buffer: tuple, index: int) -> int:
    """Bytes of data a Buffer holds, checked to lie inside the file."""
    what = f"buffer {index}"
    _, n = fb.vector(buffer, _BUFFER_DATA, 1, f"{what}'s data")
    offset = fb.scalar(buffer, _BUFFER_OFFSET, "<Q", 0, f"{what}'s offset")
    size = fb.scalar(buffer, _BUFFER_SIZE, "<Q", 0, f"{what}'s size")
    if offset > 1:  # stored after the flatbuffer (0 and 1 mean "not stored that way")
        if offset + size > fb.size:
            raise _Corrupt(f"{what} ({size} bytes at byte {offset}) runs past the end of the {fb.size}-byte file")
        return n or size
    return n


def _check_subgraph(fb: _Flatbuffer, graph: tuple, where: str, buffers: list[int], builtins: list[int]) -> None:
    fb.string(graph, _GRAPH_NAME, f"{where}'s name")
    tensors = fb.tables(graph, _GRAPH_TENSORS, f"{where}'s tensors")
    kinds = [_check_tensor(fb, tensor, f"{where} tensor {i}", buffers) for i, tensor in enumerate(tensors)]
    constant = {i for i, kind in enumerate(kinds) if kind == "constant"}
    variable = {i for i, kind in enumerate(kinds) if kind == "variable"}
    n = len(tensors)
    inputs = _indices(fb.ints(graph, _GRAPH_INPUTS, f"{where}'s inputs"), n, f"{where}'s inputs", optional=False)
    outputs = _indices(fb.ints(graph, _GRAPH_OUTPUTS, f"{where}'s outputs"), n, f"{where}'s outputs", optional=False)
    fed = sorted(set(inputs) & constant)
    if fed:
        raise _Corrupt(f"{where}'s input tensor {fed[0]} is a constant")
    # A tensor of zero elements holds nothing to read (converters write such constants with no
    # data: a MEAN over no axes, a RESHAPE to a scalar): it counts as written.
    empty = {i for i, tensor in enumerate(tensors) if not _has_elements(fb, tensor)}
    written = set(inputs) | constant | variable | empty
    for j, op in enumerate(fb.tables(graph, _GRAPH_OPERATORS, f"{where}'s operators")):
        written |= _check_operator(fb, op, f"{where} operator {j}", n, builtins, written)
    unwritten = [t for t in outputs if t not in written]
    if unwritten:
        raise _Corrupt(f"{where}'s output tensor {unwritten[0]} is written by no operator")


def _check_tensor(fb: _Flatbuffer, tensor: tuple, what: str, buffers: list[int]) -> str:
    """'constant', 'variable' or 'activation' after checking the tensor's fields."""
    fb.string(tensor, _TENSOR_NAME, f"{what}'s name")
    shape = fb.ints(tensor, _TENSOR_SHAPE, f"{what}'s shape")
    signature = fb.ints(tensor, _TENSOR_SHAPE_SIGNATURE, f"{what}'s shape_signature")
    if len(shape) > MAX_RANK:
        raise _Corrupt(f"{what} has rank {len(shape)}, more than {MAX_RANK}")
    if any(d < 0 for d in shape):
        raise _Corrupt(f"{what}'s shape {shape} has a dimension below 0")
    if signature and (len(signature) != len(shape) or any(b not in (a, -1) for a, b in zip(shape, signature))):
        raise _Corrupt(f"{what}'s shape_signature {signature} does not match its shape {shape}")
    type_ = fb.scalar(tensor, _TENSOR_TYPE, "<b", 0, f"{what}'s type")
    if type_ not in _ELEMENT_BYTES:
        raise _Corrupt(f"{what} has unknown type {type_}")
    element = _ELEMENT_BYTES[type_]
    if math.prod(shape) * (element or _LARGEST_ELEMENT) > MAX_TENSOR_BYTES:
        raise _Corrupt(f"{what} of shape {shape} needs more than {MAX_TENSOR_BYTES >> 20} MiB")
    index = fb.scalar(tensor, _TENSOR_BUFFER, "<I", 0, f"{what}'s buffer")
    if index >= len(buffers):
        raise _Corrupt(f"{what} points at buffer {index} of {len(buffers)}")
    sparse = fb.optional_table(tensor, _TENSOR_SPARSITY, f"{what}'s sparsity") is not None
    _check_quantization(fb, tensor, what, shape)
    data, needed = buffers[index], math.prod(shape) * (element or 0)
    if data and not sparse and data < needed:  # more is fine, as for LiteRT
        raise _Corrupt(f"{what} of shape {shape} has {data} bytes of data, needs {needed}")
    if data:
        return "constant"
    return "variable" if fb.scalar(tensor, _TENSOR_IS_VARIABLE, "<B", 0, f"{what}'s is_variable") else "activation"


def _check_quantization(fb: _Flatbuffer, tensor: tuple, what: str, shape: list[int]) -> None:
    quant = fb.optional_table(tensor, _TENSOR_QUANTIZATION, f"{what}'s quantization")
    if quant is None:
        return
    fb.vector(quant, _QUANT_MIN, 4, f"{what}'s quantization min")
    fb.vector(quant, _QUANT_MAX, 4, f"{what}'s quantization max")
    _, n_scales = fb.vector(quant, _QUANT_SCALE, 4, f"{what}'s quantization scale")
    _, n_zero_points = fb.vector(quant, _QUANT_ZERO_POINT, 8, f"{what}'s quantization zero_point")
    fb.optional_table(quant, _QUANT_DETAILS, f"{what}'s quantization details")
    if n_scales > 1:  # per channel: one scale and zero point per entry of the quantized axis
        axis = fb.scalar(quant, _QUANT_DIMENSION, "<i", 0, f"{what}'s quantized_dimension")
        if not 0 <= axis < len(shape) or shape[axis] != n_scales:
            raise _Corrupt(f"{what} has {n_scales} quantization scales for axis {axis} of shape {shape}")
        if n_zero_points != n_scales:
            raise _Corrupt(f"{what} has {n_scales} quantization scales and {n_zero_points} zero points")


def _has_elements(fb: _Flatbuffer, tensor: tuple) -> bool:
    return math.prod(fb.ints(tensor, _TENSOR_SHAPE, "a tensor's shape")) > 0


def _indices(indices: list[int], n: int, what: str, optional: bool) -> list[int]:
    """`indices` after checking each is a tensor index (or NO_TENSOR when `optional`)."""
    lowest = NO_TENSOR if optional else 0
    bad = [i for i in indices if not lowest <= i < n]
    if bad:
        raise _Corrupt(f"{what} name tensor {bad[0]}, outside 0..{n - 1}")
    return [i for i in indices if i != NO_TENSOR]


def _check_operator(fb: _Flatbuffer, op: tuple, what: str, n_tensors: int, builtins: list[int],
                    written: set[int]) -> set[int]:
    """The tensors the operator writes, after checking it reads only tensors already written."""
    opcode = fb.scalar(op, _OP_OPCODE_INDEX, "<I", 0, f"{what}'s opcode_index")
    if opcode >= len(builtins):
        raise _Corrupt(f"{what} uses operator code {opcode} of {len(builtins)}")
    listed = fb.ints(op, _OP_INPUTS, f"{what}'s inputs")
    optional = _OPTIONAL_INPUTS.get(builtins[opcode], ())
    absent = [k for k, t in enumerate(listed) if t == NO_TENSOR and k not in optional]
    if absent:
        raise _Corrupt(f"{what} (builtin operator {builtins[opcode]}) has no tensor for its input {absent[0]}, "
                       f"which it needs")
    inputs = _indices(listed, n_tensors, f"{what}'s inputs", optional=True)
    outputs = _indices(fb.ints(op, _OP_OUTPUTS, f"{what}'s outputs"), n_tensors, f"{what}'s outputs",
                       optional=True)
    _indices(fb.ints(op, _OP_INTERMEDIATES, f"{what}'s intermediates"), n_tensors, f"{what}'s intermediates",
             optional=False)
    unwritten = [t for t in inputs if t not in written]
    if unwritten:
        raise _Corrupt(f"{what} reads tensor {unwritten[0]}, which is no input, constant, variable or "
                       f"earlier operator's output")
    fb.vector(op, _OP_CUSTOM_OPTIONS, 1, f"{what}'s custom_options")
    fb.vector(op, _OP_MUTATING_VARIABLE_INPUTS, 1, f"{what}'s mutating_variable_inputs")
    fb.optional_table(op, _OP_OPTIONS, f"{what}'s builtin_options")
    fb.optional_table(op, _OP_OPTIONS_2, f"{what}'s builtin_options_2")
    return set(outputs)


def _check_metadata(fb: _Flatbuffer, model: tuple, n_buffers: int) -> None:
    for i, entry in enumerate(fb.tables(model, _MODEL_METADATA, "Model.metadata")):
        name = fb.string(entry, _METADATA_NAME, f"metadata entry {i}'s name")
        index = fb.scalar(entry, _METADATA_BUFFER, "<I", 0, f"metadata entry {i}'s buffer")
        if index >= n_buffers:
            raise _Corrupt(f"metadata {name!r} points at buffer {index} of {n_buffers}")


def _check_signatures(fb: _Flatbuffer, model: tuple, graphs: list[tuple]) -> None:
    for i, signature in enumerate(fb.tables(model, _MODEL_SIGNATURE_DEFS, "Model.signature_defs")):
        what = f"signature {i}"
        fb.string(signature, _SIGNATURE_KEY, f"{what}'s key")
        index = fb.scalar(signature, _SIGNATURE_SUBGRAPH, "<I", 0, f"{what}'s subgraph_index")
        if index >= len(graphs):
            raise _Corrupt(f"{what} points at subgraph {index} of {len(graphs)}")
        _, n_tensors = fb.vector(graphs[index], _GRAPH_TENSORS, 4, f"subgraph {index}'s tensors")
        for field in (_SIGNATURE_INPUTS, _SIGNATURE_OUTPUTS):
            for j, entry in enumerate(fb.tables(signature, field, f"{what}'s tensor map")):
                fb.string(entry, _TENSOR_MAP_NAME, f"{what}'s tensor name {j}")
                tensor = fb.scalar(entry, _TENSOR_MAP_INDEX, "<I", 0, f"{what}'s tensor index {j}")
                if tensor >= n_tensors:
                    raise _Corrupt(f"{what} names tensor {tensor} of {n_tensors}")
