/* The mel kernel for x86-64 CPUs with AVX2 and FMA, chosen at run time by mel.c; elsewhere this
 * file compiles to nothing. A pragma rather than -mavx2, so the rest of the build stays portable. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#pragma GCC target("avx2,fma")
#define LANES 4
#define MEL_FRAMES_FN mel_frames_avx2
#include "mel_kernel.h"
#else
typedef int mel_avx2_unused; /* ISO C forbids an empty translation unit */
#endif
