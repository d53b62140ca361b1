/* Vectors of LANES doubles through GCC/clang vector extensions: one lane per frame, so the
 * FFT runs on LANES frames at once. The compiler maps them to AVX, SSE2 or NEON. */
#ifndef EDGE_SER_SIMD_H
#define EDGE_SER_SIMD_H

#ifndef LANES
#define LANES 2 /* the width of SSE2 and NEON; the AVX2 variant sets 4 */
#endif

#if defined(__AVX__) && LANES == 4
#include <immintrin.h>
#endif

typedef double vd __attribute__((vector_size(LANES * sizeof(double))));
typedef long long vi __attribute__((vector_size(LANES * sizeof(long long))));
typedef unsigned long long vu __attribute__((vector_size(LANES * sizeof(long long))));
typedef float vf __attribute__((vector_size(LANES * sizeof(float))));

/* scale times the natural log of positive normal doubles (scale 1 / ln 10: log10), vectorised,
 * the scale folded into the last step's constants, so it costs nothing and scale 1 gives ln
 * exactly: x = z * 2^k with z in [sqrt(.5), sqrt(2)),
 * ln z = 2 atanh(s), s = (z-1)/(z+1), |s| < 0.172; the series to s^11 is exact to ~2e-11,
 * far below the 1e-4 agreement the extractor promises, and ~5x cheaper than calling log().
 * The reduction is integer arithmetic on the bits, with no compare or int64 -> double
 * conversion (AVX2 and SSE2 have none): x's bits minus sqrt(.5)'s plus 1023 << 52 have k + 1023
 * in the exponent field (x's exponent, less one where x's mantissa is below sqrt(.5)'s). */
static inline vd vlog_scaled(vd x, double scale)
{
    const long long SQRT_HALF = 0x3fe6a09e667f3bcdLL, ONE = 0x3ff0000000000000LL;
    const long long EXPONENT = (long long)0xfff0000000000000ULL;
    const long long TWO52 = 0x4330000000000000LL; /* 2^52: its low bits hold a small integer */
    const double LN2 = 0.6931471805599453;
    vi bits = (vi)x;
    vi u = bits - SQRT_HALF + ONE; /* exponent field: k + 1023; u >= 0 */
    vd z = (vd)(bits - (u & EXPONENT) + ONE);
    vu biased_k = (vu)u >> 52;     /* unsigned: AVX2 and SSE2 have no 64-bit arithmetic shift */
    vd k = (vd)(biased_k | TWO52) - (4503599627370496.0 + 1023.0);
    vd s = (z - 1.0) / (z + 1.0);
    vd s2 = s * s;
    vd p = 1.0 / 9.0 + s2 * (1.0 / 11.0);
    p = 1.0 / 7.0 + s2 * p;
    p = 1.0 / 5.0 + s2 * p;
    p = 1.0 / 3.0 + s2 * p;
    p = 1.0 + s2 * p;
    return (2.0 * scale) * s * p + k * (LN2 * scale);
}

/* float -> double lanes; GCC 12 splits __builtin_convertvector into two 128-bit halves on AVX. */
static inline vd to_vd(vf a)
{
#if defined(__AVX__) && LANES == 4
    return (vd)_mm256_cvtps_pd((__m128)a);
#else
    return __builtin_convertvector(a, vd);
#endif
}

static inline vf to_vf(vd a)
{
#if defined(__AVX__) && LANES == 4
    return (vf)_mm256_cvtpd_ps((__m256d)a);
#else
    return __builtin_convertvector(a, vf);
#endif
}

static inline vd splat(double a)
{
    vd v = {0};
    return v + a;
}

static inline vd vmax(vd a, vd b)
{
    vi keep = a > b;
    return (vd)(((vi)a & keep) | ((vi)b & ~keep));
}

#endif
