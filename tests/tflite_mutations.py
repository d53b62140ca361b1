"""Corrupt TFLite files for tests and measurements: a tiny hand-built model, seeded mutations
of a model's bytes, and a loader that runs in child processes and says what each file did.

The tiny model (built with the schema's object API, no converter): log_mel float32
[1, n_mels, frames (dynamic)] -> MEAN over frames -> FULLY_CONNECTED [n_classes, n_mels] + bias
-> logits float32 [1, n_classes], about 3 KB with its edge_ser metadata, so that most random
byte positions land in the flatbuffer's structure rather than in weights.

Outcomes of loading a file and running one inference on zeros (`load_in_children`):
    ok           loaded and ran
    model_error  ModelError, one line naming the file
    bad_message  ModelError whose message has several lines or does not name the file
    other        any other exception (its type and first line)
    crash        the process died on a signal (its name)
    memory       MemoryError or std::bad_alloc under the child's address-space limit
    timeout      no answer within the time limit

Run as a script to measure: `python tests/tflite_mutations.py MODEL [-n 300] [--seed 0]`
(`--tiny` mutates the hand-built model instead of MODEL).
"""
from __future__ import annotations

import collections
import dataclasses
import json
import os
import pathlib
import selectors
import signal
import subprocess
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
MUTATION_KINDS = ("flip", "int32", "int16", "truncate")
# Values written over 4 bytes: sign and size extremes, offsets just past the end, small ones.
_INT32_VALUES = (0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, 0x10000000, 0x00010000, 0x0000FFFF, 1, 0)


