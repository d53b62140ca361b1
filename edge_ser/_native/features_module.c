/* edge_ser._features: the CPython face of mel.c. Buffers in, buffers out (no numpy headers, so
 * the build needs nothing but a C compiler); the GIL is released while the arithmetic runs.
 * Any number of threads may compute with one Extractor (its tables are read-only then);
 * __init__ on an Extractor that is computing is refused, since it would free those tables. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "mel.h"
#include "sizes.h"

typedef struct {
    PyObject_HEAD
    mel_extractor ex;
    int ready;
    /* computations in flight on ex. Counted with the GIL held; while nonzero, __init__ must not
     * replace ex: they read it with the GIL released. */
    Py_ssize_t busy;
} Extractor;

/* obj's buffer as C-contiguous values of struct format fmt, "f" (float32) or "d" (float64):
 * exactly count of them unless count < 0. TypeError for another format (NULL means unsigned
 * bytes, "B", in the buffer protocol), ValueError for another count. */
static int get_buffer(PyObject *obj, Py_buffer *view, const char *fmt, Py_ssize_t count, int writable,
                      const char *what)
{
    const int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    const Py_ssize_t size = fmt[0] == 'f' ? sizeof(float) : sizeof(double);
    if (PyObject_GetBuffer(obj, view, flags) < 0)
        return -1;
    const char *got = view->format ? view->format : "B";
    if (strcmp(got, fmt) != 0 || view->itemsize != size)
        PyErr_Format(PyExc_TypeError, "%s: expected %s values (format '%s'), got format '%s'", what,
                     fmt[0] == 'f' ? "float32" : "float64", fmt, got);
    else if (count >= 0 && view->len / size != count) /* not count * size: that can overflow */
        PyErr_Format(PyExc_ValueError, "%s: expected %zd values, got %zd", what, count, view->len / size);
    else
        return 0;
    PyBuffer_Release(view);
    return -1;
}

/* Rows of row_len values in a table's buffer of doubles, into *rows; -1 with ValueError unless it
 * holds one or more whole rows and at most MEL_MAX_TABLE values. */
static int table_rows(const Py_buffer *table, int row_len, const char *what, const char *row_unit, int *rows)
{
    const Py_ssize_t count = table->len / (Py_ssize_t)sizeof(double);
    if (count == 0 || count % row_len) {
        PyErr_Format(PyExc_ValueError, "%s: %zd values is not one or more whole rows of %d %s", what, count,
                     row_len, row_unit);
        return -1;
    }
    if (count > MEL_MAX_TABLE) {
        PyErr_Format(PyExc_ValueError, "%s: %zd rows of %d %s is %zd values; a table holds at most %d", what,
                     count / row_len, row_len, row_unit, count, MEL_MAX_TABLE);
        return -1;
    }
    *rows = (int)(count / row_len);
    return 0;
}

/* names[i] -> i, or -1 (names end with NULL). */
static int choice(const char *name, const char *const *names)
{
    for (int i = 0; names[i]; i++)
        if (!strcmp(name, names[i]))
            return i;
    return -1;
}

/* The kernel and FeatureConfig's choices, in the order of mel.h's MEL_KERNEL_* and MEL_NORM_* values. */
static const char *const KERNELS[] = {"auto", "generic", "avx2", NULL};
static const char *const NORMALIZATIONS[] = {"none", "utterance", "whisper", NULL};
static const char *const LOGS[] = {"ln", "log10", NULL};
static const char *const PADS[] = {"zero", "reflect", NULL};

/* The string options -> kernel, normalize and mel_init's flags; -1 with ValueError set when one is unknown. */
static int parse_options(const char *kernel_name, const char *norm_name, const char *log_name, const char *pad_name,
                         int drop_last, int *kernel, int *normalize, int *flags)
{
    *kernel = choice(kernel_name, KERNELS);
    if (*kernel < 0 || (*kernel == MEL_KERNEL_AVX2 && mel_best_kernel() != MEL_KERNEL_AVX2)) {
        PyErr_Format(PyExc_ValueError, "kernel %s is not available on this CPU (choose auto, generic or avx2)", kernel_name);
        return -1;
    }
    *normalize = choice(norm_name, NORMALIZATIONS);
    int use_log10 = choice(log_name, LOGS), reflect = choice(pad_name, PADS);
    if (*normalize < 0 || use_log10 < 0 || reflect < 0) {
        PyErr_Format(PyExc_ValueError, "unknown option: normalize %s, log %s, pad %s (choose none|utterance|whisper, "
                     "ln|log10, zero|reflect)", norm_name, log_name, pad_name);
        return -1;
    }
    *flags = (use_log10 ? MEL_LOG10 : 0) | (reflect ? MEL_REFLECT : 0) | (drop_last ? MEL_DROP_LAST : 0);
    return 0;
}

