/* FFT plan: the tables of a length-n real transform done as a length-m = n/2 complex one,
 * decimation in time with radix-4 stages (one radix-2 stage first when m is not a power of 4). */
#ifndef EDGE_SER_FFT_H
#define EDGE_SER_FFT_H

typedef struct {
    int n;           /* real transform length (n_fft), a power of two >= 4 */
    int m;           /* complex transform length, n / 2 */
    int first_radix; /* 2 or 4: the first stage; every later stage is radix 4 */
    int *first_slot; /* [m / first_radix] the first-stage butterfly on inputs j + r m / first_radix
                      * (r < first_radix) writes slots first_slot[j] + r: the digit-reversal
                      * permutation, folded into the loads */
    double *tw;      /* radix-4 stages after the first, quarter size q = first_radix, 4 first_radix,
                      * ..., m / 4 in turn: for j < q, W^j, W^2j, W^3j (W = exp(-2 pi i / 4q))
                      * as re, im pairs */
    double *rot;     /* [m / 2] exp(-2 pi i k / n) as re, im pairs, to split the half-length transform */
} fft_plan;

int fft_plan_init(fft_plan *plan, int n);
void fft_plan_free(fft_plan *plan);

#endif
