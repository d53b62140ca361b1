import numpy as np
import pytest

from edge_ser import pooling

# 5 frames at 10 frames/s (frame t starts at t / 10 s), 2 features.
FEATURES = np.array([[0.0, 10.0], [1.0, 20.0], [2.0, 30.0], [3.0, 40.0], [4.0, 50.0]])


def test_global_average_pool():
    np.testing.assert_allclose(pooling.global_average_pool(FEATURES), [2.0, 30.0])


def test_segment_pool_averages_frames_inside_segments():
    # [0.1, 0.3) holds frames 1, 2; [0.4, 1.0) holds frame 4 -> mean of rows 1, 2, 4
    pooled = pooling.segment_pool(FEATURES, [(0.1, 0.3), (0.4, 1.0)], frame_rate=10)
    np.testing.assert_allclose(pooled, [(1 + 2 + 4) / 3, (20 + 30 + 50) / 3])


def test_segment_pool_counts_overlapping_segments_once():
    pooled = pooling.segment_pool(FEATURES, [(0.0, 0.2), (0.1, 0.2)], frame_rate=10)
    np.testing.assert_allclose(pooled, [0.5, 15.0])


@pytest.mark.parametrize("segments", [[], [(0.6, 0.9)], [(0.15, 0.18)]])
def test_segment_pool_falls_back_to_global_average(segments):
    np.testing.assert_allclose(pooling.segment_pool(FEATURES, segments, 10), [2.0, 30.0])


def test_sap_pool_concatenates_global_and_segment():
    out = pooling.sap_pool(FEATURES, [(0.3, 0.5)], frame_rate=10)
    assert out.shape == (4,)
    np.testing.assert_allclose(out, [2.0, 30.0, 3.5, 45.0])


def test_segment_mask_uses_frame_start_times():
    mask = pooling.segment_mask(5, [(0.2, 0.4)], frame_rate=10)
    assert mask.tolist() == [False, False, True, True, False]


@pytest.mark.parametrize("bad", [np.zeros((0, 3)), np.zeros(4), np.zeros((2, 2, 2))])
def test_bad_shapes_raise(bad):
    with pytest.raises(ValueError, match="features must be"):
        pooling.sap_pool(bad, [], 100)


def test_bad_frame_rate_raises():
    with pytest.raises(ValueError, match="frame_rate"):
        pooling.segment_pool(FEATURES, [(0, 1)], 0)
