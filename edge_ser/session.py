"""Inference sessions: one model file -> a callable log-mel [B, n_mels, T] -> logits [B, C].

`OnnxSession` wraps onnxruntime, `TFLiteSession` the LiteRT interpreter; `open_session` picks
by file content. Both check the model against the contract (edge_ser.contract) when they open
it, so a wrong model fails at load time with one line naming the file, not mid-inference.
"""
from __future__ import annotations

import contextlib
import io
import numbers
import os
import stat
import sys

import numpy as np

from .contract import INPUT_NAME, MAX_THREADS, OUTPUT_NAME, ModelInfo, is_tflite, tflite_info
from .errors import ModelError
from .packaged import not_a_file
from .tflite_check import check_tflite

TFLITE_INSTALL_HINT = "pip install 'edge-ser[tflite]'"
CPU_PROVIDER = "CPUExecutionProvider"
# --provider NAME -> onnxruntime execution providers, preferred first. TensorRT hands the nodes it
# cannot build to CUDA, CUDA hands its own leftovers to the CPU.
PROVIDER_CHAINS = {
    "cpu": (CPU_PROVIDER,),
    "cuda": ("CUDAExecutionProvider", CPU_PROVIDER),
    "tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", CPU_PROVIDER),
}
PROVIDERS = tuple(PROVIDER_CHAINS)


def _read_head(path: str, n: int = 8) -> bytes:
    """First `n` bytes of a model file (-1: all of it); ModelError naming it if it cannot be
    read or is empty."""
    try:
        mode = os.stat(path).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise not_a_file(path)
        with open(path, "rb") as f:
            head = f.read(n)
    except FileNotFoundError:
        raise ModelError(f"{path}: no such model file") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: is a directory, not a model file") from None
    except OSError as e:
        raise ModelError(f"{path}: cannot read model file ({e.strerror or e})") from None
    if not head:
        raise ModelError(f"{path}: model file is empty")
    return head


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _check_classes(path: str, n_classes, info: ModelInfo) -> None:
    if isinstance(n_classes, (int, np.integer)) and n_classes > 0 and n_classes != len(info.labels):
        raise ModelError(f"{path}: model outputs {n_classes} classes but its metadata lists "
                         f"{len(info.labels)} labels")


def _check_provider(provider: str) -> None:
    if provider not in PROVIDER_CHAINS:
        raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}, got {provider!r}")


def onnx_providers(provider: str, available: list[str]) -> list[str]:
    """`provider` (a PROVIDERS name) -> the onnxruntime providers to ask for: its chain
    (PROVIDER_CHAINS) without those this onnxruntime build lacks (`available`, as
    `onnxruntime.get_available_providers()` lists them); the CPU provider is always last."""
    _check_provider(provider)
    return [p for p in PROVIDER_CHAINS[provider] if p in available or p == CPU_PROVIDER]


def provider_notice(path: str, provider: str, used: list[str]) -> str | None:
    """One line when the session does not run on the provider asked for (`used`: the
    session's providers, first = where its nodes go first); None when it does."""
    wanted = PROVIDER_CHAINS[provider][0]
    if used and used[0] == wanted:
        return None
    fallback = "the CPU" if not used or used[0] == CPU_PROVIDER else used[0]
    return f"{path}: provider {provider} ({wanted}) could not be used here; running on {fallback}"


