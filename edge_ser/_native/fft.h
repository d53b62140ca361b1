/* FFT plan: the tables of a length-n real transform done as a length-n/2 complex one. */
#ifndef EDGE_SER_FFT_H
#define EDGE_SER_FFT_H

typedef struct {
    int n;          /* real transform length (n_fft), a power of two >= 4 */
    int m;          /* complex transform length, n / 2 */
    int *bitrev;    /* [m] bit-reversed index */
    double *tw_re;  /* [m - 1] twiddles, stage by stage: stage of size s holds s/2 of them */
    double *tw_im;
    double *rot_re; /* [m + 1] exp(-2 pi i k / n), to split the half-length transform */
    double *rot_im;
} fft_plan;

int fft_plan_init(fft_plan *plan, int n);
void fft_plan_free(fft_plan *plan);

#endif
