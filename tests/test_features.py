"""The C extractor against its numpy reference and librosa, on real and synthetic audio."""
import concurrent.futures

import numpy as np
import pytest

from edge_ser import features, reference
from edge_ser.config import WHISPER_FEATURES, FeatureConfig
from edge_ser.errors import AudioError

CONFIGS = [
    FeatureConfig(),
    FeatureConfig(n_mels=128),
    FeatureConfig(normalize="utterance"),
    FeatureConfig(n_fft=1024, win_length=800, hop_length=320, n_mels=80, fmin=50.0, fmax=7600.0),
]
KERNELS = ["auto", "generic"]


def emodb_clips(data_dir, n=40):
    import soundfile as sf

    paths = sorted((data_dir / "emodb" / "wav").glob("*.wav"))
    assert len(paths) == 535, f"expected 535 EmoDB clips in {data_dir}, found {len(paths)}"
    return [sf.read(p, dtype="float32")[0] for p in paths[:: len(paths) // n]]


def c_log_mel(audio, config, kernel="auto"):
    out = np.empty((config.n_mels, config.n_frames(len(audio))), np.float32)
    features.extractor(config, kernel=kernel).log_mel(np.ascontiguousarray(audio, np.float32), out)
    return out


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.n_fft}-{c.n_mels}-{c.normalize}")
def test_c_matches_reference_on_emodb(data_dir, config, kernel):
    worst = max(np.abs(c_log_mel(x, config, kernel) - reference.log_mel(x, config)).max() for x in emodb_clips(data_dir))
    assert worst < 1e-4


def test_c_matches_reference_on_ravdess(data_dir):
    sf = pytest.importorskip("soundfile")
    paths = sorted((data_dir / "ravdess").glob("Actor_*/*.flac"))[::97]
    assert paths, f"no RAVDESS FLAC files under {data_dir / 'ravdess'}"
    for p in paths:
        x = sf.read(p, dtype="float32")[0]
        assert np.abs(features.log_mel(x) - reference.log_mel(x)).max() < 1e-4, p


@pytest.mark.parametrize("config", CONFIGS[:3], ids=lambda c: f"{c.n_mels}-{c.normalize}")
def test_mfcc_matches_reference(data_dir, config):
    for x in emodb_clips(data_dir, n=10):
        assert np.abs(features.mfcc(x, config, n_mfcc=20) - reference.mfcc(x, config, 20)).max() < 1e-4


def test_reference_matches_librosa(data_dir):
    librosa = pytest.importorskip("librosa")
    config = FeatureConfig()
    fb = librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, dtype=np.float64)
    assert np.abs(reference.mel_filterbank(config) - fb).max() < 1e-12
    for x in emodb_clips(data_dir, n=10):
        # librosa computes in the input's precision: give it float64 to match the reference.
        s = librosa.feature.melspectrogram(
            y=x.astype(np.float64), sr=16000, n_fft=512, hop_length=160, win_length=400, window="hann",
            center=True, pad_mode="constant", power=2.0, n_mels=64,
        )
        lm = np.log(np.maximum(s, config.log_floor))
        assert np.abs(reference.log_mel(x, config) - lm).max() < 1e-6
        assert np.abs(features.log_mel(x, config) - lm).max() < 1e-4
        assert np.abs(features.mfcc(x, config, 13) - librosa.feature.mfcc(S=lm, n_mfcc=13)).max() < 1e-4


