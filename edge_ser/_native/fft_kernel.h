/* Power spectra of LANES windowed real frames at once (one frame per vector lane): a length-m
 * complex FFT of z[j] = x[2j] + i x[2j+1], radix-4 decimation in time, then the split into the
 * m + 1 bins of the length-2m real transform. Header-only: compiled into each instruction-set
 * variant of the mel kernel (mel_kernel.h), so it always runs at that variant's vector width.
 *
 * Every pass stores the whole transform and reloads it, so there are few: the windowed load is
 * fused with the first stage (the digit-reversal permutation costs nothing there, and inputs
 * outside the window are never loaded), and the last stage feeds the real-FFT split from
 * registers. Radix 8 measured slower overall: its butterfly needs more vectors than AVX2 has
 * registers. */
#ifndef EDGE_SER_FFT_KERNEL_H
#define EDGE_SER_FFT_KERNEL_H

#include <string.h>

#include "fft.h"
#include "simd.h"

typedef struct {
    vd re, im;
} cvd; /* LANES complex values */

static inline cvd cadd(cvd a, cvd b) { return (cvd){a.re + b.re, a.im + b.im}; }
static inline cvd csub(cvd a, cvd b) { return (cvd){a.re - b.re, a.im - b.im}; }
static inline cvd cmul(cvd a, cvd w) { return (cvd){a.re * w.re - a.im * w.im, a.re * w.im + a.im * w.re}; }
static inline cvd cload(const vd *re, const vd *im, long k) { return (cvd){re[k], im[k]}; }
static inline void cstore(vd *re, vd *im, long k, cvd a) { re[k] = a.re, im[k] = a.im; }
/* A complex scalar (re, im at w) in every lane. */
static inline cvd csplat(const double *w) { return (cvd){splat(w[0]), splat(w[1])}; }
/* -i conj(w), -conj(w), i conj(w): twiddles mirrored about W^(q/2), W^(q/2)^2, ..., for free. */
static inline cvd mirror1(cvd w) { return (cvd){-w.im, -w.re}; }
static inline cvd mirror2(cvd w) { return (cvd){-w.re, w.im}; }
static inline cvd mirror3(cvd w) { return (cvd){w.im, w.re}; }

/* In place: x[t] <- sum_r x[r] (-i)^(rt), the 4-point DFT (no multiplies). */
static inline void dft4(cvd x[4])
{
    cvd a = cadd(x[0], x[2]), b = csub(x[0], x[2]), c = cadd(x[1], x[3]), d = csub(x[1], x[3]);
    x[0] = cadd(a, c), x[2] = csub(a, c);
    x[1] = (cvd){b.re + d.im, b.im - d.re}; /* b - i d */
    x[3] = (cvd){b.re - d.im, b.im + d.re}; /* b + i d */
}

/* The radix-4 butterfly on slots a + t q, t < 4, with twiddles w[t - 1] = W^(t j). */
static inline void radix4_load(const vd *re, const vd *im, long a, long q, const cvd w[3], cvd x[4])
{
    x[0] = cload(re, im, a);
    for (long t = 1; t < 4; t++)
        x[t] = cmul(cload(re, im, a + t * q), w[t - 1]);
    dft4(x);
}

/* Lanes f of samples s and s + 1 of the frames at xs + f * hop, windowed: one complex input.
 * A frame's two samples are adjacent: one 8-byte load for both halves the loads of one per
 * sample. With AVX, even frames go to a and odd ones to b, so that interleaving a and b within
 * 16-byte halves (unpcklpd / unpckhpd) puts the lanes back in frame order. */
