"""The export steps, each reading model files and writing a model file + its card:

    teacher   training checkpoint -> export model file (.pt)
    distill   teacher .pt -> student .pt (soft targets + labels, training speakers only)
    prune     .pt -> smaller .pt (structured) or sparse .pt (magnitude), fine-tuned with the teacher
    onnx      .pt -> FP32 .onnx (+ graph optimisation), parity vs PyTorch
    quantize  FP32 .onnx -> INT8 .onnx (static QDQ or dynamic), agreement vs FP32
    tflite    .pt -> .tflite (FP32 or INT8), agreement vs the reference ONNX

Every card records the protocol (run, fold, test speakers), parameters, file size, scores on the
fold's test speakers (UA/WA through the runtime's own session), latency and the parent file.
A step needs the fold's data: pass a `folds.FoldData`, or it is rebuilt from the card's source.
"""
from __future__ import annotations

import dataclasses
import pathlib
import tempfile

import numpy as np
import torch

from edge_ser.kernel_check import kernel_check
from train.arch import build, cnn_arch
from train.models import n_parameters

from . import distill as kd
from . import evaluate, folds, model_files, onnx_export, prune, quantize, tflite

N_CALIBRATION = 128  # training clips used to calibrate INT8 ranges (the rest select variants)
STUDENT_WIDTHS = (16, 32, 64, 128)  # CNN student: 0.10 M parameters (teacher DeiT: 1.84 M)


def source_of(card: dict) -> dict:
    if "source" not in card:
        raise ValueError("model card has no source (run, fold): pass the fold's data explicitly")
    return card["source"]


def data_for(card: dict, data: folds.FoldData | None) -> folds.FoldData:
    if data is not None:
        return data
    source = source_of(card)
    return folds.fold_data(pathlib.Path(source["run"]), source["fold"])


def torch_card(model, arch: dict, data: folds.FoldData, source: dict, **extra) -> dict:
    """Card of a PyTorch model: parameters, test scores, torch latency."""
    logits = kd.logits_of(model, data.test_x).numpy()
    return {"format": "pytorch", "arch": arch, "parameters": n_parameters(model),
            "nonzero_parameters": model_files.n_nonzero(model), "protocol": data.protocol, "source": source,
            "test": evaluate.scores(data.test_y.numpy(), logits.argmax(1), len(data.labels)),
            "latency_torch": evaluate.torch_latency_ms(model, data.train_x.shape[1], data.train_x.shape[2]),
            "date": model_files.now(), **extra}


def teacher(run_dir: pathlib.Path, fold: str, variant: str, out: pathlib.Path,
            data: folds.FoldData | None = None) -> pathlib.Path:
    """Wrap `runs/<run>/checkpoints/<fold>/<variant>.pt` as an export model file."""
    model, arch, info = folds.load_teacher(run_dir, fold, variant)
    data = data or folds.fold_data(run_dir, fold)
    source = {"run": str(run_dir), "fold": fold, "variant": variant}
    card = torch_card(model, arch, data, source, role="teacher")
    return model_files.save(out, model, arch, info, card)


def distill(teacher_path: pathlib.Path, out: pathlib.Path, widths=STUDENT_WIDTHS, epochs: int = kd.EPOCHS,
            temperature: float = kd.TEMPERATURE, alpha: float = kd.ALPHA, seed: int = 0,
            data: folds.FoldData | None = None, progress: bool = True) -> pathlib.Path:
    """Teacher model file -> CNN student of `widths` distilled on the fold's training speakers.
    alpha = 0 trains the same student on the labels only (the no-distillation baseline)."""
    teacher_model, saved = model_files.load(teacher_path)
    data = data_for(saved["card"], data)
    arch = cnn_arch(len(data.labels), model_files.model_info(saved).feature_config.n_mels, widths)
    torch.manual_seed(seed)
    student = build(arch)
    student.standardize.fit(data.train_x)
    history = kd.distill(student, teacher_model, data.train_x, data.train_y, len(data.labels), epochs=epochs,
                         temperature=temperature, alpha=alpha, seed=seed, desc=f"{data.name} distil",
                         progress=progress, noisy=data.train_noisy, noise_p=data.noise_p)
    settings = {"epochs": epochs, "temperature": temperature, "alpha": alpha, "lr": kd.LR, "seed": seed,
                "noise_p": data.noise_p, "loss": history}
    card = torch_card(student, arch, data, source_of(saved["card"]), role="student",
                      teacher=str(teacher_path), teacher_parameters=saved["card"].get("parameters"),
                      distillation=settings)
    return model_files.save(out, student, arch, saved["info"], card)


