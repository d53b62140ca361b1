"""The accuracy side of the report, read from benchmarks/results/*.json: one row per result set
(training and export runs, the openSMILE baseline), each with its protocol, data, date and cost.

A result file is {"name", "results": [row, ...]} with, per row, "model", "result_set",
"n_parameters", "summary" {"pooled": {"ua", "wa", "macro_f1"}, "fold_mean", "fold_std",
"n_folds", "labels", "pooled_confusion", "complete"}, "config" {"run": {"corpus", "protocol"},
"environment": {"date"}} and "train_seconds_per_protocol" (train/report.py writes these).
Files of another shape (e.g. vad_emodb.json) are not accuracy tables and are skipped, and so are
files marked "diagnostic" (partial feature sets of the baselines: where information sits, not results).
The accuracy targets judged on these rows are defined in targets.py.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib

from train.result_sets import NOISE, Degradation

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"


@dataclasses.dataclass(frozen=True)
class AccuracyRow:
    source: str  # result file name
    corpus: str
    protocol: str
    model: str
    result_set: str
    n_parameters: int | None
    ua: float  # pooled, fraction
    wa: float
    macro_f1: float
    fold_ua_mean: float
    fold_ua_std: float
    n_folds: int
    complete: bool
    date: str
    cost_seconds: float | None  # training (or SVM) seconds for the whole protocol
    labels: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]
    peer_ua: float | None  # the figure a peer reported for the same set-up, when known


def _row(source: str, r: dict) -> AccuracyRow:
    s, config = r["summary"], r.get("config", {})
    run, env = config.get("run", {}), config.get("environment", {})
    return AccuracyRow(
        source=source, corpus=run.get("corpus", "?"), protocol=run.get("protocol", "?"), model=r["model"],
        result_set=r.get("result_set", ""), n_parameters=r.get("n_parameters"),
        ua=s["pooled"]["ua"], wa=s["pooled"]["wa"], macro_f1=s["pooled"].get("macro_f1", float("nan")),
        fold_ua_mean=s.get("fold_mean", {}).get("ua", float("nan")),
        fold_ua_std=s.get("fold_std", {}).get("ua", float("nan")),
        n_folds=s.get("n_folds", 0), complete=s.get("complete", True), date=env.get("date", "?"),
        cost_seconds=r.get("train_seconds_per_protocol", s.get("train_seconds")),
        labels=tuple(s.get("labels", ())), confusion=tuple(tuple(x) for x in s.get("pooled_confusion", ())),
        peer_ua=r.get("peer_ua"))


def load(results_dir: pathlib.Path = RESULTS_DIR) -> tuple[list[AccuracyRow], list[str]]:
    """Every accuracy row in results_dir/*.json -> (rows sorted by corpus, protocol, UA desc;
    problems with unreadable files, one line each)."""
    rows, problems = [], []
    for path in sorted(results_dir.glob("*.json")):
        try:
            payload = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            problems.append(f"{path.name}: cannot read ({e})")
            continue
        if not isinstance(payload, dict) or not isinstance(payload.get("results"), list) or payload.get("diagnostic"):
            continue  # not an accuracy table, or a diagnostic one (e.g. a partial baseline feature set)
        for r in payload["results"]:
            try:
                rows.append(_row(path.name, r))
            except (KeyError, TypeError) as e:
                problems.append(f"{path.name}: a result row lacks {e}")
    # A results file may repeat rows of another run for comparison: list each run's row once.
    unique = {}
    for r in rows:
        unique.setdefault((r.corpus, r.protocol, r.model, r.result_set, r.date, r.ua), r)
    rows = sorted(unique.values(), key=lambda r: (r.corpus, r.protocol, -r.ua))
    return rows, problems


def vad_summary(results_dir: pathlib.Path = RESULTS_DIR) -> str | None:
    """One line from vad_emodb.json (frame F1 of edge_ser's VAD on EmoDB), or None."""
    path = results_dir / "vad_emodb.json"
    try:
        v = json.loads(path.read_text())
        return (f"VAD accuracy (`{path.name}`, {v['date']}): frame F1 {v['clean']['f1']:.3f} clean, "
                f"{v['noisy_10db']['f1']:.3f} with noise at 10 dB SNR; 'all speech' baseline "
                f"{v['baseline_all_speech_f1']:.3f}. Details: `benchmarks/results/vad_emodb.md`.")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def packaged_summary(results_dir: pathlib.Path = RESULTS_DIR, name: str = "packaged_models.md") -> list[str]:
    """A results page `python -m export package` renders (packaged_models.md: the candidates'
    table; calibration.md: the packaged models' calibration) without its title and images, or []
    when absent."""
    try:
        text = (results_dir / name).read_text()
    except OSError:
        return []
    body = text.split("\n", 1)[1] if text.startswith("#") else text
    return [line for line in body.strip().splitlines() if not line.startswith("![")]


def enrolment_summaries(results_dir: pathlib.Path = RESULTS_DIR) -> list[str]:
    """One line per *_enrolment*.json (`python -m train enrolment`): UA of a speaker-normalised
    model with k enrolment clips per test speaker, with all of them, and without normalisation."""
    mean = lambda v: 100 * sum(v) / len(v)  # noqa: E731
    lines = []
    for path in sorted(results_dir.glob("*_enrolment*.json")):
        try:
            e = json.loads(path.read_text())
            ks = ", ".join(f"{k} clips {mean(e['sets'][f'k={k}']['ua']):.1f}" for k in e["ks"])
            plain = ", ".join(f"{mean(e['sets'][b]['ua']):.1f}" for b in e["baselines"]) or "none given"
            only = f"{'/'.join(e['enrol_labels'])} " if e.get("enrol_labels") else ""
            trained = f"trained on {'/'.join(e['trained_from_labels'])} statistics, " if e.get("trained_from_labels") else ""
            lines.append(f"Speaker statistics from k {only}enrolment clips ({e['corpus']} {e['protocol']}, {trained}`{path.name}`; "
                         f"{e['clip_seconds']:g}-s clips, same scored clips for all): UA {ks}; statistics as trained "
                         f"(transductive) {mean(e['sets']['all']['ua']):.1f}; no normalisation {plain}.")
        except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError) as error:
            lines.append(f"{path.name}: cannot read ({error!r})")
    return lines


def pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f}"


def table(rows: list[AccuracyRow]) -> list[str]:
    """Markdown table lines, one per result set."""
    out = ["| corpus | protocol | model | result set | params | UA % | WA % | macro-F1 % | fold UA % | folds | "
           "peer UA % | date | cost | source |",
           "|---|---|---|---|---:|---:|---:|---:|---|---:|---:|---|---:|---|"]
    for r in rows:
        params = "n/a" if not r.n_parameters else f"{r.n_parameters / 1e6:.2f} M"
        cost = "n/a" if r.cost_seconds is None else f"{r.cost_seconds / 60:.1f} min"
        folds = f"{r.n_folds}" + ("" if r.complete else " (incomplete)")
        out.append(f"| {r.corpus} | {r.protocol} | {r.model} | {r.result_set} | {params} | {pct(r.ua)} | "
                   f"{pct(r.wa)} | {pct(r.macro_f1)} | {pct(r.fold_ua_mean)} ± {pct(r.fold_ua_std)} | {folds} | "
                   f"{'' if r.peer_ua is None else pct(r.peer_ua)} | {r.date} | {cost} | `{r.source}` |")
    return out


def degraded_lines(rows: list[AccuracyRow], kind: Degradation = NOISE) -> list[str]:
    """Markdown table: every model with result sets of degradation `kind` (`python -m train noisy`
    or `reverb`), its clean UA beside its UA at each level, cleanest first ([] when none). The
    clean row is looked up across all files: the same run's clean result may be kept under
    another results file."""
    mine = [r for r in rows if kind.value_of(r.result_set) is not None]
    if not mine:
        return []
    levels = sorted({kind.value_of(r.result_set) for r in mine}, reverse=kind.cleaner_above)
    out = ["| corpus, protocol | model | clean UA % | " + " | ".join(kind.column(v) for v in levels) + " | source |",
           "|---|---|---:|" + "---:|" * len(levels) + "---|"]
    for source, corpus, protocol, model in dict.fromkeys((r.source, r.corpus, r.protocol, r.model) for r in mine):
        at = {kind.value_of(r.result_set): r for r in mine
              if (r.source, r.corpus, r.protocol, r.model) == (source, corpus, protocol, model)}
        clean = clean_row(rows, corpus, protocol, model)
        cells = [pct(at[v].ua) if v in at else "" for v in levels]
        out.append(f"| {corpus} {protocol} | {model} | {'' if clean is None else pct(clean.ua)} | "
                   + " | ".join(cells) + f" | `{source}` |")
    return out


def clean_row(rows: list[AccuracyRow], corpus: str, protocol: str, model: str) -> AccuracyRow | None:
    """The clean-clip result (single, else ensemble) of a model, from whichever file holds it."""
    for wanted in ("single", "ensemble"):
        for r in rows:
            if (r.corpus, r.protocol, r.model, r.result_set) == (corpus, protocol, model, wanted):
                return r
    return None
