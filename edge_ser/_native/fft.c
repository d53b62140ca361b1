#include "fft.h"

#include <math.h>
#include <stdlib.h>

int fft_plan_init(fft_plan *p, int n)
{
    const double PI = 3.14159265358979323846;
    int m = n / 2, bits = 0;
    if (n < 4 || (n & (n - 1)))
        return -1;
    while ((1 << bits) < m)
        bits++;
    p->n = n;
    p->m = m;
    p->bitrev = malloc(sizeof(int) * m);
    p->tw_re = malloc(sizeof(double) * m);
    p->tw_im = malloc(sizeof(double) * m);
    p->rot_re = malloc(sizeof(double) * (m + 1));
    p->rot_im = malloc(sizeof(double) * (m + 1));
    if (!p->bitrev || !p->tw_re || !p->tw_im || !p->rot_re || !p->rot_im) {
        fft_plan_free(p);
        return -2;
    }
    for (int i = 0; i < m; i++) {
        int r = 0;
        for (int b = 0; b < bits; b++)
            r |= ((i >> b) & 1) << (bits - 1 - b);
        p->bitrev[i] = r;
    }
    /* Twiddles in double from cos/sin directly (not by recurrence), so they are exact to 1 ulp. */
    int t = 0;
    for (int half = 1; half < m; half <<= 1)
        for (int j = 0; j < half; j++, t++) {
            p->tw_re[t] = cos(-PI * j / half);
            p->tw_im[t] = sin(-PI * j / half);
        }
    for (int k = 0; k <= m; k++) {
        p->rot_re[k] = cos(-2.0 * PI * k / n);
        p->rot_im[k] = sin(-2.0 * PI * k / n);
    }
    return 0;
}

void fft_plan_free(fft_plan *p)
{
    free(p->bitrev);
    free(p->tw_re);
    free(p->tw_im);
    free(p->rot_re);
    free(p->rot_im);
    p->bitrev = NULL;
    p->tw_re = p->tw_im = p->rot_re = p->rot_im = NULL;
}