def test_dct_matrix_is_scipy_orthonormal_dct():
    scipy_fft = pytest.importorskip("scipy.fft")
    x = np.random.default_rng(0).normal(size=(64, 7))
    assert np.allclose(reference.dct_matrix(20, 64) @ x, scipy_fft.dct(x, type=2, norm="ortho", axis=0)[:20])


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("n", [1, 2, 3, 5, 100, 159, 160, 161, 256, 399, 400, 401, 512, 513, 1000, 16001])
def test_any_length(n, kernel):
    x = np.random.default_rng(n).normal(scale=0.3, size=n).astype(np.float32)
    config = FeatureConfig()
    out = c_log_mel(x, config, kernel)
    assert out.shape == (64, 1 + n // 160)
    assert np.abs(out - reference.log_mel(x, config)).max() < 1e-4


def test_empty_audio_gives_no_frames():
    assert features.log_mel(np.zeros(0, np.float32)).shape == (64, 0)


def test_silence_hits_the_floor():
    out = features.log_mel(np.zeros(1600, np.float32))
    assert np.all(out == np.float32(np.log(1e-10)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_audio_is_rejected(bad):
    x = np.zeros(4000, np.float32)
    x[1234] = bad
    with pytest.raises(AudioError, match="NaN or infinite"):
        features.log_mel(x)
    with pytest.raises(AudioError, match="NaN or infinite"):
        features.mfcc(x)


def test_multichannel_array_is_rejected():
    with pytest.raises(AudioError, match="mono"):
        features.log_mel(np.zeros((2, 100), np.float32))


@pytest.mark.parametrize("config", [FeatureConfig(), WHISPER_FEATURES], ids=["default", "whisper"])
def test_threads_share_one_extractor(config):
    rng = np.random.default_rng(1)
    clips = [rng.normal(scale=0.2, size=int(rng.integers(100, 40000))).astype(np.float32) for _ in range(24)]
    expected = [features.log_mel(x, config) for x in clips]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            got = list(pool.map(lambda x: features.log_mel(x, config), clips))
            assert all(np.array_equal(a, b) for a, b in zip(got, expected))


def test_kernel_is_reported_and_checked():
    assert features.extractor(FeatureConfig()).kernel in ("avx2", "generic")
    assert features.extractor(FeatureConfig(), kernel="generic").kernel == "generic"
    with pytest.raises(ValueError, match="kernel"):
        features.extractor(FeatureConfig(), kernel="neon9000")


def test_output_buffer_is_checked():
    ex = features.extractor(FeatureConfig())
    with pytest.raises(ValueError, match="out"):
        ex.log_mel(np.zeros(1600, np.float32), np.empty((64, 3), np.float32))
    with pytest.raises(TypeError, match="audio: expected float32 values"):
        ex.log_mel(np.zeros(1600, np.float64), np.empty((64, 11), np.float32))


@pytest.mark.parametrize("n_fft", [0, 7, 14, 401, 502, 1022])  # odd, or n_fft / 2 with a prime factor > 5
def test_n_fft_must_be_even_with_a_5_smooth_half(n_fft):
    with pytest.raises(ValueError, match="n_fft must be even with n_fft / 2 a product of 2, 3 and 5"):
        FeatureConfig(n_fft=n_fft, win_length=1, n_mels=1)


@pytest.mark.parametrize("n_fft", [6, 30, 240, 320, 400, 480, 500, 512, 1024])
def test_n_fft_with_a_5_smooth_half_is_accepted(n_fft):
    assert FeatureConfig(n_fft=n_fft, win_length=n_fft, n_mels=2).n_fft == n_fft


BAD_NEW_FIELDS = {
    "log": ({"log": "log2"}, "log must be one of 'ln', 'log10'"),
    "pad": ({"pad": "edge"}, "pad must be one of 'zero', 'reflect'"),
    "normalize": ({"normalize": "global"}, "normalize must be one of 'none', 'utterance', 'whisper'"),
    "whisper needs log10": ({"normalize": "whisper"}, "normalize 'whisper' needs log 'log10'"),
    "drop_last_frame an int": ({"drop_last_frame": 1}, "drop_last_frame must be true or false"),
}


@pytest.mark.parametrize("case", BAD_NEW_FIELDS)
def test_new_fields_are_validated(case):
    fields, message = BAD_NEW_FIELDS[case]
    with pytest.raises(ValueError, match=message):
        FeatureConfig(**fields)


def test_config_validation_and_key():
    with pytest.raises(ValueError, match="unknown keys"):
        FeatureConfig.from_dict({"n_mels": 64, "colour": "blue"})
    assert FeatureConfig.from_dict(FeatureConfig(n_mels=128).to_dict()) == FeatureConfig(n_mels=128)
    assert FeatureConfig().key() != FeatureConfig(n_mels=128).key()
    assert FeatureConfig().key() == FeatureConfig().key()


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("config", [FeatureConfig(), FeatureConfig(hop_length=700, win_length=300, n_fft=512),
                                    WHISPER_FEATURES], ids=["default", "gappy", "whisper"])
def test_every_nonfinite_position_is_rejected(config, kernel):
    # NaN/inf are found from the frames they reach, plus a scan of samples no frame reads
    # (the gaps when hop > window, the window's zero-weight ends): check every position.
    n = 3000
    ex = features.extractor(config, kernel=kernel)
    out = np.empty((config.n_mels, config.n_frames(n)), np.float32)
    for pos in range(n):
        for bad in (np.nan, np.inf):
            x = np.full(n, 0.01, np.float32)
            x[pos] = bad
            with pytest.raises(ValueError, match="NaN or infinite"):
                ex.log_mel(x, out)
