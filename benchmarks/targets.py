"""The report's targets and the benchmark rows they are judged on: what each target requires,
how it is measured from a pytest-benchmark JSON or from the accuracy result files, and whether
its FAIL fails CI. report.py (markdown) and report_html.py (plots) both read from here.

Every target is required unless its definition says why it is informational: a required target
that FAILs makes `python -m benchmarks.report` exit 1, and `.ci/run` with it; an informational
one is shown, marked, and fails nothing (docs/benchmarks.md lists them). Medians are compared for
the feature targets (robust to the odd preempted round); the end-to-end targets use the p95.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from benchmarks.accuracy import AccuracyRow, pct
from benchmarks.feature_impls import NUMPY_PATHS, WHISPER_NUMPY_PATHS
from edge_ser.kernel_check import MAX_LOGIT_DIFF, MIN_AGREEMENT
from train.result_sets import degraded

TARGET_CLIP_SECONDS = 3  # the issue states the extractor's and end-to-end targets on a 3 s clip
E2E_P95_TARGET_MS = 24.0  # end-to-end p95 on the device (Raspberry Pi 4 core)
E2E_P95_HERE_MS = 4.0  # what this machine must reach for a Pi 4 core to stay under 24 ms
PARAMETER_REDUCTION = 3.0  # deployed model >= this many times fewer parameters than its teacher
INT8_SIZE_SHARE = 0.30  # INT8 file <= this share of the FP32 file
PEAK_RSS_MB = 100.0  # a cold `edge-ser infer` of a packaged model on the 3 s clip (issue 21)
C_VS_NUMPY = 0.5  # C log-mel <= this share of the best numpy path's time, in each feature set
C_VS_LIBROSA = 6.0  # C log-mel >= this many times faster than librosa


@dataclasses.dataclass(frozen=True)
class Target:
    """A benchmark target, judged once per model or feature set it applies to."""

    name: str
    informational: str | None = None  # why its FAIL does not fail CI; None: a FAIL fails CI


E2E_ON_DEVICE = Target(f"end-to-end p95, {TARGET_CLIP_SECONDS} s clip, 1 thread")
E2E_PI_BUDGET_HERE = Target(
    f"end-to-end p95, {TARGET_CLIP_SECONDS} s clip, 1 thread, Pi 4 budget here",
    informational="Pi 4 budget rows: a Raspberry Pi 4 core's budget scaled to this host's speed and measured on "
                  "a shared host, where the p95 of 60 rounds counts the 3 slowest and a round that loses the CPU to "
                  "other work or to the hypervisor runs several times slower: the row fails on the host's load as "
                  "well as on the code (a 2.1 ms median with 6-10 ms outliers has been seen). The 24 ms rows stay "
                  "required")
PARAMETERS = Target("parameters, fewer than the teacher's")
PARAMETERS_VS = Target(
    "parameters, fewer than a comparable model's",
    informational="Parameter comparisons of the packaged models (the fusion paper's 'up to 3x fewer'): an aim "
                  "the packaging rule (docs/packaged-models.md) does not select for; it selects accuracy within "
                  "a latency budget. Shown so that the gap stays in view")
INT8_SIZE = Target("INT8 file size")
PEAK_RSS = Target(f"peak RSS, cold edge-ser infer, {TARGET_CLIP_SECONDS} s clip")
KERNEL_LOGITS = Target("kernels vs reference kernels, max logit difference")
KERNEL_AGREEMENT = Target(
    "kernels vs reference kernels, top-1 agreement",
    informational="Top-1 agreement rows: on the benchmark's 40 windows one changed label costs 2.5 %, so >= 99 % "
                  "allows none, and a trained model's near-tied windows change label on rounding alone "
                  "(default.tflite: 1 of these 40, 2 of all 535 EmoDB clips, logits at most 0.02 apart). "
                  "Kernels that really differ (saturating int8 products) move logits by 4-14: the max logit "
                  "difference rows, required, catch them")
FEATURES_VS_NUMPY = Target("C features vs the best numpy path")
FEATURES_VS_LIBRARY = Target("C features vs the library")
TRAINING_GOAL = ("Accuracy targets: each is a training issue's goal (issues 3 and 18), judged on the result "
                 "files kept in benchmarks/results/, not on anything this run builds or measures: an unmet one "
                 "is that issue's open work, shown so that it stays in view")

MARK = {True: "PASS", False: "FAIL", None: "n/a"}
INFORMATIONAL = "(informational)"  # after the verdict of an informational target's row


@dataclasses.dataclass(frozen=True)
class Check:
    """One row of a targets table: a target judged on one model, feature set or corpus."""

    target: Target | AccuracyTarget
    subject: str  # what it was judged on
    limit: str
    measured: str
    passed: bool | None  # None: not measured (or not judged) in this run

    @property
    def name(self) -> str:
        return f"{self.target.name}: {self.subject}"

    @property
    def fails_ci(self) -> bool:
        return self.passed is False and self.target.informational is None

    @property
    def result(self) -> str:
        return MARK[self.passed] + (f" {INFORMATIONAL}" if self.target.informational else "")


def failures(checks: list[Check]) -> list[Check]:
    """The rows that fail CI."""
    return [c for c in checks if c.fails_ci]


@dataclasses.dataclass(frozen=True)
class FeatureSet:
    """One feature definition's benchmarks (test_features_bench.py) and its targets."""

    kind: str  # the benchmarks' extra_info kind
    title: str  # in target rows and the table
    numpy_paths: tuple[str, ...]  # C must take at most C_VS_NUMPY of the fastest of these
    library: str  # the library implementation shown beside C
    library_speedup: float | None  # C must be at least this many times faster than it; None: shown only


