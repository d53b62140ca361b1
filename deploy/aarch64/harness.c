/* Standalone check of the C feature extractor (mel.c) and VAD (vad.c) on any CPU, without
 * Python: built for aarch64 and run under qemu-aarch64 by check.sh, or built natively.
 *
 *   harness CASES_DIR OUT_DIR [KERNEL [OTHER_OUT_DIR]]
 *
 * CASES_DIR is written on the host by make_cases.py: manifest.txt (feature and VAD parameters,
 * tolerance, signal names), window.f64, filterbank.f64 and per signal NAME.audio.f32,
 * NAME.reference.f64 (numpy reference log-mel), NAME.host_logmel.f32 (the host's C log-mel),
 * NAME.host_speech.u8 and NAME.host_score.f32 (the host's VAD on it). All raw little-endian.
 * KERNEL: auto (default) or generic or avx2, as edge_ser.features.extractor takes.
 * The log-mel computed here goes to OUT_DIR/NAME.logmel.f32; with OTHER_OUT_DIR (another
 * build's OUT_DIR) the two are compared too.
 *
 * A signal passes when its log-mel is within the tolerance of the reference and the VAD gives
 * the host's decisions frame for frame, both on this build's log-mel and on the host's.
 * Exit status: 0 all pass, 1 a signal failed, 2 bad input or extractor error. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mel.h"
#include "vad.h"

#define MAX_SIGNALS 32
#define NAME_LEN 64
#define PATH_LEN 1024

typedef struct {
    char name[NAME_LEN];
    long n_samples;
} signal_case;

typedef struct {
    int n_fft, hop, n_mels;
    double log_floor, tolerance;
    vad_params vad;
    vad_smoothing smoothing;
    int n_signals;
    signal_case signals[MAX_SIGNALS];
} manifest;

/* manifest.txt keys: every one must be given once. 'i' int, 'd' double, 'f' float. */
static const struct {
    const char *key;
    char type;
    size_t offset;
} FIELDS[] = {
    {"n_fft", 'i', offsetof(manifest, n_fft)},
    {"hop_length", 'i', offsetof(manifest, hop)},
    {"n_mels", 'i', offsetof(manifest, n_mels)},
    {"log_floor", 'd', offsetof(manifest, log_floor)},
    {"tolerance", 'd', offsetof(manifest, tolerance)},
    {"band_lo", 'i', offsetof(manifest, vad.band_lo)},
    {"band_hi", 'i', offsetof(manifest, vad.band_hi)},
    {"snr_threshold_db", 'f', offsetof(manifest, vad.snr_threshold_db)},
    {"band_smoothing", 'f', offsetof(manifest, vad.band_smoothing)},
    {"score_smoothing", 'f', offsetof(manifest, vad.score_smoothing)},
    {"flatness_max_db", 'f', offsetof(manifest, vad.flatness_max_db)},
    {"strong_snr_db", 'f', offsetof(manifest, vad.strong_snr_db)},
    {"floor_rise_db", 'f', offsetof(manifest, vad.floor_rise_db)},
    {"floor_fall_db", 'f', offsetof(manifest, vad.floor_fall_db)},
    {"min_level_db", 'f', offsetof(manifest, vad.min_level_db)},
    {"hangover", 'i', offsetof(manifest, smoothing.hangover)},
    {"min_gap", 'i', offsetof(manifest, smoothing.min_gap)},
    {"min_speech", 'i', offsetof(manifest, smoothing.min_speech)},
    {"pre_roll", 'i', offsetof(manifest, smoothing.pre_roll)},
};
#define N_FIELDS (sizeof FIELDS / sizeof FIELDS[0])

/* What one signal gave on this build. */
typedef struct {
    long n_frames;
    double ref_error;      /* max |log-mel - numpy reference| */
    double other_error;    /* max |log-mel - other build's log-mel|, or -1 without one */
    long vad_own_diff;     /* frames where the VAD on this log-mel differs from the host's */
    long vad_host_diff;    /* frames where the VAD on the host's log-mel differs from the host's */
    double score_error;    /* max |score_db - host score_db| on the host's log-mel, dB */
    long speech_frames;    /* speech frames in the host's decisions */
} signal_result;

static int fail(const char *what, const char *path)
{
    fprintf(stderr, "harness: %s: %s\n", path, what);
    return -1;
}

/* Sets the manifest field named key from the text value; -1 for an unknown key. */
static int set_field(manifest *m, const char *key, const char *value, int *seen)
{
    for (size_t i = 0; i < N_FIELDS; i++) {
        if (strcmp(key, FIELDS[i].key))
            continue;
        char *at = (char *)m + FIELDS[i].offset;
        double v = strtod(value, NULL);
        if (FIELDS[i].type == 'i')
            *(int *)at = (int)v;
        else if (FIELDS[i].type == 'f')
            *(float *)at = (float)v; /* as CPython's "f" argument format converts it */
        else
            *(double *)at = v;
        seen[i]++;
        return 0;
    }
    return -1;
}

