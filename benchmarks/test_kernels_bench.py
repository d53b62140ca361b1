"""Does this machine's CPU compute what each model file says? `edge_ser.kernel_check` (the
runtime's optimised kernels against its reference kernels) for every model the suites run, on
real EmoDB speech when the corpus is there, else the synthetic speech-like clip. The report
turns the agreement into a target: INT8 kernels that saturate here (8-bit U8S8 weights on x86
with AVX2 but no VNNI) fail it. Timed once per model (the check, not the model, is measured)."""
import pytest

from benchmarks.clips import emodb_windows, speech
from benchmarks.conftest import model_names

N_CLIPS = 40  # EmoDB clips (the first by name), one 2-s window each
SYNTHETIC_SECONDS = 40


def windows(recognizer) -> tuple[object, str]:
    """Log-mel windows [W, n_mels, frames] the model is fed, and where they came from."""
    found = emodb_windows(recognizer, N_CLIPS)
    if found is not None:
        return found, f"{len(found)} EmoDB clips"
    return recognizer.log_mel_windows(speech(SYNTHETIC_SECONDS)), "synthetic speech-like clip"


@pytest.mark.parametrize("model", model_names())
def test_kernel_check(benchmark, bench_model, model):
    from edge_ser.kernel_check import kernel_check
    from edge_ser.recognizer import Recognizer

    recognizer = Recognizer(bench_model.path, threads=1)
    log_mels, source = windows(recognizer)
    benchmark.group = "kernel check"
    result = benchmark.pedantic(kernel_check, args=(bench_model.path, log_mels), rounds=1, iterations=1)
    benchmark.extra_info.update(kind="kernels", input=source, agreement=result.agreement,
                                max_abs_logit_diff=result.max_abs_logit_diff, n_windows=result.n_windows,
                                cpu_int8_dot_product=result.cpu_int8_dot_product, **bench_model.extra_info())
