"""Compare two `edge-ser infer --format json` outputs of the same files: does an aarch64 run give
the labels and scores of the x86 run?

    python deploy/aarch64/compare_runs.py REFERENCE.json OTHER.json [--tolerance 1e-3]

A file agrees when it is in both outputs with the same top label and every score within
`tolerance` (absolute) of the reference's. Prints one line per disagreement and a summary line;
exit status 0 when every file agrees, 1 when some differ or are missing from one side, 2 when an
output cannot be read (one line naming it).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

DEFAULT_TOLERANCE = 1e-3


class RunError(Exception):
    """An output file that cannot be read as `edge-ser infer --format json` output."""


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The result of `compare`: how many files are in both runs, how many of those have the
    reference's label and scores within the tolerance, and one line per disagreement."""

    n_files: int
    same_label: int
    within_tolerance: int
    max_score_diff: float
    tolerance: float
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        verdict = "PASS" if self.ok else f"FAIL ({len(self.problems)} problems)"
        return (f"{verdict}: {self.n_files} files in both runs, label equal on {self.same_label}, scores within "
                f"{self.tolerance:g} on {self.within_tolerance}, max |score diff| {self.max_score_diff:.2e}")


def load_run(path: str) -> dict[str, dict]:
    """An `infer --format json` output -> {file: {"label": str, "scores": {label: float}}}."""
    try:
        with open(path, encoding="utf-8") as f:
            rows = json.load(f)
    except OSError as e:
        raise RunError(f"{path}: cannot read ({e.strerror or e})") from None
    except ValueError as e:
        raise RunError(f"{path}: not JSON ({e})") from None
    return by_file(rows, path)


def by_file(rows, source: str = "<rows>") -> dict[str, dict]:
    """Parsed `infer --format json` output (a list of file results) -> {file: result}."""
    if not isinstance(rows, list) or not all(isinstance(r, dict) and {"file", "label", "scores"} <= r.keys()
                                             for r in rows):
        raise RunError(f"{source}: not `edge-ser infer --format json` output (a list of file results)")
    return {r["file"]: r for r in rows}


def compare(reference: dict[str, dict], other: dict[str, dict], tolerance: float = DEFAULT_TOLERANCE) -> Comparison:
    """Two loaded runs -> Comparison: label, score set and score values per file, and files
    present in only one run."""
    problems = [f"{name}: only in the reference run" for name in reference if name not in other]
    problems += [f"{name}: only in the other run" for name in other if name not in reference]
    worst, same_label, within = 0.0, 0, 0
    common = [name for name in reference if name in other]
    for name in common:
        a, b = reference[name], other[name]
        if a["label"] == b["label"]:
            same_label += 1
        else:
            problems.append(f"{name}: label {b['label']} instead of {a['label']}")
        if a["scores"].keys() != b["scores"].keys():
            problems.append(f"{name}: score labels {sorted(b['scores'])} instead of {sorted(a['scores'])}")
            continue
        diff = max(abs(a["scores"][k] - b["scores"][k]) for k in a["scores"])
        worst = max(worst, diff)
        if diff <= tolerance:
            within += 1
        else:
            problems.append(f"{name}: scores differ by up to {diff:.2e} (tolerance {tolerance:g})")
    return Comparison(len(common), same_label, within, worst, tolerance, problems)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", help="infer --format json output of the reference (x86) run")
    parser.add_argument("other", help="infer --format json output of the run to check")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help=f"largest allowed absolute score difference (default {DEFAULT_TOLERANCE:g})")
    args = parser.parse_args(argv)
    try:
        result = compare(load_run(args.reference), load_run(args.other), args.tolerance)
    except RunError as e:
        print(f"compare_runs: {e}", file=sys.stderr)
        return 2
    for problem in result.problems:
        print(f"   {problem}")
    print(result.summary())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