class OnnxSession:
    """An ONNX model on onnxruntime: its CPU provider, or CUDA / TensorRT where asked for and
    available (`provider`, a PROVIDERS name; the reference session is always on the CPU).

    `session(log_mel)`: float32 [B, n_mels, T] -> logits float32 [B, n_classes].
    `fixed_frames` is the model's static frame count, or None when frames are dynamic.
    `provider_notice` is one line when the session fell back from the provider asked for
    (the CLI prints it), else None.
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1, reference: bool = False, provider: str = "cpu"):
        import onnxruntime as ort

        self.path = path = os.fspath(path)
        _read_head(path)
        options = ort.SessionOptions()
        if reference:  # no fusion into optimised kernels: each op as the file writes it
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # The arena keeps freed buffers for reuse and raises the peak: off, a cold `infer` of the
        # default model peaks 3-4 MB lower (88-89 MB, not 92) at the same latency (6.5-7.0 ms p50).
        options.enable_cpu_mem_arena = False
        options.log_severity_level = 3  # errors only: warnings would break the one-line rule
        providers = [CPU_PROVIDER] if reference else onnx_providers(provider, ort.get_available_providers())
        try:
            # When a GPU provider fails to start, onnxruntime print()s a block about falling back
            # to the CPU on stdout, where results go; the notice below says it in one line.
            with contextlib.redirect_stdout(io.StringIO()):
                self._session = ort.InferenceSession(path, options, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types for bad files
            raise ModelError(f"{path}: not a loadable ONNX model ({_first_line(e)})") from None
        # Read back, not assumed: a GPU build without a usable GPU drops CUDA at session creation.
        self.provider_notice = None if reference else provider_notice(path, provider, self._session.get_providers())
        try:
            meta = self._session.get_modelmeta().custom_metadata_map
        except UnicodeDecodeError:
            raise ModelError(f"{path}: its metadata is not valid UTF-8") from None
        self.info = ModelInfo.from_metadata(meta, path)
        try:
            self._check_io()
        except UnicodeDecodeError:  # onnxruntime decodes names and dimension names when asked for them
            raise ModelError(f"{path}: its input or output names or dimensions are not valid UTF-8") from None

    def _check_io(self) -> None:
        path, n_mels = self.path, self.info.feature_config.n_mels
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
            names = [i.name for i in inputs]
            raise ModelError(f"{path}: model must have one input named {INPUT_NAME!r}, has {names}")
        x = inputs[0]
        if x.type != "tensor(float)":
            raise ModelError(f"{path}: input {INPUT_NAME!r} must be float32, is {x.type}")
        if len(x.shape) != 3:
            raise ModelError(f"{path}: input {INPUT_NAME!r} must be [batch, n_mels, frames], "
                             f"has shape {x.shape}")
        batch, bands, frames = x.shape
        if isinstance(bands, int) and bands != n_mels:
            raise ModelError(f"{path}: input has {bands} mel bands but the feature config has {n_mels}")
        if isinstance(batch, int) and batch != 1:
            raise ModelError(f"{path}: input batch must be dynamic or 1, is {batch}")
        self._batch_one = batch == 1
        self.fixed_frames = frames if isinstance(frames, int) and frames > 0 else None
        self.info.check_fixed_frames(self.fixed_frames, path)
        logits = [o for o in outputs if o.name == OUTPUT_NAME]
        if not logits:
            raise ModelError(f"{path}: model has no output named {OUTPUT_NAME!r} "
                             f"(outputs: {[o.name for o in outputs]})")
        y = logits[0]
        if y.type != "tensor(float)" or len(y.shape) != 2:
            raise ModelError(f"{path}: output {OUTPUT_NAME!r} must be float32 [batch, n_classes], "
                             f"is {y.type} {y.shape}")
        _check_classes(path, y.shape[1], self.info)

    def __call__(self, log_mel: np.ndarray) -> np.ndarray:
        """log_mel float32 [B, n_mels, T] -> logits float32 [B, n_classes]."""
        log_mel = np.ascontiguousarray(log_mel, dtype=np.float32)
        if self._batch_one:
            parts = [self._run(log_mel[i:i + 1]) for i in range(log_mel.shape[0])]
            return np.concatenate(parts, axis=0)
        return self._run(log_mel)

    def _run(self, log_mel: np.ndarray) -> np.ndarray:
        try:
            logits = self._session.run([OUTPUT_NAME], {INPUT_NAME: log_mel})[0]
        except Exception as e:  # e.g. fewer frames than the network's receptive field
            raise ModelError(f"{self.path}: inference failed on input {list(log_mel.shape)} "
                             f"({_first_line(e)})") from None
        _check_classes(self.path, logits.shape[-1], self.info)  # dynamic class axis: check now
        return logits


def _tflite_interpreter_module(path: str):
    """ai_edge_litert.interpreter, else tflite_runtime.interpreter (Interpreter, OpResolverType)."""
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        try:
            from tflite_runtime import interpreter
        except ImportError:
            raise ModelError(f"{path}: TFLite models need the LiteRT interpreter: "
                             f"{TFLITE_INSTALL_HINT}") from None
    return interpreter


def _reference_resolver(interpreter, path: str) -> dict:
    """Interpreter keyword for LiteRT's reference kernels (plain C++, no XNNPACK delegate)."""
    kinds = getattr(interpreter, "OpResolverType", None)
    if kinds is None:
        raise ModelError(f"{path}: this TFLite interpreter has no reference kernels (needs ai-edge-litert or "
                         "tflite-runtime >= 2.5)")
    return {"experimental_op_resolver_type": kinds.BUILTIN_REF}


