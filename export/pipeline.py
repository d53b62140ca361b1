"""The whole chain on one fold of a training run, resumable file by file:

    teacher.pt -> teacher.onnx                                   (size / latency reference)
    teacher.pt -> student.pt (distilled) [-> student_labels.pt: same student, labels only]
    student.pt -> student.onnx -> student_int8_{u8,s8}_{method}[_{first,edges}float][_w7].onnx,
                                  student_int8_dynamic.onnx
    student.pt -> student.tflite, student_int8[_{observer}][_{first,edges}float].tflite
    student.pt -> pruned_keep{r}.pt (+ .onnx), sparse{s}.pt                  (pruning curve)

The deployed ONNX INT8 is the static U8S8 variant with 7-bit weights (calibration method; first
conv / head kept in float or not) whose logits follow FP32 most closely on held-out *training* clips (never the
test speaker); the deployed TFLite INT8 is chosen the same way among the PT2E variants
(histogram / min-max calibration; first conv / head kept in float or not). `fold_result`
gathers every card into one JSON; `export.report` pools the folds.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import time

from . import distill as kd
from . import folds, model_files, quantize, steps, tflite

# (activations, calibration, layers kept in float, weight bits). The 7-bit U8S8 ones are the
# deployment candidates: they are right on every CPU (export.quantize). The 8-bit ones are
# measured beside them, so the report shows what the saturation costs on this CPU.
STATIC_VARIANTS = tuple((a, m, k, bits) for bits in quantize.WEIGHT_BITS[::-1]
                        for a, m, k in (*(("u8", m, "none") for m in quantize.CALIBRATION_METHODS),
                                        ("u8", "minmax", "first"), ("u8", "minmax", "edges"), ("s8", "minmax", "none")))
DEPLOYABLE_WEIGHT_BITS = 7
# (activation observer, layers kept in float) of the TFLite INT8 candidates; the first is the
# fully quantized file made before the others existed (student_int8.tflite).
TFLITE_VARIANTS = tuple((o, k) for o in tflite.OBSERVERS for k in tflite.KEEP_FLOAT)


@dataclasses.dataclass
class Settings:
    epochs: int = kd.EPOCHS
    widths: tuple[int, ...] = steps.STUDENT_WIDTHS
    temperature: float = kd.TEMPERATURE
    alpha: float = kd.ALPHA
    labels_baseline: bool = True  # also train the student on labels only (is distillation worth it?)
    prune: bool = False  # pruning curve (costly: one fine-tune per point)
    keep_ratios: tuple[float, ...] = (0.75, 0.5, 0.25)
    sparsities: tuple[float, ...] = (0.5, 0.75, 0.9)
    prune_epochs: int = 15
    teacher_onnx: bool = True
    tflite_variants: tuple[tuple[str, str], ...] = TFLITE_VARIANTS  # (observer, keep_float) candidates
    progress: bool = True


def static_name(activations: str, method: str, keep_float: str, weight_bits: int) -> str:
    """8-bit files keep the names they had before 7-bit weights existed, so old folds resume."""
    suffix = ("" if keep_float == "none" else f"_{keep_float}float") + ("_w7" if weight_bits == 7 else "")
    return f"student_int8_{activations}_{method}{suffix}.onnx"


def tflite_name(observer: str, keep_float: str = "none") -> str:
    if (observer, keep_float) == TFLITE_VARIANTS[0]:
        return "student_int8.tflite"
    suffix = "" if keep_float == "none" else f"_{keep_float}float"
    return f"student_int8_{observer}{suffix}.tflite"


def step(path: pathlib.Path, make) -> pathlib.Path:
    """Run `make()` unless `path` and its card already exist (resume)."""
    if path.exists() and model_files.card_path(path).exists():
        return path
    started = time.time()
    made = make()
    card = model_files.read_card(made)
    card["step_seconds"] = time.time() - started
    model_files.write_card(made, card)
    return made


def check_student(path: pathlib.Path, settings: Settings) -> None:
    """A student on disk was distilled with these settings, else ValueError: resuming reuses files
    by name, so a folder built with other widths or epochs must not pass for this recipe's."""
    if not (path.exists() and model_files.card_path(path).exists()):
        return
    card = model_files.read_card(path)
    made = (tuple(card["arch"]["widths"]), card["distillation"]["epochs"], card["distillation"]["temperature"],
            card["distillation"]["alpha"])
    wanted = (tuple(settings.widths), settings.epochs, settings.temperature, settings.alpha)
    if made != wanted:
        raise ValueError(f"{path}: distilled with widths/epochs/temperature/alpha {made}, these settings ask for "
                         f"{wanted}: use another output folder")


