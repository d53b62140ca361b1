#include "fft.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sizes.h"

static const double PI = 3.14159265358979323846;
/* The mixed plan's radices, in stage order: larger radices first, since the first stage needs no
 * twiddles and a radix-r stage multiplies (r - 1) / r of its inputs by one. */
static const int MIXED_RADICES[] = {5, 4, 3, 2};

static int is_power_of_two(int m) { return m > 0 && !(m & (m - 1)); }

/* n / 2 with every factor of 2, 3 and 5 divided out: 1 when the mixed plan can do it. */
static int unfactored(int m)
{
    for (int p = 2; p <= 5; p++)
        while (m > 1 && m % p == 0)
            m /= p;
    return m;
}

int fft_supported(int n)
{
    return n >= 4 && n % 2 == 0 && unfactored(n / 2) == 1 ? 0 : -1;
}

/* Slot of input n after the digit reversal that makes a decimation-in-time FFT work in place:
 * the last stage (sub-transforms of size m / r, r its radix) splits n by n mod r, so that digit
 * picks the sub-transform; the next digit (mod the previous stage's radix) picks the part of that
 * one, and so on down to the second stage. radix[0 .. n_stages) are the stages' radices. */
static int reversed_slot(int n, int m, const int *radix, int n_stages)
{
    int slot = 0, size = m;
    for (int s = n_stages - 1; s >= 1; s--) {
        size /= radix[s];
        slot += (n % radix[s]) * size;
        n /= radix[s];
    }
    return slot + n; /* n == 0 here for the first stage's inputs, n < m / radix[0] */
}

/* The twiddles of a stage of radix r and sub-size q: for j < q, W^(t j) for t = 1 .. r - 1 with
 * W = exp(-2 pi i / rq), as re, im pairs, from cos/sin directly (not by recurrence), so they are
 * exact to 1 ulp. Returns the end. */
static double *stage_twiddles(double *t, int q, int r)
{
    for (int j = 0; j < q; j++)
        for (int k = 1; k < r; k++) {
            *t++ = cos(-2.0 * PI * k * j / (r * q));
            *t++ = sin(-2.0 * PI * k * j / (r * q));
        }
    return t;
}

/* Radices of the stages, first stage first. Power of two: 2 or 4, then 4s; otherwise
 * MIXED_RADICES' order, 2s paired into 4s. Returns the number of stages. */
static int plan_radices(int m, int *radix)
{
    int count = 0;
    if (is_power_of_two(m)) {
        int bits = 0;
        while ((1 << bits) < m)
            bits++;
        radix[count++] = bits % 2 ? 2 : 4; /* m = first_radix * 4^k */
        for (int size = radix[0]; size < m; size *= 4)
            radix[count++] = 4;
        return count;
    }
    for (unsigned i = 0; i < sizeof MIXED_RADICES / sizeof *MIXED_RADICES; i++)
        while (m % MIXED_RADICES[i] == 0) {
            radix[count++] = MIXED_RADICES[i];
            m /= MIXED_RADICES[i];
        }
    return count;
}

int fft_plan_init(fft_plan *p, int n)
{
    memset(p, 0, sizeof *p);
    if (fft_supported(n))
        return -1;
    int m = n / 2;
    p->n = n;
    p->m = m;
    p->mixed = !is_power_of_two(m);
    p->n_stages = plan_radices(m, p->radix);
    p->first_radix = p->radix[0];
    size_t tw_values, tw_bytes, rot_bytes;
    /* 2 (r - 1) q < 2 r q twiddle values per stage, r q = m, m / 2, ...: < 4m */
    if (size_mul(4, (size_t)m, &tw_values) || size_mul(sizeof(double), tw_values + 1, &tw_bytes)
        || size_mul(2 * sizeof(double), (size_t)m, &rot_bytes))
        return -2; /* a 32-bit size_t: no memory would hold them either */
    p->first_slot = malloc(sizeof(int) * ((size_t)m / p->first_radix));
    p->tw = malloc(tw_bytes);
    p->rot = malloc(rot_bytes);
    if (!p->first_slot || !p->tw || !p->rot) {
        fft_plan_free(p);
        return -2;
    }
    for (int i = 0; i < m / p->first_radix; i++)
        p->first_slot[i] = reversed_slot(i, m, p->radix, p->n_stages);
    double *t = p->tw;
    for (int s = 1, q = p->first_radix; s < p->n_stages; q *= p->radix[s], s++)
        t = stage_twiddles(t, q, p->radix[s]);
    for (int k = 0; k < m; k++) {
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
