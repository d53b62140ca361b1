"""Pool the per-fold results of `python -m export fold|loso` into
`benchmarks/results/export_<name>.json` + `.md`: every model's pooled UA/WA over the folds' test
speakers, size, parameters, latency, agreements, and the acceptance gates of the export issue."""
from __future__ import annotations

import json
import pathlib

import numpy as np

from train import metrics

from .folds import REPO

RESULTS = REPO / "benchmarks" / "results"
# Gates (fractions): FP32 vs INT8 agreement, UA drop from quantization, ONNX INT8 vs TFLite INT8
# agreement, INT8/FP32 file size, teacher/student parameters (minimum and aim), student UA drop.
MIN_INT8_AGREEMENT = 0.98
MAX_QUANT_UA_DROP = 0.01
MIN_ONNX_TFLITE_AGREEMENT = 0.97
MAX_INT8_SIZE_RATIO = 0.30
MIN_PARAM_RATIO, AIM_PARAM_RATIO = 3.0, 10.0
MAX_STUDENT_UA_DROP = 0.02
DEPLOYED = "student_int8_deployed.onnx"  # per fold, the U8S8 variant picked on training clips
DEPLOYED_TFLITE = "student_int8_deployed.tflite"  # per fold, the PT2E variant picked on training clips
ALIASES = (DEPLOYED, DEPLOYED_TFLITE)


def load_folds(out: pathlib.Path) -> list[dict]:
    """Every finished fold (one with result.json), re-read from its cards and files."""
    from .pipeline import deployed_int8, deployed_tflite_int8, fold_result

    results = []
    for path in sorted(pathlib.Path(out).glob("*/result.json")):
        result = fold_result(path.parent, deployed_int8(path.parent), deployed_tflite_int8(path.parent))
        result["date"] = json.loads(path.read_text())["date"]
        results.append(result)
    if not results:
        raise FileNotFoundError(f"{out}: no <fold>/result.json yet")
    for result in results:  # each deployed INT8 file under one name across folds
        result["models"][DEPLOYED] = result["models"][result["deployed_onnx_int8"]]
        if result.get("deployed_tflite_int8"):
            result["models"][DEPLOYED_TFLITE] = result["models"][result["deployed_tflite_int8"]]
    return results


def predictions(result: dict, name: str) -> np.ndarray | None:
    model = result["models"].get(name)
    return None if model is None else np.asarray(model["test"]["predicted"])


def pooled_agreement(results: list[dict], a: str, b: str) -> float | None:
    """Top-1 agreement of models `a` and `b` over all test clips of the folds having both."""
    pairs = [(predictions(r, a), predictions(r, b)) for r in results]
    pairs = [(x, y) for x, y in pairs if x is not None and y is not None]
    if not pairs:
        return None
    return float(np.mean(np.concatenate([x == y for x, y in pairs])))


def model_rows(results: list[dict]) -> dict:
    """name -> pooled scores and means over the folds that have the model."""
    names = sorted({n for r in results for n in r["models"]})
    rows = {}
    for name in names:
        entries = [r["models"][name] for r in results if name in r["models"]]
        pooled = metrics.scores(np.sum([np.array(e["test"]["confusion"]) for e in entries], axis=0))
        uas = [e["test"]["ua"] for e in entries]
        mean = lambda key: (float(np.mean([e[key] for e in entries if e.get(key) is not None]))  # noqa: E731
                            if any(e.get(key) is not None for e in entries) else None)
        rows[name] = {"n_folds": len(entries), "folds": [r["fold"] for r in results if name in r["models"]],
                      "pooled": pooled, "fold_mean_ua": float(np.mean(uas)), "fold_std_ua": float(np.std(uas)),
                      "parameters": mean("parameters"), "nonzero_parameters": mean("nonzero_parameters"),
                      "size_bytes": mean("size_bytes"), "latency_ms": mean("latency_ms"),
                      "max_abs_logit_diff_vs_reference": max((e.get("max_abs_logit_diff_vs_reference") or 0)
                                                             for e in entries),
                      "mean_step_seconds": mean("step_seconds"),
                      "kernel_agreement": min((e["kernel_check"]["agreement"] for e in entries if e.get("kernel_check")),
                                              default=None),
                      "quantization": entries[0].get("quantization"), "float_ops": entries[0].get("float_ops"),
                      "pruning": entries[0].get("pruning")}
    return rows