def run_fold(run_dir: pathlib.Path, variant: str, fold: str, out_root: pathlib.Path, settings: Settings) -> dict:
    """Every model of one fold in `out_root/<fold>/`; returns (and writes) the fold's result."""
    out = pathlib.Path(out_root) / fold
    out.mkdir(parents=True, exist_ok=True)
    check_student(out / "student.pt", settings)
    started = time.time()
    data = folds.fold_data(run_dir, fold)
    teacher = step(out / "teacher.pt", lambda: steps.teacher(run_dir, fold, variant, out / "teacher.pt", data))
    if settings.teacher_onnx:
        step(out / "teacher.onnx", lambda: steps.to_onnx(teacher, out / "teacher.onnx", data=data))
    student = step(out / "student.pt", lambda: steps.distill(
        teacher, out / "student.pt", settings.widths, settings.epochs, settings.temperature, settings.alpha,
        data=data, progress=settings.progress))
    if settings.labels_baseline:
        step(out / "student_labels.pt", lambda: steps.distill(
            teacher, out / "student_labels.pt", settings.widths, settings.epochs, settings.temperature, 0.0,
            data=data, progress=settings.progress))
    fp32 = step(out / "student.onnx", lambda: steps.to_onnx(student, out / "student.onnx", data=data))
    for activations, method, keep_float, bits in STATIC_VARIANTS:
        path = out / static_name(activations, method, keep_float, bits)
        step(path, lambda: steps.quantize_onnx(fp32, path, "static", method, activations, data=data,
                                               keep_float=keep_float, weight_bits=bits))
    step(out / "student_int8_dynamic.onnx",
         lambda: steps.quantize_onnx(fp32, out / "student_int8_dynamic.onnx", "dynamic", data=data))
    deployed = deployed_int8(out, data)
    step(out / "student.tflite", lambda: steps.to_tflite(student, out / "student.tflite", False, fp32, data=data))
    for observer, keep_float in settings.tflite_variants:
        path = out / tflite_name(observer, keep_float)
        step(path, lambda: steps.to_tflite(student, path, True, deployed, data=data, keep_float=keep_float,
                                           observer=observer))
    deployed_tflite = deployed_tflite_int8(out, data)
    if settings.prune:
        pruning_curve(out, student, teacher, data, settings)
    result = fold_result(out, deployed, deployed_tflite)
    result["wall_seconds_this_session"] = time.time() - started
    (out / "result.json").write_text(json.dumps(result, indent=1))
    return result


def closest_to_fp32(candidates: list[pathlib.Path], fp32: pathlib.Path, data=None) -> pathlib.Path | None:
    """The INT8 file among `candidates` whose logits follow `fp32` most closely (mean |difference|)
    on the held-out training clips; ties go to the earlier candidate; None if there is none. Cards
    written before that criterion existed get it computed here when the fold's data is given."""
    for path in candidates:
        card = model_files.read_card(path)
        if "selection_logit_error_vs_fp32" not in card and data is not None:
            _, selection = folds.calibration_split(len(data.train_x), steps.N_CALIBRATION)
            card.update(steps.selection_scores(path, fp32, data.train_x.numpy()[selection]))
            model_files.write_card(path, card)
    if not candidates:
        return None
    return min(candidates, key=lambda p: model_files.read_card(p).get("selection_logit_error_vs_fp32", float("inf")))


