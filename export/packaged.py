"""The packaged models, chosen by the rule of docs/packaged-models.md:

    python -m export package [--candidates runs/encoder_export] [--cnn FILE] [--ship-to edge_ser/models]

reads every candidate (`OUT/*/candidate.json` from `python -m export encoder`, and the CNN
student's INT8 ONNX with the card it carries), measures every INT8 file's latency here in one
sitting, applies the rule, copies `default` and `tiny` into the package with their model cards,
and writes the accuracy-latency table and plot to benchmarks/results/packaged_models.*.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import tempfile

from benchmarks.targets import PEAK_RSS_MB
from edge_ser.contract import ModelInfo

from train.data import COMMON_LABELS
from train.records import environment, write_json, write_text

from . import calibration, evaluate, onnx_export
from .encoder_models import CLIP_SECONDS, FP32, LATENCY_REPEATS, TFLITE, TFLITE_FILE, VARIANTS
from .encoder_models import session_info as _info

REPO = pathlib.Path(__file__).resolve().parents[1]
RUNS = REPO / "runs" / "fusion"  # the training runs the candidates name (cv_run, all_run)
CANDIDATES = REPO / "runs" / "encoder_export"
PACKAGE_MODELS = REPO / "edge_ser" / "models"
RESULTS = REPO / "benchmarks" / "results"
BUDGETS_MS = {"default": 24.0, "tiny": 4.0}  # p95 for a 3-s clip at one thread, here
# The formats each role is chosen among: the default must run on the runtime's core (onnxruntime).
FORMATS = {"default": ("onnx",), "tiny": ("onnx", "tflite")}
MAX_UA_DROP = 0.01  # INT8 vs its FP32 model, pooled over the folds (the accuracy gate)
UA_TIE = 0.005  # candidates this close in UA count as equal: the faster one wins
MAX_PACKAGED_BYTES = 20_000_000  # the wheel carries every packaged file: <= 20 MB with both models
MAX_PEAK_RSS_BYTES = PEAK_RSS_MB * 2**20  # a cold `edge-ser infer` of a 3-s clip: the benchmark's target
CNN_NAME = "cnn-student"
CNN_SHIPPED = "student INT8 ONNX (shipped)"  # the CNN card's key for its shipped file
CNN_SHIPPED_TFLITE = "student INT8 TFLite (shipped)"
WHISPER_LICENCE = ("The encoder's weights are OpenAI's Whisper (MIT licence), installed from the pinned "
                   "registry package named in model.encoder.source.")
DATA_LICENCE = ("Trained on EmoDB (Burkhardt et al. 2005, free for research) and RAVDESS (Livingstone & Russo "
                "2018, CC BY-NC-SA 4.0): research and non-commercial use only. Acted speech of 34 speakers "
                "(German and North-American English); expect lower accuracy on spontaneous speech, other "
                "languages and other microphones.")
PROTOCOL_TEXT = ("spk5: 5 speaker-disjoint folds, speakers of each corpus dealt round-robin "
                 "(2 EmoDB speakers and 4-5 RAVDESS actors per fold)")


@dataclasses.dataclass
class Candidate:
    """One INT8 file that could ship, with what the rule needs and what the table shows."""

    name: str  # "<candidate>/<variant>"
    path: pathlib.Path
    ua: float
    fp32_ua: float | None
    parity: dict | None
    parameters: int
    source: dict  # the candidate.json (encoder) or the CNN's card
    latency: dict | None = None

    @property
    def eligible(self) -> bool:
        return self.fp32_ua is None or self.fp32_ua - self.ua <= MAX_UA_DROP + 1e-12

    @property
    def p95(self) -> float:
        return self.latency["p95_ms"]

    @property
    def fits_memory(self) -> bool:
        """Its cold `edge-ser infer` stayed within MAX_PEAK_RSS_BYTES (True before it is measured)."""
        return self.latency.get("peak_rss_bytes", 0) <= MAX_PEAK_RSS_BYTES

    @property
    def variant(self) -> str:
        """Which of its model's files it is: int8_static, int8_dynamic, int8_tflite."""
        return self.name.split("/")[1]

    @property
    def format(self) -> str:
        return self.path.suffix.lstrip(".")


