"""python -m fuzz TARGET|all (--seconds N | --runs N) [--seed S] [--corpus DIR] [--out DIR]

Runs each target in its own worker process (`fuzz.worker`), restarting it after a native crash,
a per-input timeout or a memory blow-up (each one a finding) until its time or runs are spent.
`all` runs the targets one after another and shares --seconds between them (--runs is per target).
Prints a progress line every --progress seconds and one summary line per target; exit code 0
when nothing was found, 1 when something was, 2 for a usage error. See docs/fuzzing.md.

Under --out (default fuzz/out, not committed): findings/TARGET/ (one input and a .txt per finding;
crash-*, timeout-*, oom-* inputs from libFuzzer), logs/TARGET.log (the worker's output),
summary.json (the last run's figures). New interesting inputs go to --corpus/TARGET (default
OUT/corpus); the generated seeds (fuzz.make_corpus, fuzz.models) are written to OUT/seeds, and
fuzz/corpus/TARGET holds the committed inputs earlier runs found, which are only read.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import re
import subprocess
import sys
import time

from .targets import MODEL_TARGETS, TARGETS

HERE = pathlib.Path(__file__).resolve().parent
SEEDS = HERE / "corpus"
DICTS = HERE / "dicts"
MAX_RESTARTS = 20  # per target: a worker that keeps crashing at once is not worth more
RSS_LIMIT_MB = 2048  # per worker (libFuzzer's -rss_limit_mb): over it is an oom finding


@dataclasses.dataclass(frozen=True)
class TargetSettings:
    max_len: int  # bytes per input
    timeout: int  # seconds per input before libFuzzer calls it a hang
    dictionary: str | None = None


SETTINGS = {
    "wav_reader": TargetSettings(4096, 20, "wav.dict"),
    "stream_reader": TargetSettings(4096, 20, "wav.dict"),
    "features": TargetSettings(8192, 20),
    "vad": TargetSettings(65536, 20),
    "onnx_model": TargetSettings(8192, 60, "model.dict"),
    "tflite_model": TargetSettings(8192, 60, "model.dict"),
}


@dataclasses.dataclass
class Summary:
    target: str
    executions: int = 0
    seconds: float = 0.0
    findings: dict = dataclasses.field(default_factory=dict)  # signature -> {"hits", "file", "message"}
    restarts: int = 0
    skipped: str | None = None

    def line(self) -> str:
        if self.skipped:
            return f"{self.target}: skipped ({self.skipped})"
        hits = sum(f["hits"] for f in self.findings.values())
        return (f"{self.target}: {self.executions} executions in {self.seconds:.0f} s, {len(self.findings)} findings"
                + (f" ({hits} failing inputs)" if hits else ""))


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=[*TARGETS, "all"])
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--seconds", type=float, help="wall time (for all: shared between the targets)")
    budget.add_argument("--runs", type=int, help="executions per target (deterministic with --seed)")
    parser.add_argument("--seed", type=int, help="libFuzzer / mutator seed (default: from the clock, printed)")
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "out", help="findings, logs, summary")
    parser.add_argument("--corpus", type=pathlib.Path, help="where new inputs go (default OUT/corpus)")
    parser.add_argument("--engine", choices=("auto", "atheris", "plain"), default="auto",
                        help="atheris (libFuzzer, coverage-guided) or the plain seeded mutator; auto: atheris if installed")
    parser.add_argument("--progress", type=float, default=30.0, help="seconds between progress lines")
    parser.add_argument("--timeout", type=int, help="seconds per input before it counts as a hang (default per target)")
    args = parser.parse_args(argv)
    if (args.seconds is not None and args.seconds <= 0) or (args.runs is not None and args.runs <= 0):
        parser.error("--seconds and --runs must be positive")
    return args


def engine_name(choice: str) -> str:
    if choice != "auto":
        return choice
    try:
        import atheris  # noqa: F401
    except ImportError:
        return "plain"
    return "atheris"


def write_seeds(target: str, directory: pathlib.Path) -> str | None:
    """Write the target's generated seeds (`make_corpus`; model files from `fuzz.models`);
    -> why the target cannot run, or None."""
    from . import make_corpus, models

    if target not in MODEL_TARGETS:
        seeds = make_corpus.corpus()[target]
    else:
        try:
            seeds = ({"dynamic.onnx": models.onnx_bytes(), "static.onnx": models.onnx_bytes(models.STATIC_FRAMES)}
                     if target == "onnx_model" else {"static.tflite": models.tflite_bytes()})
        except ImportError as e:
            extra = "dev" if target == "onnx_model" else "tflite"
            return f"needs {e.name} to build its seed model: pip install -e '.[{extra}]'"
    make_corpus.write_target(directory, seeds)
    return None


NATIVE_FAILURES = (("deadly signal", "native crash"), ("timeout after", "hang"), ("out-of-memory", "memory blow-up"),
                   ("Uncaught Python exception", "uncaught exception"))


def native_finding(log: str) -> tuple[str, str | None]:
    """The end of a worker that did not finish -> (what happened, the input libFuzzer saved)."""
    kind = next((name for marker, name in NATIVE_FAILURES if marker in log), "worker died")
    unit = re.search(r"Test unit written to (\S+)", log)
    return kind, unit.group(1) if unit else None


def run_target(target: str, args, engine: str, seconds: float | None, seed: int) -> Summary:
    summary = Summary(target)
    out = args.out
    corpus = [(args.corpus or out / "corpus") / target]
    if (SEEDS / target).is_dir():
        corpus.append(SEEDS / target)
    summary.skipped = write_seeds(target, out / "seeds" / target)
    if summary.skipped:
        return summary
    corpus.append(out / "seeds" / target)
    for directory in (corpus[0], out / "logs", out / "stats", out / "findings" / target):
        directory.mkdir(parents=True, exist_ok=True)
    settings = SETTINGS[target]
    log_path, stats_path = out / "logs" / f"{target}.log", out / "stats" / f"{target}.json"
    log_path.write_text("")
    start = time.monotonic()
    while True:
        left = None if seconds is None else seconds - (time.monotonic() - start)
        runs_left = None if args.runs is None else args.runs - summary.executions
        if (left is not None and left < 1) or (runs_left is not None and runs_left <= 0):
            break
        spec = {"target": target, "engine": engine, "seed": seed + summary.restarts, "runs": runs_left,
                "seconds": left, "corpus": [str(d) for d in corpus], "findings": str(out / "findings" / target),
                "stats": str(stats_path), "max_len": settings.max_len, "timeout": args.timeout or settings.timeout,
                "rss_limit_mb": RSS_LIMIT_MB, "progress_seconds": args.progress,
                "dictionary": str(DICTS / settings.dictionary) if settings.dictionary else None}
        stats_path.unlink(missing_ok=True)
        code, log = _run_worker(spec, log_path)
        stats = json.loads(stats_path.read_text()) if stats_path.exists() else {"executions": 0, "findings": {}}
        done = re.findall(r"Done (\d+) runs", log)
        summary.executions += int(done[-1]) if done else stats["executions"]
        _merge(summary.findings, stats["findings"])
        if code == 0:
            break
        kind, unit = native_finding(log)
        tail = "\n".join(log.strip().splitlines()[-25:])
        key = f"{kind} #{summary.restarts + 1}"
        summary.findings[key] = {"hits": 1, "file": unit, "message": tail}
        print(f"[fuzz] {target}: FINDING {kind} (worker exit {code}; input {unit or 'not saved'})", flush=True)
        if unit:
            pathlib.Path(unit + ".txt").write_text(f"{kind}\n\n{tail}\n")
        summary.restarts += 1
        if summary.restarts > MAX_RESTARTS:
            break
    summary.seconds = time.monotonic() - start
    return summary


def _run_worker(spec: dict, log_path: pathlib.Path) -> tuple[int, str]:
    """Start a worker; its stdout (progress, findings) passes through, its stderr (libFuzzer's
    log) is appended to log_path. -> (exit code, this worker's part of the log)."""
    with open(log_path, "a") as log:
        offset = log.tell()
        env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))}
        code = subprocess.call([sys.executable, "-m", "fuzz.worker", json.dumps(spec)], stderr=log, env=env,
                               cwd=HERE.parent)
    with open(log_path, errors="replace") as log:
        log.seek(offset)
        return code, log.read()


