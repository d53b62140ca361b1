"""Turn a pytest-benchmark JSON into the benchmark report: each target, the measured value, pass/fail.

    python -m benchmarks.report benchmarks/out/bench.json --out benchmarks/out/report.md

Medians are compared (robust to the odd preempted round); every figure comes from the JSON given.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import pathlib
import platform
import sys

from benchmarks.feature_impls import NUMPY_PATHS


@dataclasses.dataclass
class Check:
    name: str
    target: str
    measured: str
    passed: bool | None  # None: could not be measured in this run


def medians(bench: dict, kind: str) -> dict[tuple, float]:
    """{(impl, clip_seconds): median seconds} for the benchmarks of one kind."""
    out = {}
    for b in bench.get("benchmarks", []):
        info = b.get("extra_info", {})
        if info.get("kind") == kind:
            out[(info["impl"], info["clip_seconds"])] = b["stats"]["median"]
    return out


TARGET_CLIP_SECONDS = 3  # the issue states the extractor's targets on a 3 s clip


def feature_checks(bench: dict) -> tuple[list[Check], list[str]]:
    """The targets on the 3 s clip, and a line of ratios for every clip length measured."""
    m = medians(bench, "features")
    checks, ratios = [], []
    for seconds in sorted({s for _, s in m}):
        c = m.get(("edge_ser_c", seconds))
        numpy_paths = {i: m[(i, seconds)] for i in NUMPY_PATHS if (i, seconds) in m}
        if c is None or not numpy_paths:
            continue
        best = min(numpy_paths, key=numpy_paths.get)
        ratio = c / numpy_paths[best]
        lib = m.get(("librosa", seconds))
        ratios.append(f"| {seconds} s | {c * 1e3:.3f} | {best} {numpy_paths[best] * 1e3:.3f} | {ratio:.2f}x | "
                      + ("n/a" if lib is None else f"{lib * 1e3:.3f} | {lib / c:.1f}x") + " |")
        if seconds != TARGET_CLIP_SECONDS:
            continue
        checks.append(Check(f"C log-mel vs best numpy path, {seconds} s", "<= 0.50x",
                            f"{ratio:.2f}x ({c * 1e3:.3f} ms vs {best} {numpy_paths[best] * 1e3:.3f} ms)",
                            ratio <= 0.5))
        checks.append(Check(f"C log-mel vs librosa, {seconds} s", ">= 6x faster",
                            "librosa not installed" if lib is None else f"{lib / c:.1f}x faster",
                            None if lib is None else lib / c >= 6))
    return checks, ratios


def timing_table(bench: dict) -> list[str]:
    rows = ["| group | benchmark | median (ms) | min (ms) | rounds |", "|---|---|---:|---:|---:|"]
    for b in sorted(bench.get("benchmarks", []), key=lambda b: (b["group"] or "", b["stats"]["median"])):
        s = b["stats"]
        rows.append(f"| {b['group']} | {b['name']} | {s['median'] * 1e3:.3f} | {s['min'] * 1e3:.3f} | {s['rounds']} |")
    return rows


def _load(machine: dict) -> str:
    load = machine.get("loadavg_at_start")
    return "unknown" if not load else " / ".join(f"{x:.2f}" for x in load) + " (1/5/15 min, at start)"


def render(bench: dict, checks: list[Check], ratios: list[str]) -> str:
    mark = {True: "PASS", False: "FAIL", None: "n/a"}
    machine = bench.get("machine_info", {})
    lines = [
        "# edge-ser benchmark report",
        "",
        f"Generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC} from a pytest-benchmark run of "
        f"{bench.get('datetime', '?')}; machine: {machine.get('cpu', {}).get('brand_raw', platform.processor() or '?')}, "
        f"{machine.get('machine', platform.machine())}, Python {machine.get('python_version', platform.python_version())}, "
        f"{os.cpu_count()} CPUs, load average {_load(machine)}; every benchmark on one thread.",
        "",
        "## Targets",
        "",
        "| target | required | measured | result |",
        "|---|---|---|---|",
        *(f"| {c.name} | {c.target} | {c.measured} | {mark[c.passed]} |" for c in checks),
        "",
        "## Feature extraction, every clip length (medians, ms)",
        "",
        "| clip | edge_ser C | best numpy path | C / numpy | librosa | librosa / C |",
        "|---|---:|---|---:|---:|---:|",
        *ratios,
        "",
        "## All timings",
        "",
        *timing_table(bench),
        "",
    ]
    return "\n".join(lines)


def write_atomic(path: pathlib.Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bench_json", type=pathlib.Path)
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("benchmarks/out/report.md"))
    args = ap.parse_args(argv)
    try:
        bench = json.loads(args.bench_json.read_text())
    except (OSError, ValueError) as e:
        print(f"report: {args.bench_json}: cannot read benchmark JSON ({e})", file=sys.stderr)
        return 2
    checks, ratios = feature_checks(bench)
    write_atomic(args.out, render(bench, checks, ratios))
    for c in checks:
        print(f"{'PASS' if c.passed else 'FAIL' if c.passed is False else 'n/a '}  {c.name}: {c.measured} (target {c.target})")
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
