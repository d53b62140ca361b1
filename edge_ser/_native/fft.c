#include "fft.h"

#include <math.h>
#include <stdlib.h>

static const double PI = 3.14159265358979323846;

/* Slot of input n after the digit reversal that makes a decimation-in-time FFT work in place:
 * the last stage (sub-transforms of size m/4) splits n by n mod 4, so that digit picks the
 * quarter; the next digit picks the quarter of that quarter, and so on down to the first stage. */
static int reversed_slot(int n, int m, int first_radix)
{
    int slot = 0, size = m;
    while (size > first_radix) {
        size /= 4;
        slot += (n % 4) * size;
        n /= 4;
    }
    return slot + n; /* the first stage's digit, n < first_radix */
}

/* The twiddles of the radix-4 stage of quarter size q: for j < q, W^j, W^2j, W^3j with
 * W = exp(-2 pi i / 4q), as re, im pairs, from cos/sin directly (not by recurrence), so they are
 * exact to 1 ulp. Returns the end. */
static double *stage_twiddles(double *t, int q)
{
    for (int j = 0; j < q; j++)
        for (int r = 1; r < 4; r++) {
            *t++ = cos(-2.0 * PI * r * j / (4 * q));
            *t++ = sin(-2.0 * PI * r * j / (4 * q));
        }
    return t;
}

int fft_plan_init(fft_plan *p, int n)
{
    int m = n / 2;
    if (n < 4 || (n & (n - 1)))
        return -1;
    int bits = 0;
    while ((1 << bits) < m)
        bits++;
    int first_radix = bits % 2 ? 2 : 4; /* m = first_radix * 4^k */
    p->n = n;
    p->m = m;
    p->first_radix = first_radix;
    p->first_slot = malloc(sizeof(int) * (m / first_radix));
    p->tw = malloc(sizeof(double) * (2 * m + 1)); /* 6 (q + 4q + ... + m/4) < 2m */
    p->rot = malloc(sizeof(double) * (m + 1));
    if (!p->first_slot || !p->tw || !p->rot) {
        fft_plan_free(p);
        return -2;
    }
    for (int i = 0; i < m / first_radix; i++)
        p->first_slot[i] = reversed_slot(i, m, first_radix);
    double *t = p->tw;
    for (int q = first_radix; q <= m / 4; q *= 4)
        t = stage_twiddles(t, q);
    for (int k = 0; k < m / 2; k++) {
        p->rot[2 * k] = cos(-2.0 * PI * k / n);
        p->rot[2 * k + 1] = sin(-2.0 * PI * k / n);
    }
    return 0;
}

void fft_plan_free(fft_plan *p)
{
    free(p->first_slot);
    free(p->tw);
    free(p->rot);
    p->first_slot = NULL;
    p->tw = p->rot = NULL;
}