def encoder_candidates(folder: pathlib.Path) -> list[Candidate]:
    found = []
    for path in sorted(folder.glob("*/candidate.json")):
        c = json.loads(path.read_text())
        cv = c["cross_validation"]
        files = {v: path.parent / "all" / f"{v}.onnx" for v in VARIANTS}
        if TFLITE in cv:
            files[TFLITE] = path.parent / "all" / TFLITE_FILE
        for variant, file in files.items():
            found.append(Candidate(f"{c['name']}/{variant}", file, cv[variant]["pooled"]["ua"],
                                   cv[FP32]["pooled"]["ua"], cv[variant]["parity"], c["parameters"], c))
    return found


def cnn_candidates(path: pathlib.Path) -> list[Candidate]:
    """The CNN student as shipped until now, and its TFLite twin when beside it: their figures come
    from the card the ONNX file carries."""
    from edge_ser.session import open_session

    card = open_session(path, threads=1).info.card or {}
    models = card.get("cross_validation", {}).get("models", {})
    if CNN_SHIPPED not in models:
        raise ValueError(f"{path}: its card has no cross-validated figures of the shipped CNN student")
    found = [Candidate(f"{CNN_NAME}/int8_static", path, models[CNN_SHIPPED]["pooled"]["ua"], None, None,
                       card["model"]["parameters"], card)]
    twin = path.parent / TFLITE_FILE
    if twin.is_file() and CNN_SHIPPED_TFLITE in models:
        found.append(Candidate(f"{CNN_NAME}/int8_tflite", twin, models[CNN_SHIPPED_TFLITE]["pooled"]["ua"], None,
                               None, card["model"]["parameters"], card))
    return found


COLD_ROUNDS = 3  # fresh `edge-ser infer` processes per candidate (median time, largest peak RSS)


