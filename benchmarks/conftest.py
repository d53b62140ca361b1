"""Benchmarks run on one thread: set before numpy/BLAS start their pools. Also the models the
end-to-end and cold-start suites share (built once per session, see bench_models)."""
import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _limit_loaded_pools() -> object | None:
    """The variables above are read when OpenBLAS/OpenMP load; a pytest plugin may have imported
    numpy before this file runs (it happens here: OpenBLAS then used both cores and a 3 s
    librosa log-mel took 16 ms instead of 1.5 ms), so cap the loaded pools too. CI exports the
    variables up front, where this changes nothing."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # comes with scikit-learn (librosa's dependency); without it, env only
        return None
    return threadpool_limits(limits=1)


_POOL_LIMITS = _limit_loaded_pools()  # kept for the session: the limit lasts while it lives

import pytest  # noqa: E402

from benchmarks import bench_models  # noqa: E402


def cpu_ticks() -> list[int] | None:
    """The aggregate line of /proc/stat: user nice system idle iowait irq softirq steal ... (ticks);
    None where there is no /proc/stat."""
    try:
        with open("/proc/stat") as f:
            return [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def steal_share(start: list[int] | None, end: list[int] | None) -> float | None:
    """Share of all CPU time between two `cpu_ticks` readings that the hypervisor gave to other
    guests (steal): a virtual machine's round that loses its CPU runs slow for no reason of its own."""
    if not start or not end or len(start) < 8 or len(end) < 8:
        return None
    delta = [b - a for a, b in zip(start[:8], end[:8])]
    return delta[7] / sum(delta) if sum(delta) > 0 else None


# Read when the session starts (this file is imported then); the hook below runs when the JSON is saved.
_LOAD_AT_START, _TICKS_AT_START = os.getloadavg(), cpu_ticks()


def pytest_benchmark_update_machine_info(config, machine_info):
    # Other processes and the hypervisor distort timings; the report shows how much they did.
    machine_info["loadavg_at_start"] = list(_LOAD_AT_START)
    machine_info["loadavg_at_end"] = list(os.getloadavg())
    machine_info["cpu_steal_share"] = steal_share(_TICKS_AT_START, cpu_ticks())
    machine_info["cpu_count"] = os.cpu_count()
    machine_info["libraries"] = library_versions()


def library_versions() -> dict[str, str]:
    """Versions of the libraries the benchmarks compare or run on (absent ones left out)."""
    from importlib import metadata

    names = ("edge-ser", "numpy", "scipy", "librosa", "kaldi-native-fbank", "onnxruntime", "ai-edge-litert",
             "torch", "litert-torch", "onnx", "webrtcvad-wheels", "webrtcvad", "silero-vad", "pytest-benchmark")
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def build_enabled() -> bool:
    return os.environ.get(bench_models.BUILD_ENV, "1") != "0"


def model_names() -> list[str]:
    """Every model the suites run, known at collection time without building anything."""
    names = bench_models.stand_in_names() if build_enabled() else []
    return names + [p.name for p, _ in bench_models.model_files()]


@pytest.fixture(scope="session")
def stand_ins():
    """{name: BenchModel} of the stand-ins, or the reason they cannot be built."""
    try:
        return bench_models.build_stand_ins(bench_models.cache_dir())
    except ImportError as e:
        return f"{e.name or e} is not installed (pip install '.[train,export,tflite]')"


@pytest.fixture(scope="session")
def found_models():
    return {p.name: (p, origin) for p, origin in bench_models.model_files()}


@pytest.fixture
def bench_model(request, found_models):
    """The BenchModel named by the test's `model` parameter; skips with the reason if unavailable.
    Stand-ins are built (once per session) only when a test asks for one."""
    name = request.node.callspec.params["model"]
    if name in found_models:
        return bench_models.describe_file(*found_models[name])
    stand_ins = request.getfixturevalue("stand_ins")
    if isinstance(stand_ins, str):
        pytest.skip(f"stand-in models not built: {stand_ins}")
    if name not in stand_ins:
        skipped = bench_models.cache_dir() / "skipped.json"
        reason = __import__("json").loads(skipped.read_text()).get(name, "not built") if skipped.exists() else "not built"
        pytest.skip(f"{name}: {reason}")
    return stand_ins[name]