def gates(results: list[dict], rows: dict) -> list[dict]:
    """The issue's acceptance checks, each with its measured value and pass/fail."""
    def ua(name):
        return rows[name]["pooled"]["ua"] if name in rows else None

    checks = []

    def add(name, value, limit, ok):
        checks.append({"gate": name, "value": value, "limit": limit,
                       "pass": None if value is None else bool(ok(value))})

    for int8, fp32 in ((DEPLOYED, "student.onnx"), (DEPLOYED_TFLITE, "student.tflite")):
        add(f"top-1 agreement {fp32} vs {int8}", pooled_agreement(results, fp32, int8), f">= {MIN_INT8_AGREEMENT}",
            lambda v: v >= MIN_INT8_AGREEMENT)
        drop = None if ua(fp32) is None or ua(int8) is None else ua(fp32) - ua(int8)
        add(f"pooled UA drop {fp32} -> {int8}", drop, f"<= {MAX_QUANT_UA_DROP}", lambda v: v <= MAX_QUANT_UA_DROP)
    add(f"top-1 agreement {DEPLOYED} vs {DEPLOYED_TFLITE}", pooled_agreement(results, DEPLOYED, DEPLOYED_TFLITE),
        f">= {MIN_ONNX_TFLITE_AGREEMENT}", lambda v: v >= MIN_ONNX_TFLITE_AGREEMENT)
    for int8, fp32 in ((DEPLOYED, "student.onnx"), (DEPLOYED_TFLITE, "student.tflite")):
        ratio = (rows[int8]["size_bytes"] / rows[fp32]["size_bytes"]) if int8 in rows and fp32 in rows else None
        add(f"file size {int8} / {fp32}", ratio, f"<= {MAX_INT8_SIZE_RATIO}", lambda v: v <= MAX_INT8_SIZE_RATIO)
    if "teacher.pt" in rows and "student.pt" in rows:
        ratio = rows["teacher.pt"]["parameters"] / rows["student.pt"]["parameters"]
        add("parameters teacher / student", ratio, f">= {MIN_PARAM_RATIO} (aim {AIM_PARAM_RATIO})",
            lambda v: v >= MIN_PARAM_RATIO)
        add("pooled UA drop teacher.pt -> student.pt", ua("teacher.pt") - ua("student.pt"),
            f"<= {MAX_STUDENT_UA_DROP}", lambda v: v <= MAX_STUDENT_UA_DROP)
        add(f"pooled UA drop teacher.pt -> {DEPLOYED}", ua("teacher.pt") - ua(DEPLOYED),
            f"<= {MAX_STUDENT_UA_DROP}", lambda v: v <= MAX_STUDENT_UA_DROP)
    return checks


def training_rows(results: list[dict], compare: list[str]) -> dict:
    """Training-run result sets (`RUN:SET`, e.g. runs/emodb_loso_cnn:single) pooled over the same
    folds, from their fold JSONs: how the exported models compare with what train/ measured."""
    rows = {}
    for spec in compare:
        run, _, result_set = spec.rpartition(":")
        if not run:
            raise ValueError(f"{spec}: compare with RUN:SET, e.g. runs/emodb_loso_cnn:single")
        found = [pathlib.Path(run) / result_set / f"fold_{r['fold']}.json" for r in results]
        entries = [json.loads(p.read_text()) for p in found if p.exists()]
        if not entries:
            continue
        config = json.loads((pathlib.Path(run) / "config.json").read_text())
        uas = [e["scores"]["ua"] for e in entries]
        rows[spec] = {"n_folds": len(entries), "folds": [e["fold"] for e in entries],
                      "pooled": metrics.scores(np.sum([np.array(e["confusion"]) for e in entries], axis=0)),
                      "fold_mean_ua": float(np.mean(uas)), "fold_std_ua": float(np.std(uas)),
                      "parameters": config.get("n_parameters"), "model": config["run"]["model"]}
    return rows


