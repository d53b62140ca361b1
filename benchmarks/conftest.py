"""Benchmarks run on one thread: set before numpy/BLAS start their pools."""
import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
