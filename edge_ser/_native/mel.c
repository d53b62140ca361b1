#include "mel.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sizes.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX2_KERNEL 1 /* mel_avx2.c compiles to the kernel */
#endif

/* Whisper's normalisation, as edge_ser.config.WHISPER_RANGE, _OFFSET and _SCALE. */
static const double WHISPER_RANGE = 8.0, WHISPER_OFFSET = 4.0, WHISPER_SCALE = 4.0;
static const double INV_LN10 = 0.43429448190325182765;

/* 0 when the tables hold at most MEL_MAX_TABLE values each and, at the widest kernel, a block's
 * scratch fits a size_t and its sample positions a long; else -1. Arguments already positive. */
static int sizes_fit(int n_fft, int hop, int n_mels, int n_mfcc)
{
    const size_t m = (size_t)n_fft / 2, n_bins = m + 1;
    size_t filterbank, dct, vectors, vector_bytes, pad, pad_bytes, total;
    if (size_mul((size_t)n_mels, n_bins, &filterbank) || filterbank > MEL_MAX_TABLE)
        return -1;
    if (size_mul((size_t)n_mfcc, (size_t)n_mels, &dct) || dct > MEL_MAX_TABLE)
        return -1;
    /* mel_kernel.h's scratch: re, im [m], power [m + 1] and mel [n_mels] vectors, then a block's samples */
    if (size_mul(3, m, &vectors) || size_add(vectors, 1 + (size_t)n_mels, &vectors)
        || size_mul(vectors, sizeof(double) * MEL_MAX_LANES, &vector_bytes)
        || size_mul(MEL_MAX_LANES - 1, (size_t)hop, &pad) || size_add(pad, (size_t)n_fft, &pad)
        || size_mul(pad, sizeof(float), &pad_bytes) || size_add(vector_bytes, pad_bytes, &total)
        || size_add(total, 63, &total))
        return -1;
    /* so mel_compute's bound on n, LONG_MAX - (MEL_MAX_LANES hops + n_fft), is itself no overflow */
    return hop > (LONG_MAX - n_fft) / MEL_MAX_LANES ? -1 : 0;
}

/* Copies each band's nonzero span of filterbank [n_mels][n_bins] into ex->band_*. */
static int keep_nonzero_bands(mel_extractor *ex, const double *filterbank)
{
    /* Mel filters are triangles: keeping only their nonzero span makes the filterbank ~30x cheaper. */
    size_t n_weights = 0, bytes;
    for (int b = 0; b < ex->n_mels; b++) {
        const double *row = filterbank + (size_t)b * ex->n_bins;
        int lo = 0, hi = ex->n_bins;
        while (lo < hi && row[lo] == 0.0)
            lo++;
        while (hi > lo && row[hi - 1] == 0.0)
            hi--;
        ex->band_lo[b] = lo;
        ex->band_len[b] = hi - lo;
        n_weights += (size_t)(hi - lo); /* <= n_mels * n_bins <= MEL_MAX_TABLE */
    }
    if (size_mul(sizeof(double), n_weights + 1, &bytes) || !(ex->band_w = malloc(bytes)))
        return MEL_NOMEM;
    double *w = ex->band_w;
    for (int b = 0; b < ex->n_mels; b++) {
        memcpy(w, filterbank + (size_t)b * ex->n_bins + ex->band_lo[b], sizeof(double) * (size_t)ex->band_len[b]);
        w += ex->band_len[b];
    }
    return MEL_OK;
}

