"""The `edge-ser` command (also `python -m edge_ser`).

    edge-ser infer [--model PATH] [--threads N] [--format table|json|csv] [--segments]
                   [--timeline] [--output FILE] FILES|DIRS|-
    edge-ser stream [--model PATH] [--threads N] [--window S] [--hop S]
                    [--format table|json|csv] -|FILE|--mic
    edge-ser info --model PATH
    edge-ser vad [--format table|json|csv] [--output FILE] FILES|DIRS|-
    edge-ser check [--model PATH] FILES|DIRS
    edge-ser --version

infer: directories are walked recursively for AUDIO_EXTENSIONS (files named on the command line
are read whatever their name; "-" is raw 16-bit little-endian mono PCM at the model's sample
rate on stdin). Files are streamed, so an hour-long recording runs in bounded memory;
--segments adds a row per speech segment (start, end, label, scores), --timeline a row per
scored window. A file that fails is reported on stderr as one line `edge-ser: <path>: <problem>`
and the others still run. Exit codes: 0 all done, 1 some input failed, 2 usage or model error.

stream: live raw 16 kHz s16le mono PCM on stdin ("-"), a file, or the microphone (--mic, needs
the sounddevice extra). Windows sit at a fixed hop from the start of the stream, speech or not
(each row says its share of VAD speech frames), and each row is printed and flushed as soon as
the window is scored, with the inference latency: table lines, CSV rows, or JSON Lines (one
object per line). End of input or Ctrl-C ends it with exit code 0.

check: does this CPU compute what the model file says? Its optimised kernels against the
runtime's reference kernels on the files' windows (edge_ser.kernel_check; up to
CHECK_WINDOWS_PER_FILE per file): one line, exit code 0 when they agree, 1 when they differ or
an input failed. Run it once on a new device with a few speech files.

No tracebacks: errors are one line; EDGE_SER_DEBUG=1 shows the traceback of unexpected ones.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import pathlib
import sys
import tempfile
import traceback

from . import __version__
from .errors import EdgeSerError, ModelError

PROG = "edge-ser"
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")  # what a directory walk picks up
STDIN = "-"
STDIN_NAME = "<stdin>"  # how stdin is named in output and messages
EXIT_OK, EXIT_INPUT_FAILED, EXIT_USAGE = 0, 1, 2
TOP_SCORES = 3  # scores shown per row in table output
CHECK_WINDOWS_PER_FILE = 8
DEBUG_ENV = "EDGE_SER_DEBUG"


class UsageError(EdgeSerError):
    """A command line that cannot run (exit code 2)."""


def _say(message: str) -> None:
    """One line on stderr, prefixed with the program name."""
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _problem(error: Exception, name: str) -> str:
    """An input's error as one line without the leading '<name>: ' the message may carry."""
    text = _one_line(error)
    return text[len(name) + 2:] if text.startswith(f"{name}: ") else text


def _display_name(path: str) -> str:
    return STDIN_NAME if path == STDIN else path