def measure(candidates: list[Candidate]) -> None:
    """Every file's latency for one 3-s window at one thread, and a cold `edge-ser infer` of a 3-s
    clip (process start to answer, and its peak RSS), in this sitting."""
    from benchmarks.clips import speech, write_wav
    from benchmarks.coldstart import run_process

    with tempfile.TemporaryDirectory() as tmp:
        clip = write_wav(pathlib.Path(tmp) / "speech.wav", speech(CLIP_SECONDS))
        for c in candidates:
            c.latency = _latency(c.path)
            runs = [run_process(["infer", "--model", str(c.path), "--threads", "1", str(clip)])
                    for _ in range(COLD_ROUNDS)]
            c.latency.update(cold_start_s=sorted(r[0] for r in runs)[COLD_ROUNDS // 2],
                             peak_rss_bytes=max(r[1] for r in runs))
            print(f"  {c.name}: UA {100 * c.ua:.1f} %, p95 {c.p95:.2f} ms", flush=True)


def choose(candidates: list[Candidate], budget_ms: float, formats=("onnx", "tflite")) -> Candidate | None:
    """The rule: eligible, within budget, highest UA; within UA_TIE of the best, the fastest."""
    fitting = [c for c in candidates if c.eligible and c.fits_memory and c.p95 <= budget_ms and c.format in formats]
    if not fitting:
        return None
    best = max(c.ua for c in fitting)
    return min((c for c in fitting if c.ua >= best - UA_TIE), key=lambda c: c.p95)


def encoder_card(role: str, c: Candidate, with_twin: bool) -> dict:
    """The model card of a shipped encoder model: recipe, data, licences, cross-validated figures."""
    source, variant = c.source, c.variant
    cv = source["cross_validation"]
    run_config = json.loads((RUNS / source["all_run"] / "config.json").read_text())
    produced = run_config["produced"]
    window = source["window_seconds"]
    return {
        "name": f"edge-ser {role}", "date": environment()["date"], "commit": environment()["commit"],
        "task": f"speech emotion recognition, {len(source['labels'])} classes, one label per window "
                f"(trained on {window:g}-s windows; audio up to 1.5 windows runs as one)",
        "labels": source["labels"],
        "training_data": {"corpus": source["corpus"], "clips": run_config.get("n_clips"),
                          "label_mapping": dict(COMMON_LABELS),
                          "note": "EmoDB here is a processed copy cut to its first 2 s; RAVDESS speech, centre 2 s "
                                  "of each clip; surprise and boredom dropped, calm counted as neutral"},
        "licence": f"{DATA_LICENCE} {WHISPER_LICENCE}",
        "model": {"kind": "pretrained Whisper encoder cut, top block fine-tuned, global average pooling, linear head",
                  "encoder": {k: produced["encoder"][k] for k in ("name", "source", "sha256")},
                  "blocks": run_config["run"]["depth"], "tuned_blocks": run_config["run"]["tune"],
                  "parameters": c.parameters, "compared_with": comparison_parameters(len(source["labels"])),
                  "head_settings": produced["head_settings"],
                  "quantization": QUANTIZATION[variant],
                  "float_ops": source["files"][variant]["float_ops"]},
        "cross_validation": {"corpus": source["corpus"], "protocol": PROTOCOL_TEXT, "labels": source["labels"],
                             "models": {f"FP32 ONNX ({source['name']})": _scores(cv[FP32]),
                                        **_shipped_scores(cv, variant, with_twin)}},
        "recipe": [f"python -m train.encoders run --head fusion --fusion encoder+gap --encoder {source['encoder']} "
                   f"--corpus {source['corpus']} --protocol {p} --depth {run_config['run']['depth']} --tune "
                   f"{run_config['run']['tune']} --seconds {window:g} --out runs/fusion/{r}"
                   for p, r in (("spk5", source["cv_run"]), ("all", source["all_run"]))]
                  + [f"python -m export encoder --cv runs/fusion/{source['cv_run']} --all runs/fusion/{source['all_run']} "
                     f"--name {source['name']}", "python -m export package"],
        "cost": {"training_thread_seconds": source["training"], "export_thread_seconds": source["export_cpu_seconds"]},
    }


WHISPER_BASE = {"n_mels": 80, "n_ctx": 1500, "d_model": 512, "n_heads": 8, "n_layers": 6}
DEIT_INPUT = (64, 201)  # the SAMSG DeiT's log-mel window: 64 bands, 2 s


def comparison_parameters(n_classes: int) -> dict[str, int]:
    """The mission's parameter comparisons (>= 3x fewer): the encoder + head baseline on Whisper
    base (its whole encoder, which the SUPERB head reads, plus a linear head on mean and std) and
    the SAMSG DeiT teacher trained here, counted on the architectures themselves."""
    from train import arch, models
    from train.encoders.whisper import WhisperEncoder, WhisperEncoderConfig

    base = WhisperEncoderConfig(**WHISPER_BASE)
    encoder = models.n_parameters(WhisperEncoder(base)) + (2 * base.d_model + 1) * n_classes
    deit = models.n_parameters(arch.build(arch.deit_arch(n_classes, DEIT_INPUT)))
    return {"Whisper base encoder + linear head": encoder, "SAMSG DeiT teacher": deit}


QUANTIZATION = {
    "int8_dynamic": "dynamic INT8 (onnxruntime): int8 per-channel weights of every MatMul, activations quantized "
                    "per call; LayerNorm, GELU, Softmax in float",
    "int8_static": "static QDQ (onnxruntime): uint8 activations calibrated (min-max) on 128 training clips, 7-bit "
                   "per-channel weights; only Conv/MatMul/Gemm quantized, the attention MatMuls and the first conv "
                   "in float",
    "int8_tflite": "dynamic-range INT8 TFLite (PT2E, litert-torch): int8 per-channel weights, activations quantized "
                   "per call; a fixed 3-s input, to which the runtime zero-pads shorter windows (GAP leaves the "
                   "padding out)",
}


def _shipped_scores(cv: dict, variant: str, with_twin: bool) -> dict:
    """The shipped files' rows: scores and parity with FP32; the TFLite twin of an ONNX winner,
    when it ships (`with_twin`), also its agreement with that ONNX file."""
    tflite_key = "INT8 TFLite (shipped, dynamic range)"
    if variant == TFLITE:
        return {tflite_key: {**_scores(cv[TFLITE]), "parity": cv[TFLITE]["parity"]}}
    rows = {f"INT8 ONNX (shipped, {variant})": {**_scores(cv[variant]), "parity": cv[variant]["parity"]}}
    twin = cv.get(TFLITE)
    if twin is not None and with_twin:
        rows[tflite_key] = {**_scores(twin), "parity": twin["parity"],
                            "agreement_with_shipped_onnx": twin["agreement_with_onnx"][variant]}
    return rows


def _scores(entry: dict) -> dict:
    return {k: entry[k] for k in ("pooled", "per_corpus", "fold_ua_mean", "fold_ua_std", "confusion")}


def cnn_card(role: str, c: Candidate) -> dict:
    """The CNN's own card under its new name, with paths of the build machine made portable."""
    card = json.loads(json.dumps(c.source))
    card["name"] = f"edge-ser {role}"
    noise = (card.get("model", {}).get("noise_train") or {})
    if noise.get("noise_train"):
        noise["noise_train"] = "DATA/" + "/".join(pathlib.Path(noise["noise_train"]).parts[-2:])
    if isinstance(card.get("recipe"), str) and "--noise-train" in card["recipe"]:
        head, _, _ = card["recipe"].partition(" --noise-train")
        card["recipe"] = head
    return card


def twins_within_budget(chosen: dict[str, Candidate | None]) -> dict[str, bool]:
    """Whether each ONNX winner's TFLite twin ships: the chosen files always do; twins join, in
    role order, while every packaged file together stays within MAX_PACKAGED_BYTES."""
    total = sum(c.path.stat().st_size for c in chosen.values() if c is not None)
    allowed = {}
    for role, c in chosen.items():
        twin = None if c is None else c.path.parent / TFLITE_FILE
        allowed[role] = bool(c and c.format == "onnx" and twin.is_file()
                             and total + twin.stat().st_size <= MAX_PACKAGED_BYTES)
        total += twin.stat().st_size if allowed[role] else 0
    return allowed


def ship(role: str, c: Candidate, ship_to: pathlib.Path, with_twin: bool = True) -> dict:
    """The chosen file as `ship_to/<role>.<format>` with its card in the metadata and beside it
    (`<role>.card.json`, which also lists the files, their sizes and latency). An ONNX winner
    takes its TFLite twin along when it has one and `with_twin`; a TFLite winner ships alone. A
    file of this role that does not ship now is removed, so no stale model answers to the name."""
    twin = c.path.parent / TFLITE_FILE
    sources = [c.path] + ([twin] if c.format == "onnx" and twin.is_file() and with_twin else [])
    card = cnn_card(role, c) if c.name.startswith(CNN_NAME) else encoder_card(role, c, len(sources) == 2)
    if len(sources) == 2 and not c.name.startswith(CNN_NAME):
        card["model"]["tflite_quantization"] = QUANTIZATION[TFLITE]
    ship_to.mkdir(parents=True, exist_ok=True)
    for fmt in ("onnx", "tflite"):
        if all(src.suffix != f".{fmt}" for src in sources):
            (ship_to / f"{role}.{fmt}").unlink(missing_ok=True)
    files = {}
    for src in sources:
        dst = write_model(src, ship_to / f"{role}{src.suffix}", card)
        files[src.suffix.lstrip(".")] = {"name": dst.name, "size_bytes": dst.stat().st_size,
                                         "latency_ms": c.latency if src == c.path else _latency(dst)}
    card["files"] = files
    card["latency_note"] = (f"one {CLIP_SECONDS:g}-s window, one thread, {LATENCY_REPEATS} calls, "
                            f"{environment()['machine']}, this build machine (shared 2-core VM)")
    write_json(ship_to / f"{role}.card.json", card)
    return card


def write_model(src: pathlib.Path, dst: pathlib.Path, card: dict) -> pathlib.Path:
    """Copy a model file to `dst` with `card` in its contract metadata (atomic)."""
    return copy_with_metadata(src, dst, dataclasses.replace(_info(src), card=card))


def copy_with_metadata(src: pathlib.Path, dst: pathlib.Path, info: ModelInfo) -> pathlib.Path:
    """Copy an ONNX or TFLite file to `dst` with `info` as its contract metadata (atomic)."""
    from . import tflite

    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
        staged = pathlib.Path(tmp) / dst.name
        if dst.suffix == ".onnx":
            shutil.copyfile(src, staged)
            onnx_export.set_metadata(staged, info)
        else:
            tflite.write(staged, src.read_bytes(), info, resizable=False)
        os.replace(staged, dst)
    return dst


def _latency(path: pathlib.Path) -> dict:
    info = _info(path)
    frames = info.feature_config.n_frames(info.feature_config.n_samples(CLIP_SECONDS))
    return evaluate.latency_ms(path, info.feature_config.n_mels, frames, LATENCY_REPEATS)


def table(candidates: list[Candidate], chosen: dict[str, Candidate | None]) -> str:
    """The accuracy-latency table as Markdown."""
    roles = {c.name: r for r, c in chosen.items() if c is not None}
    lines = ["| candidate | parameters | file | spk5 UA | EmoDB UA | RAVDESS UA | UA drop vs FP32 | agreement | "
             "p50 ms | p95 ms | cold start s | peak RSS MB | shipped as |", "|---" * 13 + "|"]
    for c in sorted(candidates, key=lambda c: c.p95):
        per = _per_corpus(c)
        drop = "-" if c.fp32_ua is None else f"{100 * (c.fp32_ua - c.ua):.1f}"
        agreement = "-" if c.parity is None else f"{100 * c.parity['agreement_with_fp32']:.1f} %"
        lines.append(f"| {c.name} | {c.parameters:,} | {c.path.stat().st_size / 1e6:.2f} MB | {100 * c.ua:.1f} % | "
                     f"{100 * per.get('emodb', float('nan')):.1f} % | {100 * per.get('ravdess', float('nan')):.1f} % | "
                     f"{drop} | {agreement} | {c.latency['median_ms']:.2f} | {c.p95:.2f} | "
                     f"{c.latency['cold_start_s']:.2f} | {c.latency['peak_rss_bytes'] / 2**20:.0f} | "
                     f"{roles.get(c.name, '')} |")
    return "\n".join(lines)


def float_ops(c: Candidate) -> dict | None:
    """Op types left in float in an encoder candidate's INT8 ONNX file (None: TFLite, or the CNN)."""
    return None if c.name.startswith(CNN_NAME) else c.source["files"][c.variant].get("float_ops")


def _per_corpus(c: Candidate) -> dict:
    if c.name.startswith(CNN_NAME):
        entry = c.source["cross_validation"]["models"][CNN_SHIPPED]
    else:
        entry = c.source["cross_validation"][c.variant]
    return {k: v["ua"] for k, v in entry["per_corpus"].items()}


def float_line(chosen: dict[str, Candidate | None]) -> str:
    """The op types each shipped INT8 ONNX file computes in float (graph view, export.quantize.float_ops)."""
    parts = [f"`{role}`: " + ", ".join(f"{op} x{n}" for op, n in ops.items())
             for role, c in chosen.items() if c is not None and (ops := float_ops(c))]
    return "Left in float in the shipped INT8 ONNX files: " + ("; ".join(parts) if parts else "none listed") + "."


def twin_line(chosen: dict[str, Candidate | None], twins: dict[str, bool]) -> str:
    """Which roles ship a TFLite twin, and which twins the wheel's budget left out."""
    parts = []
    for role, c in chosen.items():
        twin = None if c is None else c.path.parent / TFLITE_FILE
        if c is None or c.format != "onnx" or not twin.is_file():
            continue
        parts.append(f"`{role}.tflite` ships beside `{role}.onnx`" if twins[role] else
                     f"`{role}`'s TFLite twin ({twin.stat().st_size / 1e6:.1f} MB) is left out: with it the packaged "
                     f"files would pass the wheel's {MAX_PACKAGED_BYTES / 1e6:g} MB")
    return "TFLite twins: " + ("; ".join(parts) if parts else "none (the winners are TFLite files or have none)") + "."


def plot(candidates: list[Candidate], chosen: dict[str, Candidate | None], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for c in candidates:
        marker = "o" if c.eligible else "x"
        ax.scatter(c.p95, 100 * c.ua, marker=marker, s=40)
        ax.annotate(c.name, (c.p95, 100 * c.ua), fontsize=7, xytext=(4, 3), textcoords="offset points")
    for role, budget in BUDGETS_MS.items():
        ax.axvline(budget, linestyle="--", color="grey", linewidth=0.8)
        ax.text(budget, ax.get_ylim()[0], f" {role} budget {budget:g} ms", fontsize=7, rotation=90, va="bottom")
    for role, c in chosen.items():
        if c is not None:
            ax.scatter(c.p95, 100 * c.ua, s=160, facecolors="none", edgecolors="black")
    ax.set_xscale("log")
    ax.set_xlabel("p95 latency, one 3-s clip, one thread (ms, log scale)")
    ax.set_ylabel("UA, 5 speaker-disjoint folds, EmoDB + RAVDESS (%)")
    ax.set_title("Packaged-model candidates (circled: shipped; x: fails the UA gate)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(candidates_dir: pathlib.Path, cnn: pathlib.Path | None, ship_to: pathlib.Path = PACKAGE_MODELS,
         results_to: pathlib.Path = RESULTS) -> dict:
    candidates = encoder_candidates(candidates_dir) + (cnn_candidates(cnn) if cnn else [])
    if not candidates:
        raise FileNotFoundError(f"{candidates_dir}: no candidate.json (run python -m export encoder first)")
    measure(candidates)
    chosen = {role: choose(candidates, budget, FORMATS[role]) for role, budget in BUDGETS_MS.items()}
    twins = twins_within_budget(chosen)
    cards = {role: ship(role, c, ship_to, twins[role]) for role, c in chosen.items() if c is not None}
    rows = [{"name": c.name, "parameters": c.parameters, "size_bytes": c.path.stat().st_size, "ua": c.ua,
             "float_ops": float_ops(c),
             "per_corpus_ua": _per_corpus(c), "fp32_ua": c.fp32_ua, "parity": c.parity, "eligible": c.eligible,
             "latency_3s": c.latency} for c in candidates]
    result = {"rule": "docs/packaged-models.md", "budgets_ms": BUDGETS_MS, "max_ua_drop": MAX_UA_DROP, "ua_tie": UA_TIE,
              "candidates": rows, "chosen": {r: (c.name if c else None) for r, c in chosen.items()},
              "tflite_twins_shipped": twins, "max_packaged_bytes": MAX_PACKAGED_BYTES,
              "environment": environment()}
    write_json(results_to / "packaged_models.json", result)
    write_text(results_to / "packaged_models.md", "# Packaged-model candidates\n\nRule: docs/packaged-models.md. "
               f"Latency: {CLIP_SECONDS:g}-s window, one thread, {LATENCY_REPEATS} calls, measured together.\n\n"
               f"{table(candidates, chosen)}\n\n{twin_line(chosen, twins)}\n\n{float_line(chosen)}\n\n"
               "![accuracy against latency](packaged_models.png)\n")
    plot(candidates, chosen, results_to / "packaged_models.png")
    calibrate(result["chosen"], candidates_dir, ship_to, results_to)
    return {"chosen": result["chosen"], "cards": cards}


# --- calibration (export.calibration) ----------------------------------------------------------


def calibrate(chosen: dict[str, str | None], candidates_dir: pathlib.Path = CANDIDATES,
              ship_to: pathlib.Path = PACKAGE_MODELS, results_to: pathlib.Path = RESULTS,
              runs_dir: pathlib.Path = RUNS) -> dict[str, dict]:
    """Each shipped encoder model's calibration from its held-out logits: the temperature goes
    into its files' metadata and its cards, the figures to results_to/calibration.*. The CNN
    student kept no held-out logits: it ships uncalibrated (temperature 1)."""
    results = {}
    for role, name in chosen.items():
        if name is None or name.startswith(CNN_NAME):
            continue
        candidate, variant = name.split("/")
        result = calibration.calibration(calibration.held_out(candidates_dir / candidate, variant, runs_dir))
        results[role] = {"file": name, **result}
        set_temperature(ship_to, role, result)
        print(f"  {role}: temperature {result['temperature']:.2f}, ECE {result['before']['pooled']['ece']:.3f} -> "
              f"{result['after']['pooled']['ece']:.3f} (cross-fitted)", flush=True)
    if results:
        calibration.write_results(results, results_to)
    return results


def set_temperature(ship_to: pathlib.Path, role: str, result: dict) -> None:
    """Rewrite `role`'s packaged files with the fitted temperature in their metadata and the
    calibration figures in their cards (inside and beside); nothing else changes."""
    card_path = ship_to / f"{role}.card.json"
    card = json.loads(card_path.read_text())
    entry = calibration.card_entry(result)
    for fmt, file in card["files"].items():
        path = ship_to / file["name"]
        info = _info(path)
        inner = {**(info.card or {}), "calibration": entry}
        copy_with_metadata(path, path, dataclasses.replace(info, card=inner, temperature=entry["temperature"]))
        file["size_bytes"] = path.stat().st_size
    card["calibration"] = entry
    write_json(card_path, card)
