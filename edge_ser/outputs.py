"""How the `edge-ser` command writes results: table, CSV and JSON writers, and atomic files.

Per-file writers (`WRITERS`, `SegmentWriter`) take `write(path, result)` once per input and
`close()` at the end (JSON is one document, so it is written then); `LiveWriter` writes and
flushes one line per streamed window; `write_fields` writes "field: value" lines (`edge-ser
info MODEL`), `write_columns` aligned columns (`edge-ser info`'s list of packaged models).
`write_atomically` puts a finished text in place, so a results file is never half written;
`StandardOutput` is stdout with its write errors as one line.
"""
from __future__ import annotations

import csv
import json
import os
import stat
import secrets

from .contract import NO_SPEECH
from .errors import OutputError

TEMPORARY_PREFIX = 100  # characters of the results file's name in its temporary's: names stay under 255
TEMPORARY_ATTEMPTS = 100
TOP_SCORES = 3  # scores shown per row in table output


def _label_width(labels: list[str]) -> int:
    return max(len(x) for x in [*labels, NO_SPEECH])


def _top(scores: dict[str, float], n: int = TOP_SCORES) -> str:
    """The n best "label score" pairs, best first."""
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


def _span(w) -> dict:
    """A segment or window as a JSON object: start, end, label, speech share, scores."""
    return {"start": w.start, "end": w.end, "label": w.label, "speech": round(w.speech, 3), "scores": w.scores}


class TableWriter:
    """Readable text: one row per file (label and top scores), segment and window rows indented."""

    def __init__(self, out, timeline: bool, labels: list[str], segments: bool = False):
        self.out, self.timeline, self.segments = out, timeline, segments
        self.width = _label_width(labels)

    def write(self, path: str, prediction) -> None:
        self.out.write(f"{path}  {prediction.label:<{self.width}}  {_top(prediction.scores)}"
                       f"  ({prediction.duration:.2f} s)\n")
        for _, w, depth in _rows(prediction, self.segments, self.timeline):
            self.out.write(f"    {'    ' * depth}{w.start:7.2f}-{w.end:<7.2f} {w.label:<{self.width}}"
                           f"  {_top(w.scores)}\n")

    def close(self) -> None:
        pass


class CsvWriter:
    """CSV: file,row,start,end,label,speech,<one column per label>; row is "file", "segment"
    or "window" (a segment's windows follow it); speech is the row's VAD speech as a share of one model window."""

    def __init__(self, out, timeline: bool, labels: list[str], segments: bool = False):
        self.timeline, self.labels, self.segments = timeline, labels, segments
        self.csv = csv.writer(out, lineterminator="\n")
        self.csv.writerow(["file", "row", "start", "end", "label", "speech", *labels])

    def _row(self, path, kind, start, end, row):
        self.csv.writerow([path, kind, f"{start:.3f}", f"{end:.3f}", row.label, f"{row.speech:.3f}",
                           *(f"{row.scores[x]:.6f}" for x in self.labels)])

    def write(self, path: str, prediction) -> None:
        self._row(path, "file", 0.0, prediction.duration, prediction)
        for kind, w, _ in _rows(prediction, self.segments, self.timeline):
            self._row(path, kind, w.start, w.end, w)

    def close(self) -> None:
        pass


class JsonWriter:
    """One JSON document: a list of {file, label, speech, scores, duration[, segments][, timeline]}."""

    def __init__(self, out, timeline: bool, labels: list[str], segments: bool = False):
        self.out, self.timeline, self.segments, self.results = out, timeline, segments, []

    def write(self, path: str, prediction) -> None:
        result = {"file": path, "label": prediction.label, "speech": round(prediction.speech, 3),
                  "scores": prediction.scores, "duration": prediction.duration}
        if self.segments:
            result["segments"] = [_span(s) for s in prediction.segments]
        if self.timeline:
            result["timeline"] = [_span(w) for w in prediction.timeline]
        self.results.append(result)

    def close(self) -> None:
        json.dump(self.results, self.out, indent=2)
        self.out.write("\n")


WRITERS = {"table": TableWriter, "csv": CsvWriter, "json": JsonWriter}  # per --format, for predictions


class LiveWriter:
    """One line per streamed window, flushed at once: table, CSV (header first) or JSON Lines.
    Columns: start, end (s from the start of the stream), label, speech (its VAD speech frames as
    a share of one model window), the inference latency in ms, then the scores (table: the top
    TOP_SCORES)."""

    def __init__(self, out, fmt: str, labels: list[str]):
        self.out, self.fmt, self.labels = out, fmt, labels
        self.width = _label_width(labels)
        if fmt == "csv":
            self.csv = csv.writer(out, lineterminator="\n")
            self.csv.writerow(["start", "end", "label", "speech", "latency_ms", *labels])
            out.flush()

    def write(self, w) -> None:
        if self.fmt == "json":
            self.out.write(json.dumps({**_span(w), "latency_ms": round(w.latency_ms, 3)}) + "\n")
        elif self.fmt == "csv":
            self.csv.writerow([f"{w.start:.3f}", f"{w.end:.3f}", w.label, f"{w.speech:.3f}",
                               f"{w.latency_ms:.3f}", *(f"{w.scores[x]:.6f}" for x in self.labels)])
        else:
            self.out.write(f"{w.start:8.2f}-{w.end:<8.2f} {w.label:<{self.width}}  {_top(w.scores)}"
                           f"  speech {w.speech:.2f}  {w.latency_ms:6.1f} ms\n")
        self.out.flush()


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


