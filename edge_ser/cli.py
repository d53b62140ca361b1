"""The `edge-ser` command (also `python -m edge_ser`).

    edge-ser infer [--model MODEL] [--threads N] [--format table|json|csv] [--segments]
                   [--timeline] [--output FILE] FILES|DIRS|-
    edge-ser stream [--model MODEL] [--threads N] [--window S] [--hop S]
                    [--format table|json|csv] -|FILE|--mic
    edge-ser info [MODEL | --model MODEL]
    edge-ser vad [--format table|json|csv] [--output FILE] FILES|DIRS|-
    edge-ser check [--model MODEL] FILES|DIRS
    edge-ser bench [--model MODEL]... [--runs N] [--provider P]
    edge-ser --version

MODEL is a packaged model's name (edge_ser.packaged.PACKAGED_NAMES: default, tiny) or an ONNX or
TFLite file; an existing file of that name wins over a packaged name. Without one, the packaged
default model is used.

info: with MODEL, what the model file holds (edge_ser.describe); without, one line per installed
packaged model: name, file, size, labels, cross-validated UA and latency from its model card.

infer: directories are walked recursively for AUDIO_EXTENSIONS (files named on the command line
are read whatever their name; "-" is raw 16-bit little-endian mono PCM at the model's sample
rate on stdin). Files are streamed, so an hour-long recording runs in bounded memory;
--segments adds a row per speech segment (start, end, label, scores), --timeline a row per
scored window. A file that fails is reported on stderr as one line `edge-ser: <path>: <problem>`
and the others still run. Exit codes: 0 all done, 1 some input failed, 2 usage, model or output
error (an --output file, or standard output, that cannot be written, e.g. on a full disk). A
reader that goes away (`| head -1`) ends any command quietly, with exit code 1 when output was
cut short.
--output: written to a temporary file and renamed into place, with the permissions `>` would
give it (an existing file keeps its mode, a new one gets 0666 less the umask); a symbolic link
stays a link to the new file, and a device or FIFO (/dev/null) is written directly.

stream: live raw 16 kHz s16le mono PCM on stdin ("-"), a file, or the microphone (--mic, needs
the sounddevice extra). Windows sit at a fixed hop from the start of the stream, speech or not
(each row says its speech: VAD speech frames as a share of one model window), and each row is
printed and flushed as soon as the window is scored, with the inference latency: table lines,
CSV rows, or JSON Lines (one object per line). End of input or Ctrl-C ends it with exit code 0.

check: does this CPU compute what the model file says? Its optimised kernels against the
runtime's reference kernels on the files' windows (edge_ser.kernel_check; up to
CHECK_WINDOWS_PER_FILE per file): one line, exit code 0 when they agree, 1 when they differ or
an input failed. Run it once on a new device with a few speech files.

--provider cpu|cuda|tensorrt (infer, stream, bench): where an ONNX model runs, when the installed
onnxruntime has that execution provider (onnxruntime-gpu on a Jetson); without it, one line on
stderr says so and the model runs on the CPU. TFLite models always run on the CPU (one line says
so when another provider is asked for).

bench: per-window latency on this machine (edge_ser.bench), one thread, p50/p95 over --runs
calls, of the packaged models (or each --model): one table row per model.

No tracebacks: errors are one line, usage errors too (`COMMAND --help` gives the usage);
EDGE_SER_DEBUG=1 shows the traceback of unexpected ones. Options are checked when parsed:
--threads 1..MAX_THREADS, --window 0.1..60 s (a model's own window has these bounds), --hop
0.01 s (one VAD frame) up to the window, bench's --runs 1..MAX_RUNS.

This module holds the commands only: the output formats are edge_ser.outputs, the fields `info`
prints edge_ser.describe.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import pathlib
import sys
import traceback

from . import __version__
from .config import FRAMES_PER_SECOND
from .contract import MAX_THREADS, MAX_WINDOW_SECONDS, MIN_SPEECH_SHARE, MIN_WINDOW_SECONDS, NO_SPEECH
from .errors import EdgeSerError, ModelError
from .outputs import (WRITERS, LiveWriter, SegmentWriter, StandardOutput, StandardOutputError, check_writable,
                      printable, write_atomically, write_columns, write_fields)
from .packaged import PACKAGED_NAMES
from .progress import Progress

PROG = "edge-ser"
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")  # what a directory walk picks up
STDIN = "-"
STDIN_NAME = "<stdin>"  # how stdin is named in output and messages
EXIT_OK, EXIT_INPUT_FAILED, EXIT_USAGE = 0, 1, 2
CHECK_WINDOWS_PER_FILE = 8
DEBUG_ENV = "EDGE_SER_DEBUG"
MODEL_METAVAR = "NAME|PATH"
MODEL_KINDS = f"a packaged model ({', '.join(PACKAGED_NAMES)}) or an ONNX/TFLite file"
MODEL_HELP = f"{MODEL_KINDS}; an existing file wins over a name (default: the packaged default model)"
PROVIDERS = ("cpu", "cuda", "tensorrt")  # edge_ser.session.PROVIDERS, not imported: --help stays fast
PROVIDER_HELP = "where an ONNX model runs, if this onnxruntime has it (default cpu; TFLite: always the CPU)"
# More threads than any device this runs on has cores; far more crashed LiteRT (1e5), hung
# onnxruntime (1e8), or overflowed its binding's integer (1e20).
THREADS_HELP = f"inference threads, 1 to {MAX_THREADS} (default 1)"
MAX_RUNS = 100_000  # bench: minutes per model on a Pi; 1e12 would never end
MIN_HOP_SECONDS = 1 / FRAMES_PER_SECOND  # one VAD frame: closer windows would share their speech frames


class UsageError(EdgeSerError):
    """A command line that cannot run (exit code 2)."""


def _say(message: str) -> None:
    """One line on stderr, prefixed with the program name; nothing when stderr is closed or
    cannot be written (the exit code still tells)."""
    if sys.stderr is None:
        return
    try:
        print(printable(f"{PROG}: {message}"), file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _problem(error: Exception, *names: str) -> str:
    """An input's error as one line without the leading '<name>: ' the message may carry (any
    of `names`: how the input was given, how it is shown)."""
    text = _one_line(error)
    for name in names:
        if text.startswith(f"{name}: "):
            return text[len(name) + 2:]
    return text


def _display_name(path: str) -> str:
    """How an input is named in results and messages: a file name whose bytes are not UTF-8 (held
    by Python as lone surrogates) is written with those bytes escaped (\\xff), so every output
    format can carry it (issue 22, finding 9)."""
    return STDIN_NAME if path == STDIN else printable(path)


# --- argument parsing ------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit code 2; the usage is a --help away
        _say(f"{message} (see {self.prog} --help)")
        sys.exit(EXIT_USAGE)

    def _print_message(self, message, file=None):
        # --help and --version: argparse's own drops a failed write without a word (exit code 0)
        if message and file is not None and file is sys.stdout:
            out = StandardOutput(file)
            out.write(message)
            out.flush()
        else:
            super()._print_message(message, file)


def _count_up_to(high: int):
    """An argparse type: an integer in 1..high."""
    def count(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not 1 <= value <= high:
            raise argparse.ArgumentTypeError(f"must be 1 to {high}, got {value}")
        return value
    return count


def _seconds_between(low: float, high: float):
    """An argparse type: a number of seconds in [low, high]."""
    def seconds(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
        if not low <= value <= high:  # also refuses nan
            raise argparse.ArgumentTypeError(f"must be {low:g} to {high:g} seconds, got {text}")
        return value
    return seconds


def _model_name(text: str) -> str:
    """An argparse type: a model's name or path (an empty one would be read as ".")."""
    if not text:
        raise argparse.ArgumentTypeError("an empty model name")
    return text