class TFLiteSession:
    """A TFLite model on the LiteRT interpreter (ai_edge_litert, else tflite_runtime).

    `session(log_mel)`: float32 [B, n_mels, T] -> logits float32 [B, n_classes]. The input is
    resized to T frames when its frame axis is dynamic (and to B when the batch axis is, else
    run one item at a time); int8/uint8 tensors are (de)quantized with their own scale and zero
    point. `fixed_frames` is the static frame count of models converted with a fixed shape
    (litert-torch exports fixed shapes), or None; the recognizer pads or cuts windows to it.
    `tensor_details()` lists the model's tensors (name, shape, dtype, quantization).
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1, reference: bool = False):
        self.path = path = os.fspath(path)
        content = _read_head(path, -1)  # the whole file, with the same checks and messages
        interpreter = _tflite_interpreter_module(path)
        check_tflite(content, path)  # LiteRT trusts the file's indices and shapes: a bad one crashes it
        self.info = tflite_info(content, path)
        resolver = _reference_resolver(interpreter, path) if reference else {}
        try:
            self._interpreter = interpreter.Interpreter(model_content=content, num_threads=threads, **resolver)
            with _native_stderr_silenced():  # LiteRT logs an INFO line about XNNPACK here
                self._interpreter.allocate_tensors()
        except Exception as e:  # the interpreter raises ValueError/RuntimeError for bad files
            raise ModelError(f"{path}: not a loadable TFLite model ({_first_line(e)})") from None
        self._check_io()

    def _check_io(self) -> None:
        path, n_mels = self.path, self.info.feature_config.n_mels
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{path}: TFLite model must have one input and one output, "
                             f"has {len(inputs)} and {len(outputs)}")
        x, y = inputs[0], outputs[0]
        if x["dtype"] not in (np.float32, np.int8, np.uint8):
            raise ModelError(f"{path}: input must be float32 or int8, is {np.dtype(x['dtype']).name}")
        shape = list(x.get("shape_signature", x["shape"]))
        if len(shape) != 3:
            raise ModelError(f"{path}: input must be [batch, n_mels, frames], has shape {shape}")
        if shape[1] != n_mels:
            raise ModelError(f"{path}: input has {shape[1]} mel bands but the feature config has {n_mels}")
        out_shape = list(y.get("shape_signature", y["shape"]))
        if len(out_shape) != 2:
            raise ModelError(f"{path}: output must be [batch, n_classes], has shape {out_shape}")
        _check_classes(path, out_shape[1], self.info)
        for name, detail in (("input", x), ("output", y)):
            if np.dtype(detail["dtype"]) != np.float32 and not detail["quantization"][0] > 0:
                raise ModelError(f"{path}: integer {name} tensor has no quantization scale")
        self._dynamic_batch = shape[0] == -1
        self.fixed_frames = int(shape[2]) if shape[2] > 0 else None
        self.info.check_fixed_frames(self.fixed_frames, path)
        self._input, self._output = x, y

    def tensor_details(self, which: str = "all") -> list[dict]:
        """The model's tensors ("all", in file order), or its "inputs" or "outputs": each a dict
        of name, shape (a tuple, -1 on a dynamic axis), dtype (a numpy dtype) and quantization
        (scale, zero_point), as the interpreter reports it: (0.0, 0) for float tensors and
        per-channel quantized ones."""
        read = {"all": self._interpreter.get_tensor_details, "inputs": self._interpreter.get_input_details,
                "outputs": self._interpreter.get_output_details}[which]
        return [_public_detail(d) for d in read()]

    def __call__(self, log_mel: np.ndarray) -> np.ndarray:
        """log_mel float32 [B, n_mels, T] -> logits float32 [B, n_classes]."""
        log_mel = np.ascontiguousarray(log_mel, dtype=np.float32)
        if self._dynamic_batch:
            return self._run(log_mel)
        return np.concatenate([self._run(log_mel[i:i + 1]) for i in range(log_mel.shape[0])])

    def _run(self, log_mel: np.ndarray) -> np.ndarray:
        interp, index = self._interpreter, self._input["index"]
        if tuple(interp.get_input_details()[0]["shape"]) != log_mel.shape:
            try:
                interp.resize_tensor_input(index, list(log_mel.shape))
                interp.allocate_tensors()
            except Exception as e:
                raise ModelError(f"{self.path}: cannot resize the input to {list(log_mel.shape)} "
                                 f"({_first_line(e)})") from None
        interp.set_tensor(index, _quantize(log_mel, self._input))
        try:
            interp.invoke()
        except Exception as e:
            raise ModelError(f"{self.path}: inference failed on input {list(log_mel.shape)} "
                             f"({_first_line(e)})") from None
        logits = _dequantize(interp.get_tensor(self._output["index"]), self._output)
        _check_classes(self.path, logits.shape[-1], self.info)
        return logits


def _public_detail(detail: dict) -> dict:
    """An interpreter tensor detail -> {name, shape, dtype, quantization} (see tensor_details)."""
    shape = detail.get("shape_signature", detail["shape"])
    return {"name": detail["name"], "shape": tuple(int(n) for n in shape), "dtype": np.dtype(detail["dtype"]),
            "quantization": tuple(detail["quantization"])}


@contextlib.contextmanager
def _native_stderr_silenced():
    """Send file descriptor 2 to /dev/null for the block (C++ logging bypasses sys.stderr)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded interpreter): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    """float32 -> the tensor's dtype, using its (scale, zero_point) when it is an integer type."""
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return x
    scale, zero_point = detail["quantization"]
    limits = np.iinfo(dtype)
    q = np.round(x / scale) + zero_point
    return np.clip(q, limits.min, limits.max).astype(dtype)


