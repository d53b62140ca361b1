"""The C extensions against misuse that used to crash them: re-initialising an extractor another
thread computes with, tables whose sizes overflow int, buffers exported without a format.

Each case runs in a child process (this file run as a script), so a segfault fails the test
instead of killing pytest; the child prints what it saw and exits 0 only when every check held.
"""
import ctypes
import os
import pathlib
import subprocess
import sys
import threading

import numpy as np
import pytest

import edge_ser
from edge_ser import _features, features, reference
from edge_ser.config import FeatureConfig

CONFIG = FeatureConfig()
INT_MAX = 2**31 - 1
# Enough attempts that a re-init lands while a compute runs (the computes hold no GIL for most
# of their time, so the first few attempts nearly always do); the child stops at the first.
REINIT_ATTEMPTS = 20000


def table_args(config=CONFIG):
    """Extractor's positional arguments for `config`: n_fft, hop, window, filterbank, log_floor."""
    fb = np.ascontiguousarray(reference.mel_filterbank(config))
    return config.n_fft, config.hop_length, reference.hann_window(config), fb, config.log_floor


def unbacked_doubles(count: int) -> np.ndarray:
    """A float64 [count] array over memory that is not there: only its length may be used.

    numpy takes any address and length, so a table far larger than int can count is cheap to
    make; the extractor must refuse it from its length alone, before it reads a value.
    """
    anchor = ctypes.c_double()
    pointer = ctypes.cast(ctypes.pointer(anchor), ctypes.POINTER(ctypes.c_double))
    view = np.ctypeslib.as_array(pointer, shape=(count,)).view(np.float64)  # format 'd', not ctypes' '<d'
    view.flags.writeable = False
    return view


class PyBuffer(ctypes.Structure):
    """CPython's Py_buffer (stable across versions: it is part of the limited API)."""
    _fields_ = [("buf", ctypes.c_void_p), ("obj", ctypes.c_void_p), ("len", ctypes.c_ssize_t),
                ("itemsize", ctypes.c_ssize_t), ("readonly", ctypes.c_int), ("ndim", ctypes.c_int),
                ("format", ctypes.c_void_p), ("shape", ctypes.POINTER(ctypes.c_ssize_t)),
                ("strides", ctypes.POINTER(ctypes.c_ssize_t)), ("suboffsets", ctypes.POINTER(ctypes.c_ssize_t)),
                ("internal", ctypes.c_void_p)]


class PyTypeSlot(ctypes.Structure):
    _fields_ = [("slot", ctypes.c_int), ("pfunc", ctypes.c_void_p)]


class PyTypeSpec(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("basicsize", ctypes.c_int), ("itemsize", ctypes.c_int),
                ("flags", ctypes.c_uint), ("slots", ctypes.POINTER(PyTypeSlot))]


PY_BF_GETBUFFER = 1  # the slot id of bf_getbuffer (typeslots.h)
GETBUFFER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.POINTER(PyBuffer), ctypes.c_int)


def formatless_buffer(data: bytes):
    """An object whose buffer has format NULL even when a format is asked for.

    Python's own exporters always fill the format in, so this one is a type made with
    PyType_FromSpec whose bf_getbuffer is a ctypes callback; NULL means unsigned bytes ('B').
    """
    store = ctypes.create_string_buffer(data, len(data))
    shape = ctypes.c_ssize_t(len(data))

    def getbuffer(exporter, view, flags):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(exporter))  # view.obj owns a reference
        view[0] = PyBuffer(buf=ctypes.addressof(store), obj=id(exporter), len=len(data), itemsize=1,
                           readonly=1, ndim=1, format=None, shape=ctypes.pointer(shape))
        return 0

    callback = GETBUFFER(getbuffer)
    slots = (PyTypeSlot * 2)(PyTypeSlot(PY_BF_GETBUFFER, ctypes.cast(callback, ctypes.c_void_p)), PyTypeSlot(0, None))
    spec = PyTypeSpec(b"test_native_safety.Formatless", object.__basicsize__, 0, 0, slots)
    ctypes.pythonapi.PyType_FromSpec.restype = ctypes.py_object
    ctypes.pythonapi.PyType_FromSpec.argtypes = [ctypes.POINTER(PyTypeSpec)]
    formatless_type = ctypes.pythonapi.PyType_FromSpec(ctypes.byref(spec))
    formatless_type._keep = (store, shape, callback, slots, spec)  # the callback and buffer live as long as the type
    return formatless_type()


# --- the children: each returns normally only when its checks held --------------------------------