FEATURE_SETS = (
    FeatureSet("features", "log-mel", NUMPY_PATHS, "librosa", C_VS_LIBROSA),
    FeatureSet("whisper_features", "whisper log-mel", WHISPER_NUMPY_PATHS, "transformers_numpy", None),
)


# --- rows of the benchmark JSON ---------------------------------------------------------------


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


@dataclasses.dataclass(frozen=True)
class FeatureRow:
    """C against the fastest numpy path and the library, one feature set and clip length (medians, s)."""

    features: FeatureSet
    seconds: int
    c: float
    best: str  # the fastest numpy path
    best_time: float
    library_time: float | None  # None: the library did not run

    @property
    def ratio(self) -> float:
        return self.c / self.best_time


def feature_rows(bench: dict) -> list[FeatureRow]:
    """Every feature set and clip length where C and at least one numpy path ran."""
    rows = []
    for fs in FEATURE_SETS:
        m = medians(bench, fs.kind)
        for seconds in sorted({s for _, s in m}):
            paths = {i: m[(i, seconds)] for i in fs.numpy_paths if (i, seconds) in m}
            if ("edge_ser_c", seconds) in m and paths:
                best = min(paths, key=paths.get)
                rows.append(FeatureRow(fs, seconds, m[("edge_ser_c", seconds)], best, paths[best],
                                       m.get((fs.library, seconds))))
    return rows


# --- benchmark targets ------------------------------------------------------------------------


def feature_checks(bench: dict) -> list[Check]:
    """C against the best numpy path, and against the library where a speed-up is required, on the 3 s clip."""
    checks = []
    for r in feature_rows(bench):
        if r.seconds != TARGET_CLIP_SECONDS:
            continue
        subject = f"{r.features.title}, {r.seconds} s clip"
        checks.append(Check(FEATURES_VS_NUMPY, subject, f"<= {C_VS_NUMPY:.2f}x",
                            f"{r.ratio:.2f}x ({r.c * 1e3:.3f} ms vs {r.best} {r.best_time * 1e3:.3f} ms)",
                            r.ratio <= C_VS_NUMPY))
        need = r.features.library_speedup
        if need is not None:
            lib = r.library_time
            checks.append(Check(FEATURES_VS_LIBRARY, f"{r.features.title} vs {r.features.library}, {r.seconds} s clip",
                                f">= {need:g}x faster",
                                f"{r.features.library} not installed" if lib is None else f"{lib / r.c:.1f}x faster",
                                None if lib is None else lib / r.c >= need))
    return checks


