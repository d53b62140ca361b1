/* Power spectra of LANES windowed real frames at once, for a mixed-radix plan (n_fft / 2 = m =
 * 2^a 3^b 5^c, not a power of two, e.g. Whisper's n_fft 400: m = 200 = 5 5 4 2): the length-m
 * complex FFT of z[j] = x[2j] + i x[2j+1], decimation in time with radix 5, 4, 3 and 2 stages,
 * then the split into the m + 1 bins of the length-2m real transform. The same layout as the
 * power-of-two kernel (fft_kernel.h): one frame per vector lane, the windowed load fused with
 * the first stage, whose digit-reversed slots cost nothing there, and the last stage feeding the
 * split from registers. Header-only, compiled into each instruction-set variant (mel_kernel.h). */
#ifndef EDGE_SER_FFT_MIXED_KERNEL_H
#define EDGE_SER_FFT_MIXED_KERNEL_H

#include "fft_kernel.h"

#define MAX_RADIX 5

/* cos and sin of 2 pi / 5 and 4 pi / 5, and sin(2 pi / 3): the radix-5 and radix-3 butterflies. */
static const double C5_1 = 0.30901699437494742410, C5_2 = -0.80901699437494742410;
static const double S5_1 = 0.95105651629515357212, S5_2 = 0.58778525229247312917;
static const double S3 = 0.86602540378443864676;

static inline cvd cscale(cvd a, double s) { return (cvd){a.re * s, a.im * s}; }
/* c - i d and c + i d. */
static inline cvd minus_i(cvd c, cvd d) { return (cvd){c.re + d.im, c.im - d.re}; }
static inline cvd plus_i(cvd c, cvd d) { return (cvd){c.re - d.im, c.im + d.re}; }

/* In place: x[t] <- sum_r x[r] exp(-2 pi i r t / 2). */
static inline void dft2(cvd x[2])
{
    cvd d = csub(x[0], x[1]);
    x[0] = cadd(x[0], x[1]), x[1] = d;
}

/* In place, 3 points: y1,2 = x0 - (x1 + x2) / 2 -/+ i sin(2 pi / 3) (x1 - x2). */
static inline void dft3(cvd x[3])
{
    cvd a = cadd(x[1], x[2]), d = cscale(csub(x[1], x[2]), S3);
    cvd c = csub(x[0], cscale(a, 0.5));
    x[0] = cadd(x[0], a);
    x[1] = minus_i(c, d), x[2] = plus_i(c, d);
}

/* In place, 5 points: with a_k = x_k + x_(5-k), b_k = x_k - x_(5-k) (k = 1, 2),
 * y1,4 = x0 + a1 cos(2 pi/5) + a2 cos(4 pi/5) -/+ i (b1 sin(2 pi/5) + b2 sin(4 pi/5)),
 * y2,3 = x0 + a1 cos(4 pi/5) + a2 cos(2 pi/5) -/+ i (b1 sin(4 pi/5) - b2 sin(2 pi/5)). */
static inline void dft5(cvd x[5])
{
    cvd a1 = cadd(x[1], x[4]), b1 = csub(x[1], x[4]), a2 = cadd(x[2], x[3]), b2 = csub(x[2], x[3]);
    cvd c1 = cadd(x[0], cadd(cscale(a1, C5_1), cscale(a2, C5_2)));
    cvd c2 = cadd(x[0], cadd(cscale(a1, C5_2), cscale(a2, C5_1)));
    cvd d1 = cadd(cscale(b1, S5_1), cscale(b2, S5_2)), d2 = csub(cscale(b1, S5_2), cscale(b2, S5_1));
    x[0] = cadd(x[0], cadd(a1, a2));
    x[1] = minus_i(c1, d1), x[4] = plus_i(c1, d1);
    x[2] = minus_i(c2, d2), x[3] = plus_i(c2, d2);
}

/* The DFT of `radix` points; radix is a constant where this inlines, so the switch folds away. */
static inline void dft_radix(cvd x[MAX_RADIX], const long radix)
{
    switch (radix) {
    case 2: dft2(x); break;
    case 3: dft3(x); break;
    case 4: dft4(x); break;
    default: dft5(x); break;
    }
}