def _merge(into: dict, findings: dict) -> None:
    for key, entry in findings.items():
        if key in into:
            into[key]["hits"] += entry["hits"]
        else:
            into[key] = dict(entry)


def main(argv=None) -> int:
    args = parse_args(argv)
    engine = engine_name(args.engine)
    seed = args.seed if args.seed is not None else int(time.time()) % (1 << 31)
    names = list(TARGETS) if args.target == "all" else [args.target]
    seconds = None if args.seconds is None else args.seconds / len(names)
    print(f"[fuzz] {', '.join(names)}: engine {engine}, seed {seed}, "
          + (f"{seconds:.0f} s each" if seconds else f"{args.runs} runs each"), flush=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    summaries = [run_target(name, args, engine, seconds, seed) for name in names]
    for summary in summaries:
        print(summary.line())
        for key, entry in summary.findings.items():
            print(f"    {key} x{entry['hits']}" + (f": {entry['file']}" if entry.get("file") else ""))
    record = {"started": started.isoformat(timespec="seconds"), "engine": engine, "seed": seed,
              "seconds": args.seconds, "runs": args.runs,
              "targets": {s.target: {"executions": s.executions, "seconds": round(s.seconds, 1), "skipped": s.skipped,
                                     "findings": {k: v["hits"] for k, v in s.findings.items()}} for s in summaries}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(record, indent=1) + "\n")
    return 1 if any(s.findings for s in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())
