/* Checked arithmetic on sizes: a product of counts that wrapped would allocate, copy or check
 * less than the code then touches. Portable C (no __builtin_mul_overflow), all inline. */
#ifndef EDGE_SER_SIZES_H
#define EDGE_SER_SIZES_H

#include <stddef.h>
#include <stdint.h>

/* *out = a * b; 0, or -1 (and *out untouched) when that does not fit a size_t. */
static inline int size_mul(size_t a, size_t b, size_t *out)
{
    if (b != 0 && a > SIZE_MAX / b)
        return -1;
    *out = a * b;
    return 0;
}

/* *out = a + b; 0, or -1 (and *out untouched) when that does not fit a size_t. */
static inline int size_add(size_t a, size_t b, size_t *out)
{
    if (a > SIZE_MAX - b)
        return -1;
    *out = a + b;
    return 0;
}

#endif