/* CASES_DIR/manifest.txt -> m: lines "key value" and "signal NAME N_SAMPLES". */
static int read_manifest(const char *dir, manifest *m)
{
    char path[PATH_LEN], key[NAME_LEN], value[NAME_LEN];
    int seen[N_FIELDS] = {0};
    snprintf(path, sizeof path, "%s/manifest.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return fail("cannot open", path);
    memset(m, 0, sizeof *m);
    while (fscanf(f, "%63s %63s", key, value) == 2) {
        if (!strcmp(key, "signal")) {
            signal_case *s = &m->signals[m->n_signals];
            if (m->n_signals == MAX_SIGNALS || fscanf(f, "%ld", &s->n_samples) != 1) {
                fclose(f);
                return fail("too many signals or a signal line without a length", path);
            }
            snprintf(s->name, sizeof s->name, "%s", value);
            m->n_signals++;
        } else if (set_field(m, key, value, seen)) {
            fprintf(stderr, "harness: %s: unknown key %s\n", path, key);
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    for (size_t i = 0; i < N_FIELDS; i++)
        if (seen[i] != 1) {
            fprintf(stderr, "harness: %s: key %s given %d times, need 1\n", path, FIELDS[i].key, seen[i]);
            return -1;
        }
    return m->n_signals ? 0 : fail("no signals", path);
}

/* DIR/NAME[SUFFIX], which must hold exactly count items of size bytes -> malloc'd buffer. */
static void *read_raw(const char *dir, const char *name, const char *suffix, size_t count, size_t size)
{
    char path[PATH_LEN];
    snprintf(path, sizeof path, "%s/%s%s", dir, name, suffix);
    FILE *f = fopen(path, "rb");
    void *buf = malloc(count * size + 1);
    size_t got = f && buf ? fread(buf, size, count, f) : 0;
    int extra = f ? fgetc(f) != EOF : 0;
    if (f)
        fclose(f);
    if (!f || !buf || got != count || extra) {
        fail(!f ? "cannot open" : "wrong size", path);
        free(buf);
        return NULL;
    }
    return buf;
}

static int write_raw(const char *dir, const char *name, const char *suffix, const void *buf, size_t bytes)
{
    char path[PATH_LEN];
    snprintf(path, sizeof path, "%s/%s%s", dir, name, suffix);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(buf, 1, bytes, f) == bytes;
    if (f)
        ok &= fclose(f) == 0;
    return ok ? 0 : fail("cannot write", path);
}

static double max_abs_diff(const float *a, const double *b, long n)
{
    double worst = 0;
    for (long i = 0; i < n; i++) {
        double d = a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
        worst = d > worst || d != d ? d : worst; /* NaN counts as the worst */
    }
    return worst;
}

static double max_abs_diff_f32(const float *a, const float *b, long n)
{
    double worst = 0;
    for (long i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        d = d < 0 ? -d : d;
        worst = d > worst || d != d ? d : worst;
    }
    return worst;
}

/* Both VAD stages on log_mel [n_mels, n_frames], as edge_ser._vad.detect runs them. */
static int run_vad(const manifest *m, const float *log_mel, long n_frames, uint8_t *speech, float *score)
{
    vad_state state;
    if (vad_init(&state, &m->vad, m->n_mels))
        return -1;
    vad_run(&state, log_mel, n_frames, speech, score);
    vad_smooth(speech, n_frames, &m->smoothing);
    return 0;
}

static long count_diff(const uint8_t *a, const uint8_t *b, long n)
{
    long d = 0;
    for (long i = 0; i < n; i++)
        d += a[i] != b[i];
    return d;
}

/* One signal through the extractor and the VAD, compared with the host's files. */
static int check_signal(const mel_extractor *ex, const manifest *m, const signal_case *s, const char *cases,
                        const char *out_dir, const char *other_dir, signal_result *r)
{
    const long n_frames = mel_n_frames(ex, s->n_samples), size = m->n_mels * n_frames;
    float *audio = read_raw(cases, s->name, ".audio.f32", s->n_samples, sizeof(float));
    double *reference = read_raw(cases, s->name, ".reference.f64", size, sizeof(double));
    float *host_mel = read_raw(cases, s->name, ".host_logmel.f32", size, sizeof(float));
    uint8_t *host_speech = read_raw(cases, s->name, ".host_speech.u8", n_frames, 1);
    float *host_score = read_raw(cases, s->name, ".host_score.f32", n_frames, sizeof(float));
    float *other = other_dir ? read_raw(other_dir, s->name, ".logmel.f32", size, sizeof(float)) : NULL;
    float *mel = malloc(sizeof(float) * (size + 1)), *score = malloc(sizeof(float) * (n_frames + 1));
    uint8_t *speech = malloc(n_frames + 1);
    int rc = -1;
    if (!audio || !reference || !host_mel || !host_speech || !host_score || (other_dir && !other) || !mel
        || !score || !speech)
        goto done;
    int mel_rc = mel_compute(ex, audio, s->n_samples, mel, 0);
    if (mel_rc != MEL_OK) {
        fprintf(stderr, "harness: %s: mel_compute returned %d\n", s->name, mel_rc);
        goto done;
    }
    r->n_frames = n_frames;
    r->ref_error = max_abs_diff(mel, reference, size);
    r->other_error = other ? max_abs_diff_f32(mel, other, size) : -1;
    r->speech_frames = 0;
    for (long t = 0; t < n_frames; t++)
        r->speech_frames += host_speech[t];
    if (run_vad(m, mel, n_frames, speech, score))
        goto done;
    r->vad_own_diff = count_diff(speech, host_speech, n_frames);
    run_vad(m, host_mel, n_frames, speech, score);
    r->vad_host_diff = count_diff(speech, host_speech, n_frames);
    r->score_error = max_abs_diff_f32(score, host_score, n_frames);
    rc = write_raw(out_dir, s->name, ".logmel.f32", mel, sizeof(float) * size);
done:
    free(audio), free(reference), free(host_mel), free(host_speech), free(host_score), free(other);
    free(mel), free(score), free(speech);
    return rc;
}

/* The instruction set this file was compiled for, from the compiler's own macros. */
static const char *build_target(void)
{
#if defined(__aarch64__) && defined(__ARM_NEON)
    return "aarch64, NEON";
#elif defined(__aarch64__)
    return "aarch64, no NEON";
#elif defined(__x86_64__) && defined(__AVX2__)
    return "x86-64, AVX2 baseline";
#elif defined(__x86_64__)
    return "x86-64, SSE2 baseline";
#else
    return "other";
#endif
}

static int kernel_code(const char *name)
{
    return !strcmp(name, "auto") ? MEL_KERNEL_AUTO
           : !strcmp(name, "generic") ? MEL_KERNEL_GENERIC
           : !strcmp(name, "avx2") ? MEL_KERNEL_AVX2
           : -1;
}

static const char *kernel_name(int kernel)
{
    return kernel == MEL_KERNEL_AVX2 ? "avx2" : kernel == MEL_KERNEL_GENERIC ? "generic" : "?";
}

static void print_row(const signal_case *s, const signal_result *r, int pass)
{
    char other[32] = "-";
    if (r->other_error >= 0)
        snprintf(other, sizeof other, "%.2e", r->other_error);
    printf("%-22s %6ld %11.2e %12s %9ld %9ld %11.2e %7ld  %s\n", s->name, r->n_frames, r->ref_error, other,
           r->vad_own_diff, r->vad_host_diff, r->score_error, r->speech_frames, pass ? "PASS" : "FAIL");
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: %s CASES_DIR OUT_DIR [auto|generic|avx2 [OTHER_OUT_DIR]]\n", argv[0]);
        return 2;
    }
    const char *cases = argv[1], *out_dir = argv[2], *other_dir = argc == 5 ? argv[4] : NULL;
    int kernel = kernel_code(argc >= 4 ? argv[3] : "auto");
    manifest m;
    if (kernel < 0) {
        fprintf(stderr, "harness: unknown kernel %s (choose auto, generic or avx2)\n", argv[3]);
        return 2;
    }
    if (read_manifest(cases, &m))
        return 2;
    long n_bins = m.n_fft / 2 + 1;
    double *window = read_raw(cases, "window", ".f64", m.n_fft, sizeof(double));
    double *filterbank = read_raw(cases, "filterbank", ".f64", m.n_mels * n_bins, sizeof(double));
    mel_extractor ex;
    int rc = window && filterbank
                 ? mel_init(&ex, m.n_fft, m.hop, window, m.n_mels, filterbank, m.log_floor, MEL_NORM_NONE, 0, NULL, kernel, 0)
                 : MEL_BADARG;
    free(window), free(filterbank);
    if (rc != MEL_OK) {
        fprintf(stderr, "harness: mel_init returned %d (kernel %s)\n", rc, argc >= 4 ? argv[3] : "auto");
        return 2;
    }
    printf("build: %s; kernel in use: %s (best on this CPU: %s); tolerance %.0e\n", build_target(),
           kernel_name(ex.kernel), kernel_name(mel_best_kernel()), m.tolerance);
    printf("%-22s %6s %11s %12s %9s %9s %11s %7s  %s\n", "signal", "frames", "max|C-ref|", "max|C-other|",
           "VAD-own", "VAD-host", "max|dscore|", "speech", "result");
    int all_pass = 1;
    for (int i = 0; i < m.n_signals; i++) {
        signal_result r;
        if (check_signal(&ex, &m, &m.signals[i], cases, out_dir, other_dir, &r)) {
            mel_free(&ex);
            return 2;
        }
        int pass = r.ref_error <= m.tolerance && r.vad_own_diff == 0 && r.vad_host_diff == 0;
        all_pass &= pass;
        print_row(&m.signals[i], &r, pass);
    }
    mel_free(&ex);
    printf("%s\n", all_pass ? "ALL PASS" : "SOME FAILED");
    return all_pass ? 0 : 1;
}