def child_reinit_while_computing():
    """Threads compute with the shared cached extractor while another re-initialises it."""
    ex = features.extractor(CONFIG)
    x = np.random.default_rng(0).normal(scale=0.3, size=3 * 16000).astype(np.float32)
    expected = features.log_mel(x)
    stop, refusals, wrong = threading.Event(), [], []

    def compute():
        out = np.empty_like(expected)
        while not stop.is_set():
            ex.log_mel(x, out)
            if not np.array_equal(out, expected):
                wrong.append(1)

    def reinit():
        for attempt in range(REINIT_ATTEMPTS):
            try:
                ex.__init__(*table_args())
            except RuntimeError as e:
                refusals.append(str(e))
                print("attempts:", attempt + 1)
                break
        stop.set()

    threads = [threading.Thread(target=compute) for _ in range(3)] + [threading.Thread(target=reinit)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("refused:", refusals[0] if refusals else "never")
    assert refusals, f"no re-init was refused in {REINIT_ATTEMPTS} attempts"
    assert not wrong, f"{len(wrong)} computes gave wrong features"
    ex.__init__(*table_args())  # idle again: re-initialising is fine
    assert np.array_equal(features.log_mel(x), expected)


def child_huge_filterbank():
    """n_mels x n_bins over int's range is refused from the buffer's length, before any read."""
    n_bins = CONFIG.n_fft // 2 + 1
    n_mels = INT_MAX // n_bins + 1
    n_fft, hop, window, _, log_floor = table_args()
    expect_refused(lambda: _features.Extractor(n_fft, hop, window, unbacked_doubles(n_mels * n_bins), log_floor),
                   "a filterbank of more than 2**31 values")


def child_huge_dct():
    """A DCT table whose n_mfcc x n_mels overflows int is refused from its length."""
    n_fft, hop, window, fb, log_floor = table_args()
    n_mfcc = INT_MAX // CONFIG.n_mels + 1
    expect_refused(lambda: _features.Extractor(n_fft, hop, window, fb, log_floor, "none",
                                               unbacked_doubles(n_mfcc * CONFIG.n_mels)),
                   "a DCT table of more than 2**31 values")


def expect_refused(build, what: str) -> None:
    """`build()` must raise ValueError (printed for the parent to read), not accept or crash."""
    try:
        build()
    except ValueError as e:
        print("refused:", e)
    else:
        raise AssertionError(f"{what} was accepted")


def child_formatless_buffers():
    """Buffers exported without a format are unsigned bytes: the wrong type for every argument."""
    n_fft, hop, window, fb, log_floor = table_args()
    raw = formatless_buffer(bytes(8 * n_fft))
    assert memoryview(raw).format == "B" and memoryview(raw).nbytes == 8 * n_fft  # the exporter works
    calls = {
        "window": lambda: _features.Extractor(n_fft, hop, raw, fb, log_floor),
        "filterbank": lambda: _features.Extractor(n_fft, hop, window, raw, log_floor),
        "audio": lambda: features.extractor(CONFIG).log_mel(raw, np.empty((CONFIG.n_mels, 1), np.float32)),
        "out": lambda: features.extractor(CONFIG).log_mel(np.zeros(100, np.float32), raw),
    }
    for name, call in calls.items():
        try:
            call()
        except TypeError as e:
            print("refused:", e)
            assert name in str(e) and "'B'" in str(e), e
        else:
            raise AssertionError(f"{name}: a buffer without a format was accepted")


CHILDREN = {f.__name__: f for f in (child_reinit_while_computing, child_huge_filterbank, child_huge_dct,
                                    child_formatless_buffers)}


def run_child(name: str) -> str:
    """Runs CHILDREN[name] in a fresh interpreter on this edge_ser; returns its output."""
    root = pathlib.Path(edge_ser.__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, __file__, name], capture_output=True, text=True, env=env, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{name} exited {done.returncode}:\n{output}"
    return output


# --- the tests ---------------------------------------------------------------------------------


def test_reinit_of_a_computing_extractor_is_refused():
    output = run_child("child_reinit_while_computing")
    assert "refused: Extractor.__init__: this extractor is computing in another thread" in output


def test_filterbank_over_int_range_is_refused():
    output = run_child("child_huge_filterbank")
    assert "refused: filterbank:" in output and "at most 2147483647" in output


def test_dct_over_int_range_is_refused():
    output = run_child("child_huge_dct")
    assert "refused: dct:" in output and "at most 2147483647" in output


def test_buffers_without_format_are_refused():
    output = run_child("child_formatless_buffers")
    assert output.count("refused:") == 4


def test_failed_reinit_leaves_the_extractor_as_it_was():
    ex = _features.Extractor(*table_args())
    x = np.random.default_rng(2).normal(scale=0.3, size=4000).astype(np.float32)
    expected = features.log_mel(x)
    n_fft, _, window, fb, log_floor = table_args()
    with pytest.raises(ValueError, match="hop_length > 0"):
        ex.__init__(n_fft, 0, window, fb, log_floor)
    out = np.empty_like(expected)
    ex.log_mel(x, out)
    assert np.array_equal(out, expected)


if __name__ == "__main__":
    CHILDREN[sys.argv[1]]()