def e2e_checks(bench: dict) -> list[Check]:
    """p95 of Recognizer.predict on the 3 s clip, one thread, for every model: <= 24 ms, and <= 4 ms here."""
    checks = []
    for model, row in sorted(e2e_rows(bench).items()):
        r = row.get(TARGET_CLIP_SECONDS)
        if r is None:
            continue
        ms = None if r["p95"] is None else r["p95"] * 1e3
        measured = "no rounds recorded" if ms is None else f"{ms:.2f} ms"
        for target, limit in ((E2E_ON_DEVICE, E2E_P95_TARGET_MS), (E2E_PI_BUDGET_HERE, E2E_P95_HERE_MS)):
            checks.append(Check(target, model, f"<= {limit:g} ms", measured, None if ms is None else ms <= limit))
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
        checks.append(Check(PARAMETERS, f"{info['family']} ({info['origin']})", f">= {PARAMETER_REDUCTION:g}x fewer",
                            f"{ratio:.1f}x fewer ({n / 1e6:.2f} M vs {teacher / 1e6:.2f} M)", ratio >= PARAMETER_REDUCTION))
    checks += comparison_checks(bench)
    if not checks:
        checks.append(Check(PARAMETERS, "deployed model", f">= {PARAMETER_REDUCTION:g}x fewer",
                            "no benchmarked model card names its teacher_parameters", None))
    return checks


def comparison_checks(bench: dict) -> list[Check]:
    """Each packaged model against the models its card compares it with (once per family)."""
    checks, seen = [], set()
    for info in sorted(model_infos(bench).values(), key=lambda i: i["model"]):
        n, others = info.get("n_parameters"), info.get("compared_with") or {}
        if not n or info["family"] in seen:
            continue
        seen.add(info["family"])
        for other, count in sorted(others.items()):
            ratio = count / n
            checks.append(Check(PARAMETERS_VS, f"{info['family']} vs {other}", f">= {PARAMETER_REDUCTION:g}x fewer",
                                f"{ratio:.2f}x fewer ({n / 1e6:.2f} M vs {count / 1e6:.2f} M)",
                                ratio >= PARAMETER_REDUCTION))
    return checks


def size_checks(bench: dict) -> list[Check]:
    """INT8 file size over the FP32 file of the same family and format."""
    by_key = {(i["family"], i["format"], i["precision"]): i for i in model_infos(bench).values()}
    checks = []
    for (family, fmt, precision), info in sorted(by_key.items()):
        fp32 = by_key.get((family, fmt, "fp32"))
        if precision != "int8" or fp32 is None:
            continue
        share = info["file_bytes"] / fp32["file_bytes"]
        checks.append(Check(INT8_SIZE, f"{family} {fmt}", f"<= {100 * INT8_SIZE_SHARE:.0f} % of FP32",
                            f"{100 * share:.1f} % ({info['file_bytes'] / 1e6:.2f} MB vs {fp32['file_bytes'] / 1e6:.2f} MB)",
                            share <= INT8_SIZE_SHARE))
    return checks