def summary(out: pathlib.Path, cost: pathlib.Path | None = None, compare: list[str] = ()) -> dict:
    results = load_folds(out)
    rows = model_rows(results)
    first = results[0]
    return {"protocol": {**(first.get("protocol") or {}), "fold": None, "test_speakers": None,
                         "folds": [r["fold"] for r in results]},
            "source": {k: v for k, v in (first.get("source") or {}).items() if k != "fold"},
            "deployed_onnx_int8_per_fold": {r["fold"]: r["deployed_onnx_int8"] for r in results},
            "deployed_tflite_int8_per_fold": {r["fold"]: r.get("deployed_tflite_int8") for r in results},
            "models": rows, "gates": gates(results, rows), "training_runs": training_rows(results, list(compare)),
            "agreements": {f"{a} vs {b}": pooled_agreement(results, a, b) for a, b in AGREEMENT_PAIRS
                           if a in rows and b in rows},
            "pruning": pruning_rows(results, rows),
            "cost": {"step_wall_seconds_total": float(sum(m.get("step_seconds") or 0 for r in results
                                                          for n, m in r["models"].items() if n not in ALIASES)),
                     "threads": 1, "note": "wall time of every step (training, export, evaluation), one torch/ORT "
                                           "thread, on 2 cores shared with the training runs",
                     **(json.loads(pathlib.Path(cost).read_text()) if cost else {})},
            "fold_dates": {r["fold"]: r["date"] for r in results}, "environment": environment(),
            "data_note": "EmoDB here is the 2-s processed copy (each utterance cut to its first 2.0 s or "
                         "zero-padded, peak-normalised): not comparable one-to-one with full-utterance figures."}


# export.pipeline.tflite_name suffixes of the TFLite INT8 candidates (observer, layers in float)
TFLITE_INT8_VARIANTS = ("", "_histogram_firstfloat", "_histogram_edgesfloat", "_minmax", "_minmax_firstfloat",
                        "_minmax_edgesfloat")
AGREEMENT_PAIRS = (("teacher.pt", "student.pt"), ("student.pt", "student.onnx"), ("student.onnx", "student.tflite"),
                   ("student.onnx", "student_int8_dynamic.onnx"), ("student.onnx", "student_int8_s8_minmax.onnx"),
                   ("student.onnx", "student_int8_u8_minmax.onnx"), ("student.onnx", "student_int8_u8_percentile.onnx"),
                   ("student.onnx", "student_int8_u8_entropy.onnx"),
                   ("student.onnx", "student_int8_u8_minmax_firstfloat.onnx"),
                   ("student.onnx", "student_int8_u8_minmax_edgesfloat.onnx"),
                   ("student.onnx", "student_int8_u8_minmax_w7.onnx"),
                   ("student.onnx", "student_int8_u8_minmax_edgesfloat_w7.onnx"), ("student.onnx", DEPLOYED),
                   *(("student.tflite", f"student_int8{v}.tflite") for v in TFLITE_INT8_VARIANTS),
                   ("student.tflite", DEPLOYED_TFLITE), (DEPLOYED, "student_int8.tflite"), (DEPLOYED, DEPLOYED_TFLITE))


def pooled_over(results: list[dict], name: str, folds: list[str]) -> dict:
    """Pooled scores of model `name` over the given folds only."""
    entries = [r["models"][name] for r in results if r["fold"] in folds and name in r["models"]]
    return metrics.scores(np.sum([np.array(e["test"]["confusion"]) for e in entries], axis=0))


