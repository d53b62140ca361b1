"""Turn a pytest-benchmark JSON into the benchmark report: each target, the measured value, pass/fail,
then latency, size, cold start, VAD and feature tables, and the accuracy table from
benchmarks/results/. Writes the markdown and, beside it, a self-contained report.html with plots.

    python -m benchmarks.report benchmarks/out/bench.json --out benchmarks/out/report.md

Medians are compared for the feature target (robust to the odd preempted round); the end-to-end
targets use the p95 of the rounds. Every figure comes from the JSON and the result files given.
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

import numpy as np

from benchmarks import accuracy
from benchmarks.feature_impls import NUMPY_PATHS, WHISPER_NUMPY_PATHS
from train.result_sets import DEGRADATIONS, NOISE, REVERB

TARGET_CLIP_SECONDS = 3  # the issue states the extractor's and end-to-end targets on a 3 s clip
E2E_P95_TARGET_MS = 24.0  # end-to-end p95 on the device (Raspberry Pi 4 core)
E2E_P95_HERE_MS = 4.0  # what this machine must reach for a Pi 4 core to stay under 24 ms
PARAMETER_REDUCTION = 3.0  # deployed model >= this many times fewer parameters than its teacher
INT8_SIZE_SHARE = 0.30  # INT8 file <= this share of the FP32 file
C_VS_NUMPY = 0.5  # C log-mel <= this share of the best numpy path's time, in each feature set
C_VS_LIBROSA = 6.0  # C log-mel >= this many times faster than librosa
STEAL_NOTE_SHARE = 0.005  # hypervisor steal above this share of CPU time gets a note on latency tails


@dataclasses.dataclass(frozen=True)
class FeatureSet:
    """One feature definition's benchmarks (test_features_bench.py) and its targets."""

    kind: str  # the benchmarks' extra_info kind
    title: str  # in target names and the table: "C {title} vs ..."
    numpy_paths: tuple[str, ...]  # C must take at most C_VS_NUMPY of the fastest of these
    library: str  # the library implementation shown beside C
    library_speedup: float | None  # C must be at least this many times faster than it; None: shown only


FEATURE_SETS = (
    FeatureSet("features", "log-mel", NUMPY_PATHS, "librosa", C_VS_LIBROSA),
    FeatureSet("whisper_features", "whisper log-mel", WHISPER_NUMPY_PATHS, "transformers_numpy", None),
)


@dataclasses.dataclass
class Check:
    name: str
    target: str
    measured: str
    passed: bool | None  # None: could not be measured in this run


MARK = {True: "PASS", False: "FAIL", None: "n/a"}


# --- reading the benchmark JSON ---------------------------------------------------------------


def of_kind(bench: dict, kind: str) -> list[dict]:
    return [b for b in bench.get("benchmarks", []) if b.get("extra_info", {}).get("kind") == kind]


def medians(bench: dict, kind: str) -> dict[tuple, float]:
    """{(impl, clip_seconds): median seconds} for the benchmarks of one kind."""
    return {(b["extra_info"]["impl"], b["extra_info"]["clip_seconds"]): b["stats"]["median"] for b in of_kind(bench, kind)}


def p95(b: dict) -> float | None:
    """95th percentile of a benchmark's round times, seconds: recorded by the suite, else from
    the raw rounds when the JSON has them."""
    if "p95" in b.get("extra_info", {}):
        return b["extra_info"]["p95"]
    data = b["stats"].get("data")
    return float(np.percentile(data, 95)) if data else None


def e2e_rows(bench: dict) -> dict[str, dict]:
    """{model: {"info": extra_info, seconds: {"p50", "p95"} in s}} of the end-to-end benchmarks."""
    rows: dict[str, dict] = {}
    for b in of_kind(bench, "e2e"):
        info = b["extra_info"]
        row = rows.setdefault(info["model"], {"info": info})
        row[info["clip_seconds"]] = {"p50": info.get("p50", b["stats"]["median"]), "p95": p95(b)}
    return rows


def coldstart_rows(bench: dict) -> dict[str, dict]:
    """{model: {"median": s, "peak_rss_bytes": int, "info": extra_info}}."""
    return {b["extra_info"]["model"]: {"median": b["stats"]["median"], "peak_rss_bytes": b["extra_info"].get("peak_rss_bytes"),
                                       "info": b["extra_info"]} for b in of_kind(bench, "coldstart")}