/* mel_init's failures as Python exceptions (the table sizes were checked before, with their own). */
static void set_init_error(int rc, int n_fft, int hop, double log_floor)
{
    if (rc == MEL_NOMEM)
        PyErr_NoMemory();
    else if (rc == MEL_TOOBIG)
        PyErr_Format(PyExc_ValueError, "n_fft %d with hop_length %d: too large for this build's sizes", n_fft, hop);
    else
        PyErr_Format(PyExc_ValueError, "need hop_length > 0 and log_floor > 0, got %d and %g", hop, log_floor);
}

static int Extractor_init(Extractor *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"n_fft", "hop_length", "window", "filterbank", "log_floor", "normalize", "dct", "kernel",
                             "log", "pad", "drop_last_frame", NULL};
    int n_fft, hop, drop_last = 0, kernel, normalize, flags;
    const char *kernel_name = "auto", *norm_name = "none", *log_name = "ln", *pad_name = "zero";
    double log_floor;
    PyObject *window_obj, *fb_obj, *dct_obj = Py_None;
    Py_buffer window, fb, dct = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iiOOd|sOsssp", kwlist, &n_fft, &hop, &window_obj, &fb_obj,
                                     &log_floor, &norm_name, &dct_obj, &kernel_name, &log_name, &pad_name, &drop_last))
        return -1;
    if (parse_options(kernel_name, norm_name, log_name, pad_name, drop_last, &kernel, &normalize, &flags) < 0)
        return -1;
    if (fft_supported(n_fft)) {
        PyErr_Format(PyExc_ValueError, "n_fft must be even, >= 4, with n_fft / 2 a product of 2, 3 and 5, got %d", n_fft);
        return -1;
    }
    if (get_buffer(window_obj, &window, "d", n_fft, 0, "window") < 0)
        return -1;
    if (get_buffer(fb_obj, &fb, "d", -1, 0, "filterbank") < 0) {
        PyBuffer_Release(&window);
        return -1;
    }
    int n_mels = 0, n_mfcc = 0, ok = 0;
    if (table_rows(&fb, n_fft / 2 + 1, "filterbank", "bins", &n_mels) < 0)
        goto done;
    if (dct_obj != Py_None) {
        if (get_buffer(dct_obj, &dct, "d", -1, 0, "dct") < 0 || table_rows(&dct, n_mels, "dct", "bands", &n_mfcc) < 0)
            goto done;
        if (n_mfcc > n_mels) {
            PyErr_Format(PyExc_ValueError, "dct: %d rows, more than the filterbank's %d bands", n_mfcc, n_mels);
            goto done;
        }
    }
    /* Built aside and swapped in whole: a refused or failed __init__ leaves the extractor as it was. */
    mel_extractor fresh;
    int rc = mel_init(&fresh, n_fft, hop, window.buf, n_mels, fb.buf, log_floor, normalize, n_mfcc,
                      dct_obj != Py_None ? dct.buf : NULL, kernel, flags);
    if (rc != MEL_OK) {
        set_init_error(rc, n_fft, hop, log_floor);
        goto done;
    }
    /* Checked here, after everything that may run Python code (and so let a compute start). */
    if (self->busy) {
        mel_free(&fresh);
        PyErr_SetString(PyExc_RuntimeError, "Extractor.__init__: this extractor is computing in another thread; "
                                            "build a new Extractor instead of re-initialising a shared one");
        goto done;
    }
    if (self->ready)
        mel_free(&self->ex);
    self->ex = fresh;
    self->ready = ok = 1;
done:
    PyBuffer_Release(&window);
    PyBuffer_Release(&fb);
    if (dct.obj)
        PyBuffer_Release(&dct);
    return ok ? 0 : -1;
}

