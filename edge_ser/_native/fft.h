/* FFT plan: the tables of a length-n real transform done as a length-m = n/2 complex one,
 * decimation in time. Two kinds:
 *  - m a power of two: radix-4 stages (one radix-2 stage first when m is not a power of 4),
 *    the last one fused with the real-FFT split (fft_kernel.h);
 *  - any other m = 2^a 3^b 5^c ("mixed"): radix 5, 4, 3 and 2 stages (fft_mixed_kernel.h). */
#ifndef EDGE_SER_FFT_H
#define EDGE_SER_FFT_H

#define FFT_MAX_STAGES 32 /* m < 2^31 has at most 31 prime factors */

typedef struct {
    int n;           /* real transform length (n_fft): even, n / 2 a product of 2, 3 and 5, >= 4 */
    int m;           /* complex transform length, n / 2 */
    int first_radix; /* the first stage's radix; power of two: 2 or 4, every later stage is radix 4 */
    int *first_slot; /* [m / first_radix] the first-stage butterfly on inputs j + r m / first_radix
                      * (r < first_radix) writes slots first_slot[j] + r: the digit-reversal
                      * permutation, folded into the loads */
    double *tw;      /* power of two: radix-4 stages after the first, quarter size q = first_radix,
                      * 4 first_radix, ..., m / 4 in turn: for j < q, W^j, W^2j, W^3j
                      * (W = exp(-2 pi i / 4q)) as re, im pairs.
                      * mixed: stage s >= 1 of radix r = radix[s] and sub-size q = radix[0] ...
                      * radix[s - 1] in turn: for j < q, W^(t j) for t = 1 .. r - 1 (W = exp(-2 pi i / rq)) */
    double *rot;     /* [m] exp(-2 pi i k / n) as re, im pairs, to split the half-length transform (the
                      * power-of-two kernel reads k < m / 2 only) */
    int mixed;       /* 0: m is a power of two; 1: the mixed-radix plan */
    int n_stages;    /* mixed: stages, first to last */
    int radix[FFT_MAX_STAGES]; /* mixed: each stage's radix, 2, 3, 4 or 5; radix[0] == first_radix */
} fft_plan;

/* 0 if fft_plan_init takes length n, else -1. */
int fft_supported(int n);
/* 0, -1 for an unsupported n, -2 when out of memory. */
int fft_plan_init(fft_plan *plan, int n);
void fft_plan_free(fft_plan *plan);

#endif