def kernel_checks(bench: dict) -> list[Check]:
    """Per model: this CPU's optimised kernels against the runtime's reference kernels
    (test_kernels_bench, edge_ser.kernel_check). Judged for trained models only: a stand-in's
    random weights give near-tied logits (spread ~0.6), whose top-1 flips on differences that
    would not move a trained model's, so its figures are shown, not judged."""
    checks = []
    for b in sorted(of_kind(bench, "kernels"), key=lambda b: b["extra_info"]["model"]):
        info = b["extra_info"]
        judged = not info["origin"].startswith("stand-in")
        on = f"{info['n_windows']} windows of {info['input']}; CPU int8 dot product: {info['cpu_int8_dot_product']}"
        unjudged = "" if judged else " (stand-in: not judged)"
        checks.append(Check(KERNEL_LOGITS, info["model"], f"<= {MAX_LOGIT_DIFF:g}{unjudged}",
                            f"{info['max_abs_logit_diff']:.3g} ({on})",
                            info["max_abs_logit_diff"] <= MAX_LOGIT_DIFF if judged else None))
        checks.append(Check(KERNEL_AGREEMENT, info["model"], f">= {100 * MIN_AGREEMENT:g} %{unjudged}",
                            f"{100 * info['agreement']:.1f} % ({on})",
                            info["agreement"] >= MIN_AGREEMENT if judged else None))
    return checks


def rss_checks(bench: dict) -> list[Check]:
    """The packaged models' peak RSS in a fresh `edge-ser infer` process (test_coldstart_bench)."""
    checks = []
    for model, row in sorted(coldstart_rows(bench).items()):
        info, rss = row["info"], row["peak_rss_bytes"]
        if not str(info.get("origin", "")).startswith("packaged"):
            continue
        mb = None if not rss else rss / 2**20
        checks.append(Check(PEAK_RSS, model, f"<= {PEAK_RSS_MB:g} MB", "not recorded" if mb is None else f"{mb:.0f} MB",
                            None if mb is None else mb <= PEAK_RSS_MB))
    return checks


def benchmark_checks(bench: dict) -> list[Check]:
    return (e2e_checks(bench) + parameter_checks(bench) + size_checks(bench) + rss_checks(bench) + kernel_checks(bench)
            + feature_checks(bench))


# --- accuracy targets (benchmarks/results/) ---------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AccuracyTarget:
    """A training issue's accuracy target: beat a peer figure (UA and WA both, pooled) or reach
    an aim, on one corpus and protocol, by result sets of one kind."""

    corpus: str
    protocol: str
    kind: str  # see KINDS
    ua: float | None  # required pooled UA (fraction), exceeded strictly when `beat`
    wa: float | None
    beat: bool  # True: "beat the peer" (>), False: "reach the aim" (>=)
    what: str
    informational: str | None = TRAINING_GOAL  # as for Target

    @property
    def name(self) -> str:
        return f"{self.corpus} {self.protocol}, {self.kind}"

    @property
    def limit(self) -> str:
        return " / ".join(f"{'>' if self.beat else '>='} {name} {100 * v:.1f}"
                          for name, v in (("UA", self.ua), ("WA", self.wa)) if v is not None)

    def met_by(self, r: AccuracyRow) -> bool:
        above = (lambda x, t: x > t) if self.beat else (lambda x, t: x >= t)
        return all(above(x, t) for x, t in ((r.ua, self.ua), (r.wa, self.wa)) if t is not None)