def _output_file(text: str) -> str:
    """An argparse type: --output names a file (new or existing), not a directory."""
    if not text:
        raise argparse.ArgumentTypeError("an empty file name")
    if text.endswith(os.sep) or os.path.basename(text) in (".", "..") or os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text}: is a directory, not a file")
    return text


def _speech_share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a share of speech: {text!r}") from None
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a share of speech in 0..1, got {text}")
    return value


def _add_min_speech(command) -> None:
    command.add_argument("--min-speech", type=_speech_share, default=MIN_SPEECH_SHARE, metavar="SHARE",
                         help=f"label windows, segments and files with less VAD speech than this share of one "
                              f"model window {NO_SPEECH!r} (default {MIN_SPEECH_SHARE:g}; 0: always an emotion)")


def _add_quiet(command) -> None:
    command.add_argument("--quiet", action="store_true",
                         help="no progress line on the terminal for long batches (errors are still reported)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Speech emotion recognition on the device.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for add in (_add_infer, _add_stream, _add_info, _add_vad, _add_check, _add_bench):
        add(commands)
    return parser


def _add_infer(commands) -> None:
    infer = commands.add_parser("infer", help="recognise emotions in audio files")
    infer.add_argument("inputs", nargs="+", metavar="FILE|DIR|-",
                       help=f"audio files, directories (walked for {' '.join(AUDIO_EXTENSIONS)}), "
                            "or - for raw s16le mono PCM on stdin")
    _add_model(infer)
    _add_threads(infer)
    _add_provider(infer)
    infer.add_argument("--format", choices=("table", "json", "csv"), default="table")
    infer.add_argument("--segments", action="store_true",
                       help="also show every speech segment (start, end, label, scores)")
    infer.add_argument("--timeline", action="store_true", help="also show every scored window")
    _add_output(infer)
    _add_quiet(infer)
    _add_min_speech(infer)


def _add_stream(commands) -> None:
    stream = commands.add_parser("stream", help="recognise emotions in live audio, window by window")
    stream.add_argument("source", nargs="?", metavar="-|FILE",
                        help="- for live raw 16 kHz s16le mono PCM on stdin, or an audio file")
    stream.add_argument("--mic", action="store_true",
                        help="read the default microphone (needs: pip install 'edge-ser[mic]')")
    _add_model(stream)
    _add_threads(stream)
    _add_provider(stream)
    stream.add_argument("--window", type=_seconds_between(MIN_WINDOW_SECONDS, MAX_WINDOW_SECONDS), metavar="S",
                        help=f"window length in seconds, {MIN_WINDOW_SECONDS:g} to {MAX_WINDOW_SECONDS:g} "
                             "(default: the model's)")
    stream.add_argument("--hop", type=_seconds_between(MIN_HOP_SECONDS, MAX_WINDOW_SECONDS), metavar="S",
                        help=f"seconds between window starts, {MIN_HOP_SECONDS:g} to --window "
                             "(default: half a window)")
    stream.add_argument("--format", choices=("table", "json", "csv"), default="table",
                        help="json: one object per line (JSON Lines)")
    _add_min_speech(stream)


def _add_info(commands) -> None:
    info = commands.add_parser("info", help="describe a model, or list the packaged models")
    info.add_argument("model", nargs="?", type=_model_name, metavar=MODEL_METAVAR,
                      help=f"{MODEL_KINDS} to describe; without it, list the installed packaged models")
    info.add_argument("--model", dest="model_option", type=_model_name, metavar=MODEL_METAVAR,
                      help="the same, as an option")
    info.add_argument("--format", choices=("table", "json"), default="table",
                      help="json: the summary, the contract metadata and the whole model card")


def _add_vad(commands) -> None:
    vad = commands.add_parser("vad", help="find the speech segments (seconds) in audio files")
    vad.add_argument("inputs", nargs="+", metavar="FILE|DIR|-", help="as for infer")
    vad.add_argument("--format", choices=("table", "json", "csv"), default="table")
    _add_output(vad)
    _add_quiet(vad)


def _add_check(commands) -> None:
    check = commands.add_parser("check", help="check that this CPU's kernels compute what the model says")
    check.add_argument("inputs", nargs="+", metavar="FILE|DIR", help="speech files or directories to take windows from")
    _add_model(check)
    _add_quiet(check)
    check.set_defaults(output=None)  # for_each_input's: check prints one line of its own


def _add_bench(commands) -> None:
    bench = commands.add_parser("bench", help="measure per-window latency of the models on this machine")
    bench.add_argument("--model", action="append", type=_model_name, metavar=MODEL_METAVAR,
                       help=f"{MODEL_KINDS}; repeat for several (default: every installed packaged model)")
    bench.add_argument("--runs", type=_count_up_to(MAX_RUNS), default=None,
                       help=f"timed calls per model, 1 to {MAX_RUNS} (default: edge_ser.bench.DEFAULT_RUNS, 200)")
    _add_provider(bench)


def _add_model(command) -> None:
    command.add_argument("--model", type=_model_name, metavar=MODEL_METAVAR, help=MODEL_HELP)


def _add_threads(command) -> None:
    command.add_argument("--threads", type=_count_up_to(MAX_THREADS), default=1, help=THREADS_HELP)


def _add_output(command) -> None:
    command.add_argument("--output", metavar="FILE", type=_output_file,
                         help="write results here (atomically) instead of stdout")


def _add_provider(command: argparse.ArgumentParser) -> None:
    command.add_argument("--provider", choices=PROVIDERS, default="cpu", help=PROVIDER_HELP)


# --- inputs ----------------------------------------------------------------------------------


def expand_inputs(inputs: list[str]) -> list[tuple[str, str | None]]:
    """Command-line inputs -> [(path, problem or None)], directories walked recursively in
    sorted order; a missing path or a directory without audio is an entry with its problem."""
    found = []
    for item in inputs:
        if item == STDIN:
            found.append((item, None))  # a closed stdin is refused by its reader (audio.stdin_bytes)
        elif os.path.isdir(item):
            files = sorted(str(p) for p in pathlib.Path(item).rglob("*")
                           if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
            found.extend((f, None) for f in files)
            if not files:
                found.append((item, f"no audio files ({' '.join(AUDIO_EXTENSIONS)}) in this directory"))
        else:
            found.append((item, "no such file or directory" if _missing(item) else None))
    return found


def _missing(path: str) -> bool:
    """Whether nothing is at `path`; a path that cannot be looked at (a name too long, a link
    loop) is not missing: reading it names its problem."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False


def _results_to_terminal(args) -> bool:
    """Whether results are printed on the terminal the user watches (then no progress line)."""
    return not args.output and sys.stdout is not None and sys.stdout.isatty()


def _attempt(process, path: str, name: str, progress: Progress):
    """(process(path), None), or (None, the one-line problem) when it fails."""
    try:
        return process(path), None
    except EdgeSerError as e:
        return None, _problem(e, path, name)
    except Exception as e:  # a bug or an unforeseen input: report it, keep going
        if os.environ.get(DEBUG_ENV) == "1":
            progress.clear()
            traceback.print_exc()
        return None, f"unexpected error: {type(e).__name__}: {_one_line(e)}"


def for_each_input(args, process, writer, out) -> int:
    """Run `process(path)` on every input and hand each result to `writer`; a failing input is
    reported on one line and the rest go on. Output goes to --output atomically, else to `out`
    (standard output), flushed after each input."""
    if args.output:
        check_writable(args.output)
    if args.inputs.count(STDIN) > 1:
        raise UsageError("'-' (stdin) can be given only once")
    buffer = io.StringIO() if args.output else out
    writer = writer(buffer)
    failed = 0
    items = expand_inputs(args.inputs)
    progress = Progress.for_batch(len(items), args.quiet, results_to_terminal=_results_to_terminal(args))
    try:
        for done, (path, problem) in enumerate(items, 1):
            name = _display_name(path)
            progress.update(done - 1, name)
            if problem is None:
                result, problem = _attempt(process, path, name, progress)
            if problem is not None:
                failed += 1
                progress.clear()
                _say(f"{name}: {problem}")
                continue
            writer.write(name, result)
            if buffer is out:
                out.flush()  # results appear as each file finishes
    finally:  # also on Ctrl-C or a closed pipe: the terminal's line is left clean
        progress.finish()
    writer.close()
    if args.output:
        write_atomically(args.output, buffer.getvalue())
    return EXIT_INPUT_FAILED if failed else EXIT_OK


# --- infer -----------------------------------------------------------------------------------


def run_infer(args, out) -> int:
    recognizer = open_recognizer(args.model, args.threads, args.provider, args.min_speech)
    return for_each_input(args, recognizer.predict,
                          lambda buffer: WRITERS[args.format](buffer, args.timeline, recognizer.labels,
                                                              segments=args.segments), out)


def open_recognizer(model: str | None, threads: int, provider: str, min_speech: float = MIN_SPEECH_SHARE):
    """A Recognizer on `provider`; one line on stderr when that provider is not the one in use."""
    from .recognizer import Recognizer  # imported here so --version/--help stay fast

    recognizer = Recognizer(model, threads=threads, min_speech=min_speech, provider=provider)
    if recognizer.session.provider_notice:
        _say(recognizer.session.provider_notice)
    return recognizer


# --- stream ----------------------------------------------------------------------------------


def stream_source(args):
    """The stream command's input: "-" (stdin PCM), a file, or microphone chunks."""
    from .stream import microphone_chunks

    if args.mic == (args.source is not None):
        raise UsageError("stream needs exactly one input: - (stdin), a FILE, or --mic")
    return microphone_chunks() if args.mic else args.source


def run_stream(args, out) -> int:
    try:
        stream_windows(args, out)
    except KeyboardInterrupt:  # Ctrl-C is how a live stream ends (also while the model loads)
        pass
    return EXIT_OK


def stream_windows(args, out) -> None:
    """Write a row per window of the stream command's input until it ends."""
    source = stream_source(args)
    recognizer = open_recognizer(args.model, args.threads, args.provider, args.min_speech)
    window = args.window or recognizer.info.window_seconds
    if args.hop is not None and args.hop > window:
        raise UsageError(f"--hop ({args.hop:g} s) must not exceed the window ({window:g} s)")
    writer = LiveWriter(out, args.format, recognizer.labels)
    for w in recognizer.stream(source, window=window, hop=args.hop):
        writer.write(w)


# --- vad -------------------------------------------------------------------------------------


def run_vad(args, out) -> int:
    from .stream import file_speech_segments  # streamed: an hour runs in bounded memory

    return for_each_input(args, file_speech_segments, lambda buffer: SegmentWriter(buffer, args.format), out)


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


def run_check(args, out) -> int:
    import numpy as np

    from .kernel_check import kernel_check
    from .recognizer import Recognizer

    if STDIN in args.inputs:
        raise UsageError("check reads files, not stdin ('-')")
    recognizer = Recognizer(args.model)
    needed = CHECK_WINDOWS_PER_FILE * recognizer.window_samples
    found = []
    status = for_each_input(args, lambda path: recognizer.log_mel_windows(
        head_of(path, recognizer.sample_rate, needed), CHECK_WINDOWS_PER_FILE),
        lambda buffer: WindowCollector(found), out)
    if not found:  # every input has had its line on stderr; the verdict says none was usable
        out.write(f"{recognizer.session.path}: not checked: no input could be read\n")
        return EXIT_INPUT_FAILED
    result = kernel_check(recognizer.session.path, np.concatenate(found))
    out.write(result.summary(recognizer.session.path) + "\n")
    return status if result.ok else EXIT_INPUT_FAILED


# --- bench -----------------------------------------------------------------------------------


def run_bench(args, out) -> int:
    from .bench import DEFAULT_RUNS, bench_model, table
    from .packaged import installed

    models = [(m, m) for m in args.model] if args.model else [(name, path) for name, path in installed()]
    if not models:
        raise ModelError("no packaged model is installed; pass --model PATH")
    rows = [bench_model(name, open_recognizer(model, 1, args.provider), args.runs or DEFAULT_RUNS)
            for name, model in models]
    write_columns(out, table(rows))
    return EXIT_OK


# --- info ------------------------------------------------------------------------------------


def run_info(args, out) -> int:
    from .describe import describe, describe_json
    from .packaged import resolve_model

    if args.model is not None and args.model_option is not None:
        raise UsageError("info takes one model: NAME|PATH or --model NAME|PATH, not both")
    model = args.model if args.model is not None else args.model_option
    if model is None:
        return list_packaged_models(out)
    path = str(resolve_model(model))
    if args.format == "json":
        json.dump(describe_json(path), out, indent=1, ensure_ascii=False)
        out.write("\n")
    else:
        write_fields(out, describe(path, model))
    return EXIT_OK


def list_packaged_models(out) -> int:
    """`edge-ser info` without a model: one line per installed packaged model. A model that
    cannot be opened is reported on one line and the others are still listed (exit code 1)."""
    from .describe import packaged_row
    from .packaged import MODELS_DIR, installed

    models = installed()
    if not models:
        raise ModelError(f"no packaged model is installed in {MODELS_DIR}; pass a model PATH")
    rows, failed = [], 0
    for name, path in models:
        try:
            rows.append(packaged_row(name, path))
        except EdgeSerError as e:
            failed += 1
            _say(f"{name}: {_problem(e, str(path))}")
    write_columns(out, rows)
    return EXIT_INPUT_FAILED if failed else EXIT_OK


# --- entry point -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (never raises, never prints a traceback)."""
    out = StandardOutput(sys.stdout)
    try:
        return _run(build_parser(), argv, out)
    except StandardOutputError as e:  # a full disk, say: one line, and no second failure at exit
        _say(_one_line(e))
        _silence_stdout()
        return EXIT_USAGE
    except EdgeSerError as e:
        _say(_one_line(e))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say("interrupted")
        return 130
    except BrokenPipeError:  # stdout closed early (`| head`): stop quietly, as Unix tools do
        _silence_stdout()
        return EXIT_INPUT_FAILED
    except Exception as e:  # the last resort: a bug, or a failure nothing above foresaw
        if os.environ.get(DEBUG_ENV) == "1":
            traceback.print_exc()
        _say(f"unexpected error: {type(e).__name__}: {_one_line(e)} "
             f"(set {DEBUG_ENV}=1 for the traceback)")
        return EXIT_USAGE


COMMANDS = {"infer": run_infer, "stream": run_stream, "info": run_info, "vad": run_vad, "check": run_check,
            "bench": run_bench}


def _run(parser: argparse.ArgumentParser, argv: list[str] | None, out: StandardOutput) -> int:
    """Parse and run one command; its output is flushed here, so that a failing standard
    output is reported like any other error rather than at the interpreter's exit."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help or --version (printed), or a usage error (reported)
        return EXIT_USAGE if e.code else EXIT_OK
    if args.command is None:
        _say(f"a command is required: {', '.join(COMMANDS)} (see {PROG} --help)")
        return EXIT_USAGE
    status = COMMANDS[args.command](args, out)
    out.flush()
    return status


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so Python's flush at exit cannot fail again on what
    is still buffered for a pipe that is gone or a disk that is full."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # closed, or not a real file (tests capture it)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