int mel_init(mel_extractor *ex, int n_fft, int hop, const double *window, int n_mels,
             const double *filterbank, double log_floor, int normalize, int n_mfcc, const double *dct,
             int kernel, int flags)
{
    memset(ex, 0, sizeof(*ex));
    if (hop <= 0 || n_mels <= 0 || !(log_floor > 0) || n_mfcc < 0 || n_mfcc > n_mels)
        return MEL_BADARG;
    if (fft_supported(n_fft))
        return MEL_BADARG;
    if (sizes_fit(n_fft, hop, n_mels, n_mfcc))
        return MEL_TOOBIG;
    if (normalize < MEL_NORM_NONE || normalize > MEL_NORM_WHISPER || (flags & ~(MEL_LOG10 | MEL_REFLECT | MEL_DROP_LAST)))
        return MEL_BADARG;
    if (kernel == MEL_KERNEL_AUTO)
        kernel = mel_best_kernel();
    if (kernel != MEL_KERNEL_GENERIC && (kernel != MEL_KERNEL_AVX2 || mel_best_kernel() != MEL_KERNEL_AVX2))
        return MEL_BADARG;
    int rc = fft_plan_init(&ex->plan, n_fft);
    if (rc)
        return rc == -1 ? MEL_BADARG : MEL_NOMEM;
    ex->kernel = kernel;
    ex->n_fft = n_fft;
    ex->hop = hop;
    ex->n_mels = n_mels;
    ex->n_bins = n_fft / 2 + 1;
    ex->n_mfcc = n_mfcc;
    ex->normalize = normalize;
    ex->log_floor = log_floor;
    ex->log_scale = flags & MEL_LOG10 ? INV_LN10 : 1.0;
    ex->reflect = (flags & MEL_REFLECT) != 0;
    ex->drop_last = (flags & MEL_DROP_LAST) != 0;
    size_t bytes;
    if (!size_mul(sizeof(double), (size_t)n_fft, &bytes))
        ex->half_window = malloc(bytes);
    ex->band_lo = calloc(n_mels, sizeof(int));
    ex->band_len = calloc(n_mels, sizeof(int));
    if (!ex->half_window || !ex->band_lo || !ex->band_len)
        goto nomem;
    for (int i = 0; i < n_fft; i++)
        ex->half_window[i] = 0.5 * window[i];
    ex->win_start = 0;
    while (ex->win_start < n_fft && window[ex->win_start] == 0.0)
        ex->win_start++;
    ex->win_end = n_fft;
    while (ex->win_end > ex->win_start && window[ex->win_end - 1] == 0.0)
        ex->win_end--;
    ex->win_start &= ~1; /* rounded out to even: the FFT reads samples in pairs */
    ex->win_end += ex->win_end & 1;
    if (keep_nonzero_bands(ex, filterbank) != MEL_OK)
        goto nomem;
    if (n_mfcc > 0) {
        /* n_mfcc * n_mels <= MEL_MAX_TABLE (sizes_fit), so only the bytes can overflow (32-bit size_t) */
        if (size_mul(sizeof(double), (size_t)n_mfcc * (size_t)n_mels, &bytes) || !(ex->dct = malloc(bytes)))
            goto nomem;
        memcpy(ex->dct, dct, bytes);
    }
    return MEL_OK;
nomem:
    mel_free(ex);
    return MEL_NOMEM;
}

int mel_best_kernel(void)
{
#ifdef HAVE_AVX2_KERNEL
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return MEL_KERNEL_AVX2;
#endif
    return MEL_KERNEL_GENERIC;
}

void mel_free(mel_extractor *ex)
{
    free(ex->band_w);
    free(ex->band_lo);
    free(ex->band_len);
    free(ex->half_window);
    free(ex->dct);
    fft_plan_free(&ex->plan);
    memset(ex, 0, sizeof(*ex));
}

/* NaN/inf have an all-ones exponent, so |bits| + 2^23 carries into the sign bit exactly for them;
 * integer ANDs, adds and ORs vectorise, isfinite() does not. */
static int has_nonfinite(const float *x, long n)
{
    uint32_t carry = 0;
    for (long i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, x + i, sizeof bits); /* not a pointer cast: that would break strict aliasing */
        carry |= (bits & 0x7fffffffu) + 0x00800000u;
    }
    return (carry & 0x80000000u) != 0;
}