static void Extractor_dealloc(Extractor *self)
{
    if (self->ready)
        mel_free(&self->ex);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Values in the output for n samples, rows per frame; -1 with ValueError when n or the output
 * is beyond what the extractor indexes (longs) or memory addresses. */
static Py_ssize_t output_count(const mel_extractor *ex, Py_ssize_t n, long rows)
{
    size_t values;
    if (n > LONG_MAX) {
        PyErr_Format(PyExc_ValueError, "audio: %zd samples, more than this build takes (%ld)", n, LONG_MAX);
        return -1;
    }
    long n_frames = mel_n_frames(ex, (long)n);
    if (size_mul((size_t)rows, (size_t)n_frames, &values) || values > LONG_MAX || values > PY_SSIZE_T_MAX / sizeof(float)) {
        PyErr_Format(PyExc_ValueError, "audio: %zd samples give %ld frames of %ld values, more than memory holds", n,
                     n_frames, rows);
        return -1;
    }
    return (Py_ssize_t)values;
}

/* compute() once the extractor is marked busy. */
static PyObject *compute_busy(Extractor *self, PyObject *x_obj, PyObject *out_obj, int mfcc)
{
    Py_buffer x, out;
    if (!self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "extractor not initialised");
        return NULL;
    }
    const long rows = mfcc ? self->ex.n_mfcc : self->ex.n_mels;
    if (mfcc && rows == 0) {
        PyErr_SetString(PyExc_ValueError, "this extractor was built without a DCT table");
        return NULL;
    }
    if (get_buffer(x_obj, &x, "f", -1, 0, "audio") < 0)
        return NULL;
    const Py_ssize_t n = x.len / (Py_ssize_t)sizeof(float), count = output_count(&self->ex, n, rows);
    if (count < 0 || get_buffer(out_obj, &out, "f", count, 1, "out") < 0) {
        PyBuffer_Release(&x);
        return NULL;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = mel_compute(&self->ex, x.buf, (long)n, out.buf, mfcc);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&x);
    PyBuffer_Release(&out);
    if (rc == MEL_NONFINITE)
        return PyErr_Format(PyExc_ValueError, "audio contains NaN or infinite samples");
    if (rc == MEL_NOMEM)
        return PyErr_NoMemory();
    if (rc == MEL_TOOBIG)
        return PyErr_Format(PyExc_ValueError, "audio: %zd samples, too long for this extractor", n);
    if (rc != MEL_OK)
        return PyErr_Format(PyExc_ValueError, "feature extraction failed (code %d)", rc);
    Py_RETURN_NONE;
}

static PyObject *compute(Extractor *self, PyObject *args, int mfcc)
{
    PyObject *x_obj, *out_obj;
    if (!PyArg_ParseTuple(args, "OO", &x_obj, &out_obj))
        return NULL;
    /* Busy before the buffers are taken, not just while the GIL is released: taking one may run
     * Python code, and an __init__ in another thread then would change the sizes checked here. */
    Py_INCREF(self);
    self->busy++;
    PyObject *result = compute_busy(self, x_obj, out_obj, mfcc);
    self->busy--;
    Py_DECREF(self);
    return result;
}

static PyObject *Extractor_log_mel(Extractor *self, PyObject *args) { return compute(self, args, 0); }
static PyObject *Extractor_mfcc(Extractor *self, PyObject *args) { return compute(self, args, 1); }

static PyObject *Extractor_get_kernel(Extractor *self, void *closure)
{
    return PyUnicode_FromString(!self->ready ? "none" : self->ex.kernel == MEL_KERNEL_AVX2 ? "avx2" : "generic");
}

static PyGetSetDef Extractor_getset[] = {
    {"kernel", (getter)Extractor_get_kernel, NULL, "the instruction-set variant in use: 'avx2' or 'generic'", NULL},
    {NULL}};

static PyMethodDef Extractor_methods[] = {
    {"log_mel", (PyCFunction)Extractor_log_mel, METH_VARARGS,
     "log_mel(audio: float32[n], out: float32[n_mels * n_frames]) -> None, out is [n_mels][n_frames]"},
    {"mfcc", (PyCFunction)Extractor_mfcc, METH_VARARGS,
     "mfcc(audio: float32[n], out: float32[n_mfcc * n_frames]) -> None, out is [n_mfcc][n_frames]"},
    {NULL}};

static PyTypeObject ExtractorType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edge_ser._features.Extractor",
    .tp_basicsize = sizeof(Extractor),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Extractor(n_fft, hop_length, window: float64[n_fft], filterbank: float64[n_mels * (n_fft/2+1)], "
              "log_floor, normalize='none'|'utterance'|'whisper', dct: float64[n_mfcc * n_mels] | None, "
              "kernel='auto'|'generic'|'avx2', log='ln'|'log10', pad='zero'|'reflect', drop_last_frame=False)\n"
              "Tables hold at most 2**31 - 1 values each. Threads may compute with one Extractor at once; "
              "__init__ while one does raises RuntimeError.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Extractor_init,
    .tp_dealloc = (destructor)Extractor_dealloc,
    .tp_methods = Extractor_methods,
    .tp_getset = Extractor_getset,
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_features", "C log-mel / MFCC extractor", -1, NULL};

PyMODINIT_FUNC PyInit__features(void)
{
    if (PyType_Ready(&ExtractorType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    Py_INCREF(&ExtractorType);
    if (PyModule_AddObject(m, "Extractor", (PyObject *)&ExtractorType) < 0) {
        Py_DECREF(&ExtractorType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
