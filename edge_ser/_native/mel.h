/* Log-mel spectrogram and MFCC, as defined by edge_ser.config.FeatureConfig.
 * The tables (window, filterbank, DCT) come from the caller, so C and the numpy reference share
 * one definition; this file owns the arithmetic only. Immutable between mel_init and mel_free:
 * thread-safe in between. */
#ifndef EDGE_SER_MEL_H
#define EDGE_SER_MEL_H

#include "fft.h"

#include <limits.h>

/* MEL_TOOBIG: sizes beyond the limits below, which keep every size and index the kernels compute
 * within int (tables) or long (samples, frames). */
enum { MEL_OK = 0, MEL_NONFINITE = -1, MEL_NOMEM = -2, MEL_BADARG = -3, MEL_TOOBIG = -4 };

/* The most values a table (filterbank n_mels x n_bins, DCT n_mfcc x n_mels) may hold. */
#define MEL_MAX_TABLE INT_MAX

/* The widest kernel's frames per block (mel_avx2.c); mel_init sizes its checks for it. */
#define MEL_MAX_LANES 4

/* Instruction-set variants of the per-frame kernel. */
enum { MEL_KERNEL_AUTO = 0, MEL_KERNEL_GENERIC = 1, MEL_KERNEL_AVX2 = 2 };

/* FeatureConfig.normalize. */
enum { MEL_NORM_NONE = 0, MEL_NORM_UTTERANCE = 1, MEL_NORM_WHISPER = 2 };

/* mel_init's flags, FeatureConfig's other choices: log10 instead of ln, reflect padding instead
 * of zeros, n / hop frames instead of 1 + n / hop. */
enum { MEL_LOG10 = 1, MEL_REFLECT = 2, MEL_DROP_LAST = 4 };

typedef struct {
    int n_fft, hop, n_mels, n_bins, n_mfcc;
    int normalize;            /* MEL_NORM_* */
    int kernel;               /* MEL_KERNEL_GENERIC or MEL_KERNEL_AVX2, resolved by mel_init */
    int reflect, drop_last;   /* MEL_REFLECT, MEL_DROP_LAST given */
    double log_floor;
    double log_scale;         /* 1, or 1 / ln 10 for log10 */
    double *half_window;      /* [n_fft] the window / 2, which spares the real-FFT split its halvings */
    int win_start, win_end;   /* nonzero part of the window within n_fft, rounded out to even */
    int *band_lo, *band_len;  /* [n_mels] nonzero bins of each filter */
    double *band_w;           /* [sum of band_len] the nonzero weights, band after band */
    double *dct;              /* [n_mfcc * n_mels] or NULL */
    fft_plan plan;
} mel_extractor;

/* n_fft: even, n_fft / 2 a product of 2, 3 and 5; normalize: MEL_NORM_*; flags: MEL_LOG10 |
 * MEL_REFLECT | MEL_DROP_LAST or 0. Returns MEL_OK, MEL_BADARG, MEL_NOMEM, or MEL_TOOBIG when a
 * table would exceed MEL_MAX_TABLE values or a frame block's scratch would not fit a size_t. */
int mel_init(mel_extractor *ex, int n_fft, int hop, const double *window, int n_mels,
             const double *filterbank, double log_floor, int normalize, int n_mfcc, const double *dct,
             int kernel, int flags);
void mel_free(mel_extractor *ex);

/* The best kernel this CPU runs (MEL_KERNEL_AVX2 or MEL_KERNEL_GENERIC). */
int mel_best_kernel(void);

/* Frames for n samples: 1 + n / hop (n / hop with MEL_DROP_LAST), or 0 when n == 0. */
long mel_n_frames(const mel_extractor *ex, long n);

/* x [n] -> out [n_mels][n_frames] (log-mel) or [n_mfcc][n_frames] (MFCC) when mfcc != 0.
 * Returns MEL_NONFINITE if x holds NaN/inf, MEL_NOMEM on allocation failure, MEL_TOOBIG when n
 * or the output's size would overflow a long. Reads ex only: any number of threads may call it
 * on one extractor, as long as none calls mel_init or mel_free on it meanwhile. */
int mel_compute(const mel_extractor *ex, const float *x, long n, float *out, int mfcc);

/* The kernels behind mel_compute: x [n] -> log-mel [n_mels][n_frames] into exactly one of logmel
 * (double) or out (float). Return MEL_OK, MEL_NOMEM, or MEL_NONFINITE for NaN/inf among the
 * samples under the frames' windows (win_start .. win_end). */
int mel_frames_generic(const mel_extractor *ex, const float *x, long n, long n_frames, double *logmel, float *out);
int mel_frames_avx2(const mel_extractor *ex, const float *x, long n, long n_frames, double *logmel, float *out);

#endif