# --- argument parsing ------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line (plus usage) and exit code 2, as argparse does
        self.print_usage(sys.stderr)
        _say(message)
        sys.exit(EXIT_USAGE)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Speech emotion recognition on the device.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    infer = commands.add_parser("infer", help="recognise emotions in audio files")
    infer.add_argument("inputs", nargs="+", metavar="FILE|DIR|-",
                       help=f"audio files, directories (walked for {' '.join(AUDIO_EXTENSIONS)}), "
                            "or - for raw s16le mono PCM on stdin")
    infer.add_argument("--model", help="ONNX or TFLite model (default: the packaged model)")
    infer.add_argument("--threads", type=_positive_int, default=1, help="inference threads (default 1)")
    infer.add_argument("--format", choices=("table", "json", "csv"), default="table")
    infer.add_argument("--segments", action="store_true",
                       help="also show every speech segment (start, end, label, scores)")
    infer.add_argument("--timeline", action="store_true", help="also show every scored window")
    infer.add_argument("--output", metavar="FILE", help="write results here (atomically) instead of stdout")
    stream = commands.add_parser("stream", help="recognise emotions in live audio, window by window")
    stream.add_argument("source", nargs="?", metavar="-|FILE",
                        help="- for live raw 16 kHz s16le mono PCM on stdin, or an audio file")
    stream.add_argument("--mic", action="store_true",
                        help="read the default microphone (needs: pip install 'edge-ser[mic]')")
    stream.add_argument("--model", help="ONNX or TFLite model (default: the packaged model)")
    stream.add_argument("--threads", type=_positive_int, default=1, help="inference threads (default 1)")
    stream.add_argument("--window", type=_positive_seconds, metavar="S",
                        help="window length in seconds (default: the model's)")
    stream.add_argument("--hop", type=_positive_seconds, metavar="S",
                        help="seconds between window starts, at most --window (default: half a window)")
    stream.add_argument("--format", choices=("table", "json", "csv"), default="table",
                        help="json: one object per line (JSON Lines)")
    info = commands.add_parser("info", help="describe a model file")
    info.add_argument("--model", help="ONNX or TFLite model (default: the packaged model)")
    vad = commands.add_parser("vad", help="find the speech segments (seconds) in audio files")
    vad.add_argument("inputs", nargs="+", metavar="FILE|DIR|-", help="as for infer")
    vad.add_argument("--format", choices=("table", "json", "csv"), default="table")
    vad.add_argument("--output", metavar="FILE", help="write results here (atomically) instead of stdout")
    check = commands.add_parser("check", help="check that this CPU's kernels compute what the model says")
    check.add_argument("inputs", nargs="+", metavar="FILE|DIR", help="speech files or directories to take windows from")
    check.add_argument("--model", help="ONNX or TFLite model (default: the packaged model)")
    check.set_defaults(output=None)  # for_each_input's: check prints one line of its own
    return parser


# --- infer -----------------------------------------------------------------------------------


