"""How a video is seen by the model: the view settings, and the one function that decodes and
transforms a video for training, evaluation, classify and interpretation.

A `ViewSpec` says how many frames a clip has (TSN segments), how many temporal views and spatial
crops a video is seen in, and which decoder reads it. The paper tests with 8 frames in 2 temporal
views x 2 spatial crops (fully supervised: 16 frames, 3 x 4); training sees one clip per video.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from apclip_core.errors import BadValue
from apclip_core.data.sampling import multi_view_indices, segment_indices
from apclip_core.data.video_io import BACKENDS, ShortVideoError, decoders_for, open_video

SHORT_VIDEO_POLICIES = ("fail", "pad")


@dataclass(frozen=True)
class ViewSpec:
    frames: int = 8            # frames per clip, one per TSN segment
    temporal_views: int = 1    # evaluation: evenly offset samplings of the segments
    spatial_crops: int = 1     # evaluation: crops along the long side (the transform makes them)
    backend: str = "auto"      # auto: the faster decoder per container (video_io.DECODER_BY_CONTAINER);
                               # decord (PyAV as fallback); or pyav. Identical frames, different speed
    short_videos: str = "fail"  # a file whose frames stop decoding early: "fail" (counted as failed) or
                                # "pad" (sampled from the frames that decode, repeating some; counted as padded)

    def __post_init__(self):
        for key in ("frames", "temporal_views", "spatial_crops"):
            if int(getattr(self, key)) < 1:
                raise BadValue(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.backend not in BACKENDS:
            raise BadValue(f"unknown video backend {self.backend!r}; valid choices: {', '.join(BACKENDS)}")
        if self.short_videos not in SHORT_VIDEO_POLICIES:
            raise BadValue(f"unknown short_videos policy {self.short_videos!r}; valid: {', '.join(SHORT_VIDEO_POLICIES)}")

    @property
    def views(self) -> int:
        return self.temporal_views * self.spatial_crops

    def record(self, paths=()) -> dict:
        """The fields a result records about how videos were seen; with the videos' `paths`, also which
        decoder read each container (e.g. {".avi": "pyav", ".mp4": "decord"})."""
        return {"frames": self.frames, "temporal_views": self.temporal_views, "spatial_crops": self.spatial_crops,
                "views": self.views, "short_videos": self.short_videos, "video_backend": self.backend,
                "decoders": decoders_for(self.backend, paths)}

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DecodedVideo:
    clips: torch.Tensor              # [temporal views x crops, T, 3, S, S], temporal view major
    frames: np.ndarray               # the decoded frames [temporal views x T, H, W, 3], before the transform
    indices: list[list[int]]         # frame indices of each temporal view
    padded: bool = False             # sampled from the decodable start of a damaged file (policy "pad")


def decode_video(path: str | Path, view: ViewSpec, transform: Callable, *,
                 rng: Optional[np.random.Generator] = None) -> DecodedVideo:
    """Decode and transform one video as `view` says.

    rng given (training): one clip, a random offset inside each TSN segment (`view.temporal_views`
    must be 1). Otherwise: `view.temporal_views` deterministic samplings of the segment centres.
    A file whose frames stop decoding before the frames asked for raises video_io.ShortVideoError
    (no frame is ever copied to stand in for one that did not decode), unless `view.short_videos`
    is "pad": then the clip is sampled from the frames that do decode and comes back `padded`.
    Raises video_io.VideoDecodeError when the file cannot be decoded.
    """
    if rng is not None and view.temporal_views != 1:
        raise BadValue("training samples one clip per video; temporal_views must be 1")
    state = rng.bit_generator.state if rng is not None else None  # a padded retry draws the same offsets
    try:
        with open_video(path, view.backend) as reader:
            indices, frames = _read(reader, reader.num_frames, view, rng)
        padded = False
    except ShortVideoError as exc:
        if view.short_videos != "pad" or exc.decodable < 1:
            raise
        indices, frames = _read_decodable(path, view, rng, state, exc)
        padded = True
    clips = [transform(frames[k * view.frames:(k + 1) * view.frames]) for k in range(len(indices))]
    return DecodedVideo(clips=torch.cat(clips, dim=0), frames=frames, indices=indices, padded=padded)


def _read_decodable(path, view: ViewSpec, rng, state, short: ShortVideoError):
    """Sample from the frames that really decode: a damaged file's packets can outnumber them, so
    narrow down on each ShortVideoError (a few rounds at most: each one decodes the file's start)."""
    for _ in range(4):
        if rng is not None:
            rng.bit_generator.state = state  # the same offsets as the attempt that failed
        try:
            with open_video(path, view.backend, strict_length=False) as reader:
                return _read(reader, min(short.decodable, reader.num_frames), view, rng)
        except ShortVideoError as exc:
            if exc.decodable < 1 or exc.decodable >= short.decodable:
                raise
            short = exc
    raise short


def _read(reader, n: int, view: ViewSpec, rng) -> tuple[list[list[int]], np.ndarray]:
    if rng is not None:
        indices = [segment_indices(n, view.frames, train=True, rng=rng)]
    else:
        indices = multi_view_indices(n, view.frames, view.temporal_views)
    indices = [[min(max(int(i), 0), n - 1) for i in reader.clamp(v)] for v in indices]
    return indices, reader.get_frames([i for v in indices for i in v])


# A decode may use this share of the memory available: the model, the prompts and the rest of the
# process need the remainder.
DECODE_MEMORY_SHARE = 0.5


def decode_bytes(frames: int, temporal_views: int, spatial_crops: int, height: int, width: int,
                 image_size: Optional[int] = None) -> int:
    """Bytes `decode_video` holds at its peak for one video of height x width sampled as `frames` x
    `temporal_views`: the decoded uint8 frames and the transform's float copy of them; with the model's
    `image_size`, also the clips it returns (one per view and crop)."""
    decoded = frames * temporal_views * height * width * 3
    clips = frames * temporal_views * spatial_crops * 3 * image_size * image_size * 4 if image_size else 0
    return decoded * (1 + 4) + clips


def check_decode_fits(path, frames: int, temporal_views: int = 1, spatial_crops: int = 1,
                      image_size: Optional[int] = None) -> None:
    """Refuse, before decoding, a sampling of `path` that cannot fit in the memory available (a UserError
    naming the sizes), where decoding would end in std::bad_alloc or the kernel's OOM killer. A file
    that cannot be probed is left for the decoder to name."""
    import av
    import psutil

    from apclip_core.errors import UserError

    try:
        with av.open(str(path)) as container:
            context = container.streams.video[0].codec_context
            height, width = int(context.height), int(context.width)
    except Exception:  # noqa: BLE001 - not readable: the decoder says why, with its own message
        return
    need = decode_bytes(frames, temporal_views, spatial_crops, height, width, image_size)
    available = psutil.virtual_memory().available
    if need > DECODE_MEMORY_SHARE * available:
        raise UserError(
            f"{path}: {frames} frames x {temporal_views} views x {spatial_crops} crops of this {width}x{height} "
            f"video need about {need / 2**30:.1f} GiB to decode, more than this machine can spare "
            f"({available / 2**30:.1f} GiB available); ask for fewer frames, views or crops (e.g. --frames 8 --views 1)")
