"""Builds the C extensions; all other metadata lives in pyproject.toml."""
import sys

from setuptools import Extension, setup

# -O3 lets gcc vectorise the per-frame loops; no -march=native, so a wheel built on one
# x86_64 host still runs on another (the FFT picks AVX2 at run time where gcc supports it).
CFLAGS = [] if sys.platform == "win32" else ["-O3", "-std=c11", "-Wall", "-Wno-unknown-pragmas", "-Wno-psabi"]

EXTENSIONS = [
    Extension(
        "edge_ser._features",
        sources=["edge_ser/_native/features_module.c", "edge_ser/_native/fft.c", "edge_ser/_native/mel.c", "edge_ser/_native/mel_generic.c", "edge_ser/_native/mel_avx2.c"],
        include_dirs=["edge_ser/_native"],
        extra_compile_args=CFLAGS,
    ),
    Extension(
        "edge_ser._vad",
        sources=["edge_ser/_native/vad_module.c", "edge_ser/_native/vad.c"],
        include_dirs=["edge_ser/_native"],
        extra_compile_args=CFLAGS,
    ),
]

setup(ext_modules=EXTENSIONS)