def model_infos(bench: dict) -> dict[str, dict]:
    """{model: extra_info} over every benchmark that ran a model file."""
    return {b["extra_info"]["model"]: b["extra_info"] for kind in ("e2e", "coldstart") for b in of_kind(bench, kind)
            if "file_bytes" in b["extra_info"]}


# --- target checks ----------------------------------------------------------------------------


def feature_checks(bench: dict) -> tuple[list[Check], list[str]]:
    """The targets on the 3 s clip, and a line of ratios for every feature set and clip length measured."""
    checks, ratios = [], []
    for feature_set in FEATURE_SETS:
        set_checks, set_ratios = feature_set_checks(bench, feature_set)
        checks += set_checks
        ratios += set_ratios
    return checks, ratios


def feature_set_checks(bench: dict, fs: FeatureSet) -> tuple[list[Check], list[str]]:
    m = medians(bench, fs.kind)
    checks, ratios = [], []
    for seconds in sorted({s for _, s in m}):
        c = m.get(("edge_ser_c", seconds))
        numpy_paths = {i: m[(i, seconds)] for i in fs.numpy_paths if (i, seconds) in m}
        if c is None or not numpy_paths:
            continue
        best = min(numpy_paths, key=numpy_paths.get)
        ratio = c / numpy_paths[best]
        lib = m.get((fs.library, seconds))
        ratios.append(f"| {fs.title} | {seconds} s | {c * 1e3:.3f} | {best} {numpy_paths[best] * 1e3:.3f} | {ratio:.2f}x | "
                      + (f"{fs.library} n/a | n/a" if lib is None else f"{fs.library} {lib * 1e3:.3f} | {lib / c:.1f}x") + " |")
        if seconds != TARGET_CLIP_SECONDS:
            continue
        checks.append(Check(f"C {fs.title} vs best numpy path, {seconds} s", f"<= {C_VS_NUMPY:.2f}x",
                            f"{ratio:.2f}x ({c * 1e3:.3f} ms vs {best} {numpy_paths[best] * 1e3:.3f} ms)",
                            ratio <= C_VS_NUMPY))
        if fs.library_speedup is not None:
            checks.append(Check(f"C {fs.title} vs {fs.library}, {seconds} s", f">= {fs.library_speedup:g}x faster",
                                f"{fs.library} not installed" if lib is None else f"{lib / c:.1f}x faster",
                                None if lib is None else lib / c >= fs.library_speedup))
    return checks, ratios


def e2e_checks(bench: dict) -> list[Check]:
    """p95 of Recognizer.predict on the 3 s clip, one thread, for every model: <= 24 ms, and <= 4 ms here."""
    checks = []
    for model, row in sorted(e2e_rows(bench).items()):
        r = row.get(TARGET_CLIP_SECONDS)
        if r is None:
            continue
        label = f"end-to-end p95, {TARGET_CLIP_SECONDS} s clip, 1 thread: {model}"
        if r["p95"] is None:
            checks.append(Check(label, f"<= {E2E_P95_TARGET_MS:g} ms", "no rounds recorded", None))
            continue
        ms = r["p95"] * 1e3
        checks.append(Check(label, f"<= {E2E_P95_TARGET_MS:g} ms", f"{ms:.2f} ms", ms <= E2E_P95_TARGET_MS))
        checks.append(Check(label + " (Pi 4 budget here)", f"<= {E2E_P95_HERE_MS:g} ms", f"{ms:.2f} ms", ms <= E2E_P95_HERE_MS))
    return checks


def parameter_checks(bench: dict) -> list[Check]:
    """Each model family whose card names its teacher's parameter count (and is not the teacher)."""
    checks, seen = [], set()
    for info in model_infos(bench).values():
        n, teacher = info.get("n_parameters"), info.get("teacher_parameters")
        if not n or not teacher or n == teacher or info["family"] in seen:
            continue
        seen.add(info["family"])
        ratio = teacher / n
        checks.append(Check(f"parameters: {info['family']} ({info['origin']}) vs its teacher", f">= {PARAMETER_REDUCTION:g}x fewer",
                            f"{ratio:.1f}x fewer ({n / 1e6:.2f} M vs {teacher / 1e6:.2f} M)", ratio >= PARAMETER_REDUCTION))
    if not checks:
        checks.append(Check("parameters: deployed model vs its teacher", f">= {PARAMETER_REDUCTION:g}x fewer",
                            "no benchmarked model card names its teacher_parameters", None))
    return checks


