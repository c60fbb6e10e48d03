"""Which frames to decode: TSN segment sampling and its multi-view test variant.

TSN (and ViFi-CLIP / MMAction2 ``SampleFrames(clip_len=1, num_clips=T)``): the video is cut into
``T`` equal segments and one frame is taken from each. Training takes a random frame inside each
segment (a cheap temporal augmentation); testing takes the segment centre, so evaluation is
deterministic.

Multi-view testing (the paper's "temporal views") shifts the position inside every segment:
view ``v`` of ``V`` takes the frame at fraction ``(v + 0.5) / V`` of each segment. With V = 1 this
is exactly the centre frame; with V = 2 the frames at 1/4 and 3/4; with V = 3 at 1/6, 1/2, 5/6.
The views together cover the video evenly and never repeat a frame when segments are long enough.
"""
from __future__ import annotations

import numpy as np

__all__ = ["segment_indices", "multi_view_indices"]


def _check(num_frames: int, num_segments: int) -> None:
    if num_frames <= 0:
        raise ValueError(f"num_frames must be >= 1 (got {num_frames}); the video has no decodable frame")
    if num_segments <= 0:
        raise ValueError(f"num_segments must be >= 1 (got {num_segments})")


def segment_indices(num_frames: int, num_segments: int, *, train: bool,
                    rng: np.random.Generator | None = None) -> list[int]:
    """One frame index per TSN segment, in ``[0, num_frames - 1]``, non-decreasing.

    train=True: uniform random offset inside each segment (``rng`` is required so sampling is
    reproducible under the caller's seed). train=False: segment centres. Videos shorter than
    ``num_segments`` repeat frames (segments shorter than one frame).
    """
    _check(num_frames, num_segments)
    seg = num_frames / num_segments
    starts = np.arange(num_segments) * seg
    if train:
        if rng is None:
            raise ValueError("segment_indices(train=True) needs rng=np.random.Generator for reproducible sampling")
        offsets = rng.random(num_segments) * seg
    else:
        offsets = np.full(num_segments, seg / 2.0)
    idx = np.floor(starts + offsets).astype(np.int64)
    return np.clip(idx, 0, num_frames - 1).tolist()


def multi_view_indices(num_frames: int, num_segments: int, num_temporal_views: int) -> list[list[int]]:
    """``num_temporal_views`` deterministic TSN samplings; view v at fraction (v + .5)/V of each segment."""
    _check(num_frames, num_segments)
    if num_temporal_views <= 0:
        raise ValueError(f"num_temporal_views must be >= 1 (got {num_temporal_views})")
    seg = num_frames / num_segments
    starts = np.arange(num_segments) * seg
    views = []
    for v in range(num_temporal_views):
        idx = np.floor(starts + seg * (v + 0.5) / num_temporal_views).astype(np.int64)
        views.append(np.clip(idx, 0, num_frames - 1).tolist())
    return views
