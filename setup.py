"""Builds the C extensions; all other metadata lives in pyproject.toml."""
import glob
import sys

from setuptools import Extension, setup

# -O3 lets gcc vectorise the per-frame loops; -ffp-contract=fast lets it use FMA where the kernel
# is compiled for it (ISO C mode turns that off by default); no -march=native, so a wheel built on one
# x86_64 host still runs on another (mel.c picks its AVX2 kernel at run time where the CPU has it).
CFLAGS = [] if sys.platform == "win32" else ["-O3", "-std=c11", "-ffp-contract=fast", "-Wall", "-Wno-unknown-pragmas", "-Wno-psabi"]

# The kernels are headers (fft_kernel.h, mel_kernel.h, ...): without them listed, build_ext
# --inplace would not rebuild after a change to one of them.
HEADERS = sorted(glob.glob("edge_ser/_native/*.h"))

EXTENSIONS = [
    Extension(
        "edge_ser._features",
        sources=[f"edge_ser/_native/{name}.c" for name in ("features_module", "fft", "mel", "mel_generic", "mel_avx2")],
        include_dirs=["edge_ser/_native"],
        depends=HEADERS,
        extra_compile_args=CFLAGS,
    ),
    Extension(
        "edge_ser._vad",
        sources=[f"edge_ser/_native/{name}.c" for name in ("vad_module", "vad")],
        include_dirs=["edge_ser/_native"],
        depends=HEADERS,
        extra_compile_args=CFLAGS,
    ),
]

setup(ext_modules=EXTENSIONS)
