#include "mel.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int mel_frames_generic(const mel_extractor *ex, const float *x, long n, long n_frames, double *logmel);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
int mel_frames_avx2(const mel_extractor *ex, const float *x, long n, long n_frames, double *logmel);
#define HAVE_AVX2_KERNEL 1
#endif

int mel_init(mel_extractor *ex, int n_fft, int hop, const double *window, int n_mels,
             const double *filterbank, double log_floor, int normalize, int n_mfcc, const double *dct,
             int kernel)
{
    memset(ex, 0, sizeof(*ex));
    if (hop <= 0 || n_mels <= 0 || !(log_floor > 0) || n_mfcc < 0 || n_mfcc > n_mels)
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
    ex->window = malloc(sizeof(double) * n_fft);
    ex->band_lo = calloc(n_mels, sizeof(int));
    ex->band_len = calloc(n_mels, sizeof(int));
    ex->band_w = calloc(n_mels, sizeof(double *));
    if (!ex->window || !ex->band_lo || !ex->band_len || !ex->band_w)
        goto nomem;
    memcpy(ex->window, window, sizeof(double) * n_fft);
    ex->win_start = 0;
    while (ex->win_start < n_fft && window[ex->win_start] == 0.0)
        ex->win_start++;
    ex->win_end = n_fft;
    while (ex->win_end > ex->win_start && window[ex->win_end - 1] == 0.0)
        ex->win_end--;
    /* Mel filters are triangles: keeping only their nonzero span makes the filterbank ~30x cheaper. */
    for (int b = 0; b < n_mels; b++) {
        const double *row = filterbank + (long)b * ex->n_bins;
        int lo = 0, hi = ex->n_bins;
        while (lo < hi && row[lo] == 0.0)
            lo++;
        while (hi > lo && row[hi - 1] == 0.0)
            hi--;
        ex->band_lo[b] = lo;
        ex->band_len[b] = hi - lo;
        ex->band_w[b] = malloc(sizeof(double) * (hi - lo + 1));
        if (!ex->band_w[b])
            goto nomem;
        memcpy(ex->band_w[b], row + lo, sizeof(double) * (hi - lo));
    }
    if (n_mfcc > 0) {
        ex->dct = malloc(sizeof(double) * n_mfcc * n_mels);
        if (!ex->dct)
            goto nomem;
        memcpy(ex->dct, dct, sizeof(double) * n_mfcc * n_mels);
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
    if (ex->band_w)
        for (int b = 0; b < ex->n_mels; b++)
            free(ex->band_w[b]);
    free(ex->band_w);
    free(ex->band_lo);
    free(ex->band_len);
    free(ex->window);
    free(ex->dct);
    fft_plan_free(&ex->plan);
    memset(ex, 0, sizeof(*ex));
}

/* NaN/inf have an all-ones exponent; an integer OR over the bits vectorises, isfinite() does not. */
static int has_nonfinite(const float *x, long n)
{
    uint32_t bad = 0;
    for (long i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, x + i, sizeof bits); /* not a pointer cast: that would break strict aliasing */
        bad |= ((bits & 0x7f800000u) == 0x7f800000u);
    }
    return bad != 0;
}

long mel_n_frames(const mel_extractor *ex, long n)
{
    return n <= 0 ? 0 : 1 + n / ex->hop;
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
    long n_frames = mel_n_frames(ex, n);
    if (has_nonfinite(x, n))
        return MEL_NONFINITE;
    if (n_frames == 0)
        return MEL_OK;
    if (mfcc && !ex->dct)
        return MEL_BADARG;
    /* Scratch is per call, so one extractor serves any number of threads. */
    double *logmel = malloc(sizeof(double) * ex->n_mels * n_frames);
    if (!logmel)
        return MEL_NOMEM;
    int rc;
#ifdef HAVE_AVX2_KERNEL
    if (ex->kernel == MEL_KERNEL_AVX2)
        rc = mel_frames_avx2(ex, x, n, n_frames, logmel);
    else
#endif
        rc = mel_frames_generic(ex, x, n, n_frames, logmel);
    if (rc != MEL_OK) {
        free(logmel);
        return rc;
    }
    if (ex->normalize)
        normalize_bands(logmel, ex->n_mels, n_frames);
    if (mfcc)
        apply_dct(ex, logmel, n_frames, out);
    else
        for (long i = 0; i < (long)ex->n_mels * n_frames; i++)
            out[i] = (float)logmel[i];
    free(logmel);
    return MEL_OK;
}