def size_checks(bench: dict) -> list[Check]:
    """INT8 file size over the FP32 file of the same family and format."""
    infos = model_infos(bench).values()
    by_key = {(i["family"], i["format"], i["precision"]): i for i in infos}
    checks = []
    for (family, fmt, precision), info in sorted(by_key.items()):
        fp32 = by_key.get((family, fmt, "fp32"))
        if precision != "int8" or fp32 is None:
            continue
        share = info["file_bytes"] / fp32["file_bytes"]
        checks.append(Check(f"INT8 file size: {family} {fmt}", f"<= {100 * INT8_SIZE_SHARE:.0f} % of FP32",
                            f"{100 * share:.1f} % ({info['file_bytes'] / 1e6:.2f} MB vs {fp32['file_bytes'] / 1e6:.2f} MB)",
                            share <= INT8_SIZE_SHARE))
    return checks


def kernel_checks(bench: dict) -> list[Check]:
    """Per model: this CPU's optimised kernels against the runtime's reference kernels
    (test_kernels_bench, edge_ser.kernel_check). Judged for trained models only: a stand-in's
    random weights give near-tied logits (spread ~0.6), whose top-1 flips on differences that
    would not move a trained model's, so its figures are shown, not judged."""
    from edge_ser.kernel_check import MAX_LOGIT_DIFF, MIN_AGREEMENT, KernelCheck

    checks = []
    for b in sorted(of_kind(bench, "kernels"), key=lambda b: b["extra_info"]["model"]):
        info = b["extra_info"]
        stand_in = info["origin"].startswith("stand-in")
        checks.append(Check(f"kernels compute the file's arithmetic: {info['model']}",
                            f">= {100 * MIN_AGREEMENT:g} % top-1 agreement, max |logit diff| <= {MAX_LOGIT_DIFF:g}"
                            + (" (stand-in: not judged)" * stand_in),
                            f"{100 * info['agreement']:.1f} %, max |logit diff| {info['max_abs_logit_diff']:.3g} "
                            f"({info['n_windows']} windows of {info['input']}; CPU int8 dot product: "
                            f"{info['cpu_int8_dot_product']})",
                            None if stand_in else KernelCheck(info["agreement"], info["max_abs_logit_diff"],
                                                              info["n_windows"], info["cpu_int8_dot_product"]).ok))
    return checks


def all_checks(bench: dict) -> tuple[list[Check], list[str]]:
    features, ratios = feature_checks(bench)
    return (e2e_checks(bench) + parameter_checks(bench) + size_checks(bench) + kernel_checks(bench) + features,
            ratios)


# --- tables -----------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e3:.2f}"


