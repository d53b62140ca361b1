"""The simulated rooms of `python -m train reverb`: the impulse response decays as its RT60 says,
the direct path carries the energy share DRR_DB says, and reverberation keeps a clip's length
and level; result-set names of both degradations round-trip."""
import numpy as np
import pytest

from train.result_sets import NOISE, REVERB, degraded
from train.reverb import DRR_DB, reverberate, room_impulse

RATE = 16000


def decay_time(rir: np.ndarray, rate: int) -> float:
    """RT60 read off the Schroeder energy decay curve, fitted from -5 to -25 dB (T20 x 3)."""
    tail = rir[1:].astype(np.float64) ** 2
    edc = 10 * np.log10(np.cumsum(tail[::-1])[::-1] / tail.sum())
    t = np.arange(len(edc)) / rate
    fit = (edc <= -5) & (edc >= -25)
    slope = np.polyfit(t[fit], edc[fit], 1)[0]  # dB per second
    return -60 / slope


@pytest.mark.parametrize("rt60,drr_db", [(0.3, DRR_DB), (0.6, -3.0), (0.9, 6.0)])
def test_impulse_decays_60_db_over_its_rt60_with_its_drr(rt60, drr_db):
    rir = room_impulse(rt60, RATE, np.random.default_rng(0), drr_db)
    assert len(rir) == round(rt60 * RATE) and rir[0] == 1.0
    assert decay_time(rir, RATE) == pytest.approx(rt60, rel=0.1)
    # direct path (energy 1) over the tail's energy
    assert 10 * np.log10(1.0 / np.sum(rir[1:].astype(np.float64) ** 2)) == pytest.approx(drr_db, abs=0.01)


def test_reverberation_keeps_length_and_level_and_smears_forward():
    rng = np.random.default_rng(1)
    speech = np.zeros(RATE, np.float32)
    speech[4000:4400] = rng.standard_normal(400)  # a 25-ms burst, then silence
    wet = reverberate(speech, room_impulse(0.6, RATE, rng))
    assert wet.shape == speech.shape and wet.dtype == np.float32
    assert np.sqrt(np.mean(wet.astype(np.float64) ** 2)) == pytest.approx(np.sqrt(np.mean(speech.astype(np.float64) ** 2)), rel=1e-4)
    assert np.abs(wet[:4000]).max() < 1e-6 * np.abs(wet).max()  # nothing before the sound: causal (FFT round-off)
    assert np.abs(wet[6000:8000]).max() > 0.01 * np.abs(wet).max()  # energy 100-250 ms after it ended
    identity = np.zeros(1, np.float32) + 1.0
    assert np.allclose(reverberate(speech, identity), speech, atol=1e-6)


def test_same_seed_same_room_and_bad_rt60_refused():
    a = room_impulse(0.5, RATE, np.random.default_rng(3))
    assert np.array_equal(a, room_impulse(0.5, RATE, np.random.default_rng(3)))
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="RT60 must be a positive"):
            room_impulse(bad, RATE, np.random.default_rng(0))


def test_result_set_names_round_trip():
    assert NOISE.name(10.0) == "noisy_10db" and NOISE.value_of("noisy_-5db") == -5.0
    assert REVERB.name(0.6) == "reverb_0.6s" and REVERB.value_of("reverb_0.6s") == 0.6
    assert NOISE.value_of("reverb_0.6s") is None and REVERB.value_of("noisy_10db") is None
    assert REVERB.value_of("reverb_nans") is None and NOISE.value_of("noisy_infdb") is None
    assert degraded("noisy_0db") and degraded("reverb_0.9s") and not degraded("single") and not degraded("shifts")


def test_training_copies_in_rooms_and_noise_keep_the_noise_only_stream(tmp_path):
    """Rooms come after the noise draws, so a noise-only run's copies are what they were before
    rooms existed: here rebuilt by hand from the same random stream."""
    from benchmarks.clips import write_wav
    from edge_ser.config import FeatureConfig
    from edge_ser.features import log_mel
    from train.copies import training_copies
    from train.data import read_audio
    from train.noise import clip_rng, draw_noise, mix_at_snr

    rng = np.random.default_rng(0)
    clip = write_wav(tmp_path / "clip.wav", (0.1 * rng.standard_normal(RATE)).astype(np.float32))
    noise_dir = tmp_path / "noise"
    noise_dir.mkdir()
    write_wav(noise_dir / "hum.wav", (0.05 * rng.standard_normal(3 * RATE)).astype(np.float32))
    config = FeatureConfig()
    noisy = training_copies([clip], config, 1.0, 2, 7, noise_dir, (0.0, 20.0))
    stream, speech, hum = clip_rng(7, clip), read_audio(clip), read_audio(noise_dir / "hum.wav")
    by_hand = [log_mel(mix_at_snr(speech, draw_noise([hum], RATE, stream), float(stream.uniform(0.0, 20.0))), config)
               for _ in range(2)]
    assert np.array_equal(noisy[0].numpy(), np.stack(by_hand))
    rooms = training_copies([clip], config, 1.0, 2, 7, rt60=(0.2, 1.0))
    both = training_copies([clip], config, 1.0, 2, 7, noise_dir, (0.0, 20.0), rt60=(0.2, 1.0))
    assert rooms.shape == noisy.shape == both.shape == (1, 2, 64, config.n_frames(RATE))
    assert not np.array_equal(rooms[0, 0], rooms[0, 1]) and not np.array_equal(both[0, 0], noisy[0, 0])
    with pytest.raises(ValueError, match="need noise, rooms or both"):
        training_copies([clip], config, 1.0, 2, 7)
    with pytest.raises(ValueError, match="room RT60"):
        training_copies([clip], config, 1.0, 2, 7, rt60=(0.0, 1.0))
