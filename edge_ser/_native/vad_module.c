/* edge_ser._vad: CPython binding of vad.c. Inputs and outputs are buffers the Python side
 * allocates (numpy arrays), so this file needs no numpy headers.
 *   detect(...)   both stages on a whole log-mel, one call (offline);
 *   Stream(...)   the causal per-frame stage keeping its vad_state between calls (streaming);
 *   smooth(...)   the smoothing stage on a decision buffer, in place (streaming runs it on a
 *                 sliding buffer, see edge_ser/vad.py). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "vad.h"

/* 1 if the buffer's struct format is a single native item of the given code. */
static int format_is(const Py_buffer *v, char code)
{
    const char *f = v->format ? v->format : "B";
    if (f[0] == '@' || f[0] == '=' || f[0] == '<')
        f++;
    return f[0] == code && f[1] == '\0';
}

static int get_buffer(PyObject *obj, Py_buffer *v, int writable, const char *name)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, v, flags) < 0) {
        PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous%s buffer", name,
                     writable ? " writable" : "");
        return -1;
    }
    return 0;
}

static PyObject *vad_detect(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"log_mel", "speech", "score_db", "band_lo", "band_hi",
                             "snr_threshold_db", "band_smoothing", "score_smoothing",
                             "flatness_max_db", "strong_snr_db", "floor_rise_db", "floor_fall_db",
                             "min_level_db", "hangover", "min_gap", "min_speech", "pre_roll",
                             NULL};
    PyObject *lm_obj, *sp_obj, *score_obj;
    vad_params p;
    vad_smoothing sm;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO$iiffffffffiiii", kwlist, &lm_obj, &sp_obj,
                                     &score_obj, &p.band_lo, &p.band_hi, &p.snr_threshold_db,
                                     &p.band_smoothing, &p.score_smoothing, &p.flatness_max_db,
                                     &p.strong_snr_db, &p.floor_rise_db, &p.floor_fall_db,
                                     &p.min_level_db, &sm.hangover, &sm.min_gap, &sm.min_speech,
                                     &sm.pre_roll))
        return NULL;

    Py_buffer lm, sp, score = {0};
    if (get_buffer(lm_obj, &lm, 0, "log_mel") < 0)
        return NULL;
    if (get_buffer(sp_obj, &sp, 1, "speech") < 0) {
        PyBuffer_Release(&lm);
        return NULL;
    }
    int have_score = score_obj != Py_None;
    if (have_score && get_buffer(score_obj, &score, 1, "score_db") < 0) {
        PyBuffer_Release(&lm);
        PyBuffer_Release(&sp);
        return NULL;
    }

    PyObject *result = NULL;
    Py_ssize_t n_mels = lm.ndim == 2 ? lm.shape[0] : 0, n_frames = lm.ndim == 2 ? lm.shape[1] : 0;
    vad_state state;
    int init = -1;
    if (lm.ndim != 2 || !format_is(&lm, 'f'))
        PyErr_Format(PyExc_ValueError, "log_mel must be float32 [n_mels, n_frames], got %d-d '%s'",
                     lm.ndim, lm.format ? lm.format : "B");
    else if (sp.len != n_frames || sp.itemsize != 1)
        PyErr_Format(PyExc_ValueError, "speech must be %zd bytes (one per frame), got %zd",
                     n_frames, sp.len);
    else if (have_score && (!format_is(&score, 'f') || score.len / 4 != n_frames || score.len % 4))
        /* by division: with no bands, n_frames is any shape[1], and n_frames * 4 could overflow */
        PyErr_Format(PyExc_ValueError, "score_db must be float32 [%zd]", n_frames);
    else if (sm.min_gap < 0 || sm.min_speech < 0 || sm.pre_roll < 0 || sm.hangover < 0)
        PyErr_SetString(PyExc_ValueError,
                        "hangover, min_gap, min_speech and pre_roll must be >= 0");
    else if ((init = vad_init(&state, &p, (int)(n_mels > VAD_MAX_MELS ? 0 : n_mels))) == -2)
        PyErr_SetString(PyExc_ValueError, "need 0 <= band_smoothing, score_smoothing < 1,"
                        " floor_rise_db > 0 and floor_fall_db > 0");
    else if (init < 0)
        PyErr_Format(PyExc_ValueError, "need 1 <= n_mels <= %d and 0 <= band_lo < band_hi"
                     " <= n_mels, got n_mels=%zd band=[%d, %d)", VAD_MAX_MELS, n_mels, p.band_lo,
                     p.band_hi);
    else {
        Py_BEGIN_ALLOW_THREADS
        vad_run(&state, (const float *)lm.buf, n_frames, (uint8_t *)sp.buf,
                have_score ? (float *)score.buf : NULL);
        vad_smooth((uint8_t *)sp.buf, n_frames, &sm);
        Py_END_ALLOW_THREADS
        result = Py_None;
        Py_INCREF(result);
    }
    PyBuffer_Release(&lm);
    PyBuffer_Release(&sp);
    if (have_score)
        PyBuffer_Release(&score);
    return result;
}

/* --- streaming: the per-frame stage as an object holding its vad_state ----------------------- */

typedef struct {
    PyObject_HEAD
    vad_state state;
    int ready; /* 1 once __init__ succeeded */
} StreamObject;