def model_table(bench: dict) -> list[str]:
    e2e, cold = e2e_rows(bench), coldstart_rows(bench)
    rows = ["| model | origin | format | precision | file MB | params | p50 / p95 3 s (ms) | p50 / p95 10 s (ms) | "
            "cold start (ms) | peak RSS (MB) |", "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for model, info in sorted(model_infos(bench).items()):
        row, c = e2e.get(model, {}), cold.get(model, {})
        lat = ["n/a" if s not in row else f"{_ms(row[s]['p50'])} / {_ms(row[s]['p95'])}" for s in (TARGET_CLIP_SECONDS, 10)]
        params = "n/a" if not info.get("n_parameters") else f"{info['n_parameters'] / 1e6:.2f} M"
        rss = "n/a" if not c.get("peak_rss_bytes") else f"{c['peak_rss_bytes'] / 2**20:.0f}"
        rows.append(f"| {model} | {info['origin']} | {info['format']} | {info['precision']} | {info['file_bytes'] / 1e6:.2f} | "
                    f"{params} | {lat[0]} | {lat[1]} | {_ms(c.get('median'))} | {rss} |")
    base = cold.get("(none: --version)")
    if base:
        rows.append(f"| (interpreter + `edge_ser --version`, no model) | | | | | | | | {_ms(base['median'])} | "
                    f"{base['peak_rss_bytes'] / 2**20:.0f} |")
    return rows


def vad_table(bench: dict) -> list[str]:
    runs = {b["extra_info"]["impl"]: b for b in of_kind(bench, "vad")}
    if not runs:
        return []
    per_second = {k: b["stats"]["median"] / b["extra_info"]["audio_seconds"] for k, b in runs.items()}
    ours = per_second.get("edge_ser_c")
    rows = ["| detector | ms per audio second (median) | x real time | time / edge_ser C |", "|---|---:|---:|---:|"]
    for impl, t in sorted(per_second.items(), key=lambda kv: kv[1]):
        rows.append(f"| {impl} | {t * 1e3:.3f} | {1 / t:.0f}x | " + ("n/a" if ours is None else f"{t / ours:.2f}") + " |")
    return rows


def timing_table(bench: dict) -> list[str]:
    rows = ["| group | benchmark | median (ms) | min (ms) | rounds |", "|---|---|---:|---:|---:|"]
    for b in sorted(bench.get("benchmarks", []), key=lambda b: (b["group"] or "", b["stats"]["median"])):
        s = b["stats"]
        rows.append(f"| {b['group']} | {b['name']} | {s['median'] * 1e3:.3f} | {s['min'] * 1e3:.3f} | {s['rounds']} |")
    return rows


def _load(machine: dict) -> str:
    load = machine.get("loadavg_at_start")
    text = "unknown" if not load else " / ".join(f"{x:.2f}" for x in load) + " (1/5/15 min, at start)"
    steal = machine.get("cpu_steal_share")
    return text + ("" if steal is None else f"; CPU time taken by the hypervisor (steal) during the run: {100 * steal:.1f} %")


def machine_line(bench: dict) -> str:
    machine = bench.get("machine_info", {})
    cpu = machine.get("cpu", {})
    return (f"{cpu.get('brand_raw', platform.processor() or '?')} ({cpu.get('hz_actual_friendly', '?')}), "
            f"{machine.get('machine', platform.machine())}, {machine.get('cpu_count', cpu.get('count', '?'))} CPUs, "
            f"{machine.get('system', platform.system())} {machine.get('release', '')}, "
            f"Python {machine.get('python_version', platform.python_version())}; load average {_load(machine)}")


def libraries_line(bench: dict) -> str:
    libs = bench.get("machine_info", {}).get("libraries", {})
    return ", ".join(f"{k} {v}" for k, v in sorted(libs.items())) or "not recorded"


def notes(bench: dict) -> list[str]:
    """Caveats a reader needs, gathered from the run itself."""
    out = []
    infos = model_infos(bench).values()
    if any(i["origin"].startswith("stand-in") for i in infos):
        out.append("Stand-in models are the training code's architectures (`train.models`: the small CNN and "
                   "DeiT) with **random weights**, exported here: latency, size and parameter counts do not depend "
                   "on the weights, accuracy does (see the accuracy table for trained models). The parameter check on "
                   "stand-ins compares architectures (CNN vs the DeiT teacher), not a distilled deployed model.")
    steal = bench.get("machine_info", {}).get("cpu_steal_share")
    if steal is not None and steal >= STEAL_NOTE_SHARE and of_kind(bench, "e2e"):
        out.append(f"This virtual machine lost {100 * steal:.1f} % of its CPU time to the hypervisor (steal) while the "
                   "suite ran. A round that loses its CPU runs several times slower for no reason of its own: the "
                   "end-to-end p95 of 60 rounds counts the 3 slowest, so a few such rounds can fail a model whose "
                   "median is far inside the target. Read p95 failures beside the median.")
    e2e = [b["extra_info"] for b in of_kind(bench, "e2e")]
    fixed = sorted({f"{i['model']} ({i['fixed_frames']})" for i in e2e if i.get("fixed_frames")})
    if fixed:
        out.append(f"Static frame axis (frames in brackets): {', '.join(fixed)}. The runtime pads or cuts every window "
                   "to that length, so these models score the 3 s clip on its first 2 s.")
    if of_kind(bench, "e2e"):
        out.append("End-to-end = `Recognizer(model, threads=1).predict(wav_path)`: WAV read, log-mel, VAD-placed "
                   "windows (for audio longer than 1.5 model windows), inference, softmax. The 3 s clip is one "
                   "window; the 10 s clip is several windows on the VAD's speech segments. Clips: the repository's "
                   "synthetic speech example, repeated.")
    return out


def render(bench: dict, checks: list[Check], ratios: list[str], acc_rows: list, acc_problems: list[str],
           vad_accuracy: str | None, enrolment: list[str] = ()) -> str:
    lines = [
        "# edge-ser benchmark report",
        "",
        f"Generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC} from a pytest-benchmark run of "
        f"{bench.get('datetime', '?')}; every benchmark on one thread.",
        "",
        f"Machine: {machine_line(bench)}.",
        "",
        f"Libraries: {libraries_line(bench)}.",
        "",
        "## Targets",
        "",
        "| target | required | measured | result |",
        "|---|---|---|---|",
        *(f"| {c.name} | {c.target} | {c.measured} | {MARK[c.passed]} |" for c in checks),
        "",
    ]
    models = model_table(bench)
    if len(models) > 2:
        lines += ["## Models: end-to-end latency, size, cold start", "", *models, ""]
    vad_rows = vad_table(bench)
    if vad_rows:
        lines += ["## Voice activity detection, per second of audio", "", *vad_rows, ""]
    lines += ["## Feature extraction, every clip length (medians, ms)", "",
              "| features | clip | edge_ser C | best numpy path | C / numpy | library | library / C |",
              "|---|---|---:|---|---:|---:|---:|", *ratios, ""]
    lines += ["## Accuracy (from benchmarks/results/)", ""]
    if acc_rows:
        lines += ["Training targets (issues 3 and 18). A target passes when one complete result set of its kind beats "
                  "(or reaches) every figure given; the row shown is the passing one with the best UA (when none "
                  "passes, the best UA of all \"of\" result sets of its kind), a maximum over many runs scored on "
                  "the same test folds: optimistic. Kinds: "
                  + "; ".join(f"{k}: {v}" for k, v in accuracy.KINDS.items()) + ".", "",
                  *accuracy.target_lines(acc_rows), ""]
    intro = {NOISE: "In noise: the same fold models on their test clips mixed with recorded household noise at "
                    "each SNR (python -m train noisy; a `+noise` model trained with other noise recordings).",
             REVERB: "In reverberant rooms: the same fold models on their test clips convolved with a simulated "
                     "room impulse response of each RT60 (python -m train reverb; train/reverb.py)."}
    for kind in DEGRADATIONS:
        table = accuracy.degraded_lines(acc_rows, kind)
        lines += [f"{intro[kind]} UA % pooled.", "", *table, ""] if table else []
    lines += accuracy.table(acc_rows) if acc_rows else ["No accuracy results found."]
    lines += [""] + [f"- {p}" for p in acc_problems] + ([""] if acc_problems else [])
    lines += ["UA = unweighted accuracy (mean per-class recall), pooled over the folds' predictions. "
              "EmoDB here is the processed 2.0 s copy: not one-to-one comparable with published "
              "full-utterance figures. Each result's protocol, data, command and cost are in the .md beside its JSON.", ""]
    if vad_accuracy:
        lines += [vad_accuracy, ""]
    lines += [line for e in enrolment for line in (e, "")]
    caveats = notes(bench)
    if caveats:
        lines += ["## Notes", "", *(f"- {n}" for n in caveats), ""]
    lines += ["## All timings", "", *timing_table(bench), ""]
    return "\n".join(lines)


def write_atomic(path: pathlib.Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    tmp.replace(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bench_json", type=pathlib.Path)
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("benchmarks/out/report.md"))
    ap.add_argument("--html", type=pathlib.Path, default=None, help="default: report.html beside --out")
    ap.add_argument("--no-html", action="store_true", help="write the markdown only")
    ap.add_argument("--results", type=pathlib.Path, default=accuracy.RESULTS_DIR, help="accuracy result files")
    args = ap.parse_args(argv)
    try:
        bench = json.loads(args.bench_json.read_text())
    except (OSError, ValueError) as e:
        print(f"report: {args.bench_json}: cannot read benchmark JSON ({e})", file=sys.stderr)
        return 2
    if not isinstance(bench, dict) or not isinstance(bench.get("benchmarks", []), list):
        print(f"report: {args.bench_json}: not a pytest-benchmark JSON (no 'benchmarks' list)", file=sys.stderr)
        return 2
    checks, ratios = all_checks(bench)
    acc_rows, acc_problems = accuracy.load(args.results)
    text = render(bench, checks, ratios, acc_rows, acc_problems, accuracy.vad_summary(args.results),
                  accuracy.enrolment_summaries(args.results))
    write_atomic(args.out, text)
    if not args.no_html:
        from benchmarks import report_html

        html_path = args.html or args.out.with_suffix(".html")
        write_atomic(html_path, report_html.render(text, bench, acc_rows))
        print(f"report: {html_path}")
    for c in checks:
        print(f"{MARK[c.passed]:<4}  {c.name}: {c.measured} (target {c.target})")
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.exit(main())
