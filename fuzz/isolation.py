"""Running one case in a child process, so a crash, a hang or a memory blow-up in native code
(onnxruntime, LiteRT, the C extensions) is seen as an outcome instead of ending the fuzzer.

The child is forked from the fuzzing process (the heavy modules are already imported, so a case
costs milliseconds, not an interpreter start), limits its address space with RLIMIT_AS, runs the
function and reports over a pipe. Outcomes: "ok", "refused" (an EdgeSerError: the runtime's
documented one-line refusal), "exception" (any other exception type), "memory" (MemoryError, or
killed by the allocation limit), "crash" (killed by a signal), "timeout".
"""
from __future__ import annotations

import dataclasses
import json
import os
import resource
import select
import signal
import sys
import tempfile
import time
import traceback

from edge_ser.errors import EdgeSerError

ALLOWED = ("ok", "refused")
CHILD_MEMORY_BYTES = 1 << 30  # address space a case may add to what the fuzzer has mapped
CHILD_TIMEOUT_SECONDS = 20.0  # a tiny model loads and runs in well under a second
STDERR_TAIL_BYTES = 600
MAX_ARCS = 20000  # reported per case; a tiny model's load and inference take a few hundred
NATIVE_FAULTS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGFPE, signal.SIGILL)  # of the child's native stderr, kept to explain a crash


@dataclasses.dataclass(frozen=True)
class Outcome:
    kind: str  # one of ok, refused, exception, memory, crash, timeout
    detail: str = ""
    arcs: tuple = ()  # hashes of the line-to-line steps the child took in traced code

    @property
    def allowed(self) -> bool:
        return self.kind in ALLOWED


def run_in_child(function, *args, timeout: float = CHILD_TIMEOUT_SECONDS,
                 memory_bytes: int = CHILD_MEMORY_BYTES, trace_root: str | None = None) -> Outcome:
    """function(*args) in a forked child -> its Outcome (the return value is not kept).
    trace_root: record the arcs the child takes in code under this directory (the coverage
    a coverage-guided parent cannot see across the fork)."""
    limit = _mapped_bytes() + memory_bytes
    read_end, write_end = os.pipe()
    with tempfile.TemporaryFile() as stderr_file:
        pid = os.fork()
        if pid == 0:  # child: never returns
            os.close(read_end)
            _child(function, args, limit, write_end, stderr_file.fileno(), trace_root)
        os.close(write_end)
        try:
            report, timed_out = _read_report(read_end, timeout)
        finally:
            os.close(read_end)
        if timed_out:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        stderr_file.seek(0)
        tail = stderr_file.read()[-STDERR_TAIL_BYTES:].decode("utf-8", "replace").strip()
    if timed_out:
        return Outcome("timeout", f"no result after {timeout:g} s")
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        kind = "memory" if _looks_like_allocation_failure(tail) else "crash"
        return Outcome(kind, f"killed by {signal.Signals(signum).name}" + (f"; stderr: {tail}" if tail else ""))
    if report is None:
        return Outcome("crash", f"exited with status {os.WEXITSTATUS(status)} without a report"
                       + (f"; stderr: {tail}" if tail else ""))
    return Outcome(report["kind"], report["detail"], tuple(report.get("arcs", ())))


def _child(function, args, limit: int, write_end: int, stderr_fd: int, trace_root: str | None) -> None:
    arcs: set = set()
    try:
        for signum in NATIVE_FAULTS:  # libFuzzer's handlers would report the child as the fuzzer's crash
            signal.signal(signum, signal.SIG_DFL)
        os.dup2(stderr_fd, 2)  # native libraries write here; the parent keeps the tail
        os.dup2(stderr_fd, 1)  # onnxruntime's Python wrapper prints its fallbacks to stdout
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        if trace_root:
            sys.settrace(_arc_tracer(trace_root, arcs))
        try:
            function(*args)
            report = {"kind": "ok", "detail": ""}
        except EdgeSerError as e:
            report = {"kind": "refused", "detail": str(e)}
        except MemoryError:
            report = {"kind": "memory", "detail": "MemoryError under the child's address-space limit"}
        except BaseException as e:  # noqa: BLE001 - every other type is what the fuzzer looks for
            report = {"kind": "exception", "detail": f"{type(e).__module__}.{type(e).__qualname__}: {e}\n"
                                                      + "".join(traceback.format_exc(limit=-8))}
        sys.settrace(None)
        report["arcs"] = sorted(arcs)[:MAX_ARCS]
        _write_all(write_end, json.dumps(report).encode())
    finally:
        os._exit(0)


def _arc_tracer(root: str, arcs: set):
    """A sys.settrace function adding hash((function, previous line, line)) to arcs for code
    under root."""

    def on_call(frame, event, arg):
        code = frame.f_code
        if not code.co_filename.startswith(root):
            return None
        name, last = (code.co_filename, code.co_firstlineno), [code.co_firstlineno]

        def on_line(frame, event, arg):
            if event == "line":
                arcs.add(hash((name, last[0], frame.f_lineno)))
                last[0] = frame.f_lineno
            return on_line

        return on_line

    return on_call


def _write_all(fd: int, blob: bytes) -> None:
    while blob:
        blob = blob[os.write(fd, blob):]


def _read_report(fd: int, timeout: float) -> tuple[dict | None, bool]:
    """(the child's report or None if it died first, whether the deadline passed)."""
    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None, True
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return None, True
        chunk = os.read(fd, 1 << 16)
        if not chunk:  # the child closed the pipe: exited or died
            break
        chunks.append(chunk)
    blob = b"".join(chunks)
    try:
        return (json.loads(blob) if blob else None), False
    except ValueError:
        return None, False


def _mapped_bytes() -> int:
    """This process's virtual size (VmSize), the base the child's limit is added to."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _looks_like_allocation_failure(stderr_tail: str) -> bool:
    """An abort after a failed C++ allocation (std::bad_alloc) under the address-space limit."""
    return "bad_alloc" in stderr_tail or "out of memory" in stderr_tail.lower()