static int stream_init(StreamObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"n_mels", "band_lo", "band_hi", "snr_threshold_db", "band_smoothing",
                             "score_smoothing", "flatness_max_db", "strong_snr_db",
                             "floor_rise_db", "floor_fall_db", "min_level_db", NULL};
    int n_mels;
    vad_params p;
    self->ready = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$iiiffffffff", kwlist, &n_mels, &p.band_lo,
                                     &p.band_hi, &p.snr_threshold_db, &p.band_smoothing,
                                     &p.score_smoothing, &p.flatness_max_db, &p.strong_snr_db,
                                     &p.floor_rise_db, &p.floor_fall_db, &p.min_level_db))
        return -1;
    int init = vad_init(&self->state, &p, n_mels);
    if (init == -2) {
        PyErr_SetString(PyExc_ValueError, "need 0 <= band_smoothing, score_smoothing < 1,"
                        " floor_rise_db > 0 and floor_fall_db > 0");
        return -1;
    }
    if (init < 0) {
        PyErr_Format(PyExc_ValueError, "need 1 <= n_mels <= %d and 0 <= band_lo < band_hi"
                     " <= n_mels, got n_mels=%d band=[%d, %d)", VAD_MAX_MELS, n_mels, p.band_lo,
                     p.band_hi);
        return -1;
    }
    self->ready = 1;
    return 0;
}

static PyObject *stream_feed(StreamObject *self, PyObject *args)
{
    PyObject *lm_obj, *sp_obj;
    if (!PyArg_ParseTuple(args, "OO", &lm_obj, &sp_obj))
        return NULL;
    if (!self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "Stream was not initialised");
        return NULL;
    }
    Py_buffer lm, sp;
    if (get_buffer(lm_obj, &lm, 0, "log_mel") < 0)
        return NULL;
    if (get_buffer(sp_obj, &sp, 1, "speech") < 0) {
        PyBuffer_Release(&lm);
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t n_frames = lm.ndim == 2 ? lm.shape[1] : 0;
    if (lm.ndim != 2 || !format_is(&lm, 'f') || lm.shape[0] != self->state.n_mels)
        PyErr_Format(PyExc_ValueError, "log_mel must be float32 [%d, n_frames]",
                     self->state.n_mels);
    else if (sp.len != n_frames || sp.itemsize != 1)
        PyErr_Format(PyExc_ValueError, "speech must be %zd bytes (one per frame), got %zd",
                     n_frames, sp.len);
    else {
        /* the GIL stays held: it is what keeps two threads off one Stream's state, and an
         * __init__ in another thread from changing n_mels between the check above and the run */
        vad_run(&self->state, (const float *)lm.buf, n_frames, (uint8_t *)sp.buf, NULL);
        result = Py_None;
        Py_INCREF(result);
    }
    PyBuffer_Release(&lm);
    PyBuffer_Release(&sp);
    return result;
}

static PyMethodDef stream_methods[] = {
    {"feed", (PyCFunction)stream_feed, METH_VARARGS,
     "feed(log_mel, speech)\n"
     "The next frames, log_mel float32 [n_mels, n]: writes their raw (unsmoothed) decisions to\n"
     "speech uint8/bool [n], continuing from the frames fed before."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject StreamType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "edge_ser._vad.Stream",
    .tp_basicsize = sizeof(StreamObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Stream(*, n_mels, band_lo, band_hi, snr_threshold_db, band_smoothing,\n"
              "       score_smoothing, flatness_max_db, strong_snr_db, floor_rise_db,\n"
              "       floor_fall_db, min_level_db)\n"
              "The causal per-frame stage of the VAD, keeping its state between feed() calls.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)stream_init,
    .tp_methods = stream_methods,
};

static PyObject *vad_smooth_py(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"speech", "hangover", "min_gap", "min_speech", "pre_roll", NULL};
    PyObject *sp_obj;
    vad_smoothing sm;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O$iiii", kwlist, &sp_obj, &sm.hangover,
                                     &sm.min_gap, &sm.min_speech, &sm.pre_roll))
        return NULL;
    if (sm.min_gap < 0 || sm.min_speech < 0 || sm.pre_roll < 0 || sm.hangover < 0) {
        PyErr_SetString(PyExc_ValueError,
                        "hangover, min_gap, min_speech and pre_roll must be >= 0");
        return NULL;
    }
    Py_buffer sp;
    if (get_buffer(sp_obj, &sp, 1, "speech") < 0)
        return NULL;
    if (sp.itemsize != 1) {
        PyErr_SetString(PyExc_ValueError, "speech must hold one byte per frame");
        PyBuffer_Release(&sp);
        return NULL;
    }
    vad_smooth((uint8_t *)sp.buf, sp.len, &sm);
    PyBuffer_Release(&sp);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"detect", (PyCFunction)(void (*)(void))vad_detect, METH_VARARGS | METH_KEYWORDS,
     "detect(log_mel, speech, score_db, *, band_lo, band_hi, snr_threshold_db, band_smoothing,\n"
     "       score_smoothing, flatness_max_db, strong_snr_db, floor_rise_db, floor_fall_db,\n"
     "       min_level_db, hangover, min_gap, min_speech, pre_roll)\n"
     "Voice activity on log_mel float32 [n_mels, n_frames]; writes speech uint8/bool [n_frames]\n"
     "and, unless score_db is None, the per-frame smoothed speech-band SNR in dB (float32\n"
     "[n_frames]). speech is smoothed (min_speech, hangover, min_gap, pre_roll: in frames)."},
    {"smooth", (PyCFunction)(void (*)(void))vad_smooth_py, METH_VARARGS | METH_KEYWORDS,
     "smooth(speech, *, hangover, min_gap, min_speech, pre_roll)\n"
     "The smoothing stage, in place on speech uint8/bool [n] (times in frames)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_vad",
                                    "Voice activity detection on log-mel frames (C).", -1, methods};

PyMODINIT_FUNC PyInit__vad(void)
{
    if (PyType_Ready(&StreamType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&StreamType);
    if (PyModule_AddObject(m, "Stream", (PyObject *)&StreamType) < 0) {
        Py_DECREF(&StreamType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