def _dequantize(q: np.ndarray, detail: dict) -> np.ndarray:
    if np.dtype(detail["dtype"]) == np.float32:
        return q
    scale, zero_point = detail["quantization"]
    return ((q.astype(np.float32) - zero_point) * scale).astype(np.float32)


def open_session(path: str | os.PathLike, threads: int = 1, reference: bool = False, provider: str = "cpu"):
    """A model file -> OnnxSession or TFLiteSession, chosen by content (TFL3 identifier) first.
    `reference`: the runtime's reference kernels instead of its optimised ones (slow; for
    `edge_ser.kernel_check`). `provider` (PROVIDERS) applies to ONNX models; a TFLite model
    runs on the CPU whatever it says. Either session's `provider_notice` is one line when the
    provider asked for is not the one in use, else None."""
    path = os.fspath(path)
    _check_provider(provider)
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or not 1 <= threads <= MAX_THREADS:
        raise ValueError(f"threads must be an integer from 1 to {MAX_THREADS}, got {threads!r}")  # 10**5 crashed LiteRT
    if is_tflite(_read_head(path)) or path.lower().endswith(".tflite"):
        session = TFLiteSession(path, threads, reference)
        session.provider_notice = None if provider == "cpu" else (
            f"{path}: provider {provider} applies to ONNX models only; this TFLite model runs on the CPU")
        return session
    return OnnxSession(path, threads, reference, provider)