def deployed_int8(out: pathlib.Path, data=None) -> pathlib.Path:
    """The deployed static U8S8 ONNX file (7-bit weights) of a fold folder (see `closest_to_fp32`)."""
    names = [static_name(*v) for v in STATIC_VARIANTS if v[0] == "u8" and v[3] == DEPLOYABLE_WEIGHT_BITS]
    deployed = closest_to_fp32([out / n for n in names if (out / n).exists()], out / "student.onnx", data)
    if deployed is None:
        raise FileNotFoundError(f"{out}: no static U8S8 INT8 ONNX file with {DEPLOYABLE_WEIGHT_BITS}-bit weights "
                                "to deploy (a folder from before they existed: run `python -m export loso` on it "
                                "again, which builds only what is missing)")
    return deployed


def deployed_tflite_int8(out: pathlib.Path, data=None) -> pathlib.Path | None:
    """The deployed TFLite INT8 file of a fold folder (see `closest_to_fp32`), or None."""
    candidates = [out / tflite_name(*v) for v in TFLITE_VARIANTS if (out / tflite_name(*v)).exists()]
    return closest_to_fp32(candidates, out / "student.tflite", data)


def pruning_curve(out: pathlib.Path, student: pathlib.Path, teacher: pathlib.Path, data, settings: Settings) -> None:
    for keep in settings.keep_ratios:
        path = out / f"pruned_keep{keep:g}.pt"
        step(path, lambda: steps.prune_model(student, path, teacher, keep=keep, epochs=settings.prune_epochs,
                                             data=data, progress=settings.progress))
        onnx_path = path.with_suffix(".onnx")
        step(onnx_path, lambda: steps.to_onnx(path, onnx_path, data=data))
    for sparsity in settings.sparsities:
        path = out / f"sparse{sparsity:g}.pt"
        step(path, lambda: steps.prune_model(student, path, teacher, sparsity=sparsity,
                                             epochs=settings.prune_epochs, data=data, progress=settings.progress))


SUMMARY_FIELDS = ("format", "parameters", "nonzero_parameters", "size_bytes", "quantization", "opset",
                  "agreement_with_reference", "max_abs_logit_diff_vs_reference", "reference",
                  "selection_agreement_vs_fp32", "selection_logit_error_vs_fp32", "keep_float", "weight_bits",
                  "kernel_check", "observer", "float_ops",
                  "ops", "pruning", "step_seconds")


def fold_result(out: pathlib.Path, deployed: pathlib.Path, deployed_tflite: pathlib.Path | None = None) -> dict:
    """Every card of a fold folder, reduced to what the report needs."""
    models = {}
    for card_file in sorted(out.glob("*" + model_files.CARD_SUFFIX)):
        card = json.loads(card_file.read_text())
        name = card_file.name[: -len(model_files.CARD_SUFFIX)]
        entry = {k: card[k] for k in SUMMARY_FIELDS if k in card}
        entry["test"] = card["test"]
        if (out / name).exists() and name.endswith((".onnx", ".tflite")):
            entry["size_bytes"] = (out / name).stat().st_size  # the finished file, metadata included
        entry["latency_ms"] = (card.get("latency") or card.get("latency_torch") or {}).get("median_ms")
        if "distillation" in card:
            entry["distillation"] = {k: v for k, v in card["distillation"].items() if k != "loss"}
        models[name] = entry
    card = model_files.read_card(out / "student.pt")
    return {"fold": out.name, "protocol": card.get("protocol"), "source": card.get("source"),
            "deployed_onnx_int8": deployed.name,
            "deployed_tflite_int8": deployed_tflite.name if deployed_tflite else None,
            "models": models, "date": model_files.now()}
