"""Benchmarks run on one thread: set before numpy/BLAS start their pools."""
import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def pytest_benchmark_update_machine_info(config, machine_info):
    # Other processes distort timings; the report shows how loaded the machine was.
    machine_info["loadavg_at_start"] = list(os.getloadavg())