def write_fields(out, rows: list[tuple[str, str]]) -> None:
    """Write (field, value) rows as "field: value" lines, the values in one column."""
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        out.write(f"{key + ':':<{width + 1}} {value}\n")


def write_columns(out, rows: list[list[str]]) -> None:
    """Write rows of cells as lines, each column left-aligned to its widest cell, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))] if rows else []
    for row in rows:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n")


STDOUT_PROBLEM = "cannot write results to standard output"


def printable(text: str) -> str:
    """`text` as UTF-8 can carry it: a file name's bytes that are not UTF-8 (held by Python as
    lone surrogates, "\\udcff") become escapes ("\\xff"), where a strict UTF-8 stream would
    raise UnicodeEncodeError (issue 22, finding 9)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # surrogates no file name gives: escaped one by one
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


class StandardOutput:
    """Standard output as results go to it: a write or flush that fails (a full disk, a closed
    descriptor) raises StandardOutputError, one line naming standard output, instead of a bare
    OSError. BrokenPipeError passes through: the reader has gone (`| head`), and the command
    ends quietly, as Unix tools do."""

    def __init__(self, stream):
        self.stream = stream  # sys.stdout; None when the process was started with it closed

    def write(self, text: str) -> int:
        return self._guarded(lambda stream: stream.write(printable(text)))

    def writelines(self, lines) -> None:
        self._guarded(lambda stream: stream.writelines(printable(line) for line in lines))

    def flush(self) -> None:
        if self.stream is not None:  # a closed stdout nothing was written to is no failure
            self._guarded(lambda stream: stream.flush())

    def _guarded(self, operation):
        if self.stream is None:
            raise StandardOutputError(f"{STDOUT_PROBLEM}: it is closed")
        try:
            return operation(self.stream)
        except BrokenPipeError:
            raise
        except OSError as e:
            raise StandardOutputError(f"{STDOUT_PROBLEM}: {e.strerror or e}") from None


class StandardOutputError(OutputError):
    """Standard output cannot take the results (the CLI also stops Python's own exit flush from
    failing on what is still buffered)."""


def check_writable(path: str) -> None:
    """OutputError naming `path` unless the results can go there: checked before the work
    starts, so that no batch is processed only for its results to be thrown away. A regular
    file (or a new one) needs a temporary file to be creatable beside it (see
    `write_atomically`); a device or FIFO needs write permission."""
    if _is_special(path):
        if not os.access(path, os.W_OK):
            raise _output_error(path, "Permission denied")
        return
    target = _target(path)
    _existing_mode(path, target)  # a link loop, say, fails here
    fd, tmp = _temporary_beside(path, target)
    os.close(fd)
    os.unlink(tmp)


def write_atomically(path: str, text: str) -> None:
    """Write `text` to a temporary file beside `path`, flush it to disk, then rename it into
    place; OutputError naming `path` when it cannot be written (no file is left behind).

    The file ends up with the permission bits `>` would give it: an existing file keeps its
    own (less setuid/setgid/sticky, which a write clears), a new one gets 0666 less the umask
    (not mkstemp's 0600); its owner is whoever writes it. A symbolic link stays a link and the
    file it points to is replaced. A device or FIFO (`--output /dev/null`, `/dev/stdout` on a
    pipe) is written directly: renaming over it would replace the node with a regular file."""
    if _is_special(path):
        _write_directly(path, text)
        return
    target = _target(path)
    mode = _existing_mode(path, target)
    fd, tmp = _temporary_beside(path, target)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            f.write(printable(text))
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename: a power cut leaves the old file or the new
        os.replace(tmp, target)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise _output_error(path, e) from None
        raise


def _output_error(path: str, error: OSError | str) -> OutputError:
    reason = error if isinstance(error, str) else error.strerror or error
    return OutputError(f"{path}: cannot write output ({reason})")


def _target(path: str) -> str:
    """The file `path` names, symbolic links followed (a link's target is what gets replaced)."""
    return os.path.realpath(path)


def _is_special(path: str) -> bool:
    """Whether `path` exists and is neither a regular file nor a directory (a device, FIFO,
    socket). Asked of the path itself, not its realpath: /dev/stdout on a pipe resolves to a
    /proc name that is no path, while stat() follows it to the pipe."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _existing_mode(path: str, target: str) -> int | None:
    """The existing file's permission bits (rwx only), or None for a new file."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode) & 0o777
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _output_error(path, e) from None


def _temporary_beside(path: str, target: str) -> tuple[int, str]:
    """(fd, name) of a new temporary file in `target`'s directory, created 0666 so that the
    kernel applies the umask as for any new file; OutputError naming `path`."""
    directory, name = os.path.split(target)
    for _ in range(TEMPORARY_ATTEMPTS):
        tmp = os.path.join(directory, f".{name[:TEMPORARY_PREFIX]}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as e:
            raise _output_error(path, e) from None
    raise _output_error(path, "no free temporary name beside it")


def _write_directly(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(printable(text))
    except OSError as e:
        raise _output_error(path, e) from None