def prune_model(model_path: pathlib.Path, out: pathlib.Path, teacher_path: pathlib.Path, *,
                keep: float | None = None, sparsity: float | None = None, epochs: int = 10, seed: int = 0,
                data: folds.FoldData | None = None, progress: bool = True) -> pathlib.Path:
    """Structured (`keep` = fraction of channels/heads kept) or magnitude (`sparsity` = fraction
    of weights zeroed) pruning, then `epochs` of distillation fine-tuning from the teacher."""
    if (keep is None) == (sparsity is None):
        raise ValueError("give exactly one of keep (structured) or sparsity (magnitude)")
    model, saved = model_files.load(model_path)
    teacher_model, _ = model_files.load(teacher_path)
    data = data_for(saved["card"], data)
    arch = saved["arch"]
    if keep is not None:
        model, arch = prune.structured(model, arch, keep)
    else:
        prune.magnitude(model, sparsity)
    history = kd.distill(model, teacher_model, data.train_x, data.train_y, len(data.labels), epochs=epochs,
                         lr=kd.LR / 4, seed=seed, desc=f"{data.name} prune fine-tune", progress=progress,
                         noisy=data.train_noisy, noise_p=data.noise_p) if epochs else []
    if sparsity is not None:
        prune.finalise_magnitude(model)
    pruning = {"mode": "structured" if keep is not None else "magnitude", "keep": keep, "sparsity_target": sparsity,
               "sparsity": prune.sparsity_of(model), "fine_tune_epochs": epochs, "loss": history}
    card = torch_card(model, arch, data, source_of(saved["card"]), role="pruned", parent=str(model_path),
                      pruning=pruning, parent_parameters=saved["card"].get("parameters"))
    return model_files.save(out, model, arch, saved["info"], card)


def exported_card(path: pathlib.Path, parent: str, data: folds.FoldData, source: dict, logits: np.ndarray,
                  expected: np.ndarray, **extra) -> dict:
    """Card of an ONNX/TFLite file from its logits on the test speakers and a reference's."""
    return {"format": path.suffix.lstrip("."), "parent": parent, "size_bytes": quantize.file_size(path),
            "protocol": data.protocol, "source": source,
            "test": evaluate.scores(data.test_y.numpy(), logits.argmax(1), len(data.labels)),
            "agreement_with_reference": evaluate.agreement(logits, expected),
            "max_abs_logit_diff_vs_reference": onnx_export.max_abs_diff(logits, expected),
            "latency": evaluate.latency_ms(path, data.test_x.shape[1], data.test_x.shape[2]),
            "date": model_files.now(), **extra}


EMBEDDED_KEYS = ("format", "parameters", "opset", "quantization", "protocol", "source", "date", "arch", "reference",
                 "agreement_with_reference", "max_abs_logit_diff_vs_reference", "dynamic_frames")


def embedded_card(card: dict) -> dict:
    """The short card stored inside the model file (the full one, with per-clip predictions, size
    and latency of the finished file, sits beside it)."""
    short = {k: card[k] for k in EMBEDDED_KEYS if k in card}
    short["test"] = {k: card["test"][k] for k in ("ua", "wa", "macro_f1")}
    return short


def finish(path: pathlib.Path, saved: dict, card: dict) -> pathlib.Path:
    """Embed the card in the file's contract metadata and write it beside the file."""
    info = model_files.model_info(saved, card=embedded_card(card))
    if path.suffix == ".onnx":
        onnx_export.set_metadata(path, info)
    else:
        tflite.write(path, path.read_bytes(), info, resizable=False)
    card["size_bytes"] = quantize.file_size(path)
    model_files.write_card(path, card)
    return path