/* First stage, straight from the frames: the DFT of inputs j + r m / radix. */
static inline void mixed_first_stage_radix(const fft_plan *p, const float *xs, long hop, const double *window,
                                           long j0, long j1, vd *restrict re, vd *restrict im, const long radix)
{
    const long q = p->m / radix;
    for (long j = 0; j < q; j++) {
        cvd x[MAX_RADIX];
        for (long r = 0; r < radix; r++)
            x[r] = first_input(xs, hop, window, j0, j1, j + r * q);
        dft_radix(x, radix);
        for (long t = 0; t < radix; t++)
            cstore(re, im, p->first_slot[j] + t, x[t]);
    }
}

static inline void mixed_first_stage(const fft_plan *p, const float *xs, long hop, const double *window,
                                     long j0, long j1, vd *restrict re, vd *restrict im)
{
    switch (p->first_radix) {
    case 2: mixed_first_stage_radix(p, xs, hop, window, j0, j1, re, im, 2); break;
    case 3: mixed_first_stage_radix(p, xs, hop, window, j0, j1, re, im, 3); break;
    case 4: mixed_first_stage_radix(p, xs, hop, window, j0, j1, re, im, 4); break;
    default: mixed_first_stage_radix(p, xs, hop, window, j0, j1, re, im, 5); break;
    }
}

/* Butterfly j of a stage: slots a + t q (t < radix) times W^(t j) (twiddles w[t - 1]), DFT,
 * stored back in place. */
static inline void mixed_butterfly(vd *restrict re, vd *restrict im, long a, long q, const cvd w[MAX_RADIX - 1],
                                   const long radix)
{
    cvd x[MAX_RADIX];
    x[0] = cload(re, im, a);
    for (long t = 1; t < radix; t++)
        x[t] = cmul(cload(re, im, a + t * q), w[t - 1]);
    dft_radix(x, radix);
    for (long t = 0; t < radix; t++)
        cstore(re, im, a + t * q, x[t]);
}

/* One stage of sub-size q in place: transforms of size radix q from `radix` of size q. j outer,
 * so the twiddles stay in registers; j = 0 needs none. */
static inline void mixed_stage_radix(vd *restrict re, vd *restrict im, long m, long q, const double *tw,
                                     const long radix)
{
    for (long a = 0; a < m; a += radix * q) {
        cvd x[MAX_RADIX];
        for (long t = 0; t < radix; t++)
            x[t] = cload(re, im, a + t * q);
        dft_radix(x, radix);
        for (long t = 0; t < radix; t++)
            cstore(re, im, a + t * q, x[t]);
    }
    for (long j = 1; j < q; j++) {
        cvd w[MAX_RADIX - 1];
        for (long t = 1; t < radix; t++)
            w[t - 1] = csplat(tw + 2 * ((radix - 1) * j + t - 1));
        for (long a = j; a < m; a += radix * q)
            mixed_butterfly(re, im, a, q, w, radix);
    }
}

static inline void mixed_stage(vd *restrict re, vd *restrict im, long m, long q, const double *tw, int radix)
{
    switch (radix) {
    case 2: mixed_stage_radix(re, im, m, q, tw, 2); break;
    case 3: mixed_stage_radix(re, im, m, q, tw, 3); break;
    case 4: mixed_stage_radix(re, im, m, q, tw, 4); break;
    default: mixed_stage_radix(re, im, m, q, tw, 5); break;
    }
}

/* A butterfly's outputs x [radix] against their partners y [radix] (from butterfly q - j, or j
 * itself): Z[j + t q] pairs with Z[m - j - t q] = y[radix - 1 - t]. Both bins of each pair are
 * written, for t in [t0, t1). */
static inline void split_butterfly(const fft_plan *p, long j, long q, const cvd *x, const cvd *y, long t0, long t1,
                                   vd *power, const long radix)
{
    const long m = p->m;
    for (long t = t0; t < t1; t++) {
        long k = j + t * q;
        split_pair(x[t], y[radix - 1 - t], csplat(p->rot + 2 * k), power + k, power + m - k);
    }
}

/* Butterfly j of the last stage into x, from the slots j + t q, without storing. */
static inline void last_butterfly(const vd *re, const vd *im, long j, long q, const double *tw, cvd x[MAX_RADIX],
                                  const long radix)
{
    x[0] = cload(re, im, j);
    for (long t = 1; t < radix; t++)
        x[t] = cmul(cload(re, im, j + t * q), csplat(tw + 2 * ((radix - 1) * j + t - 1)));
    dft_radix(x, radix);
}

