"""Whisper's front end (config.WHISPER_FEATURES): the C extractor's mixed-radix FFT against
numpy.fft, the C extractor against the numpy reference on any length, both kernels, and both
against transformers' WhisperFeatureExtractor on real speech."""
import dataclasses

import numpy as np
import pytest

from edge_ser import _features, features, reference
from edge_ser.config import WHISPER_FEATURES, FeatureConfig
from edge_ser.errors import AudioError

W = WHISPER_FEATURES
KERNELS = ["generic"] + (["avx2"] if features.extractor(FeatureConfig()).kernel == "avx2" else [])
TOLERANCE = 1e-4  # max abs difference, in the (normalised) log domain
# Even n_fft whose half factors into 2, 3 and 5: every radix, odd halves (15, 45, 125) included.
FFT_LENGTHS = [6, 24, 30, 36, 90, 240, 250, 320, 400, 480, 512, 600, 1000]
# Lengths around Whisper's hop (160) and half FFT (200): 0 and 1 frame, reflect padding longer
# than the signal (n <= 200), and longer clips.
LENGTHS = [0, 1, 100, 159, 160, 161, 199, 200, 201, 320, 399, 400, 401, 1000, 16001, 48000]


def emodb_clips(data_dir, n=20):
    import soundfile as sf

    paths = sorted((data_dir / "emodb" / "wav").glob("*.wav"))
    assert len(paths) == 535, f"expected 535 EmoDB clips in {data_dir}, found {len(paths)}"
    return [sf.read(p, dtype="float32")[0] for p in paths[:: len(paths) // n]]


def c_log_mel(audio, config, kernel):
    out = np.empty((config.n_mels, config.n_frames(len(audio))), np.float32)
    features.extractor(config, kernel=kernel).log_mel(np.ascontiguousarray(audio, np.float32), out)
    return out


def noise(n, seed=0):
    return np.random.default_rng(seed).normal(scale=0.2, size=n).astype(np.float32)


# --- the FFT ---------------------------------------------------------------------------------


def c_power_spectrum(x, n_fft, kernel):
    """|rfft|^2 of the centred, zero-padded frames (hop n_fft, rectangular window) by the C
    extractor, through an identity filterbank and a floor far below every bin. [frames, bins]."""
    n_bins = n_fft // 2 + 1
    ex = _features.Extractor(n_fft, n_fft, np.ones(n_fft), np.eye(n_bins), 1e-300, "none", None, kernel)
    out = np.empty((n_bins, 1 + len(x) // n_fft), np.float32)
    ex.log_mel(x, out)
    return np.exp(out.astype(np.float64)).T


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("n_fft", FFT_LENGTHS)
def test_fft_matches_numpy_rfft(n_fft, kernel):
    x = noise(7 * n_fft, seed=n_fft)
    frames = np.pad(x.astype(np.float64), n_fft // 2)[: 8 * n_fft].reshape(8, n_fft)
    expected = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    got = c_power_spectrum(x, n_fft, kernel)
    # White noise: every bin holds power comparable to the frame's, so relative error is meaningful.
    assert np.abs(got / expected - 1).max() < 1e-5


def test_unsupported_fft_length_is_refused_by_the_extractor():
    with pytest.raises(ValueError, match="n_fft must be even, >= 4, with n_fft / 2 a product of 2, 3 and 5"):
        _features.Extractor(14, 7, np.ones(14), np.eye(8), 1e-10)


# --- the C extractor against the reference -------------------------------------------------


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("n", LENGTHS)
def test_c_matches_reference_on_any_length(n, kernel):
    x = noise(n, seed=n)
    out = c_log_mel(x, W, kernel)
    assert out.shape == (80, n // 160)
    if out.size:
        assert np.abs(out - reference.log_mel(x, W)).max() < TOLERANCE


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("config", [
    dataclasses.replace(W, normalize="none"),  # log10 only
    dataclasses.replace(W, normalize="none", log="ln", pad="zero", drop_last_frame=False),  # the FFT only
    FeatureConfig(n_fft=480, win_length=400, n_mels=64, pad="reflect"),  # window shorter than n_fft
    FeatureConfig(n_fft=320, win_length=320, hop_length=320, n_mels=40, normalize="utterance"),
], ids=["log10", "ln", "480-reflect", "320-utterance"])
def test_each_option_matches_reference(config, kernel):
    for n in (170, 16000, 23456):  # 170: reflect padding longer than the signal
        x = noise(n, seed=n)
        assert np.abs(c_log_mel(x, config, kernel) - reference.log_mel(x, config)).max() < TOLERANCE


def test_short_signals_are_reflected_back_and_forth():
    """Reflect padding needs more than n_fft // 2 samples in torch.stft; the definition follows
    numpy.pad instead, which reflects a shorter signal back and forth (and repeats one sample)."""
    # Every frame kept, so that even one sample has one; no normalisation, to check frame 0 alone.
    config = dataclasses.replace(W, drop_last_frame=False, normalize="none")
    for n in (1, 2, 3, 50, 199):
        x = noise(n, seed=n)
        padded = np.pad(x.astype(np.float64), 200, mode="reflect")
        expected_power = np.abs(np.fft.rfft(padded[:400] * reference.hann_window(config))) ** 2
        expected = np.log10(np.maximum(reference.mel_filterbank(config) @ expected_power, 1e-10))
        got = features.log_mel(x, config)
        assert got.shape == (80, 1 + n // 160)
        assert np.abs(got[:, 0] - expected).max() < TOLERANCE
        assert np.abs(got - reference.log_mel(x, config)).max() < TOLERANCE


def test_whisper_normalisation_clamps_eight_decades_below_the_top():
    # A tone, then digital silence: silent frames sit at the floor (1e-10), far more than 8
    # decades down, so they are clamped to top - 8, i.e. (top - 8 + 4) / 4 after scaling.
    x = np.zeros(16000, np.float32)
    x[:8000] = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)
    out = features.log_mel(x, W)
    assert out.min() == pytest.approx(out.max() - 2.0, abs=1e-6)
    assert (out == out.min()).mean() > 0.4  # the silent half, and quiet bands of the tone
    assert np.abs(out - reference.log_mel(x, W)).max() < TOLERANCE


def test_mfcc_of_whisper_features_matches_reference():
    x = noise(20000)
    assert np.abs(features.mfcc(x, W, n_mfcc=13) - reference.mfcc(x, W, 13)).max() < TOLERANCE


def test_nonfinite_audio_shorter_than_a_hop_is_rejected():
    # Fewer than hop samples give no frame at all, but NaN in them is still an error.
    x = np.zeros(100, np.float32)
    x[50] = np.nan
    assert features.log_mel(np.zeros(100, np.float32), W).shape == (80, 0)
    with pytest.raises(AudioError, match="NaN or infinite"):
        features.log_mel(x, W)


def test_frames_and_samples_agree():
    for config in (FeatureConfig(), W):
        for frames in (1, 2, 200, 3000):
            n = config.samples_for_frames(frames)
            assert config.n_frames(n) == frames
            assert frames == 1 or config.n_frames(n - 1) == frames - 1


# --- transformers' WhisperFeatureExtractor ---------------------------------------------------


@pytest.fixture(scope="module")
def whisper_extractor():
    transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install '.[train]')")
    return transformers.WhisperFeatureExtractor()


def test_matches_transformers_on_emodb(data_dir, whisper_extractor):
    """The whole [80, frames] output, not padded to 30 s: transformers' default path (torch.stft
    where torch is installed, else numpy), float32."""
    for x in emodb_clips(data_dir):
        theirs = whisper_extractor(x, sampling_rate=16000, padding="longest", return_tensors="np").input_features[0]
        ours = features.log_mel(x, W)
        assert ours.shape == theirs.shape == (80, len(x) // 160)
        assert np.abs(ours - theirs).max() < TOLERANCE


def test_matches_transformers_numpy_path(whisper_extractor):
    """transformers' numpy path, also on signals torch.stft refuses (n <= 200: reflected back and forth)."""
    numpy_path = getattr(whisper_extractor, "_np_extract_fbank_features", None)
    if numpy_path is None:
        pytest.skip("this transformers version has no numpy Whisper path")
    for n in (160, 170, 200, 201, 4000, 48000):
        x = noise(n, seed=n)
        theirs = numpy_path(x[None], "cpu")[0]
        ours = features.log_mel(x, W)
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() < TOLERANCE


def test_format_1_features_are_written_as_format_1():
    """A model with the original features stays readable by a runtime that predates the new
    fields, and their cache keys do not move."""
    assert set(FeatureConfig().to_dict()) == {"sample_rate", "win_length", "hop_length", "n_fft", "n_mels", "fmin",
                                              "fmax", "log_floor", "normalize"}
    assert FeatureConfig().key() == "5eed139d176fefbf"  # the key before the Whisper fields existed
    whisper = WHISPER_FEATURES.to_dict()
    assert whisper["log"] == "log10" and whisper["pad"] == "reflect" and whisper["drop_last_frame"] is True