def to_onnx(model_path: pathlib.Path, out: pathlib.Path, optimise: bool = True,
            data: folds.FoldData | None = None) -> pathlib.Path:
    """Model file -> FP32 ONNX (dynamic batch; dynamic frames for the CNN), checked against PyTorch."""
    model, saved = model_files.load(model_path)
    data = data_for(saved["card"], data)
    out = pathlib.Path(out)
    dynamic_frames = saved["arch"]["kind"] == "cnn"
    onnx_export.export(model, out, data.test_x.shape[1], dynamic_frames, data.test_x.shape[2])
    onnx_export.set_metadata(out, model_files.model_info(saved))
    graph = {"exported": onnx_export.graph_summary(out)}
    if optimise:  # kept only where it helps: the dynamo exporter already folds constants and BN
        with tempfile.TemporaryDirectory() as tmp:
            optimised = onnx_export.optimise(out, pathlib.Path(tmp) / "opt.onnx")
            graph["optimised"] = onnx_export.graph_summary(optimised)
            graph["optimised_kept"] = graph["optimised"]["nodes"] < graph["exported"]["nodes"]
            if graph["optimised_kept"]:
                out.write_bytes(optimised.read_bytes())
    reference = kd.logits_of(model, data.test_x).numpy()
    logits = evaluate.session_logits(out, data.test_x.numpy())
    card = exported_card(out, str(model_path), data, source_of(saved["card"]), logits, reference,
                         reference="pytorch", parameters=n_parameters(model), opset=onnx_export.OPSET,
                         quantization="none (FP32)", dynamic_frames=dynamic_frames, graph=graph, arch=saved["arch"])
    return finish(out, saved, card)


def saved_of(path: pathlib.Path) -> dict:
    """Contract info and card of an exported file, as `finish` needs them."""
    from edge_ser.session import open_session

    info = open_session(path).info
    card = model_files.read_card(path)
    return {"info": {"labels": list(info.labels), "feature_config": info.feature_config.to_dict(),
                     "window_seconds": info.window_seconds}, "card": card}


def quantize_onnx(fp32_path: pathlib.Path, out: pathlib.Path, mode: str = "static", method: str = "minmax",
                  activations: str = "u8", data: folds.FoldData | None = None, keep_float: str = "none",
                  weight_bits: int = 7) -> pathlib.Path:
    """FP32 ONNX -> INT8 ONNX: static QDQ (calibrated on training clips; 7- or 8-bit weights) or
    dynamic. A static file's card records `edge_ser.kernel_check` on the held-out training clips
    (a dynamic file's integer ops run on the same kernels either way: nothing to check)."""
    saved = saved_of(fp32_path)
    data = data_for(saved["card"], data)
    calibration, selection = folds.calibration_split(len(data.train_x), N_CALIBRATION)
    out = pathlib.Path(out)
    if mode == "static":
        quantize.static_qdq(fp32_path, out, quantize.calibration_features(data.train_x.numpy(), calibration),
                            method, activations, keep_float=keep_float, weight_bits=weight_bits)
        label = (f"static QDQ {activations.upper()}S8 per-channel ({weight_bits}-bit weights), {method} calibration "
                 f"on {len(calibration)} training clips")
        if keep_float != "none":
            label += ", first conv" + (" and head" if keep_float == "edges" else "") + " in float"
    elif mode == "dynamic":
        quantize.dynamic(fp32_path, out)
        label = "dynamic QInt8 per-channel weights"
    else:
        raise ValueError(f"unknown quantization mode {mode!r}: use static or dynamic")
    onnx_export.set_metadata(out, model_files.model_info(saved))
    reference = evaluate.session_logits(fp32_path, data.test_x.numpy())
    logits = evaluate.session_logits(out, data.test_x.numpy())
    held_out = data.train_x.numpy()[selection]
    held_out_logits = evaluate.session_logits(out, held_out)  # for the selection and the kernel check
    card = exported_card(out, str(fp32_path), data, source_of(saved["card"]), logits, reference, reference="fp32 onnx",
                         quantization=label, mode=mode, method=method if mode == "static" else None,
                         activations=activations if mode == "static" else None,
                         opset=saved["card"].get("opset"), parameters=saved["card"].get("parameters"),
                         float_ops=quantize.float_ops(out),
                         keep_float=keep_float if mode == "static" else None,
                         weight_bits=weight_bits if mode == "static" else None,
                         kernel_check=dataclasses.asdict(kernel_check(out, held_out, optimised=held_out_logits))
                         if mode == "static" else None,
                         **selection_of(held_out_logits, evaluate.session_logits(fp32_path, held_out)))
    return finish(out, saved, card)


