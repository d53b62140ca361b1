"""The models the end-to-end and cold-start suites run: stand-ins built from the training code's
architectures, and any model files found in benchmarks/models/ or $EDGE_SER_BENCH_MODELS.

Stand-ins: `train.models.build("cnn" | "deit", ...)` with seeded random weights (latency and
size do not depend on the weights), exported to ONNX FP32 (torch.onnx, dynamo) and TFLite FP32
(litert-torch), and quantized the way the deployed students are (`export/`, docs/export.md):
ONNX INT8 = static QDQ U8S8 (per-channel int8 weights, uint8 activations) and TFLite INT8 = PT2E
static int8 (histogram observer), both with the first conv and the head left in float (the
variants the export pipeline selected on training clips in 10 / 7 of the 10 EmoDB LOSO folds).
Their activation ranges are calibrated on log-mel windows of the synthetic speech example
(benchmarks/clips.py), not on training data: with random weights only the kernels and the file
size matter here, not the accuracy. Each file carries the model contract's metadata. They are
written to a cache directory keyed by a hash of the code that builds them, so a machine builds
them once.

Each model is described by a `BenchModel`: what the report needs to pair and check them
(family, format, precision, file size, parameter count, the teacher's count if the card says).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import tempfile

from edge_ser.config import FeatureConfig
from edge_ser.contract import ModelInfo

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHIPPED_DIR = pathlib.Path(__file__).resolve().parent / "models"
PACKAGED_DIR = ROOT / "edge_ser" / "models"  # the packaged models (default, tiny)
MODELS_ENV = "EDGE_SER_BENCH_MODELS"  # extra model files or folders, os.pathsep-separated
BUILD_ENV = "EDGE_SER_BENCH_BUILD"  # "0": skip the stand-ins (e.g. the quick self-test)
CACHE_ENV = "EDGE_SER_BENCH_CACHE"  # where stand-ins are cached (default: the temp dir)
MODEL_SUFFIXES = (".onnx", ".tflite")

LABELS = ("anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral")  # EmoDB's 7
WINDOW_SECONDS = 2.0  # train.run_config.RunConfig.seconds
FEATURES = FeatureConfig()  # 64 mels, as training's default
ARCHITECTURES = ("cnn", "deit")  # train.models.build kinds, default options
# format -> (file suffix, precision); the formats plus FP32 TFLite for the INT8 ratio.
FORMATS = {"onnx-fp32": (".onnx", "fp32"), "onnx-int8": (".int8.onnx", "int8"),
           "tflite-fp32": (".tflite", "fp32"), "tflite-int8": (".int8.tflite", "int8")}
SEED = 0
KEEP_FLOAT = "edges"  # layers the deployed INT8 students keep in float (export.quantize / export.tflite)
TFLITE_OBSERVER = "histogram"  # activation observer of the deployed TFLite INT8 students
CALIBRATION_WINDOWS = 16  # log-mel windows of the synthetic speech example, CALIBRATION_HOP_SECONDS apart
CALIBRATION_HOP_SECONDS = 0.25
# The code whose change must rebuild the stand-ins.
BUILD_SOURCES = (ROOT / "train" / "models.py", pathlib.Path(__file__), ROOT / "edge_ser" / "contract.py",
                 ROOT / "export" / "quantize.py", ROOT / "export" / "tflite.py")


@dataclasses.dataclass(frozen=True)
class BenchModel:
    """One model file to benchmark and what the report needs to know about it."""

    name: str  # e.g. "cnn-onnx-int8" or the file name
    path: pathlib.Path
    family: str  # models sharing weights before quantization share a family
    format: str  # "onnx" | "tflite"
    precision: str  # "fp32" | "int8"
    origin: str  # "stand-in (random weights)" | "shipped" | "$EDGE_SER_BENCH_MODELS"
    n_parameters: int | None
    teacher_parameters: int | None
    compared_with: dict | None = None  # {model: parameters} the card compares this one against

    @property
    def file_bytes(self) -> int:
        return self.path.stat().st_size

    def extra_info(self) -> dict:
        """The fields stored with every benchmark of this model (pytest-benchmark extra_info)."""
        return {"model": self.name, "family": self.family, "format": self.format, "precision": self.precision,
                "origin": self.origin, "file_bytes": self.file_bytes, "n_parameters": self.n_parameters,
                "teacher_parameters": self.teacher_parameters, "compared_with": self.compared_with}


# --- stand-ins -----------------------------------------------------------------------------------


def stand_in_names() -> list[str]:
    """Names of the stand-ins, known without building them (for test parametrisation)."""
    return [f"{arch}-{fmt}" for arch in ARCHITECTURES for fmt in FORMATS]


def cache_dir() -> pathlib.Path:
    """<cache root>/edge-ser-bench-models/<hash of BUILD_SOURCES>: rebuilt when that code changes."""
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in BUILD_SOURCES)).hexdigest()[:12]
    root = pathlib.Path(os.environ.get(CACHE_ENV) or tempfile.gettempdir())
    return root / "edge-ser-bench-models" / digest


def _input_shape() -> tuple[int, int]:
    """(n_mels, frames) of one training window."""
    return FEATURES.n_mels, FEATURES.n_frames(FEATURES.n_samples(WINDOW_SECONDS))


def _torch_model(arch: str):
    """train.models classifier with seeded random weights, eval mode, one thread."""
    import torch

    from train import models

    torch.set_num_threads(1)
    torch.manual_seed(SEED)
    return models.build(arch, len(LABELS), _input_shape()).eval()


def calibration_windows():
    """float32 [CALIBRATION_WINDOWS, n_mels, frames]: log-mel windows of the synthetic speech
    example (benchmarks.clips.speech), the activation-range calibration of the INT8 stand-ins."""
    import numpy as np

    from benchmarks.clips import SAMPLE_RATE, speech
    from edge_ser.features import log_mel

    hop, window = int(CALIBRATION_HOP_SECONDS * SAMPLE_RATE), int(WINDOW_SECONDS * SAMPLE_RATE)
    audio = speech(WINDOW_SECONDS + CALIBRATION_WINDOWS * CALIBRATION_HOP_SECONDS)
    return np.stack([log_mel(np.ascontiguousarray(audio[i * hop:i * hop + window]), FEATURES)
                     for i in range(CALIBRATION_WINDOWS)]).astype(np.float32)


QUANTIZATION = {"fp32": "none (FP32)",
                "onnx-int8": f"static QDQ U8S8 per-channel, minmax, first conv and head in float; calibrated on "
                             f"{CALIBRATION_WINDOWS} log-mel windows of synthetic speech (stand-in: random weights)",
                "tflite-int8": f"static INT8 (PT2E, per-channel symmetric weights), {TFLITE_OBSERVER}, first conv and "
                               f"head in float; calibrated on {CALIBRATION_WINDOWS} log-mel windows of synthetic speech "
                               f"(stand-in: random weights)"}


def _info(arch: str, fmt: str, precision: str, n_parameters: int, teacher_parameters: int) -> ModelInfo:
    card = {"source": f"benchmark stand-in: train.models.build({arch!r}) with random weights (seed {SEED})",
            "precision": precision, "quantization": QUANTIZATION.get(fmt, QUANTIZATION["fp32"]),
            "n_parameters": n_parameters, "teacher": "deit", "teacher_parameters": teacher_parameters}
    return ModelInfo(LABELS, FEATURES, WINDOW_SECONDS, card=card)


def _export_onnx(model, arch: str, path: pathlib.Path) -> None:
    """Dynamic batch; dynamic frames unless the architecture fixes them (DeiT's patch grid)."""
    import torch

    x = torch.zeros(1, *_input_shape())
    axes = {0: torch.export.Dim("batch", max=256)}
    if arch == "cnn":
        axes[2] = torch.export.Dim("frames", min=32, max=100_000)
    torch.onnx.export(model, (x,), str(path), input_names=["log_mel"], output_names=["logits"],
                      dynamic_shapes=(axes,), dynamo=True, external_data=False, verbose=False)


def _quantize_onnx(src: pathlib.Path, dst: pathlib.Path) -> None:
    """Static QDQ U8S8 with the first conv and the head in float, as the deployed students
    (export.quantize.static_qdq), calibrated on `calibration_windows`."""
    import onnx

    from export import quantize

    # The dynamo exporter's value_info can disagree with onnx's own shape inference, which the
    # quantizer runs: drop it and let shapes be inferred afresh.
    model = onnx.load(str(src))
    del model.graph.value_info[:]
    plain = dst.with_name(f".plain-{src.name}")
    onnx.save(model, str(plain))
    try:
        quantize.static_qdq(plain, dst, calibration_windows(), "minmax", "u8", keep_float=KEEP_FLOAT)
    finally:
        plain.unlink(missing_ok=True)


def _export_tflite(model, arch: str, path: pathlib.Path, int8: bool) -> None:
    """litert-torch conversion at one window, as export.tflite does it: INT8 = PT2E static int8
    with the first conv and the head in float, calibrated on `calibration_windows`; the CNN's
    input made resizable (batch and frames), the DeiT's stays fixed (its patch grid)."""
    from export import tflite

    if int8:
        buf = tflite.convert_int8(model, calibration_windows(), keep_float=KEEP_FLOAT, observer=TFLITE_OBSERVER)
    else:
        buf = tflite.convert_fp32(model, *_input_shape())
    path.write_bytes(tflite.make_resizable(buf) if arch == "cnn" else buf)


def _with_metadata(path: pathlib.Path, info: ModelInfo) -> None:
    from edge_ser.contract import write_onnx_metadata, write_tflite_metadata

    if path.suffix == ".tflite":
        path.write_bytes(write_tflite_metadata(path.read_bytes(), info))
    else:
        import onnx

        model = onnx.load(str(path))
        write_onnx_metadata(model, info)
        onnx.save(model, str(path))


def build_stand_ins(out: pathlib.Path, formats=tuple(FORMATS)) -> dict[str, BenchModel]:
    """Export every architecture in `formats` into `out` (files already there are reused)
    -> {name: BenchModel}. A format whose toolchain is missing or whose export fails is left
    out, its reason in `out/skipped.json` (the suites skip it with that reason)."""
    from train import models

    out.mkdir(parents=True, exist_ok=True)
    teacher = models.n_parameters(_torch_model("deit"))
    built, skipped = {}, {}
    for arch in ARCHITECTURES:
        model = _torch_model(arch)
        n = models.n_parameters(model)
        for fmt in formats:
            suffix, precision = FORMATS[fmt]
            path = out / f"{arch}{suffix}"
            try:
                if not path.exists():
                    _make(model, arch, fmt, path, out)
                    _with_metadata(path, _info(arch, fmt if precision == "int8" else "fp32", precision, n, teacher))
            except ImportError as e:
                skipped[f"{arch}-{fmt}"] = f"{e.name or e} is not installed"
                continue
            except Exception as e:  # a converter failing on one format must not hide the others
                first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                skipped[f"{arch}-{fmt}"] = f"export failed: {type(e).__name__}: {first}"
                continue
            built[f"{arch}-{fmt}"] = BenchModel(f"{arch}-{fmt}", path, arch, fmt.split("-")[0], precision,
                                                "stand-in (random weights)", n, teacher)
    (out / "skipped.json").write_text(json.dumps(skipped))
    return built


def _make(model, arch: str, fmt: str, path: pathlib.Path, out: pathlib.Path) -> None:
    """Write one format to a temporary name, then rename: a killed run leaves no half file."""
    tmp = path.with_name(f".tmp-{path.name}")
    if fmt == "onnx-fp32":
        _export_onnx(model, arch, tmp)
    elif fmt == "onnx-int8":
        fp32 = out / f"{arch}{FORMATS['onnx-fp32'][0]}"
        if not fp32.exists():
            _make(model, arch, "onnx-fp32", fp32, out)
        _quantize_onnx(fp32, tmp)
    else:
        _export_tflite(model, arch, tmp, int8=fmt == "tflite-int8")
    tmp.replace(path)


# --- model files found on disk -------------------------------------------------------------------


def model_files() -> list[tuple[pathlib.Path, str]]:
    """[(path, origin)] of *.onnx / *.tflite in the package (its packaged models), SHIPPED_DIR and
    $EDGE_SER_BENCH_MODELS (files or folders)."""
    found = [(p, "packaged") for p in sorted(PACKAGED_DIR.glob("*")) if p.suffix in MODEL_SUFFIXES]
    found += [(p, "shipped") for p in sorted(SHIPPED_DIR.glob("*")) if p.suffix in MODEL_SUFFIXES]
    for entry in filter(None, os.environ.get(MODELS_ENV, "").split(os.pathsep)):
        p = pathlib.Path(entry)
        paths = sorted(q for q in p.rglob("*") if q.suffix in MODEL_SUFFIXES) if p.is_dir() else [p]
        found += [(q, f"${MODELS_ENV}") for q in paths]
    return found


def describe_file(path: pathlib.Path, origin: str) -> BenchModel:
    """A model file -> BenchModel: precision from its card, else from its quantized ops/tensors;
    parameters from its card, else (ONNX) the initializers' element count."""
    from edge_ser.session import open_session

    session = open_session(path, threads=1)
    card = session.info.card or {}
    fmt = "tflite" if path.suffix == ".tflite" else "onnx"
    precision = card.get("precision") or _detect_precision(path, fmt, session)
    model = card.get("model", {})  # the default model's card keeps these under "model"
    params = card.get("n_parameters") or model.get("parameters") or (_onnx_parameters(path) if fmt == "onnx" else None)
    family = card.get("family") or _family(path)
    teacher = card.get("teacher_parameters") or model.get("teacher_parameters")
    return BenchModel(path.name, path, family, fmt, precision, origin, params, teacher, model.get("compared_with"))


def _family(path: pathlib.Path) -> str:
    """File name without format and precision tokens: model.int8.onnx and model.onnx pair up."""
    stem = path.name.split(".")[0]
    for token in ("_int8", "-int8", "_fp32", "-fp32", "_quant", "-quant"):
        stem = stem.replace(token, "")
    return stem


def _detect_precision(path: pathlib.Path, fmt: str, session) -> str:
    """The file's precision: "int8" when `edge-ser info` finds quantized ops or int8 tensors, else "fp32"."""
    from edge_ser.describe import onnx_details, tflite_details

    details = onnx_details(str(path)) if fmt == "onnx" else tflite_details(session)
    return "int8" if details["quantized"].startswith("yes") else "fp32"


def _onnx_parameters(path: pathlib.Path) -> int | None:
    try:
        import numpy as np
        import onnx
    except ImportError:
        return None
    return sum(int(np.prod(t.dims)) for t in onnx.load(str(path), load_external_data=False).graph.initializer)
