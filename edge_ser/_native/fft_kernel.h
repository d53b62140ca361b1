/* Radix-2 complex FFT on LANES frames at once (one frame per vector lane), and the real-input
 * power spectrum built on it. Header-only: compiled into each instruction-set variant of the
 * mel kernel (mel_kernel.h), so it always runs at that variant's vector width. */
#ifndef EDGE_SER_FFT_KERNEL_H
#define EDGE_SER_FFT_KERNEL_H

#include "fft.h"
#include "simd.h"

/* Two radix-2 stages fused (radix-2^2): stage of size 2h with twiddle w1 = W_2h^j on pairs
 * (a, b), (c, d), then size 4h with w2 = W_4h^j on (a, c) and W_4h^(j+h) = -i w2 on (b, d).
 * Same multiplies as radix-2, but each value is loaded and stored once per two stages. */
static inline void radix22(vd *ar, vd *ai, vd *br, vd *bi, vd *cr, vd *ci, vd *dr, vd *di,
                           double w1r, double w1i, double w2r, double w2i)
{
    vd tr = *br * w1r - *bi * w1i, ti = *br * w1i + *bi * w1r;
    vd Br = *ar - tr, Bi = *ai - ti, Ar = *ar + tr, Ai = *ai + ti;
    tr = *dr * w1r - *di * w1i, ti = *dr * w1i + *di * w1r;
    vd Dr = *cr - tr, Di = *ci - ti, Cr = *cr + tr, Ci = *ci + ti;
    tr = Cr * w2r - Ci * w2i, ti = Cr * w2i + Ci * w2r;
    *cr = Ar - tr, *ci = Ai - ti, *ar = Ar + tr, *ai = Ai + ti;
    vd ur = Dr * w2r - Di * w2i, ui = Dr * w2i + Di * w2r; /* t = -i u = (ui, -ur) */
    *dr = Br - ui, *di = Bi + ur, *br = Br + ui, *bi = Bi - ur;
}

/* LANES transforms of in_re/in_im [m] (already in bit-reversed order) into re/im [m].
 * The input is left untouched, so its zero padding survives from one call to the next. */
static inline void fft_bitrev_from(const fft_plan *p, const vd *in_re, const vd *in_im, vd *re, vd *im)
{
    const int m = p->m;
    const double *tw_re = p->tw_re, *tw_im = p->tw_im; /* stage of half-size h starts at h - 1 */
    int h;
    if (m >= 4) { /* first two stages: twiddles 1 and -i, no multiplies */
        for (int a = 0; a < m; a += 4) {
            vd Ar = in_re[a] + in_re[a + 1], Ai = in_im[a] + in_im[a + 1];
            vd Br = in_re[a] - in_re[a + 1], Bi = in_im[a] - in_im[a + 1];
            vd Cr = in_re[a + 2] + in_re[a + 3], Ci = in_im[a + 2] + in_im[a + 3];
            vd Dr = in_re[a + 2] - in_re[a + 3], Di = in_im[a + 2] - in_im[a + 3];
            re[a] = Ar + Cr, im[a] = Ai + Ci, re[a + 2] = Ar - Cr, im[a + 2] = Ai - Ci;
            re[a + 1] = Br + Di, im[a + 1] = Bi - Dr, re[a + 3] = Br - Di, im[a + 3] = Bi + Dr;
        }
        h = 4;
    } else { /* m == 2 */
        re[0] = in_re[0] + in_re[1], im[0] = in_im[0] + in_im[1];
        re[1] = in_re[0] - in_re[1], im[1] = in_im[0] - in_im[1];
        h = 2;
    }
    for (; 4 * h <= m; h *= 4)
        for (int start = 0; start < m; start += 4 * h)
            for (int j = 0; j < h; j++) {
                int a = start + j;
                radix22(re + a, im + a, re + a + h, im + a + h, re + a + 2 * h, im + a + 2 * h,
                        re + a + 3 * h, im + a + 3 * h, tw_re[h - 1 + j], tw_im[h - 1 + j],
                        tw_re[2 * h - 1 + j], tw_im[2 * h - 1 + j]);
            }
    if (h < m) /* an odd number of stages: one plain radix-2 stage of half-size h = m / 2 */
        for (int j = 0; j < h; j++) {
            vd tr = re[j + h] * tw_re[h - 1 + j] - im[j + h] * tw_im[h - 1 + j];
            vd ti = re[j + h] * tw_im[h - 1 + j] + im[j + h] * tw_re[h - 1 + j];
            re[j + h] = re[j] - tr, im[j + h] = im[j] - ti;
            re[j] += tr, im[j] += ti;
        }
}

/* z[k] = FFT_m(x[2j] + i x[2j+1]) -> |X[k]|^2 for the length-n real transform, k = 0..m.
 * X[k] = E[k] + W_n^k O[k] with E = (Z[k] + conj Z[m-k]) / 2, O = (Z[k] - conj Z[m-k]) / 2i;
 * bins k and m-k share E and O up to conjugation, so they are computed together. */
static inline void fft_power_from_half(const fft_plan *p, const vd *zr, const vd *zi, vd *power)
{
    const int m = p->m;
    power[0] = (zr[0] + zi[0]) * (zr[0] + zi[0]);
    power[m] = (zr[0] - zi[0]) * (zr[0] - zi[0]);
    for (int k = 1; k <= m / 2; k++) {
        int j = m - k;
        vd er = 0.5 * (zr[k] + zr[j]), ei = 0.5 * (zi[k] - zi[j]);
        vd or_ = 0.5 * (zi[k] + zi[j]), oi = -0.5 * (zr[k] - zr[j]);
        /* bin k: E + W^k O;  bin m-k: conj(E) + W^(m-k) conj(O), W^(m-k) = -conj(W^k) */
        double wr = p->rot_re[k], wi = p->rot_im[k];
        vd tr = or_ * wr - oi * wi, ti = or_ * wi + oi * wr;
        vd xr = er + tr, xi = ei + ti;
        power[k] = xr * xr + xi * xi;
        vd yr = er - tr, yi = ti - ei; /* conj(E) - conj(W^k O) */
        power[j] = yr * yr + yi * yi;
    }
}

#endif
