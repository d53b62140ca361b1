"""One table of every model family on the three protocols (EmoDB LOSO, RAVDESS 6 x 4, spk5), with
parameters and FP32 latency for a 3-s clip at one thread; a cross-corpus table; and the parameter
claim of the fusion paper, measured. Scores are read from the committed result files (each run's
own file: nothing is re-scored here); latency is measured here, on random weights of each shape.

    python -m train.compare --name fusion_comparison
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import statistics
import time

import torch

from .records import write_json, write_text

RESULTS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "results"
PROTOCOLS = {"emodb_loso": "EmoDB LOSO", "ravdess_groups4": "RAVDESS 6 x 4", "spk5": "EmoDB+RAVDESS spk5"}
CLIP_SECONDS = 3.0
LATENCY_REPEATS = 30
# The fusion issue's targets for fusion + SAP, and the claim of the fusion paper.
TARGETS = {"emodb_loso": ("ua", 90.0), "ravdess_groups4": ("wa", 75.0), "spk5": ("ua", 82.0)}
FEWER_PARAMETERS = 3.0
MAIN_FUSION = "gated fusion + GAP + SAP"  # the fusion issue's "fusion + SAP"


@dataclasses.dataclass(frozen=True)
class Cell:
    """Where a score lives: a result file, the run's name in it (None: the set's first row) and
    the result set."""

    file: str
    run: str | None
    result_set: str


@dataclasses.dataclass(frozen=True)
class Row:
    label: str
    shape: str  # key of LATENCY_MODELS
    cells: dict  # protocol -> Cell (missing: not run)
    note: str = ""


def cells(prefix: str, runs: dict, result_set: str) -> dict:
    """{protocol: Cell} for result files named `<prefix><protocol>.json`."""
    return {p: Cell(f"{prefix}{p}.json", run, result_set) for p, run in runs.items()}


ROWS = (
    Row("CNN (from scratch)", "cnn", {"emodb_loso": Cell("emodb_loso.json", "runs/emodb_loso_cnn", "single"),
                                      "ravdess_groups4": Cell("ravdess_groups4.json", "runs/ravdess_groups4_cnn", "single")}),
    Row("DeiT, conv stem (from scratch)", "deit", {
        "emodb_loso": Cell("emodb_loso_convstem.json", "runs/emodb_loso_deitconv", "none"),
        "ravdess_groups4": Cell("ravdess_groups4_convstem.json", "runs/ravdess_groups4_deitconv_s0", "none")},
        "phase 2 without masks, the SAMSG ablation's control"),
    Row("SAMSG-DeiT, conv stem (from scratch)", "deit", {
        "emodb_loso": Cell("emodb_loso_convstem.json", "runs/emodb_loso_deitconv", "samsg"),
        "ravdess_groups4": Cell("ravdess_groups4_convstem.json", "runs/ravdess_groups4_deitconv_s0", "samsg")}),
    Row("Whisper tiny.en + linear probe", "whisper-probe",
        cells("encoders_", {p: f"{p}_tiny_probe" for p in PROTOCOLS}, "frozen")),
    Row("Whisper tiny.en + SUPERB head", "whisper-superb",
        cells("encoders_", {p: f"{p}_tiny_superb" for p in PROTOCOLS}, "frozen")),
    Row("Whisper tiny.en, one block fine-tuned", "whisper-finetune",
        cells("encoders_", {p: f"{p}_tiny_finetune" for p in PROTOCOLS}, "finetuned")),
    Row("encoder + GAP (its frames, one block tuned)", "whisper-finetune",
        cells("fusion_", {p: f"{p}_encoder_gap" for p in PROTOCOLS}, "fusion")),
    Row("encoder + GAP + SAP", "whisper-finetune", {"emodb_loso": Cell("fusion_emodb_loso.json",
                                                                      "emodb_loso_encoder_gap_sap", "fusion")}),
    Row("fusion, the paper's direction (acoustic queries encoder) + GAP + SAP", "fusion", {
        "emodb_loso": Cell("fusion_emodb_loso.json", "emodb_loso_fusion_gap_sap", "fusion")}),
    Row("gated fusion + GAP", "fusion", {"emodb_loso": Cell("fusion_emodb_loso.json", "emodb_loso_gated_gap", "fusion")}),
    Row(MAIN_FUSION, "fusion", cells("fusion_", {p: f"{p}_gated_gap_sap" for p in PROTOCOLS}, "fusion")),
    Row("gated fusion + GAP + SAP + SAMSG", "fusion", {"emodb_loso": Cell("fusion_emodb_loso.json",
                                                                          "emodb_loso_gated_samsg", "fusion")}),
)
BIGGER_ENCODER = Row("Whisper base, one block fine-tuned", "whisper-base-finetune",
                     cells("encoders_", {p: f"{p}_base_finetune" for p in PROTOCOLS}, "finetuned"))


def find(cell: Cell | None) -> dict | None:
    """The result row `cell` names, or None (file or run not there: not run yet)."""
    if cell is None or not (RESULTS / cell.file).is_file():
        return None
    found = json.loads((RESULTS / cell.file).read_text())
    rows = found["results"] if isinstance(found, dict) else found
    return next((r for r in rows if cell.run in (None, r.get("run")) and r.get("result_set") == cell.result_set), None)


def whisper_tiny(n_layers: int):
    from .encoders.whisper import WhisperEncoder, WhisperEncoderConfig

    return WhisperEncoder(WhisperEncoderConfig(n_layers=n_layers)).eval()


def latency_model(shape: str) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    """A network of each row's shape (random weights) and its inputs for one 3-s clip."""
    from edge_ser.config import WHISPER_FEATURES, FeatureConfig

    from . import models
    from .arch import build, cnn_arch

    log_mel = FeatureConfig()
    frames = log_mel.n_frames(log_mel.n_samples(CLIP_SECONDS))
    whisper_frames = WHISPER_FEATURES.n_frames(WHISPER_FEATURES.n_samples(CLIP_SECONDS))
    mel = torch.randn(1, WHISPER_FEATURES.n_mels, whisper_frames)
    if shape == "cnn":
        return build(cnn_arch(7, log_mel.n_mels)).eval(), (torch.randn(1, log_mel.n_mels, frames),)
    if shape == "deit":
        net = models.build("deit", 7, (log_mel.n_mels, frames - 1), stem="conv").eval()
        return net, (torch.randn(1, log_mel.n_mels, frames - 1),)
    if shape in ("whisper-probe", "whisper-finetune", "whisper-superb"):
        depth = {"whisper-probe": 2, "whisper-finetune": 3, "whisper-superb": 4}[shape]
        return whisper_tiny(depth), (mel,)
    if shape == "whisper-base-finetune":
        from .encoders.whisper import WhisperEncoder, WhisperEncoderConfig

        return WhisperEncoder(WhisperEncoderConfig(d_model=512, n_heads=8, n_layers=4)).eval(), (mel,)
    if shape == "fusion":
        return deployed_fusion(mel)
    raise ValueError(f"no latency model for {shape!r}")


