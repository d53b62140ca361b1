/* Voice activity detection on log-mel frames: see vad.h for the two-stage design. */
#include "vad.h"

#include <math.h>
#include <string.h>

#define DB_PER_NEPER 4.342944819f /* 10 / ln(10): natural-log power -> dB */

int vad_init(vad_state *s, const vad_params *p, int n_mels)
{
    if (n_mels < 1 || n_mels > VAD_MAX_MELS || p->band_lo < 0 || p->band_hi > n_mels
        || p->band_lo >= p->band_hi)
        return -1;
    if (!(p->score_smoothing >= 0.0f && p->score_smoothing < 1.0f && p->band_smoothing >= 0.0f
          && p->band_smoothing < 1.0f && p->floor_rise_db > 0.0f
          && p->floor_fall_db > 0.0f))
        return -2;
    memset(s, 0, sizeof(*s));
    s->p = *p;
    s->n_mels = n_mels;
    return 0;
}

/* Speech-band cues of the smoothed frame against the current noise floor. */
static void frame_cues(const vad_state *s, vad_cues *c)
{
    const int lo = s->p.band_lo, hi = s->p.band_hi, n = hi - lo;
    const float *x = s->smooth;
    float snr = 0.0f, sum_log = 0.0f, peak = x[lo];
    for (int b = lo; b < hi; b++) {
        float d = x[b] - s->noise[b];
        snr += d > 0.0f ? d : 0.0f;
        sum_log += x[b];
        peak = x[b] > peak ? x[b] : peak;
    }
    /* log of the arithmetic mean power, shifted by the peak so exp cannot overflow */
    float sum_pow = 0.0f;
    for (int b = lo; b < hi; b++)
        sum_pow += expf(x[b] - peak);
    float mean_log = sum_log / n, log_mean = peak + logf(sum_pow / n);
    c->snr_db = DB_PER_NEPER * snr / n;
    c->flatness_db = DB_PER_NEPER * (mean_log - log_mean);
    c->level_db = DB_PER_NEPER * mean_log;
}

/* Quantile tracker, independent of the speech decision (so a wrong decision cannot lock the
 * floor): each band steps up by at most floor_rise_db and down by at most floor_fall_db per
 * frame, so it settles where P(x < floor) = rise / (rise + fall), a low quantile of the band's
 * recent (smoothed) log power. Speech lifts a band only while it fills more than that share
 * of frames. */
static void update_floor(vad_state *s)
{
    const float rise = s->p.floor_rise_db / DB_PER_NEPER, fall = s->p.floor_fall_db / DB_PER_NEPER;
    for (int b = 0; b < s->n_mels; b++) {
        float d = s->smooth[b] - s->noise[b];
        s->noise[b] += d > rise ? rise : (d < -fall ? -fall : d);
    }
}

/* One-pole smoothing of each band's log power over frames: steadier cues in noise. */
static void smooth_bands(vad_state *s, const float *frame, ptrdiff_t stride)
{
    const float a = s->started ? s->p.band_smoothing : 0.0f;
    for (int b = 0; b < s->n_mels; b++)
        s->smooth[b] = a * s->smooth[b] + (1.0f - a) * frame[b * stride];
}

int vad_frame(vad_state *s, const float *frame, ptrdiff_t stride, vad_cues *cues)
{
    vad_cues c;
    smooth_bands(s, frame, stride);
    if (!s->started) {
        memcpy(s->noise, s->smooth, sizeof(float) * (size_t)s->n_mels);
        s->started = 1;
    }
    frame_cues(s, &c);
    const float a = s->p.score_smoothing;
    s->score_db = c.score_db = a * s->score_db + (1.0f - a) * c.snr_db;
    int raw = c.level_db >= s->p.min_level_db && c.score_db >= s->p.snr_threshold_db
              && (c.flatness_db <= s->p.flatness_max_db || c.score_db >= s->p.strong_snr_db);
    update_floor(s);
    if (cues)
        *cues = c;
    return raw;
}

void vad_run(vad_state *s, const float *log_mel, ptrdiff_t n_frames, uint8_t *speech,
             float *score_db)
{
    vad_cues c;
    for (ptrdiff_t t = 0; t < n_frames; t++) {
        speech[t] = (uint8_t)vad_frame(s, log_mel + t, n_frames, &c);
        if (score_db)
            score_db[t] = c.score_db;
    }
}

/* Sets speech[a, b) to v. */
static void fill(uint8_t *speech, ptrdiff_t a, ptrdiff_t b, uint8_t v)
{
    for (ptrdiff_t t = a; t < b; t++)
        speech[t] = v;
}

/* Runs of value v shorter than min_len become !v; interior_only skips runs touching an end. */
static void remove_short_runs(uint8_t *speech, ptrdiff_t n, uint8_t v, int min_len,
                              int interior_only)
{
    ptrdiff_t t = 0;
    while (t < n) {
        ptrdiff_t start = t;
        while (t < n && speech[t] == speech[start])
            t++;
        int at_end = start == 0 || t == n;
        if (speech[start] == v && t - start < min_len && !(interior_only && at_end))
            fill(speech, start, t, (uint8_t)!v);
    }
}

void vad_smooth(uint8_t *speech, ptrdiff_t n, const vad_smoothing *sm)
{
    remove_short_runs(speech, n, 1, sm->min_speech, 0);
    /* hangover: each run is held hangover frames past its end (backwards, so the frames
     * it sets are not taken for new run ends) */
    for (ptrdiff_t t = n - 1; t > 0; t--)
        if (speech[t - 1] && !speech[t])
            fill(speech, t, t + sm->hangover < n ? t + sm->hangover : n, 1);
    remove_short_runs(speech, n, 0, sm->min_gap, 1);
    for (ptrdiff_t t = 1; t < n; t++)
        if (speech[t] && !speech[t - 1])
            fill(speech, t - sm->pre_roll > 0 ? t - sm->pre_roll : 0, t, 1);
}
