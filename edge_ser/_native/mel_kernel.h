/* The per-frame arithmetic of the log-mel extractor, written once and compiled once per
 * instruction set (mel_generic.c, mel_avx2.c): the includer defines LANES and MEL_FRAMES_FN.
 * Frames go through in blocks of LANES, one frame per vector lane. */
#include <stdlib.h>
#include <string.h>

#include "fft_kernel.h"
#include "fft_mixed_kernel.h"
#include "mel.h"

/* mel_init checks the scratch and sample-position sizes below for at most MEL_MAX_LANES lanes. */
_Static_assert(LANES <= MEL_MAX_LANES, "mel_init sizes its overflow checks for MEL_MAX_LANES");

/* The sample at i (any integer) of x [n], n >= 1, reflected about its ends without repeating
 * them, back and forth as often as it takes: numpy.pad(mode="reflect"); one sample is repeated. */
static inline float reflected(const float *x, long n, long i)
{
    const long period = 2 * (n - 1);
    if (period == 0)
        return x[0];
    long j = i % period;
    j += j < 0 ? period : 0;
    return x[j < n ? j : period - j];
}

/* Where frames t0 .. t0 + LANES - 1 start (each the next one hop later). Where the window's span
 * of any of them overhangs the signal they are copied into pad (outside the signal zero, or the
 * signal reflected), so the FFT reads every block the same way; lanes past the last frame read
 * whatever is there and are never stored. */
static const float *block_frames(const mel_extractor *ex, const float *x, long n, long t0, float *pad)
{
    long first = t0 * ex->hop - ex->n_fft / 2, span = (LANES - 1) * (long)ex->hop + ex->n_fft;
    if (first + ex->win_start >= 0 && first + span - ex->n_fft + ex->win_end <= n)
        return x + first;
    for (long i = 0; i < span; i++)
        pad[i] = first + i >= 0 && first + i < n ? x[first + i] : 0.0f;
    if (ex->reflect) /* a loop of its own: the one above vectorises */
        for (long i = 0; i < span; i++)
            if (first + i < 0 || first + i >= n)
                pad[i] = reflected(x, n, first + i);
    return pad;
}

/* power [n_bins] -> mel [n_mels], log(max(mel power, log_floor)) (ln times log_scale). Returns
 * nonzero lanes where a mel power is NaN or inf, as NaN or inf samples make it (and max() would
 * hide them). */
static vi log_mel_bands(const mel_extractor *ex, const vd *power, vd *mel)
{
    const double *w = ex->band_w;
    for (int b = 0; b < ex->n_mels; b++) {
        const vd *p = power + ex->band_lo[b];
        const long len = ex->band_len[b];
        vd acc0 = {0}, acc1 = {0}; /* two chains: half the latency, half the loop overhead */
        long k = 0;
        for (; k + 1 < len; k += 2)
            acc0 += p[k] * w[k], acc1 += p[k + 1] * w[k + 1];
        if (k < len)
            acc0 += p[k] * w[k];
        mel[b] = acc0 + acc1;
        w += len;
    }
    /* A loop of its own: the logs of different bands are independent, so their divisions overlap. */
    const vd floor = splat(ex->log_floor);
    const double scale = ex->log_scale;
    vi nonfinite = {0};
    for (int b = 0; b < ex->n_mels; b++) {
        nonfinite |= mel[b] - mel[b] != 0.0; /* NaN unless finite */
        mel[b] = vlog_scaled(vmax(mel[b], floor), scale);
    }
    return nonfinite;
}

/* mel [n_mels] of frames t0.. -> column t0.. of logmel or out [n_mels][n_frames]: the lanes are
 * consecutive frames, so each band is one contiguous store. */
static void store_block(const mel_extractor *ex, const vd *mel, long t0, long n_frames, double *logmel, float *out)
{
    const long n_mels = ex->n_mels, lanes = n_frames - t0 < LANES ? n_frames - t0 : LANES;
    for (long b = 0; b < n_mels; b++) {
        long at = b * n_frames + t0;
        if (out) {
            vf v = to_vf(mel[b]);
            if (lanes == LANES)
                memcpy(out + at, &v, sizeof v);
            else
                for (long f = 0; f < lanes; f++)
                    out[at + f] = v[f];
        } else if (lanes == LANES)
            memcpy(logmel + at, &mel[b], sizeof mel[b]);
        else
            for (long f = 0; f < lanes; f++)
                logmel[at + f] = mel[b][f];
    }
}

int MEL_FRAMES_FN(const mel_extractor *ex, const float *x, long n, long n_frames, double *logmel, float *out)
{
    const long m = ex->plan.m;
    size_t n_vec = 3 * (size_t)m + 1 + ex->n_mels; /* re, im [m], power [m + 1], mel [n_mels] */
    size_t n_pad = (LANES - 1) * (size_t)ex->hop + ex->n_fft;
    size_t bytes = (sizeof(vd) * n_vec + sizeof(float) * n_pad + 63) & ~(size_t)63;
    vd *re = aligned_alloc(64, bytes);
    if (!re)
        return MEL_NOMEM;
    vd *im = re + m, *power = im + m, *mel = power + m + 1;
    float *pad = (float *)(mel + ex->n_mels);
    vi nonfinite = {0};
    for (long t0 = 0; t0 < n_frames; t0 += LANES) {
        const float *xs = block_frames(ex, x, n, t0, pad);
        if (ex->plan.mixed)
            fft_mixed_frames_power(&ex->plan, xs, ex->hop, ex->half_window, ex->win_start / 2, ex->win_end / 2, re, im, power);
        else
            fft_frames_power(&ex->plan, xs, ex->hop, ex->half_window, ex->win_start / 2, ex->win_end / 2, re, im, power);
        nonfinite |= log_mel_bands(ex, power, mel);
        store_block(ex, mel, t0, n_frames, logmel, out);
    }
    free(re);
    for (int f = 0; f < LANES; f++)
        if (nonfinite[f])
            return MEL_NONFINITE;
    return MEL_OK;
}