def pruning_rows(results: list[dict], rows: dict) -> list[dict]:
    """The pruning curve: the unpruned student, then every structured (pruned_keep*) and magnitude
    (sparse*) point, each with parameters, non-zero parameters, zeroed-weight fraction, pooled UA
    (and the unpruned student's UA over the same folds), PyTorch and ONNX latency."""
    def points(prefix: str) -> list[str]:  # e.g. pruned_keep0.5.pt -> 0.5
        return sorted((n for n in rows if n.startswith(prefix) and n.endswith(".pt")),
                      key=lambda n: float(n[len(prefix):-len(".pt")]))

    names = points("pruned_keep")[::-1] + points("sparse")  # from the least to the most pruned
    if not names or "student.pt" not in rows:
        return []
    out = []
    for name in ["student.pt", *names]:
        folds = rows[name]["folds"] if name != "student.pt" else sorted({f for n in names for f in rows[n]["folds"]})
        entries = [r["models"][name] for r in results if r["fold"] in folds]
        pruning = entries[0].get("pruning") or {}
        onnx = name[:-3] + ".onnx"
        target = pruning.get("keep") if pruning.get("mode") == "structured" else pruning.get("sparsity_target")
        out.append({"model": name, "mode": pruning.get("mode", "none"), "target": target,
                    "folds": folds, "parameters": float(np.mean([e["parameters"] for e in entries])),
                    "nonzero_parameters": float(np.mean([e["nonzero_parameters"] for e in entries])),
                    "zero_weight_fraction": float(np.mean([(e.get("pruning") or {}).get("sparsity", 0.0)
                                                           for e in entries])),
                    "ua": pooled_over(results, name, folds)["ua"],
                    "student_ua_same_folds": pooled_over(results, "student.pt", folds)["ua"],
                    "fold_mean_ua": float(np.mean([e["test"]["ua"] for e in entries])),
                    "fold_std_ua": float(np.std([e["test"]["ua"] for e in entries])),
                    "latency_torch_ms": rows[name]["latency_ms"],
                    "latency_onnx_ms": rows[onnx]["latency_ms"] if onnx in rows else
                    (rows["student.onnx"]["latency_ms"] if name == "student.pt" and "student.onnx" in rows else None),
                    "fine_tune_epochs": pruning.get("fine_tune_epochs")})
    return out


