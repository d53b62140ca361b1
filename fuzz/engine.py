"""Running one target in this process: libFuzzer through atheris, or a seeded fallback mutator.

`Recorder` wraps the target: it counts executions, lets the runtime's documented errors pass
(the targets already do), and turns anything else into a finding written to the findings
directory (one input per distinct signature, so a bug hit a thousand times is one file), then
carries on fuzzing. Native crashes, per-input timeouts and memory blow-ups in this process end it;
libFuzzer writes the input (crash-*, timeout-*, oom-* files) and `fuzz.__main__` records the
finding and starts a new worker.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import random
import re
import sys
import time
import traceback

from .targets import EDGE_SER_ROOT, Disagreement, ModelCaseFailed

MAX_FINDINGS_PER_TARGET = 50  # distinct signatures kept; more are counted, not written
STATS_INTERVAL_SECONDS = 0.5


def signature(error: BaseException) -> str:
    """What makes two failures the same bug: the outcome and where, without numbers or paths."""
    if isinstance(error, ModelCaseFailed):
        outcome = error.outcome
        if outcome.kind == "exception":
            lines = outcome.detail.splitlines()
            frames = [ln.strip() for ln in lines if ln.strip().startswith("File ")]
            return f"child exception {lines[0].split(':')[0]} at {_site(frames[-1]) if frames else '?'}"
        return f"child {outcome.kind}" + (f" ({outcome.detail.split(';')[0]})" if outcome.kind == "crash" else "")
    if isinstance(error, Disagreement):
        return "disagreement: " + re.sub(r"[-+]?\d[\d.e+-]*", "#", str(error).split(",")[0])[:90]
    frame = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    where = f"{pathlib.Path(frame.filename).name}:{frame.lineno}" if frame else "?"
    return f"{type(error).__module__}.{type(error).__qualname__} at {where}"


def _site(frame_line: str) -> str:
    """'File ".../edge_ser/audio.py", line 12, in f' -> 'audio.py:12'"""
    match = re.search(r'File "([^"]+)", line (\d+)', frame_line)
    return f"{pathlib.Path(match.group(1)).name}:{match.group(2)}" if match else frame_line


def describe(error: BaseException) -> str:
    if isinstance(error, ModelCaseFailed):
        return str(error)
    return "".join(traceback.format_exception(type(error), error, error.__traceback__, limit=-6))


class Recorder:
    """Counts executions and keeps findings for one target; a callable taking the input bytes."""

    def __init__(self, target: str, function, findings_dir: pathlib.Path, stats_path: pathlib.Path | None,
                 progress_seconds: float = 30.0):
        self.target, self.function = target, function
        self.findings_dir, self.stats_path = findings_dir, stats_path
        self.progress_seconds = progress_seconds
        self.executions = 0
        self.findings: dict[str, dict] = {}  # signature -> {"hits", "file", "message"}
        self.start = self._last_stats = self._last_progress = time.monotonic()

    def __call__(self, data: bytes) -> None:
        self.executions += 1
        try:
            self.function(data)
        except Exception as error:  # noqa: BLE001 - every type but EdgeSerError (handled inside) is a finding
            self._record(error, data)
        now = time.monotonic()
        if now - self._last_stats >= STATS_INTERVAL_SECONDS:
            self.write_stats()
        if now - self._last_progress >= self.progress_seconds:
            self._last_progress = now
            print(f"[fuzz] {self.target}: {now - self.start:.0f} s, {self.executions} executions, "
                  f"{len(self.findings)} findings", flush=True)

    def _record(self, error: BaseException, data: bytes) -> None:
        key = signature(error)
        known = self.findings.get(key)
        if known is not None:
            known["hits"] += 1
            return
        entry = {"hits": 1, "file": None, "message": describe(error).strip()}
        self.findings[key] = entry
        if len(self.findings) <= MAX_FINDINGS_PER_TARGET:
            self.findings_dir.mkdir(parents=True, exist_ok=True)
            stem = f"{self.target}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"
            (self.findings_dir / f"{stem}.bin").write_bytes(data)
            (self.findings_dir / f"{stem}.txt").write_text(f"{key}\n\n{entry['message']}\n")
            entry["file"] = f"{stem}.bin"
        print(f"[fuzz] {self.target}: FINDING {key}", flush=True)
        self.write_stats()

    def write_stats(self) -> None:
        self._last_stats = time.monotonic()
        if self.stats_path is None:
            return
        tmp = self.stats_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"executions": self.executions, "findings": self.findings}))
        os.replace(tmp, self.stats_path)


class LineCoverage:
    """Coverage feedback for libFuzzer from `sys.settrace`: each line-to-line step (arc) taken in
    the runtime's Python code bumps one of a pool of atheris counters.

    atheris' own bytecode instrumentation (`instrument_imports`) is not used: on Python 3.11,
    atheris 2.3.0 rewrites some loops wrongly (edge_ser.audio.read_wav_header crashed with a
    segfault under it, and a small `while True` reader got an int for its stream argument), so
    the fuzzer would have reported its own bugs as the runtime's. Tracing is slower but leaves the
    code as written. Arcs are hashed into the pool (PYTHONHASHSEED is fixed by the driver, so the
    same arc gets the same counter in every worker).
    """

    POOL_SIZE = 1 << 16

    def __init__(self, root: str):
        import atheris

        self.root = root
        self.counters = [atheris._reserve_counter() for _ in range(self.POOL_SIZE)]
        self.trace_branch = None  # atheris rebinds _trace_branch once libFuzzer is set up

    def note(self, key) -> None:
        """Count a case kind (`fuzz.data.note`) as coverage."""
        if self.trace_branch is not None:
            self.trace_branch(self.counters[hash(("note", key)) % len(self.counters)])

    def install(self) -> None:
        """Trace this thread from now on (call inside the fuzzed callback: after atheris.Setup)."""
        import atheris

        if sys.gettrace() is not self._call:
            self.trace_branch = atheris._trace_branch
            sys.settrace(self._call)

    def _call(self, frame, event, arg):
        code = frame.f_code
        if not code.co_filename.startswith(self.root):
            return None
        last = [code.co_firstlineno]
        name = (code.co_filename, code.co_firstlineno)
        counters, trace_branch = self.counters, self.trace_branch

        def on_line(frame, event, arg):
            if event == "line":
                line = frame.f_lineno
                trace_branch(counters[hash((name, last[0], line)) % len(counters)])
                last[0] = line
            return on_line

        return on_line


def run_atheris(recorder: Recorder, corpus_dirs: list[pathlib.Path], seed: int, runs: int | None,
                seconds: float | None, max_len: int, timeout: int, rss_limit_mb: int,
                dictionary: pathlib.Path | None) -> None:
    """libFuzzer on the recorder until `runs` executions or `seconds`; does not return."""
    import atheris

    args = [sys.argv[0], f"-seed={seed}", f"-max_len={max_len}", f"-timeout={timeout}",
            f"-rss_limit_mb={rss_limit_mb}", f"-artifact_prefix={recorder.findings_dir}/{recorder.target}-",
            "-print_final_stats=1", "-reload=0"]
    args.append(f"-runs={runs}" if runs is not None else f"-max_total_time={max(1, int(seconds))}")
    if dictionary is not None:
        args.append(f"-dict={dictionary}")
    recorder.findings_dir.mkdir(parents=True, exist_ok=True)
    from . import data

    coverage = LineCoverage(EDGE_SER_ROOT)
    data._note_hook = coverage.note

    def traced(data: bytes) -> None:
        coverage.install()
        recorder(data)

    atheris.Setup(args + [str(d) for d in corpus_dirs], traced)
    atheris.Fuzz()


# --- the fallback: a seeded mutator over the corpus, for machines without atheris --------------

INTERESTING = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0xFFFE, 0x10000, 0x7FFFFFFF,
               0x80000000, 0xFFFFFFFF)


def mutate(data: bytes, rng: random.Random, corpus: list[bytes], max_len: int) -> bytes:
    """1-4 random edits: bit flips, byte sets, interesting 1/2/4-byte little-endian integers,
    inserted or deleted runs, a splice with another corpus entry."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(6)
        pos = rng.randrange(len(out) + 1)
        if kind == 0 and out:
            pos = min(pos, len(out) - 1)
            out[pos] ^= 1 << rng.randrange(8)
        elif kind == 1 and out:
            out[min(pos, len(out) - 1)] = rng.randrange(256)
        elif kind == 2:
            width = rng.choice((1, 2, 4))
            value = rng.choice(INTERESTING) & ((1 << (8 * width)) - 1)
            out[pos:pos + width] = value.to_bytes(width, "little")
        elif kind == 3:
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif kind == 4:
            del out[pos:pos + rng.randint(1, 64)]
        else:
            other = rng.choice(corpus)
            cut = rng.randrange(len(other) + 1)
            out = out[:pos] + other[cut:]
    return bytes(out[:max_len])


def run_plain(recorder: Recorder, corpus_dirs: list[pathlib.Path], seed: int, runs: int | None,
              seconds: float | None, max_len: int) -> None:
    """The seeded fallback: each corpus entry once, then mutants of random entries (no coverage
    guidance, so it finds less; but the same seed and runs give the same inputs)."""
    corpus = [p.read_bytes() for d in corpus_dirs if d.is_dir() for p in sorted(d.iterdir()) if p.is_file()]
    corpus = corpus or [b""]
    rng = random.Random(seed)
    deadline = None if seconds is None else time.monotonic() + seconds
    for data in corpus[: runs if runs is not None else None]:
        recorder(data)
    while (runs is None or recorder.executions < runs) and (deadline is None or time.monotonic() < deadline):
        recorder(mutate(rng.choice(corpus), rng, corpus, max_len))
    recorder.write_stats()