def build_tiny_tflite(info=None, n_mels: int = 64, n_classes: int = 7, seed: int = 0) -> bytes:
    """The tiny model's flatbuffer bytes, with `info` (tests/models.model_info() by default) as
    its edge_ser metadata. Needs flatbuffers and ai_edge_litert's schema bindings."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    import models
    from edge_ser.contract import write_tflite_metadata

    rng = np.random.default_rng(seed)
    weights = rng.normal(0, 0.1, (n_classes, n_mels)).astype(np.float32)
    bias = rng.normal(0, 0.1, n_classes).astype(np.float32)

    def buffer(data: bytes | None):
        b = schema.BufferT()
        if data is not None:
            b.data = np.frombuffer(data, dtype=np.uint8)
        return b

    def tensor(name: bytes, shape, type_=schema.TensorType.FLOAT32, buffer_index=0, signature=None):
        t = schema.TensorT()
        t.name, t.shape, t.type, t.buffer = name, list(shape), type_, buffer_index
        t.shapeSignature = list(signature) if signature is not None else None
        return t

    def opcode(code: int):
        c = schema.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
        return c

    def operator(index: int, inputs, outputs, options_type, options):
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = index, list(inputs), list(outputs)
        op.builtinOptionsType, op.builtinOptions = options_type, options
        return op

    graph = schema.SubGraphT()
    graph.tensors = [
        tensor(b"log_mel", [1, n_mels, 1], signature=[1, n_mels, -1]),
        tensor(b"frame_axis", [1], schema.TensorType.INT32, 1),
        tensor(b"mean", [1, n_mels]),
        tensor(b"weights", [n_classes, n_mels], buffer_index=2),
        tensor(b"bias", [n_classes], buffer_index=3),
        tensor(b"logits", [1, n_classes]),
    ]
    graph.inputs, graph.outputs = [0], [5]
    graph.operators = [
        operator(0, [0, 1], [2], schema.BuiltinOptions.ReducerOptions, schema.ReducerOptionsT()),
        operator(1, [2, 3, 4], [5], schema.BuiltinOptions.FullyConnectedOptions, schema.FullyConnectedOptionsT()),
    ]
    graph.name = "main"
    model = schema.ModelT()
    model.version = 3
    model.operatorCodes = [opcode(schema.BuiltinOperator.MEAN), opcode(schema.BuiltinOperator.FULLY_CONNECTED)]
    model.subgraphs = [graph]
    model.buffers = [buffer(None), buffer(np.int32([2]).tobytes()), buffer(weights.tobytes()), buffer(bias.tobytes())]
    model.description = "edge-ser test model"
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return write_tflite_metadata(bytes(builder.Output()), info or models.model_info(n_mels=n_mels))


def edited(buf: bytes, edit) -> bytes:
    """`buf` after `edit(model)` changed its schema.ModelT (the object API's whole-model copy)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(buf), 0)
    edit(model)
    builder = flatbuffers.Builder(len(buf) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def weight_spans(buf: bytes, min_size: int = 64) -> list[tuple[int, int]]:
    """(start, end) byte ranges of the buffers' inline data of at least `min_size` bytes: weights,
    whose corruption changes numbers but not the file's structure."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(buf, 0)
    spans = []
    for i in range(model.BuffersLength()):
        table = model.Buffers(i)._tab
        field = table.Offset(4)
        if field and table.VectorLen(field) >= min_size:
            start = table.Vector(field)
            spans.append((start, start + table.VectorLen(field)))
    return spans


def _structure_offset(size: int, rng: np.random.Generator, avoid: list[tuple[int, int]], width: int) -> int:
    """A random offset in 0..size-width that is not inside an `avoid` span."""
    for _ in range(1000):
        at = int(rng.integers(0, size - width + 1))
        if not any(start <= at < end for start, end in avoid):
            return at
    return at


def mutate(buf: bytes, rng: np.random.Generator, avoid: list[tuple[int, int]] = ()) -> tuple[str, bytes]:
    """One seeded corruption of `buf` -> (description, bytes). Kinds: flip 1-4 bytes; write a
    large or small 32-bit value, or a 16-bit one (vtable entries are 16-bit), at a random
    offset (4-aligned three times in four, as flatbuffer fields are); truncate."""
    data = bytearray(buf)
    kind = MUTATION_KINDS[int(rng.integers(len(MUTATION_KINDS)))]
    if kind == "truncate":
        cut = int(rng.integers(8, len(data)))
        return f"truncate@{cut}", bytes(data[:cut])
    if kind == "flip":
        spots = [_structure_offset(len(data), rng, avoid, 1) for _ in range(int(rng.integers(1, 5)))]
        for at in spots:
            data[at] ^= int(rng.integers(1, 256))
        return f"flip@{','.join(map(str, spots))}", bytes(data)
    width = 4 if kind == "int32" else 2
    at = _structure_offset(len(data), rng, avoid, width)
    if kind == "int32" and rng.random() < 0.75:
        at -= at % 4
    if kind == "int32":
        value = (_INT32_VALUES + (len(buf) + 4, int(rng.integers(0, 2**32))))[int(rng.integers(len(_INT32_VALUES) + 2))]
    else:
        value = (0xFFFF, 0x8000, 0x7FFF, 0, 4, int(rng.integers(0, 2**16)))[int(rng.integers(6))]
    data[at:at + width] = int(value).to_bytes(width, "little")
    return f"{kind}@{at}={value:#x}", bytes(data)


def mutations(buf: bytes, n: int, seed: int, avoid: list[tuple[int, int]] = ()) -> list[tuple[str, bytes]]:
    """`n` seeded corruptions of `buf` (see mutate)."""
    rng = np.random.default_rng(seed)
    return [mutate(buf, rng, avoid) for _ in range(n)]


# The child: loads each file named on stdin's JSON list, runs one inference on zeros, and
# prints "start <i>" before and "<outcome> <i> <detail>" after each, flushed, so the parent
# knows which file a crash or a hang belongs to.
_CHILD = r"""
import json, resource, sys, time
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import numpy as np
from edge_ser.errors import ModelError
from edge_ser.session import open_session
paths = json.loads(sys.stdin.read())
first = int(sys.argv[2])
for i in range(first, len(paths)):
    path = paths[i]
    print("start", i, flush=True)
    t0 = time.perf_counter()
    try:
        session = open_session(path)
        frames = session.fixed_frames or 100
        session(np.zeros((1, session.info.feature_config.n_mels, frames), np.float32))
        outcome, detail = "ok", ""
    except ModelError as e:
        message = str(e)
        good = "\n" not in message and path in message
        outcome, detail = ("model_error" if good else "bad_message"), message
    except MemoryError as e:
        outcome, detail = "memory", repr(e)
    except Exception as e:
        outcome, detail = "other", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    seconds = time.perf_counter() - t0
    print(outcome, i, f"{seconds:.3f}", json.dumps(detail), flush=True)
"""


@dataclasses.dataclass
class Outcome:
    kind: str  # see the module docstring
    detail: str  # error message, exception, signal name
    seconds: float | None  # load + one inference; None when the child died or hung


def child_env() -> dict[str, str]:
    """The environment with this checkout first on PYTHONPATH: children import edge_ser from it."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))


def _start_child(paths: list[str], first: int, memory_bytes: int) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(memory_bytes), str(first)], env=child_env(),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    child.stdin.write(json.dumps(paths))
    child.stdin.close()
    return child


def _read_line(child: subprocess.Popen, deadline: float) -> str | None:
    """The child's next stdout line, "" at end of file, None when the deadline passed first."""
    with selectors.DefaultSelector() as sel:
        sel.register(child.stdout, selectors.EVENT_READ)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not sel.select(remaining):
            return None
    return child.stdout.readline()


def _death(child: subprocess.Popen) -> Outcome:
    rc = child.wait()
    stderr = child.stderr.read()
    if "bad_alloc" in stderr or "MemoryError" in stderr:
        return Outcome("memory", stderr.strip().splitlines()[-1], None)
    name = signal.Signals(-rc).name if rc < 0 else f"exit {rc}"
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    return Outcome("crash", f"{name} {last}".strip(), None)


def load_in_children(paths: list[str], timeout: float = 10.0, memory_bytes: int = 4 << 30) -> list[Outcome]:
    """Load each model file and run one inference in a child process (address space limited
    to `memory_bytes`), one child for as many files as it survives: after a crash or a hang
    (more than `timeout` s on one file) a new child goes on with the next file."""
    paths = [os.fspath(p) for p in paths]
    results: list[Outcome | None] = [None] * len(paths)
    first = 0
    while first < len(paths):
        child = _start_child(paths, first, memory_bytes)
        current = None
        while True:
            line = _read_line(child, time.monotonic() + (timeout if current is not None else 60.0))
            if line is None:  # hung: on the current file, or (rarely) starting up
                os.kill(child.pid, signal.SIGKILL)
                child.wait()
                results[current if current is not None else first] = Outcome("timeout", f"> {timeout:g} s", None)
                break
            if not line:  # end of output: done, or died on the current file (or starting up)
                if current is not None or results[first] is None:
                    results[current if current is not None else first] = _death(child)
                else:
                    child.wait()
                break
            word, index, *rest = line.rstrip("\n").split(" ", 3)
            if word == "start":
                current = int(index)
                continue
            results[int(index)] = Outcome(word, json.loads(rest[1]), float(rest[0]))
            current = None
        for stream in (child.stdout, child.stderr):
            stream.close()
        done = [i for i, r in enumerate(results) if r is not None]
        first = max(done) + 1 if done else len(paths)
    return results


def summarise(outcomes: list[Outcome]) -> dict[str, int]:
    return dict(collections.Counter(o.kind for o in outcomes).most_common())


def main(argv=None) -> int:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", help="a valid TFLite model to corrupt")
    parser.add_argument("--tiny", action="store_true", help="corrupt the hand-built tiny model")
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--slow", type=float, default=1.0, help="list files that took longer (s)")
    parser.add_argument("--keep", help="directory to keep the corrupt files in")
    args = parser.parse_args(argv)
    if args.tiny:
        buf = build_tiny_tflite()
    else:
        buf = pathlib.Path(args.model).read_bytes()
    avoid = weight_spans(buf)
    cases = mutations(buf, args.n, args.seed, avoid)
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, (_, data) in enumerate(cases):
            paths.append(folder / f"m{i:04d}.tflite")
            paths[-1].write_bytes(data)
        t0 = time.perf_counter()
        outcomes = load_in_children(paths, args.timeout)
        elapsed = time.perf_counter() - t0
    for i, ((what, _), o) in enumerate(zip(cases, outcomes)):
        if o.kind not in ("ok", "model_error") or (o.seconds or 0) > args.slow:
            print(f"m{i:04d} {what}: {o.kind} {o.seconds} {o.detail[:200]}")
    print(json.dumps(summarise(outcomes)), f"{len(cases)} files in {elapsed:.1f} s")
    problems = {"model_error": set()}
    for o in outcomes:
        if o.kind == "model_error":
            problems["model_error"].add(o.detail.split(": ", 1)[-1].split(" (")[0][:60])
    print(len(problems["model_error"]), "distinct ModelError messages")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    sys.exit(main())