def pruning_markdown(name: str, points: list[dict] | None) -> list[str]:
    if not points:
        return []
    ms = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    lines = ["## Pruning curve", "",
             f"Fine-tuned {points[1]['fine_tune_epochs']} epochs from the teacher after pruning. Structured: channels "
             "removed (a smaller dense network, also exported to ONNX); magnitude: weights zeroed in dense shapes "
             "(same file size and latency as the unpruned student). UA pooled over the folds listed; the unpruned "
             "student's UA over the same folds beside it.", "",
             f"![pruning curve](export_{name}_pruning.png)", "",
             "| model | mode | target | folds | params | nonzero | zero weights % | UA % | student UA % (same folds) | "
             "fold UA % | PyTorch ms | ONNX ms |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in points:
        target = "-" if p["target"] is None else p["target"]
        lines.append(f"| {p['model']} | {p['mode']} | {target} | {len(p['folds'])} | "
                     f"{p['parameters'] / 1e3:.1f} k | {p['nonzero_parameters'] / 1e3:.1f} k | "
                     f"{percent(p['zero_weight_fraction'])} | {percent(p['ua'])} | "
                     f"{percent(p['student_ua_same_folds'])} | "
                     f"{percent(p['fold_mean_ua'])} ± {percent(p['fold_std_ua'])} | {ms(p['latency_torch_ms'])} | "
                     f"{ms(p['latency_onnx_ms'])} |")
    return lines + [""]


def pruning_plot(points: list[dict], path: pathlib.Path) -> pathlib.Path:
    """UA and latency against non-zero parameters, one line per pruning mode (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (acc, lat) = plt.subplots(1, 2, figsize=(10, 4))
    student = points[0]
    for mode, marker, color in (("structured", "o", "tab:blue"), ("magnitude", "s", "tab:orange")):
        chosen = [student] + [p for p in points if p["mode"] == mode]
        x = [p["nonzero_parameters"] / 1e3 for p in chosen]
        acc.plot(x, [100 * p["ua"] for p in chosen], marker=marker, color=color, label=mode)
        for p in chosen[1:]:
            acc.annotate(f"{p['target']:g}", (p["nonzero_parameters"] / 1e3, 100 * p["ua"]), fontsize=8,
                         textcoords="offset points", xytext=(4, 4))
        lat.plot(x, [p["latency_torch_ms"] for p in chosen], marker=marker, color=color, label=f"{mode}, PyTorch")
        if mode == "structured":  # magnitude-pruned files keep dense shapes: no ONNX of their own
            lat.plot(x, [p["latency_onnx_ms"] for p in chosen], marker=marker, color=color, linestyle="--",
                     label=f"{mode}, ONNX")
    acc.scatter([student["nonzero_parameters"] / 1e3], [100 * student["ua"]], marker="*", s=150, color="k",
                zorder=3, label="unpruned student")
    acc.set(xscale="log", xlabel="non-zero parameters (k)", ylabel="pooled UA %",
            title=f"UA vs size ({len(student['folds'])} folds)")
    lat.set(xscale="log", xlabel="non-zero parameters (k)", ylabel="median ms per 2-s clip, 1 thread",
            title="latency (shared machine)")
    for ax in (acc, lat):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def environment() -> dict:
    """Versions of what the numbers depend on, and the commit the code came from."""
    import importlib.metadata as meta
    import platform
    import subprocess

    versions = {}
    for package in ("torch", "onnx", "onnxruntime", "onnxscript", "litert-torch", "ai-edge-litert", "numpy"):
        try:
            versions[package] = meta.version(package)
        except meta.PackageNotFoundError:
            versions[package] = None
    git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True, cwd=REPO).stdout.strip()  # noqa: E731
    return {"versions": versions, "python": platform.python_version(), "machine": platform.machine(),
            "commit": git("rev-parse", "HEAD"), "export_code_uncommitted": bool(git("status", "--porcelain", "export"))}


def percent(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def markdown(name: str, s: dict) -> str:
    """The summary as a Markdown page."""
    p = s["protocol"]
    lines = [f"# Export results: {name}", "",
             f"Teacher: `{s['source'].get('run')}` variant `{s['source'].get('variant')}`; corpus {p.get('corpus')}, "
             f"protocol {p.get('protocol')} (speaker-independent: {p.get('speaker_independent')}), "
             f"folds ({len(p['folds'])}): {', '.join(p['folds'])}.", "", f"Data: {s['data_note']}", "",
             f"Date: {min(s['fold_dates'].values())} to {max(s['fold_dates'].values())} (UTC). "
             f"Versions: {s['environment']['versions']}, Python {s['environment']['python']}, "
             f"{s['environment']['machine']}, commit {s['environment']['commit'][:10]}"
             f"{' + uncommitted export code' if s['environment']['export_code_uncommitted'] else ''}.", "",
             "Scores are on each fold's test speaker, pooled over the folds listed (UA = mean per-class recall). "
             "ONNX/TFLite files are scored through the runtime's own sessions (`edge_ser.session`). Latency: "
             "median of 30 single-clip calls (2.0 s clip, 201 frames), one thread, on a shared 2-core machine "
             "while training ran: compare rows with each other, not with other sessions.", "",
             "## Gates", "", "| gate | value | limit | pass |", "|---|---|---|---|"]
    for g in s["gates"]:
        value = "-" if g["value"] is None else (f"{g['value']:.2f}x" if "parameters" in g["gate"] else
                                                 f"{g['value']:.4f}")
        lines.append(f"| {g['gate']} | {value} | {g['limit']} | {'-' if g['pass'] is None else ('yes' if g['pass'] else 'NO')} |")
    lines += ["", "## Models", "",
              "\"kernels = QDQ maths\": static INT8 ONNX only, the lowest fold's top-1 agreement of this CPU's "
              "optimised integer kernels with the file's reference QDQ arithmetic on held-out training clips "
              "(`edge_ser.kernel_check`, as `edge-ser check` runs it); well below 100 means the kernels saturate on this CPU (8-bit "
              "weights on x86 with AVX2 but no VNNI), not that the file is wrong.", "",
              "| model | folds | params | nonzero | size KB | UA % | WA % | fold UA % | latency ms | max abs diff vs ref | "
              "kernels = QDQ maths % | quantization |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for model, r in s["models"].items():
        size = "-" if r["size_bytes"] is None else f"{r['size_bytes'] / 1024:.0f}"
        params = "-" if r["parameters"] is None else f"{r['parameters'] / 1e3:.1f} k"
        nonzero = "-" if r["nonzero_parameters"] is None else f"{r['nonzero_parameters'] / 1e3:.1f} k"
        lat = "-" if r["latency_ms"] is None else f"{r['latency_ms']:.2f}"
        lines.append(f"| {model} | {r['n_folds']} | {params} | {nonzero} | {size} | {percent(r['pooled']['ua'])} | "
                     f"{percent(r['pooled']['wa'])} | {percent(r['fold_mean_ua'])} ± {percent(r['fold_std_ua'])} | {lat} | "
                     f"{r['max_abs_logit_diff_vs_reference']:.2g} | {percent(r.get('kernel_agreement'))} | "
                     f"{r['quantization'] or '-'} |")
    if s.get("training_runs"):
        lines += ["", "## Training runs on the same folds (from their fold JSONs, PyTorch)", "",
                  "| run:set | model | folds | params | UA % | WA % | fold UA % |", "|---|---|---|---|---|---|---|"]
        for spec, r in s["training_runs"].items():
            lines.append(f"| {spec} | {r['model']} | {r['n_folds']} | {(r['parameters'] or 0) / 1e3:.1f} k | "
                         f"{percent(r['pooled']['ua'])} | {percent(r['pooled']['wa'])} | "
                         f"{percent(r['fold_mean_ua'])} ± {percent(r['fold_std_ua'])} |")
    lines += ["", "## Top-1 agreement (pooled over test clips)", "", "| pair | agreement % |", "|---|---|"]
    lines += [f"| {pair} | {percent(v)} |" for pair, v in s["agreements"].items()]
    lines += ["", "## Ops left in float (graph view)", "", "| model | float ops |", "|---|---|"]
    lines += [f"| {m} | {r['float_ops']} |" for m, r in s["models"].items() if r.get("float_ops") is not None]
    lines += ["", f"Deployed ONNX INT8 per fold (closest to FP32 logits on held-out training clips): "
                  f"{s['deployed_onnx_int8_per_fold']}", "",
              f"Deployed TFLite INT8 per fold (same criterion among the PT2E variants): "
              f"{s.get('deployed_tflite_int8_per_fold')}", ""]
    lines += pruning_markdown(name, s.get("pruning"))
    if s.get("cost"):
        lines += ["## Cost", "", f"{s['cost']['step_wall_seconds_total'] / 60:.1f} min of step wall time in total "
                  f"({s['cost']['note']}). Mean per fold and model:", "",
                  "| model | mean step seconds |", "|---|---|"]
        lines += [f"| {m} | {r['mean_step_seconds']:.0f} |" for m, r in s["models"].items()
                  if r.get("mean_step_seconds") and m not in ALIASES]
        extra = {k: v for k, v in s["cost"].items() if k not in ("step_wall_seconds_total", "threads", "note")}
        if extra:
            lines += ["", "```", json.dumps(extra, indent=1), "```"]
        lines.append("")
    return "\n".join(lines)


def write(out: pathlib.Path, name: str, cost: pathlib.Path | None = None, compare: list[str] = (),
          results_dir: pathlib.Path = RESULTS) -> pathlib.Path:
    """Write export_<name>.json and .md; returns the JSON path."""
    s = summary(out, cost, compare)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"export_{name}.json"
    path.write_text(json.dumps(s, indent=1))
    path.with_suffix(".md").write_text(markdown(name, s))
    if s["pruning"]:
        pruning_plot(s["pruning"], results_dir / f"export_{name}_pruning.png")
    return path