/* 4 |z|^2: the power of a bin whose Z pairs with itself (the middle one, m / 2). */
static inline vd middle_power(cvd z) { return 4.0 * (z.re * z.re + z.im * z.im); }

/* The last stage (sub-size q = m / radix) fused with the split, as fft_last_stage_power does for
 * powers of two, so Z never goes back to memory: bin k pairs with m - k, and
 * m - (j + t q) = (q - j) + (radix - 1 - t) q, so butterflies j and q - j together hold whole
 * pairs. Butterfly 0 pairs with itself (t with radix - t), and so does q / 2 for even q
 * (t with radix - 1 - t); the middle bin m / 2 is in one of them. */
static inline void mixed_last_stage_power_radix(const fft_plan *p, const double *tw, const vd *re, const vd *im,
                                                vd *power, const long radix)
{
    const long m = p->m, q = m / radix;
    cvd x[MAX_RADIX], y[MAX_RADIX];
    last_butterfly(re, im, 0, q, tw, x, radix);
    power[0] = 4.0 * (x[0].re + x[0].im) * (x[0].re + x[0].im); /* Z[0] gives bins 0 and m */
    power[m] = 4.0 * (x[0].re - x[0].im) * (x[0].re - x[0].im);
    for (long s = 0; s + 1 < radix; s++) /* y[radix - 1 - t] = x[radix - t]: Z[t q]'s partner */
        y[s] = x[s + 1];
    split_butterfly(p, 0, q, x, y, 1, (radix + 1) / 2, power, radix);
    if (radix % 2 == 0)
        power[m / 2] = middle_power(x[radix / 2]);
    for (long j = 1; 2 * j < q; j++) {
        last_butterfly(re, im, j, q, tw, x, radix);
        last_butterfly(re, im, q - j, q, tw, y, radix);
        split_butterfly(p, j, q, x, y, 0, radix, power, radix);
    }
    if (q % 2 == 0) {
        last_butterfly(re, im, q / 2, q, tw, x, radix);
        split_butterfly(p, q / 2, q, x, x, 0, radix / 2, power, radix);
        if (radix % 2)
            power[m / 2] = middle_power(x[radix / 2]);
    }
}

static inline void mixed_last_stage_power(const fft_plan *p, const double *tw, const vd *re, const vd *im, vd *power,
                                          int radix)
{
    switch (radix) {
    case 2: mixed_last_stage_power_radix(p, tw, re, im, power, 2); break;
    case 3: mixed_last_stage_power_radix(p, tw, re, im, power, 3); break;
    case 4: mixed_last_stage_power_radix(p, tw, re, im, power, 4); break;
    default: mixed_last_stage_power_radix(p, tw, re, im, power, 5); break;
    }
}

/* The split from Z in natural order, for a plan of one stage (no stage after the first to fuse it with). */
static inline void mixed_split(const fft_plan *p, const vd *re, const vd *im, vd *power)
{
    const long m = p->m;
    cvd z0 = cload(re, im, 0);
    power[0] = 4.0 * (z0.re + z0.im) * (z0.re + z0.im);
    power[m] = 4.0 * (z0.re - z0.im) * (z0.re - z0.im);
    for (long k = 1; 2 * k < m; k++)
        split_pair(cload(re, im, k), cload(re, im, m - k), csplat(p->rot + 2 * k), power + k, power + m - k);
    if (m % 2 == 0)
        power[m / 2] = middle_power(cload(re, im, m / 2));
}

/* Power spectra [m + 1] of the LANES frames at xs + f * hop, as fft_frames_power (fft_kernel.h)
 * for a mixed plan: window holds the analysis window / 2, zero outside samples [2 j0, 2 j1). */
static inline void fft_mixed_frames_power(const fft_plan *p, const float *xs, long hop, const double *window,
                                          long j0, long j1, vd *re, vd *im, vd *power)
{
    mixed_first_stage(p, xs, hop, window, j0, j1, re, im);
    if (p->n_stages == 1) {
        mixed_split(p, re, im, power);
        return;
    }
    const double *tw = p->tw;
    long s = 1, q = p->first_radix;
    for (; s + 1 < p->n_stages; q *= p->radix[s], s++) {
        mixed_stage(re, im, p->m, q, tw, p->radix[s]);
        tw += 2 * (p->radix[s] - 1) * q;
    }
    mixed_last_stage_power(p, tw, re, im, power, p->radix[s]);
}

#endif