/* NaN/inf among the samples the kernel does not read: it flags those in the windows of the frames
 * (they make every bin of the frame NaN), so only the ends, or everything when windows leave gaps
 * between frames or no band has a weight, are left to scan here. */
static int unread_nonfinite(const mel_extractor *ex, const float *x, long n, long n_frames)
{
    int any_weight = 0;
    for (int b = 0; b < ex->n_mels; b++)
        any_weight |= ex->band_len[b] > 0;
    if (ex->hop > ex->win_end - ex->win_start || !any_weight)
        return has_nonfinite(x, n);
    long first = ex->win_start - ex->n_fft / 2, end = (n_frames - 1) * ex->hop - ex->n_fft / 2 + ex->win_end;
    first = first < 0 ? 0 : first < n ? first : n;
    end = end < first ? first : end < n ? end : n;
    return has_nonfinite(x, first) || has_nonfinite(x + end, n - end);
}

long mel_n_frames(const mel_extractor *ex, long n)
{
    return n <= 0 ? 0 : n / ex->hop + !ex->drop_last;
}

static void normalize_bands(double *logmel, int n_mels, long n_frames)
{
    for (int b = 0; b < n_mels; b++) {
        double *row = logmel + (long)b * n_frames, mean = 0, var = 0;
        for (long t = 0; t < n_frames; t++)
            mean += row[t];
        mean /= n_frames;
        for (long t = 0; t < n_frames; t++)
            var += (row[t] - mean) * (row[t] - mean);
        double sd = sqrt(var / n_frames);
        double inv = 1.0 / (sd > 1e-5 ? sd : 1e-5);
        for (long t = 0; t < n_frames; t++)
            row[t] = (row[t] - mean) * inv;
    }
}

/* Whisper's, once the maximum over every band and frame (top) is known:
 * (max(x, top - WHISPER_RANGE) + WHISPER_OFFSET) / WHISPER_SCALE. */
static inline double whisper_value(double x, double top)
{
    const double lowest = top - WHISPER_RANGE;
    return ((x > lowest ? x : lowest) + WHISPER_OFFSET) / WHISPER_SCALE;
}

/* Whisper's normalisation in place: logmel [count] log10 mel power, count >= 1. */
static void normalize_whisper(double *logmel, long count)
{
    double top = logmel[0];
    for (long i = 1; i < count; i++)
        top = logmel[i] > top ? logmel[i] : top;
    for (long i = 0; i < count; i++)
        logmel[i] = whisper_value(logmel[i], top);
}

/* Four floats: one SSE2 / NEON register. */
typedef float f4 __attribute__((vector_size(4 * sizeof(float))));
typedef int i4 __attribute__((vector_size(4 * sizeof(int))));

static inline f4 f4_max(f4 a, f4 b)
{
    i4 keep = a > b;
    return (f4)(((i4)a & keep) | ((i4)b & ~keep));
}

/* The largest of x [count], count >= 1: four vectors of running maxima, so the compares overlap
 * (gcc vectorises no float max reduction without -ffinite-math-only; scalar, a Whisper window's
 * maximum took as long as a tenth of its extraction). */
static float max_f32(const float *x, long count)
{
    enum { CHAINS = 4, STEP = 4 * CHAINS };
    f4 top[CHAINS];
    for (int c = 0; c < CHAINS; c++)
        top[c] = (f4){x[0], x[0], x[0], x[0]};
    long i = 0;
    for (; i + STEP <= count; i += STEP)
        for (int c = 0; c < CHAINS; c++) {
            f4 v;
            memcpy(&v, x + i + 4 * c, sizeof v);
            top[c] = f4_max(v, top[c]);
        }
    float best = x[0];
    for (; i < count; i++)
        best = x[i] > best ? x[i] : best;
    for (int c = 0; c < CHAINS; c++)
        for (int lane = 0; lane < 4; lane++)
            best = top[c][lane] > best ? top[c][lane] : best;
    return best;
}

