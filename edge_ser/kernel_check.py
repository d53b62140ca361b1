"""Does this CPU compute what a model file says? The runtime's optimised kernels against its
reference kernels, on the same log-mel windows.

An INT8 file fixes its arithmetic (scales, zero points, integer weights), but the kernels that
carry it out differ by CPU. On x86 with AVX2 and no VNNI, onnxruntime's U8S8 kernels add pairs
of u8 x s8 products into int16 (`vpmaddubsw`), which saturates when 8-bit weights meet large
activations: a file that is right on a VNNI laptop can be wrong there.
`export` writes 7-bit weights, which cannot saturate; this check finds any other such problem
on the device at hand before it costs accuracy. Reference kernels: onnxruntime with graph
optimisations off (every QuantizeLinear / DequantizeLinear and float op run as written),
LiteRT's BUILTIN_REF op resolver (no XNNPACK). So the check means something for QDQ ONNX files
(what `export` writes) and for TFLite; an ONNX file whose integer ops are already explicit
(ConvInteger, QLinearConv: dynamic or QOperator quantization) runs the same integer kernels on
both sides, and passes whatever they do.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib

import numpy as np

from .session import open_session

MIN_AGREEMENT = 0.99  # top-1 agreement under which the kernels are said to differ
# ... or a logit off by more than this: e-fold odds, while rounding alone moves logits by ~0.03
# (saturating kernels move them by 4-14).
MAX_LOGIT_DIFF = 1.0
DOT_PRODUCT_FLAGS = ("avx512_vnni", "avx_vnni", "asimddp")  # /proc/cpuinfo names


@dataclasses.dataclass(frozen=True)
class KernelCheck:
    agreement: float  # top-1 agreement, optimised vs reference kernels
    max_abs_logit_diff: float
    n_windows: int
    cpu_int8_dot_product: str  # DOT_PRODUCT_FLAGS this CPU has, "none" or "unknown"

    @property
    def ok(self) -> bool:
        return self.agreement >= MIN_AGREEMENT and self.max_abs_logit_diff <= MAX_LOGIT_DIFF

    def summary(self, model: str) -> str:
        verdict = "kernels match" if self.ok else "kernels DIFFER from"
        windows = f"{self.n_windows} window{'s' * (self.n_windows != 1)}"
        line = (f"{model}: {verdict} the model's reference arithmetic on {windows}: top-1 agreement "
                f"{100 * self.agreement:.1f} %, max |logit difference| {self.max_abs_logit_diff:.3g} "
                f"(CPU int8 dot product: {self.cpu_int8_dot_product})")
        if not self.ok:
            line += ("; if it is an INT8 ONNX file with 8-bit weights, re-export it with 7-bit ones "
                     "(python -m export quantize --weight-bits 7)")
        return line


def kernel_check(model: str | os.PathLike, log_mels: np.ndarray, batch: int = 16,
                 optimised: np.ndarray | None = None) -> KernelCheck:
    """Model file and log-mel windows [N, n_mels, frames] -> how far the optimised kernels
    stray from the reference ones on this CPU (one thread each). `optimised`: the model's logits
    [N, C] from its ordinary session on these windows, when the caller has them already."""
    log_mels = np.ascontiguousarray(log_mels, dtype=np.float32)
    if optimised is None:
        optimised = _logits(open_session(model), log_mels, batch)
    reference = _logits(open_session(model, reference=True), log_mels, batch)
    return KernelCheck(agreement=float(np.mean(optimised.argmax(1) == reference.argmax(1))),
                       max_abs_logit_diff=float(np.abs(optimised - reference).max()), n_windows=len(log_mels),
                       cpu_int8_dot_product=cpu_int8_dot_product())


def _logits(session, log_mels: np.ndarray, batch: int) -> np.ndarray:
    return np.concatenate([session(log_mels[s:s + batch]) for s in range(0, len(log_mels), batch)])


def cpu_int8_dot_product() -> str:
    """This CPU's int8 dot-product instructions (DOT_PRODUCT_FLAGS), "none", or "unknown" where
    /proc/cpuinfo cannot be read."""
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = {flag for line in text.splitlines() if line.split(":")[0].strip() in ("flags", "Features")
             for flag in line.split(":", 1)[1].split()}
    return ",".join(f for f in DOT_PRODUCT_FLAGS if f in flags) or "none"