KINDS = {
    "model": "one trained network on the runtime's features, no speaker statistics (what `edge-ser` runs)",
    "ensemble": "several such networks, their probabilities averaged (deployable in principle; not one model file)",
    "speaker-normalised": "trained models with per-speaker statistics (transductive, or from enrolment)",
    "hybrid": "a trained model fused with openSMILE + SVM (needs openSMILE: not deployable)",
    "encoder": "a frozen pretrained speech encoder (Whisper) + a head, on the runtime's Whisper features "
               "(python -m train.encoders; a fine-tuned one counts as `model`)",
    "fusion+SAP": "the cross-attention fusion of an acoustic branch with a pretrained encoder, pooled with "
                  "segmental average pooling (train/fusion; python -m train.encoders run --head fusion)",
}
# From the training issue (#3): peers measured on this machine with ComParE_2016 + linear SVM.
ACCURACY_TARGETS = (
    AccuracyTarget("emodb", "loso", "model", 0.758, 0.779, True, "beat ComParE + SVM"),
    AccuracyTarget("emodb", "loso", "model", 0.88, None, False, "aim"),
    AccuracyTarget("emodb", "loso", "ensemble", 0.758, 0.779, True, "beat ComParE + SVM"),
    AccuracyTarget("emodb", "loso", "speaker-normalised", 0.811, 0.832, True, "beat speaker-normalised ComParE + SVM"),
    AccuracyTarget("emodb", "loso", "hybrid", 0.758, 0.779, True, "beat ComParE + SVM"),
    AccuracyTarget("ravdess", "groups4", "model", 0.576, 0.575, True, "beat ComParE + SVM"),
    AccuracyTarget("ravdess", "groups4", "model", None, 0.72, False, "aim"),
    AccuracyTarget("ravdess", "groups4", "ensemble", 0.576, 0.575, True, "beat ComParE + SVM"),
    AccuracyTarget("ravdess", "groups4", "speaker-normalised", 0.670, 0.678, True,
                   "beat speaker-normalised ComParE + SVM"),
    AccuracyTarget("ravdess", "groups4", "hybrid", 0.576, 0.575, True, "beat ComParE + SVM"),
    # From the pretrained-encoder issue (#18): frozen encoder + head.
    AccuracyTarget("emodb", "loso", "encoder", 0.88, None, False, "aim"),
    AccuracyTarget("ravdess", "groups4", "encoder", None, 0.72, False, "aim"),
    AccuracyTarget("emodb+ravdess", "spk5", "encoder", 0.80, None, False, "aim"),
    # From the fusion issue (#20): fusion + SAP.
    AccuracyTarget("emodb", "loso", "fusion+SAP", 0.90, None, False, "aim"),
    AccuracyTarget("ravdess", "groups4", "fusion+SAP", None, 0.75, False, "aim"),
    AccuracyTarget("emodb+ravdess", "spk5", "fusion+SAP", 0.82, None, False, "aim"),
)
FROZEN_ENCODER = "frozen"  # train/encoders/report.py's result set of frozen encoder + head rows
FUSION = "fusion"  # ... and of fusion-head rows


def row_kind(r: AccuracyRow) -> str | None:
    """Which KINDS entry a result set is (None: a baseline, or an export step's row)."""
    if r.result_set == FROZEN_ENCODER:
        return "encoder" if r.complete else None
    if r.result_set == FUSION and "sap" in r.model and " encoder+" not in r.model:
        return "fusion+SAP" if r.complete else None
    if r.model.endswith("_linear_svm"):  # a baseline: only its full-ComParE fusion rows count
        return "hybrid" if r.model == "opensmile_compare2016_linear_svm" and r.result_set.startswith("plain + ") else None
    if not r.model.startswith(("cnn", "deit", "whisper")) or not r.complete or degraded(r.result_set) \
            or r.result_set.startswith("shifts"):
        return None  # noisy_*, reverb_*: not the targets' clean clips; shifts*: five passes per clip, not what edge-ser runs
    if "+spknorm" in r.model:
        return "speaker-normalised"
    return "ensemble" if "+ens" in r.model else "model"


def accuracy_checks(rows: list[AccuracyRow]) -> list[Check]:
    """Each accuracy target against the complete result sets of its kind: the row shown is the
    passing one with the best UA, else the best UA of all."""
    checks = []
    for t in ACCURACY_TARGETS:
        mine = [r for r in rows if r.corpus == t.corpus and r.protocol == t.protocol and row_kind(r) == t.kind]
        passing = [r for r in mine if t.met_by(r)]
        best = max(passing or mine, key=lambda r: r.ua, default=None)
        shown = "none" if best is None else f"{best.model} {best.result_set}: {pct(best.ua)} / {pct(best.wa)}"
        checks.append(Check(t, t.what, t.limit, f"{shown} (UA / WA %; best of {len(mine)})", bool(passing)))
    return checks
