/* Vectors of LANES doubles through GCC/clang vector extensions: one lane per frame, so the
 * FFT runs on LANES frames at once. The compiler maps them to AVX, SSE2 or NEON. */
#ifndef EDGE_SER_SIMD_H
#define EDGE_SER_SIMD_H

#ifndef LANES
#define LANES 2 /* the width of SSE2 and NEON; the AVX2 variant sets 4 */
#endif

typedef double vd __attribute__((vector_size(LANES * sizeof(double))));
typedef long long vi __attribute__((vector_size(LANES * sizeof(long long))));

/* Natural log of positive normal doubles, vectorised: x = m * 2^e with m in [sqrt(.5), sqrt(2)),
 * ln m = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.172; the series to s^11 is exact to ~2e-11,
 * far below the 1e-4 agreement the extractor promises, and ~5x cheaper than calling log(). */
static inline vd vlog(vd x)
{
    const double SQRT2 = 1.4142135623730951, LN2 = 0.6931471805599453;
    vi bits = (vi)x;
    vi e = ((bits >> 52) & 0x7ff) - 1023;
    vd m = (vd)((bits & 0x000fffffffffffffLL) | 0x3ff0000000000000LL);
    vi big = m > SQRT2;                         /* -1 where m is in [sqrt2, 2): halve it */
    m = (vd)(((vi)m & ~big) | ((vi)(m * 0.5) & big));
    e = e - big;
    vd s = (m - 1.0) / (m + 1.0);
    vd s2 = s * s;
    vd p = 1.0 / 9.0 + s2 * (1.0 / 11.0);
    p = 1.0 / 7.0 + s2 * p;
    p = 1.0 / 5.0 + s2 * p;
    p = 1.0 / 3.0 + s2 * p;
    p = 1.0 + s2 * p;
    return 2.0 * s * p + __builtin_convertvector(e, vd) * LN2;
}

static inline vd vmax(vd a, double b)
{
    vi keep = a > b;
    vd bv = a * 0.0 + b;
    return (vd)(((vi)a & keep) | ((vi)bv & ~keep));
}

#endif