static inline cvd load_windowed(const float *xs, long hop, const double *window, long s)
{
#if defined(__AVX__) && LANES == 4
    const __m64 *x0 = (const __m64 *)(xs + s), *x1 = (const __m64 *)(xs + hop + s);
    const __m64 *x2 = (const __m64 *)(xs + 2 * hop + s), *x3 = (const __m64 *)(xs + 3 * hop + s);
    __m128 a = _mm_loadh_pi(_mm_loadl_pi(_mm_setzero_ps(), x0), x2);
    __m128 b = _mm_loadh_pi(_mm_loadl_pi(_mm_setzero_ps(), x1), x3);
    __m256d da = _mm256_cvtps_pd(a), db = _mm256_cvtps_pd(b);
    vd r = (vd)_mm256_unpacklo_pd(da, db), i = (vd)_mm256_unpackhi_pd(da, db);
#elif LANES == 2 && (defined(__clang__) || __GNUC__ >= 12)
    vf a, b;
    memcpy(&a, xs + s, sizeof a);
    memcpy(&b, xs + hop + s, sizeof b);
    vd da = to_vd(a), db = to_vd(b);
    vd r = __builtin_shufflevector(da, db, 0, 2), i = __builtin_shufflevector(da, db, 1, 3);
#else
    vd r, i;
    for (long f = 0; f < LANES; f++)
        r[f] = xs[f * hop + s], i[f] = xs[f * hop + s + 1];
#endif
    return (cvd){r * window[s], i * window[s + 1]};
}

/* Input k of the transform: zero outside the window's span [j0, j1), so not loaded there. */
static inline cvd first_input(const float *xs, long hop, const double *window, long j0, long j1, long k)
{
    return k >= j0 && k < j1 ? load_windowed(xs, hop, window, 2 * k) : (cvd){splat(0.0), splat(0.0)};
}

/* First stage, straight from the frames: the DFT of inputs j + r m / radix. Taking j in order
 * keeps first_input's branches predictable (each r changes state at most twice a block). */
static inline void first_stage_radix(const fft_plan *p, const float *xs, long hop, const double *window,
                                     long j0, long j1, vd *restrict re, vd *restrict im, const long radix)
{
    const long q = p->m / radix;
    for (long j = 0; j < q; j++) {
        cvd x[4];
        for (long r = 0; r < radix; r++)
            x[r] = first_input(xs, hop, window, j0, j1, j + r * q);
        if (radix == 4)
            dft4(x);
        else {
            cvd d = csub(x[0], x[1]);
            x[0] = cadd(x[0], x[1]), x[1] = d;
        }
        for (long t = 0; t < radix; t++)
            cstore(re, im, p->first_slot[j] + t, x[t]);
    }
}

/* The first stage at a constant radix apiece, so that each loop unrolls. */
static inline void fft_first_stage(const fft_plan *p, const float *xs, long hop, const double *window,
                                   long j0, long j1, vd *restrict re, vd *restrict im)
{
    if (p->first_radix == 4)
        first_stage_radix(p, xs, hop, window, j0, j1, re, im, 4);
    else
        first_stage_radix(p, xs, hop, window, j0, j1, re, im, 2);
}

/* Radix-4 stages of quarter size q = first_radix ... m / 16, in place; returns the twiddles of
 * the last stage (q = m / 4), which fft_last_stage_power does. */
static inline const double *fft_middle_stages(const fft_plan *p, vd *restrict re, vd *restrict im)
{
    const long m = p->m;
    const double *tw = p->tw;
    for (long q = p->first_radix; q < m / 4; tw += 6 * q, q *= 4) {
        cvd x[4];
        for (long a = 0; a < m; a += 4 * q) { /* j = 0: twiddles 1 */
            for (long t = 0; t < 4; t++)
                x[t] = cload(re, im, a + t * q);
            dft4(x);
            for (long t = 0; t < 4; t++)
                cstore(re, im, a + t * q, x[t]);
        }
        for (long j = 1; j < q; j++) { /* j outer: the twiddles stay in registers */
            cvd w[3] = {csplat(tw + 6 * j), csplat(tw + 6 * j + 2), csplat(tw + 6 * j + 4)};
            for (long a = j; a < m; a += 4 * q) {
                radix4_load(re, im, a, q, w, x);
                for (long t = 0; t < 4; t++)
                    cstore(re, im, a + t * q, x[t]);
            }
        }
    }
    return tw;
}

/* |X[k]|^2 and |X[m-k]|^2 of the real transform from Z[k], Z[m-k] and w = W_2m^k, where the
 * frames were scaled by 1/2 (in the window) so that E = Z[k] + conj Z[m-k], O = (Z[k] - conj
 * Z[m-k]) / i need no halving: X[k] = E + w O, X[m-k] = conj(E - w O). */
