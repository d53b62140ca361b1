"""A fresh `python -m edge_ser ARGS` process, timed, with its own peak RSS: what the cold-start
benchmarks and the packaged-model table (export/packaged.py) measure.

Cold means the runtime's shared libraries are not in the page cache either: before each run their
cached pages are dropped (posix_fadvise DONTNEED; no privileges needed). Besides being what a cold
start is, it steadies the RSS figure: the same process has measured up to 14 MB more of mapped
library pages right after the libraries were installed (2026-12-06, this VM; 45 MB against 61 MB
for importing numpy and onnxruntime) than after their pages were read back from disk.

Peak RSS is the child's own VmHWM, written at exit by a three-line launcher (RSS_LAUNCHER):
wait4's ru_maxrss would report the parent's size, since Linux carries the RSS high-water mark
across fork and exec."""
import functools
import importlib.util
import os
import pathlib
import subprocess
import sys
import tempfile
import time

RSS_FILE_ENV = "EDGE_SER_BENCH_RSS_FILE"
# `python -c RSS_LAUNCHER edge_ser ARGS...` runs `python -m edge_ser ARGS...` and, at exit, writes
# the process's peak RSS (VmHWM, kB) to the file named in RSS_FILE_ENV.
RSS_LAUNCHER = """import atexit, os, re, runpy, sys
atexit.register(lambda: open(os.environ["%s"], "w").write(
    re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)))
sys.argv = sys.argv[1:]; runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)""" % RSS_FILE_ENV


RUNTIME_PACKAGES = ("numpy", "numpy.libs", "onnxruntime", "ai_edge_litert", "edge_ser")


@functools.lru_cache(maxsize=None)
def library_files() -> tuple[pathlib.Path, ...]:
    """The shared libraries of the runtime's packages, found without importing them (walked
    once per process: every cold run drops the same files)."""
    site = pathlib.Path(importlib.util.find_spec("numpy").origin).parents[1]
    folders = [site / name for name in RUNTIME_PACKAGES]
    return tuple(f for folder in folders if folder.is_dir() for f in folder.rglob("*.so*") if f.is_file())


def evict_from_page_cache(files: list[pathlib.Path]) -> None:
    """Drop the files' clean cached pages (dirty ones are written first), so they are read from disk."""
    os.sync()
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def run_process(args: list[str], evict: bool = True) -> tuple[float, int]:
    """Run `python -m edge_ser ARGS` to completion -> (wall seconds, peak RSS in bytes);
    RuntimeError on a non-zero exit. `evict`: drop the runtime's libraries from the page cache
    first (untimed); False when the caller has done it outside its own timing."""
    with tempfile.TemporaryDirectory() as tmp:
        rss_file = pathlib.Path(tmp) / "rss"
        env = {**os.environ, RSS_FILE_ENV: str(rss_file)}
        argv = [sys.executable, "-c", RSS_LAUNCHER, "edge_ser", *args]
        if evict:
            evict_from_page_cache(library_files())
        start = time.perf_counter()
        proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        seconds = time.perf_counter() - start
        err = proc.stderr.decode(errors="replace").strip()
        if proc.returncode != 0:
            raise RuntimeError(f"edge_ser {' '.join(args)} exited {proc.returncode}: {err[:300]}")
        return seconds, int(rss_file.read_text()) * 1024