def expand_inputs(inputs: list[str]) -> list[tuple[str, str | None]]:
    """Command-line inputs -> [(path, problem or None)], directories walked recursively in
    sorted order; a missing path or a directory without audio is an entry with its problem."""
    found = []
    for item in inputs:
        if item == STDIN:
            found.append((item, None))
        elif os.path.isdir(item):
            files = sorted(str(p) for p in pathlib.Path(item).rglob("*")
                           if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
            found.extend((f, None) for f in files)
            if not files:
                found.append((item, f"no audio files ({' '.join(AUDIO_EXTENSIONS)}) in this directory"))
        elif os.path.lexists(item):
            found.append((item, None))
        else:
            found.append((item, "no such file or directory"))
    return found


def _top(scores: dict[str, float], n: int = TOP_SCORES) -> str:
    best = sorted(scores.items(), key=lambda kv: -kv[1])[:n]
    return "  ".join(f"{label} {p:.2f}" for label, p in best)


def _rows(prediction, segments: bool, timeline: bool):
    """(kind, row, depth) for the rows below a file's: segments, windows, or segments each
    followed by its windows (depth 1 below a segment)."""
    if not segments:
        return [("window", w, 0) for w in prediction.timeline] if timeline else []
    rows = []
    for segment in prediction.segments:
        rows.append(("segment", segment, 0))
        rows.extend(("window", w, 1) for w in segment.windows if timeline)
    return rows


class TableWriter:
    """Readable text: one row per file (label and top scores), segment and window rows indented."""

    def __init__(self, out, timeline: bool, labels: list[str], segments: bool = False):
        self.out, self.timeline, self.segments = out, timeline, segments
        self.width = max(len(x) for x in labels)

    def write(self, path: str, prediction) -> None:
        self.out.write(f"{path}  {prediction.label:<{self.width}}  {_top(prediction.scores)}"
                       f"  ({prediction.duration:.2f} s)\n")
        for _, w, depth in _rows(prediction, self.segments, self.timeline):
            self.out.write(f"    {'    ' * depth}{w.start:7.2f}-{w.end:<7.2f} {w.label:<{self.width}}"
                           f"  {_top(w.scores)}\n")

    def close(self) -> None:
        pass


class CsvWriter:
    """CSV: file,row,start,end,label,<one column per label>; row is "file", "segment" or
    "window" (a segment's windows follow it)."""

    def __init__(self, out, timeline: bool, labels: list[str], segments: bool = False):
        self.timeline, self.labels, self.segments = timeline, labels, segments
        self.csv = csv.writer(out, lineterminator="\n")
        self.csv.writerow(["file", "row", "start", "end", "label", *labels])

    def _row(self, path, kind, start, end, label, scores):
        self.csv.writerow([path, kind, f"{start:.3f}", f"{end:.3f}", label,
                           *(f"{scores[x]:.6f}" for x in self.labels)])

    def write(self, path: str, prediction) -> None:
        self._row(path, "file", 0.0, prediction.duration, prediction.label, prediction.scores)
        for kind, w, _ in _rows(prediction, self.segments, self.timeline):
            self._row(path, kind, w.start, w.end, w.label, w.scores)

    def close(self) -> None:
        pass


def _span(w) -> dict:
    return {"start": w.start, "end": w.end, "label": w.label, "scores": w.scores}


class JsonWriter:
    """One JSON document: a list of {file, label, scores, duration[, segments][, timeline]}."""

    def __init__(self, out, timeline: bool, labels: list[str], segments: bool = False):
        self.out, self.timeline, self.segments, self.results = out, timeline, segments, []

    def write(self, path: str, prediction) -> None:
        result = {"file": path, "label": prediction.label, "scores": prediction.scores,
                  "duration": prediction.duration}
        if self.segments:
            result["segments"] = [_span(s) for s in prediction.segments]
        if self.timeline:
            result["timeline"] = [_span(w) for w in prediction.timeline]
        self.results.append(result)

    def close(self) -> None:
        json.dump(self.results, self.out, indent=2)
        self.out.write("\n")


WRITERS = {"table": TableWriter, "csv": CsvWriter, "json": JsonWriter}


def write_atomically(path: str, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it into place."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise UsageError(f"{path}: cannot write output ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise UsageError(f"{path}: cannot write output ({e.strerror or e})") from None
        raise


def for_each_input(args, process, writer) -> int:
    """Run `process(path)` on every input and hand each result to `writer`; a failing input is
    reported on one line and the rest go on. Output goes to --output atomically, else stdout."""
    if args.output and os.path.isdir(args.output):
        raise UsageError(f"{args.output}: --output is a directory")
    if args.inputs.count(STDIN) > 1:
        raise UsageError("'-' (stdin) can be given only once")
    buffer = io.StringIO() if args.output else sys.stdout
    writer = writer(buffer)
    failed = 0
    for path, problem in expand_inputs(args.inputs):
        name = _display_name(path)
        if problem is None:
            try:
                result = process(path)
            except EdgeSerError as e:
                problem = _problem(e, name)
            except Exception as e:  # a bug or an unforeseen input: report it, keep going
                if os.environ.get(DEBUG_ENV) == "1":
                    traceback.print_exc()
                problem = f"unexpected error: {type(e).__name__}: {_one_line(e)}"
        if problem is not None:
            failed += 1
            _say(f"{name}: {problem}")
            continue
        writer.write(name, result)
        if buffer is sys.stdout:
            sys.stdout.flush()  # results appear as each file finishes
    writer.close()
    if args.output:
        write_atomically(args.output, buffer.getvalue())
    return EXIT_INPUT_FAILED if failed else EXIT_OK


def run_infer(args) -> int:
    from .recognizer import Recognizer  # imported here so --version/--help stay fast

    recognizer = Recognizer(args.model, threads=args.threads)
    return for_each_input(args, recognizer.predict,
                          lambda out: WRITERS[args.format](out, args.timeline, recognizer.labels,
                                                           segments=args.segments))


# --- stream ----------------------------------------------------------------------------------


class LiveWriter:
    """One line per streamed window, flushed at once: table, CSV (header first) or JSON Lines.
    Columns: start, end (s from the start of the stream), label, the share of VAD speech
    frames, the inference latency in ms, then the scores (table: the top TOP_SCORES)."""

    def __init__(self, out, fmt: str, labels: list[str]):
        self.out, self.fmt, self.labels = out, fmt, labels
        self.width = max(len(x) for x in labels)
        if fmt == "csv":
            self.csv = csv.writer(out, lineterminator="\n")
            self.csv.writerow(["start", "end", "label", "speech", "latency_ms", *labels])
            out.flush()

    def write(self, w) -> None:
        if self.fmt == "json":
            self.out.write(json.dumps({**_span(w), "speech": round(w.speech, 3),
                                       "latency_ms": round(w.latency_ms, 3)}) + "\n")
        elif self.fmt == "csv":
            self.csv.writerow([f"{w.start:.3f}", f"{w.end:.3f}", w.label, f"{w.speech:.3f}",
                               f"{w.latency_ms:.3f}", *(f"{w.scores[x]:.6f}" for x in self.labels)])
        else:
            self.out.write(f"{w.start:8.2f}-{w.end:<8.2f} {w.label:<{self.width}}  {_top(w.scores)}"
                           f"  speech {w.speech:.2f}  {w.latency_ms:6.1f} ms\n")
        self.out.flush()


def stream_source(args):
    """The stream command's input: "-" (stdin PCM), a file, or microphone chunks."""
    from .stream import microphone_chunks

    if args.mic == (args.source is not None):
        raise UsageError("stream needs exactly one input: - (stdin), a FILE, or --mic")
    return microphone_chunks() if args.mic else args.source


def run_stream(args) -> int:
    from .recognizer import Recognizer

    source = stream_source(args)
    recognizer = Recognizer(args.model, threads=args.threads)
    window = args.window or recognizer.info.window_seconds
    if args.hop is not None and args.hop > window:
        raise UsageError(f"--hop ({args.hop:g} s) must not exceed the window ({window:g} s)")
    writer = LiveWriter(sys.stdout, args.format, recognizer.labels)
    try:
        for w in recognizer.stream(source, window=window, hop=args.hop):
            writer.write(w)
    except KeyboardInterrupt:  # Ctrl-C is how a live stream ends
        pass
    return EXIT_OK


class SegmentWriter:
    """Speech segments per file: table (one line per segment), csv (file,start,end) or json."""

    def __init__(self, out, fmt: str):
        self.out, self.fmt, self.results = out, fmt, []
        if fmt == "csv":
            self.out.write("file,start,end\n")

    def write(self, path: str, segments) -> None:
        if self.fmt == "json":
            self.results.append({"file": path, "segments": [[round(a, 3), round(b, 3)] for a, b in segments]})
        elif self.fmt == "csv":
            self.out.writelines(f"{path},{a:.3f},{b:.3f}\n" for a, b in segments)
        else:
            self.out.write(f"{path}  {len(segments)} speech segment{'s' * (len(segments) != 1)}\n")
            self.out.writelines(f"    {a:7.2f}-{b:<7.2f}\n" for a, b in segments)

    def close(self) -> None:
        if self.fmt == "json":
            json.dump(self.results, self.out, indent=2)
            self.out.write("\n")


def run_vad(args) -> int:
    from .audio import load_audio
    from .vad import speech_segments

    return for_each_input(args, lambda path: speech_segments(load_audio(path)),
                          lambda out: SegmentWriter(out, args.format))


# --- check -----------------------------------------------------------------------------------


class WindowCollector:
    """`for_each_input`'s writer for check: keeps each file's log-mel windows."""

    def __init__(self, found: list):
        self.found = found

    def write(self, path: str, windows) -> None:
        self.found.append(windows)

    def close(self) -> None:
        pass


def head_of(path: str, sample_rate: int, n_samples: int):
    """The first `n_samples` of an audio file (mono float32 at `sample_rate`), read block by
    block, so a long recording is not loaded whole."""
    import numpy as np

    from .stream import audio_chunks

    blocks, total = [], 0
    for block in audio_chunks(path, sample_rate):
        blocks.append(block)
        total += len(block)
        if total >= n_samples:
            break
    return np.concatenate(blocks)[:n_samples] if blocks else np.zeros(0, np.float32)


def run_check(args) -> int:
    import numpy as np

    from .kernel_check import kernel_check
    from .recognizer import Recognizer

    if STDIN in args.inputs:
        raise UsageError("check reads files, not stdin ('-')")
    recognizer = Recognizer(args.model)
    needed = CHECK_WINDOWS_PER_FILE * recognizer.window_samples
    found = []
    status = for_each_input(args, lambda path: recognizer.log_mel_windows(
        head_of(path, recognizer.sample_rate, needed), CHECK_WINDOWS_PER_FILE), lambda out: WindowCollector(found))
    if not found:
        _say("check: no input could be read")
        return EXIT_INPUT_FAILED
    result = kernel_check(recognizer.session.path, np.concatenate(found))
    print(result.summary(recognizer.session.path), flush=True)
    return status if result.ok else EXIT_INPUT_FAILED


# --- info ------------------------------------------------------------------------------------

QUANTIZED_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger",
                 "ConvInteger")


def onnx_details(path: str) -> dict[str, str]:
    """Parameter count, opset and quantization of an ONNX file, read with `onnx` if installed."""
    try:
        import onnx
    except ImportError:
        unknown = "unknown (needs the onnx package)"
        return {"parameters": unknown, "opset": unknown, "quantized": unknown}
    import numpy as np

    model = onnx.load(path, load_external_data=False)
    graph = model.graph
    params = sum(int(np.prod(t.dims)) for t in graph.initializer)
    opset = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
    int8 = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    ops = sorted({n.op_type for n in graph.node
                  if n.op_type in QUANTIZED_OPS or n.op_type.startswith("QLinear")})
    int8_tensors = sum(t.data_type in int8 for t in graph.initializer)
    quantized = "no"
    if ops or int8_tensors:
        quantized = "yes (" + ", ".join(ops + ([f"{int8_tensors} int8 tensors"] if int8_tensors else [])
                                        + weight_width(graph)) + ")"
    return {"parameters": f"{params:,}", "opset": opset, "quantized": quantized}


def weight_width(graph) -> list[str]:
    """["7-bit weights"] or ["8-bit weights ..."] from the signed int8 initializers' range (the
    weights; activation zero points are uint8), [] without any. 8-bit weights can saturate on
    x86 CPUs with AVX2 but no VNNI (edge_ser.kernel_check)."""
    import numpy as np
    from onnx import TensorProto, numpy_helper

    weights = [numpy_helper.to_array(t) for t in graph.initializer if t.data_type == TensorProto.INT8 and t.dims]
    if not weights:
        return []
    largest = max(int(np.abs(w.astype(np.int16)).max()) for w in weights)
    return ["7-bit weights"] if largest <= 64 else ["8-bit weights: run `edge-ser check` on x86 without VNNI"]


def tflite_details(session) -> dict[str, str]:
    """Quantization of a TFLite model from its tensor types (parameter count: not read)."""
    import numpy as np

    tensors = session._interpreter.get_tensor_details()
    int8 = sum(np.dtype(t["dtype"]) in (np.int8, np.uint8) for t in tensors)
    return {"parameters": "unknown (not read from TFLite files)", "opset": "n/a (TFLite)",
            "quantized": f"yes ({int8} int8 tensors)" if int8 else "no"}


def _size(n_bytes: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n_bytes < 1024 or unit == "GB":
            return f"{n_bytes} {unit}" if unit == "bytes" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024


def card_summary(card: dict) -> list[tuple[str, str]]:
    """Readable lines for the card fields a user asks about first (the rest stays JSON)."""
    rows = []
    if "cross_validation" in card:
        cv = card["cross_validation"]
        for model, scores in cv.get("models", {}).items():
            if "shipped" in model:
                per = ", ".join(f"{c} {100 * s['ua']:.1f}" for c, s in scores.get("per_corpus", {}).items())
                rows.append((f"UA ({model})", f"{100 * scores['pooled']['ua']:.1f} % (WA "
                                              f"{100 * scores['pooled']['wa']:.1f} %; {per}), {cv.get('protocol', '')}"))
    if "training_data" in card:
        rows.append(("trained on", f"{card['training_data'].get('corpus')}, {card['training_data'].get('clips')} clips"))
    if "licence" in card:
        rows.append(("licence", card["licence"]))
    return rows


def run_info(args) -> int:
    from .recognizer import DEFAULT_MODEL
    from .session import OnnxSession, open_session

    if args.model is None:
        if not DEFAULT_MODEL.is_file():
            raise ModelError("no default model is installed yet; pass --model PATH")
        args.model = str(DEFAULT_MODEL)
    session = open_session(args.model)
    info, cfg = session.info, session.info.feature_config
    is_onnx = isinstance(session, OnnxSession)
    details = onnx_details(args.model) if is_onnx else tflite_details(session)
    features = (f"log-mel, {cfg.n_mels} bands, {cfg.fmin:g}-{cfg.fmax:g} Hz, "
                f"{cfg.win_length}-sample window / {cfg.hop_length}-sample hop / n_fft {cfg.n_fft} "
                f"at {cfg.sample_rate} Hz, {cfg.pad} padding{', last frame dropped' * cfg.drop_last_frame}, "
                f"log {cfg.log}, normalize {cfg.normalize}")
    rows = [
        ("model", args.model),
        ("format", "ONNX" if is_onnx else "TFLite"),
        ("format version", info.format_version),
        ("labels", f"{', '.join(info.labels)} ({len(info.labels)})"),
        ("window", f"{info.window_seconds:g} s"),
        ("features", features),
        ("parameters", details["parameters"]),
        ("file size", _size(os.path.getsize(args.model))),
        ("opset", details["opset"]),
        ("quantized", details["quantized"]),
    ]
    if info.card:
        rows += card_summary(info.card)
        rows.append(("model card", json.dumps(info.card, sort_keys=True)))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key + ':':<{width + 1}} {value}")
    return EXIT_OK


# --- entry point -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (never raises, never prints a traceback)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_usage(sys.stderr)
        _say("a command is required: infer, stream, info, vad or check")
        return EXIT_USAGE
    try:
        commands = {"infer": run_infer, "stream": run_stream, "info": run_info, "vad": run_vad,
                    "check": run_check}
        return commands[args.command](args)
    except EdgeSerError as e:
        _say(_one_line(e))
        return EXIT_USAGE
    except KeyboardInterrupt:
        if args.command == "stream":  # Ctrl-C while the model loads: still a clean stop
            return EXIT_OK
        _say("interrupted")
        return 130
    except BrokenPipeError:
        # stdout closed early (`| head`): point it at devnull so the exit flush stays quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_INPUT_FAILED
    except Exception as e:
        if os.environ.get(DEBUG_ENV) == "1":
            traceback.print_exc()
        _say(f"unexpected error: {type(e).__name__}: {_one_line(e)} "
             f"(set {DEBUG_ENV}=1 for the traceback)")
        return EXIT_USAGE