def selection_scores(path: pathlib.Path, fp32_path: pathlib.Path, held_out: np.ndarray) -> dict:
    """How closely an INT8 file follows FP32 on held-out *training* clips (never the test speaker):
    top-1 agreement and mean |logit difference| (the finer criterion the pipeline selects by)."""
    return selection_of(evaluate.session_logits(path, held_out), evaluate.session_logits(fp32_path, held_out))


def selection_of(logits: np.ndarray, reference: np.ndarray) -> dict:
    """`selection_scores` from the two models' logits [N, C] on the held-out training clips."""
    return {"selection_agreement_vs_fp32": evaluate.agreement(logits, reference),
            "selection_logit_error_vs_fp32": float(np.mean(np.abs(logits - reference))),
            "n_selection_clips": len(logits)}


def tflite_int8_label(n_calibration: int, keep_float: str, observer: str) -> str:
    what = {"none": "full-integer, float32 input, int8 output",
            "first": "first conv in float, int8 output",
            "edges": "first conv and head in float, float32 output"}[keep_float]
    return (f"static INT8 (PT2E, per-channel symmetric weights), {observer} calibration on {n_calibration} "
            f"training clips, {what}")


def to_tflite(model_path: pathlib.Path, out: pathlib.Path, int8: bool = False, reference: pathlib.Path | None = None,
              data: folds.FoldData | None = None, keep_float: str = "none",
              observer: str = "histogram") -> pathlib.Path:
    """Model file -> TFLite (FP32, or static INT8 calibrated on training clips, `keep_float` layers
    left in float), compared with `reference` (an ONNX file: FP32 for FP32, INT8 for INT8) or else
    with PyTorch. INT8 cards also score the file against FP32 (PyTorch) on the held-out training clips."""
    model, saved = model_files.load(model_path)
    data = data_for(saved["card"], data)
    calibration, selection = folds.calibration_split(len(data.train_x), N_CALIBRATION)
    n_mels, frames = data.test_x.shape[1], data.test_x.shape[2]
    if int8:
        buf = tflite.convert_int8(model, quantize.calibration_features(data.train_x.numpy(), calibration), frames,
                                  keep_float=keep_float, observer=observer)
    else:
        buf = tflite.convert_fp32(model, n_mels, frames)
    out = tflite.write(out, buf, model_files.model_info(saved), resizable=saved["arch"]["kind"] == "cnn")
    expected = (evaluate.session_logits(reference, data.test_x.numpy()) if reference
                else kd.logits_of(model, data.test_x).numpy())
    logits = evaluate.session_logits(out, data.test_x.numpy())
    extra = {}
    if int8:
        held_out = data.train_x[selection]
        extra = {"keep_float": keep_float, "observer": observer, "float_ops": tflite.float_ops(out),
                 **selection_of(evaluate.session_logits(out, held_out.numpy()), kd.logits_of(model, held_out).numpy())}
    label = tflite_int8_label(len(calibration), keep_float, observer) if int8 else "none (FP32)"
    card = exported_card(out, str(model_path), data, source_of(saved["card"]), logits, expected,
                         reference=str(reference) if reference else "pytorch", quantization=label,
                         parameters=n_parameters(model), ops=tflite.op_types(out),
                         io=tflite.io_types(out), arch=saved["arch"], **extra)
    return finish(out, saved, card)
