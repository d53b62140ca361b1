/* The per-frame arithmetic of the log-mel extractor, written once and compiled once per
 * instruction set (mel_generic.c, mel_avx2.c): the includer defines LANES and MEL_FRAMES_FN. */
#include <stdlib.h>
#include <string.h>

#include "fft_kernel.h"
#include "mel.h"

/* Windowed frames t0..t0+LANES-1 packed as z[j] = x[2j] + i x[2j+1] into in_re/in_im, bit-reversed.
 * Only the window's span is written: the slots outside it stay zero from allocation, because the
 * FFT's first stage reads these buffers and writes its own (fft_bitrev_from). */
static inline void load_frames(const mel_extractor *ex, const float *x, long n, long t0, long n_frames,
                               double *in_re, double *in_im)
{
    const int *rev = ex->plan.bitrev;
    const double *w = ex->window;
    const int j0 = ex->win_start / 2, j1 = (ex->win_end + 1) / 2;
    long first = t0 * ex->hop - ex->n_fft / 2, last = (t0 + LANES - 1) * ex->hop - ex->n_fft / 2;
    if (t0 + LANES <= n_frames && first + 2 * j0 >= 0 && last + 2 * j1 <= n) {
        /* All lanes inside the signal: build each vector from the LANES frames at once. */
        const float *xs = x + first;
        const long hop = ex->hop;
        for (int j = j0; j < j1; j++) {
            const float *e = xs + 2 * j, *o = e + 1;
            vd ve, vo;
            for (int f = 0; f < LANES; f++)
                ve[f] = e[f * hop], vo[f] = o[f * hop];
            ((vd *)in_re)[rev[j]] = ve * w[2 * j];
            ((vd *)in_im)[rev[j]] = vo * w[2 * j + 1];
        }
        return;
    }
    for (int f = 0; f < LANES; f++) {
        long origin = (t0 + f) * ex->hop - ex->n_fft / 2; /* sample under frame index 0 */
        if (t0 + f < n_frames && origin + 2 * j0 >= 0 && origin + 2 * j1 <= n) {
            const float *xs = x + origin;
            for (int j = j0; j < j1; j++) {
                int slot = rev[j] * LANES + f;
                in_re[slot] = w[2 * j] * xs[2 * j];
                in_im[slot] = w[2 * j + 1] * xs[2 * j + 1];
            }
            continue;
        }
        /* Frames that overhang either end of the signal (or lanes past the last frame). */
        long lo = t0 + f < n_frames ? -origin : 0, hi = t0 + f < n_frames ? n - origin : 0;
        for (int j = j0; j < j1; j++) {
            int slot = rev[j] * LANES + f;
            long k = 2 * j;
            in_re[slot] = (k >= lo && k < hi) ? w[k] * x[origin + k] : 0.0;
            in_im[slot] = (k + 1 >= lo && k + 1 < hi) ? w[k + 1] * x[origin + k + 1] : 0.0;
        }
    }
}

static void log_mel_block(const mel_extractor *ex, const float *x, long n, long t0, long n_frames,
                          vd *in_re, vd *in_im, vd *re, vd *im, vd *power, double *logmel)
{
    load_frames(ex, x, n, t0, n_frames, (double *)in_re, (double *)in_im);
    fft_bitrev_from(&ex->plan, in_re, in_im, re, im);
    fft_power_from_half(&ex->plan, re, im, power);
    for (int b = 0; b < ex->n_mels; b++) {
        const vd *p = power + ex->band_lo[b];
        const double *w = ex->band_w[b];
        vd acc = p[0] * 0.0;
        for (int k = 0; k < ex->band_len[b]; k++)
            acc += p[k] * w[k];
        vd lm = vlog(vmax(acc, ex->log_floor));
        for (int f = 0; f < LANES && t0 + f < n_frames; f++)
            logmel[(long)b * n_frames + t0 + f] = lm[f];
    }
}

/* x [n] -> logmel [n_mels][n_frames] in double. Returns MEL_OK or MEL_NOMEM. */
int MEL_FRAMES_FN(const mel_extractor *ex, const float *x, long n, long n_frames, double *logmel)
{
    int m = ex->plan.m;
    size_t n_vec = (size_t)(5 * m + 2 + 1) & ~(size_t)1; /* in_re, in_im, re, im, power; even count */
    vd *in_re = aligned_alloc(64, sizeof(vd) * n_vec);
    if (!in_re)
        return MEL_NOMEM;
    memset(in_re, 0, sizeof(vd) * 2 * m);
    vd *in_im = in_re + m, *re = in_im + m, *im = re + m, *power = im + m;
    for (long t0 = 0; t0 < n_frames; t0 += LANES)
        log_mel_block(ex, x, n, t0, n_frames, in_re, in_im, re, im, power, logmel);
    free(in_re);
    return MEL_OK;
}
