import numpy as np
import pytest

from apclip_core.data.sampling import multi_view_indices, segment_indices


def test_test_mode_takes_segment_centres():
    assert segment_indices(16, 8, train=False) == [1, 3, 5, 7, 9, 11, 13, 15]
    assert segment_indices(300, 8, train=False)[0] == 18  # 37.5 / 2


def test_train_mode_stays_inside_each_segment_and_is_reproducible():
    n, t = 100, 8
    seen = set()
    for seed in range(50):
        idx = segment_indices(n, t, train=True, rng=np.random.default_rng(seed))
        for k, i in enumerate(idx):
            assert int(k * n / t) <= i < (k + 1) * n / t
        seen.add(tuple(idx))
    assert len(seen) > 40  # really random
    a = segment_indices(n, t, train=True, rng=np.random.default_rng(3))
    assert a == segment_indices(n, t, train=True, rng=np.random.default_rng(3))


def test_short_videos_repeat_frames_within_range():
    for train in (True, False):
        idx = segment_indices(3, 8, train=train, rng=np.random.default_rng(0))
        assert len(idx) == 8 and min(idx) >= 0 and max(idx) <= 2 and idx == sorted(idx)


def test_train_without_rng_and_empty_video_are_errors():
    with pytest.raises(ValueError, match="rng"):
        segment_indices(10, 4, train=True)
    with pytest.raises(ValueError, match="no decodable"):
        segment_indices(0, 4, train=False)


def test_multi_view_spreads_views_inside_segments():
    assert multi_view_indices(64, 8, 1) == [segment_indices(64, 8, train=False)]
    v2 = multi_view_indices(64, 8, 2)
    assert v2[0] == [2 + 8 * k for k in range(8)] and v2[1] == [6 + 8 * k for k in range(8)]
    v3 = multi_view_indices(300, 16, 3)
    assert len(v3) == 3 and all(len(v) == 16 for v in v3)
    assert len({i for v in v3 for i in v}) == 48  # no frame repeated across views
