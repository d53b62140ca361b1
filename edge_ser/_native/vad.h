/* Voice activity detection on log-mel frames (natural-log mel power, [n_mels] per frame).
 *
 * Two stages, so the detector can run streaming:
 *   1. vad_frame: causal. Fed one frame at a time, it tracks a per-band noise floor and returns
 *      the raw speech / non-speech decision. No lookahead, fixed-size state, no heap.
 *   2. vad_smooth: on a decision sequence, drops short speech runs, holds each run for a
 *      hangover, fills short gaps and extends each onset backwards. It needs
 *      max(min_speech, min_gap, pre_roll) frames of lookahead, so a streaming caller runs it
 *      on a sliding buffer and delays its output by that much.
 * Everything lives in the caller's vad_state: no globals, so separate states are thread-safe.
 */
#ifndef EDGE_SER_VAD_H
#define EDGE_SER_VAD_H

#include <stddef.h>
#include <stdint.h>

#define VAD_MAX_MELS 256

typedef struct {
    int band_lo, band_hi;     /* mel bands [band_lo, band_hi) whose SNR is scored (speech band) */
    float snr_threshold_db;   /* smoothed speech-band SNR above the noise floor that is speech */
    float band_smoothing;     /* 0..1: one-pole smoothing of each band's log power over frames */
    float score_smoothing;    /* 0..1: one-pole smoothing of the SNR over frames (0 = none); it
                                 steadies the score in noise at the cost of a slight lag */
    float flatness_max_db;    /* spectral flatness of the speech band above this (noise-like, flat
                                 spectrum) is not speech unless the SNR exceeds strong_snr_db */
    float strong_snr_db;      /* SNR that is speech whatever the flatness */
    float floor_rise_db;      /* per frame: the most the noise floor may rise */
    float floor_fall_db;      /* per frame: the most it may fall; the floor settles at the
                                 rise / (rise + fall) quantile of each band's log power */
    float min_level_db;       /* speech-band mean log power (dB) below which a frame is silence */
} vad_params;

typedef struct {              /* all in frames */
    int min_speech;           /* raw speech runs shorter than this are dropped */
    int hangover;             /* each run is held this long past its end */
    int min_gap;              /* interior gaps shorter than this are filled */
    int pre_roll;             /* each run starts this much earlier */
} vad_smoothing;

typedef struct {
    vad_params p;
    int n_mels;
    int started;              /* 0 until the first frame initialises the floor */
    float score_db;           /* smoothed speech-band SNR */
    float smooth[VAD_MAX_MELS];/* per-band smoothed log power */
    float noise[VAD_MAX_MELS];/* per-band noise floor, natural-log power */
} vad_state;

/* Per-frame cues, for diagnostics and tuning. */
typedef struct {
    float snr_db;             /* mean speech-band SNR over the floor, dB, negative parts clipped */
    float score_db;           /* snr_db after score_smoothing: compared with the threshold */
    float flatness_db;        /* 10 log10(geometric / arithmetic mean) of the speech-band power */
    float level_db;           /* mean speech-band log power, dB */
} vad_cues;

/* 0 on success; -1 if n_mels or the band limits are out of range, -2 for a bad parameter. */
int vad_init(vad_state *s, const vad_params *p, int n_mels);

/* frame[b * stride] for b in [0, n_mels) is one frame's log-mel. Returns 1 for speech.
 * cues may be NULL. */
int vad_frame(vad_state *s, const float *frame, ptrdiff_t stride, vad_cues *cues);

/* Runs vad_frame over log_mel [n_mels, n_frames] (C order): speech[t] = raw 0 / 1 decision,
 * score_db[t] (unless NULL) = the smoothed SNR score. */
void vad_run(vad_state *s, const float *log_mel, ptrdiff_t n_frames, uint8_t *speech,
             float *score_db);

/* In place on speech[n], in this order: drop runs shorter than min_speech, extend each run
 * by hangover, fill interior gaps shorter than min_gap, start each run pre_roll earlier. */
void vad_smooth(uint8_t *speech, ptrdiff_t n, const vad_smoothing *sm);

#endif