static inline void split_pair(cvd zk, cvd zj, cvd w, vd *power_k, vd *power_j)
{
    cvd e = {zk.re + zj.re, zk.im - zj.im}, o = {zk.im + zj.im, zj.re - zk.re};
    cvd t = cmul(o, w), x = cadd(e, t), y = csub(e, t);
    *power_k = x.re * x.re + x.im * x.im;
    *power_j = y.re * y.re + y.im * y.im;
}

/* Bins 0 and m (from Z[0]) and m/2 (from Z[m/2]), which pair with themselves. */
static inline void split_ends(cvd z0, cvd zh, long m, vd *power)
{
    power[0] = 4.0 * (z0.re + z0.im) * (z0.re + z0.im);
    power[m] = 4.0 * (z0.re - z0.im) * (z0.re - z0.im);
    power[m / 2] = 4.0 * (zh.re * zh.re + zh.im * zh.im);
}

/* The last radix-4 stage (q = m/4) fused with the split. Bin k pairs with m - k: butterfly j
 * makes Z[j + t q], butterfly q - j makes Z[q - j + t q], and m - (j + t q) = q - j + (3 - t) q,
 * so butterflies j and q - j together hold four whole pairs (j = 0 and q/2 pair with themselves).
 * Their twiddles mirror each other, and so do the split's W_2m^k for k = j and 2q - j, q + j and
 * q - j: only half of them are loaded. */
static inline void fft_last_stage_power(const fft_plan *p, const double *tw, const vd *restrict re,
                                        const vd *restrict im, vd *restrict power)
{
    const long m = p->m, q = m / 4;
    const double *rot = p->rot;
    cvd x[4], y[4], w[3], v[3];
    for (long t = 0; t < 4; t++)
        x[t] = cload(re, im, t * q);
    dft4(x);
    split_ends(x[0], x[2], m, power);
    split_pair(x[1], x[3], csplat(rot + 2 * q), power + q, power + 3 * q);
    for (long t = 0; t < 3; t++)
        w[t] = csplat(tw + 6 * (q / 2) + 2 * t);
    radix4_load(re, im, q / 2, q, w, x);
    split_pair(x[0], x[3], csplat(rot + q), power + q / 2, power + m - q / 2);
    split_pair(x[1], x[2], csplat(rot + 3 * q), power + 3 * q / 2, power + 5 * q / 2);
    for (long j = 1; j < q / 2; j++) {
        for (long t = 0; t < 3; t++)
            w[t] = csplat(tw + 6 * j + 2 * t);
        v[0] = mirror1(w[0]), v[1] = mirror2(w[1]), v[2] = mirror3(w[2]);
        radix4_load(re, im, j, q, w, x);
        radix4_load(re, im, q - j, q, v, y);
        cvd r1 = csplat(rot + 2 * j), r2 = csplat(rot + 2 * (q + j));
        split_pair(x[0], y[3], r1, power + j, power + m - j);
        split_pair(x[1], y[2], r2, power + q + j, power + m - q - j);
        split_pair(y[0], x[3], mirror1(r2), power + q - j, power + m - q + j);
        split_pair(y[1], x[2], mirror1(r1), power + 2 * q - j, power + 2 * q + j);
    }
}

/* The split from Z in natural order, for transforms too short to have a stage after the first. */
static inline void fft_split(const fft_plan *p, const vd *re, const vd *im, vd *power)
{
    const long m = p->m;
    split_ends(cload(re, im, 0), cload(re, im, m / 2), m, power);
    for (long k = 1; k < m / 2; k++)
        split_pair(cload(re, im, k), cload(re, im, m - k), csplat(p->rot + 2 * k), power + k, power + m - k);
}

/* Power spectra [m + 1] of the LANES frames at xs + f * hop (f < LANES), each n = 2m samples
 * times window, which must hold the analysis window / 2 and be zero outside samples
 * [2 j0, 2 j1) (the frames are not read there). re, im: [m] scratch. */
static inline void fft_frames_power(const fft_plan *p, const float *xs, long hop, const double *window,
                                    long j0, long j1, vd *re, vd *im, vd *power)
{
    fft_first_stage(p, xs, hop, window, j0, j1, re, im);
    if (p->m == p->first_radix) {
        fft_split(p, re, im, power);
        return;
    }
    const double *tw = fft_middle_stages(p, re, im);
    fft_last_stage_power(p, tw, re, im, power);
}

#endif