def deployed_fusion(mel: torch.Tensor):
    """The fusion model as a device runs it: Whisper tiny.en's stem and 2 frozen blocks, one tuned
    block, the acoustic branch, cross-attention, GAP + SAP and the head."""
    from .fusion.model import MODELS, FusionModel

    encoder = whisper_tiny(4)
    fusion = FusionModel(MODELS["gated+gap+sap"], encoder, 2, 1, 7).eval()
    n = -(-mel.shape[2] // 2)

    class Deployed(torch.nn.Module):
        def forward(self, mel, valid, segments):  # the frozen blocks' output without ln_post, as trained
            return fusion(mel, encoder.hidden_states(mel, upto=2)[-1], valid, segments)

    return Deployed(), (mel, torch.ones(1, n, dtype=torch.bool), torch.zeros(1, n, dtype=torch.long))


@torch.no_grad()
def latency_ms(shape: str) -> dict:
    """Median and p90 of one forward pass, one thread, FP32."""
    torch.set_num_threads(1)
    net, inputs = latency_model(shape)
    for _ in range(3):
        net(*inputs)
    times = []
    for _ in range(LATENCY_REPEATS):
        start = time.perf_counter()
        net(*inputs)
        times.append(1000 * (time.perf_counter() - start))
    times.sort()
    return {"median": statistics.median(times), "p90": times[int(0.9 * (len(times) - 1))]}


def score(found: dict | None, metric: str) -> float | None:
    return None if found is None else 100 * found["summary"]["pooled"][metric]


def comparison(rows=ROWS) -> list[dict]:
    """Every row with its scores, parameters (the most any protocol's run used) and latency."""
    out, latencies = [], {}
    for row in rows:
        found = {p: find(row.cells.get(p)) for p in PROTOCOLS}
        if row.shape not in latencies:
            latencies[row.shape] = latency_ms(row.shape)
        params = [f["n_parameters"] for f in found.values() if f is not None and f.get("n_parameters")]
        out.append({"label": row.label, "note": row.note, "latency_ms_3s": latencies[row.shape],
                    "n_parameters": max(params) if params else None,
                    "scores": {p: None if f is None else {"ua": score(f, "ua"), "wa": score(f, "wa")}
                               for p, f in found.items()}})
    return out


def cross_corpus() -> list[dict]:
    """Per direction UA/WA of each model trained on one corpus and tested on the other."""
    rows = []
    for label, file, run, result_set in (
            ("ComParE + SVM (plain: standardised on the training corpus)", "opensmile_emodb_ravdess_cross.json", None,
             "plain"),
            ("Whisper tiny.en + linear probe", "fusion_cross.json", "cross_tiny_probe", "frozen"),
            ("Whisper tiny.en, one block fine-tuned", "fusion_cross.json", "cross_tiny_finetune", "finetuned"),
            ("encoder + GAP", "fusion_cross.json", "cross_encoder_gap", "fusion"),
            (MAIN_FUSION, "fusion_cross.json", "cross_gated_gap_sap", "fusion")):
        found = find(Cell(file, run, result_set))
        rows.append({"label": label, "directions": {} if found is None else directions(found)})
    return rows


def directions(found: dict) -> dict:
    """{"ravdess->emodb": {ua, wa} %, ...} of a cross-corpus result row: from its per-fold scores
    (the SVM's file) or its per-corpus scores (the tested corpus names the direction)."""
    if "folds" in found:
        return {f["fold"]: {"ua": 100 * f["scores"]["ua"], "wa": 100 * f["scores"]["wa"]} for f in found["folds"]}
    return {f"{'ravdess' if tested == 'emodb' else 'emodb'}->{tested}": {"ua": 100 * s["ua"], "wa": 100 * s["wa"]}
            for tested, s in found.get("per_corpus", {}).items()}


def parameter_claim(rows: list[dict], bigger: dict) -> list[dict]:
    """The fusion + SAP model against the bigger encoder's fine-tuned baseline and the SAMSG DeiT:
    the parameter ratio, and the score difference on each protocol both ran (points)."""
    fusion = next((r for r in rows if r["label"] == MAIN_FUSION), None)
    claims = []
    if fusion is None:
        return claims
    for other in (bigger, next(r for r in rows if r["label"].startswith("SAMSG-DeiT"))):
        if not (fusion["n_parameters"] and other["n_parameters"]):
            continue
        deltas = {p: round(fusion["scores"][p]["ua"] - other["scores"][p]["ua"], 1) for p in PROTOCOLS
                  if fusion["scores"][p] and other["scores"][p]}
        ratio = other["n_parameters"] / fusion["n_parameters"]
        claims.append({"against": other["label"], "parameter_ratio": round(ratio, 2), "ua_points_fusion_minus_other": deltas,
                       "holds": bool(deltas) and ratio >= FEWER_PARAMETERS and all(d > -1.0 for d in deltas.values())})
    return claims


def cell_text(scores: dict | None) -> str:
    return "–" if scores is None else f"{scores['ua']:.1f} / {scores['wa']:.1f}"


def markdown(name: str, rows: list[dict], bigger: dict, cross: list[dict], claims: list[dict]) -> str:
    lines = [f"# {name}: every model family on the three protocols", "",
             "UA / WA % pooled over the folds, read from each run's result file (the `benchmarks/results` files "
             "named in the JSON beside this file); – = not run. Parameters: the largest of the model's runs "
             "(a per-fold cut may differ), frozen encoder blocks included. Latency: one forward pass of a network "
             f"of the row's shape on one {CLIP_SECONDS:g}-s clip, PyTorch FP32, one thread, median / p90 of "
             f"{LATENCY_REPEATS} (log-mel extraction not included: the C extractor's, under 1 ms).", "",
             "| model | " + " | ".join(PROTOCOLS.values()) + " | parameters | FP32 ms, 3 s |",
             "|---|" + "---:|" * (len(PROTOCOLS) + 2)]
    for r in [*rows, bigger]:
        params = f"{r['n_parameters'] / 1e6:.2f} M" if r["n_parameters"] else "–"
        ms = r["latency_ms_3s"]
        lines.append(f"| {r['label']}{' (' + r['note'] + ')' if r['note'] else ''} | "
                     + " | ".join(cell_text(r["scores"][p]) for p in PROTOCOLS)
                     + f" | {params} | {ms['median']:.1f} / {ms['p90']:.1f} |")
    fusion = next((r for r in rows if r["label"] == MAIN_FUSION), None)
    lines += [] if fusion is None else ["", f"Targets of {MAIN_FUSION}: " + ", ".join(
        f"{PROTOCOLS[p]} {m.upper()} ≥ {limit:g} %: " + ("not run" if fusion["scores"][p] is None else
        f"{fusion['scores'][p][m]:.1f} ({'PASS' if fusion['scores'][p][m] >= limit else 'FAIL'})")
        for p, (m, limit) in TARGETS.items()), ""]
    lines += ["## Cross-corpus (six shared classes, 2-s windows)", "",
              "| model | ravdess->emodb UA / WA | emodb->ravdess UA / WA |", "|---|---:|---:|"]
    for r in cross:
        lines.append(f"| {r['label']} | {cell_text(r['directions'].get('ravdess->emodb'))} | "
                     f"{cell_text(r['directions'].get('emodb->ravdess'))} |")
    lines += ["", f"## The fusion paper's claim: up to {FEWER_PARAMETERS:g}x fewer parameters at comparable accuracy", "",
              "| against | their parameters / fusion's | UA points, fusion minus them | holds |", "|---|---:|---|---|"]
    for c in claims:
        deltas = ", ".join(f"{PROTOCOLS[p]} {d:+.1f}" for p, d in c["ua_points_fusion_minus_other"].items())
        lines.append(f"| {c['against']} | {c['parameter_ratio']:.2f} | {deltas} | {'yes' if c['holds'] else 'no'} |")
    lines += ["", "Holds: the other model has at least 3x the fusion model's parameters and the fusion model is "
              "within 1 UA point of it or better on every protocol both ran."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="fusion_comparison")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows, bigger = comparison(), comparison((BIGGER_ENCODER,))[0]
    cross, claims = cross_corpus(), parameter_claim(rows, bigger)
    sources = {r.label: {p: dataclasses.asdict(c) for p, c in r.cells.items()} for r in (*ROWS, BIGGER_ENCODER)}
    write_json(args.out / f"{args.name}.json", {"name": args.name, "rows": rows, "bigger_encoder": bigger,
                                                "cross_corpus": cross, "parameter_claim": claims, "sources": sources})
    write_text(args.out / f"{args.name}.md", markdown(args.name, rows, bigger, cross, claims))
    print(args.out / f"{args.name}.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