/* The same on the float32 output: elementwise once the maximum is known, so plain log-mel
 * needs no double copy (whose allocation and passes cost a fifth of the extraction); float
 * rounding, of the log10 values and here, is ~1e-7, far below the 1e-4 agreement. */
static void normalize_whisper_f32(float *out, long count)
{
    const float lowest = max_f32(out, count) - (float)WHISPER_RANGE;
    for (long i = 0; i < count; i++) /* in float, so it vectorises 4 wide */
        out[i] = ((out[i] > lowest ? out[i] : lowest) + (float)WHISPER_OFFSET) / (float)WHISPER_SCALE;
}

static void normalize(const mel_extractor *ex, double *logmel, long n_frames)
{
    if (ex->normalize == MEL_NORM_UTTERANCE)
        normalize_bands(logmel, ex->n_mels, n_frames);
    else if (ex->normalize == MEL_NORM_WHISPER)
        normalize_whisper(logmel, (long)ex->n_mels * n_frames);
}

static void apply_dct(const mel_extractor *ex, const double *logmel, long n_frames, float *out)
{
    for (int c = 0; c < ex->n_mfcc; c++) {
        const double *d = ex->dct + (long)c * ex->n_mels;
        for (long t = 0; t < n_frames; t++) {
            double acc = 0;
            for (int b = 0; b < ex->n_mels; b++)
                acc += d[b] * logmel[(long)b * n_frames + t];
            out[(long)c * n_frames + t] = (float)acc;
        }
    }
}

int mel_compute(const mel_extractor *ex, const float *x, long n, float *out, int mfcc)
{
    /* the kernels' sample positions reach MEL_MAX_LANES hops and n_fft past n, and the output's
     * indices n_mels * n_frames: both longs (sizes_fit keeps the bound itself from overflowing) */
    if (n > LONG_MAX - (MEL_MAX_LANES * (long)ex->hop + ex->n_fft))
        return MEL_TOOBIG;
    long n_frames = mel_n_frames(ex, n);
    if (n_frames > LONG_MAX / ex->n_mels)
        return MEL_TOOBIG;
    if (n_frames == 0) /* MEL_DROP_LAST: fewer than hop samples give no frame, but are still checked */
        return has_nonfinite(x, n) ? MEL_NONFINITE : MEL_OK;
    if (unread_nonfinite(ex, x, n, n_frames))
        return MEL_NONFINITE;
    if (mfcc && !ex->dct)
        return MEL_BADARG;
    /* Plain log-mel, also when Whisper-normalised, goes straight to out; utterance normalisation
     * and the DCT work on a double copy. Scratch is per call, so one extractor serves any number
     * of threads. */
    int direct = ex->normalize != MEL_NORM_UTTERANCE && !mfcc;
    double *logmel = NULL;
    size_t bytes;
    if (!direct && (size_mul(sizeof(double), (size_t)ex->n_mels * (size_t)n_frames, &bytes) || !(logmel = malloc(bytes))))
        return MEL_NOMEM;
    float *out32 = direct ? out : NULL;
    int rc;
#ifdef HAVE_AVX2_KERNEL
    if (ex->kernel == MEL_KERNEL_AVX2)
        rc = mel_frames_avx2(ex, x, n, n_frames, logmel, out32);
    else
#endif
        rc = mel_frames_generic(ex, x, n, n_frames, logmel, out32);
    if (rc == MEL_OK && direct && ex->normalize == MEL_NORM_WHISPER)
        normalize_whisper_f32(out, (long)ex->n_mels * n_frames);
    if (rc == MEL_OK && !direct) {
        normalize(ex, logmel, n_frames);
        if (mfcc)
            apply_dct(ex, logmel, n_frames, out);
        else
            for (long i = 0; i < (long)ex->n_mels * n_frames; i++)
                out[i] = (float)logmel[i];
    }
    free(logmel);
    return rc;
}
