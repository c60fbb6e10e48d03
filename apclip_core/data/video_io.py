"""Video decoding behind one small interface: decord and PyAV, chosen per container by measurement.

``backend="auto"`` (the default everywhere) reads each file with the decoder that `make bench` measured
faster for its container (`DECODER_BY_CONTAINER`); "decord" (with PyAV as fallback for a file it
refuses) or "pyav" force one. The two give bit-identical frames on every file the tests and the
benchmark write, so the choice changes speed, not results.

Both readers expose ``num_frames`` and ``get_frames(indices) -> uint8 [T, H, W, 3]`` and raise
:class:`VideoDecodeError` (a RuntimeError naming the file and the reason) for every failure, so
datasets catch exactly one exception type.

Traps this module exists for (see GUIDE.md, "decord"):

* Readers are opened where they are used (inside a DataLoader worker's ``__getitem__``): a decord
  reader opened in the parent deadlocks forked workers and cannot be pickled for spawn.
* decord uses ``num_threads=1``: one decode thread per worker, the workers are the parallelism.
* decord raises ``RuntimeError`` for missing / garbage / truncated files, but ``DECORDError`` (not a
  RuntimeError subclass) for damaged packets; both are caught.
* ``len()`` over-reports frames on damaged files (a truncated MP4 whose index promises 16 frames
  while one packet is left), and ``get_batch`` can then fail or loop. The frame count used for
  clamping is therefore ``min(len(reader), number of non-empty video packets)``; the packet count
  comes from demuxing with PyAV (no decoding, milliseconds for a 10 s clip). Requested indices are
  clamped to that count, so out-of-range indices never reach decord.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["VideoDecodeError", "ShortVideoError", "VideoReader", "DecordReader", "PyAVReader", "open_video", "BACKENDS",
           "DECODER_BY_CONTAINER", "resolve_backend", "decoders_for", "count_packets", "probe_video"]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "decord", "pyav")

# The faster decoder per container, by measurement. `make bench` (bench/decoding.py) decodes files of
# each kind with both and says whether this table still holds. Sampled 8-frame clips per core-second
# (open included, one decode thread, 4 files x 2 clips), `bench/run.py --only decoding --threads 2`,
# 2026-11-30, AMD EPYC 2 cores (load average 4.7), PyAV 18.1 with one converter thread, decord 0.6.0:
#   .avi   MPEG-4 Part 2, 320x240, 90 frames (HMDB-51, UCF-101)   decord 77.1 vs PyAV 215.4 -> pyav   (2.79x)
#   .mp4   H.264, 640x360, 250 frames (Kinetics)                  decord  7.4 vs PyAV   6.4 -> decord (1.15x)
#   .webm  VP9, 640x360, 250 frames (Kinetics downloads)          decord  7.5 vs PyAV   5.9 -> decord (1.27x)
# Any other container: decord, the design's decoder (with its PyAV fallback).
DECODER_BY_CONTAINER = {".avi": "pyav", ".mp4": "decord", ".webm": "decord"}
OTHER_CONTAINERS = "decord"


def resolve_backend(backend: str, path) -> str:
    """The decoder ("decord" or "pyav") that reads `path`: `backend` itself, or for "auto" the one
    `DECODER_BY_CONTAINER` names for the file's extension."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown video backend {backend!r}; valid choices: {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    return DECODER_BY_CONTAINER.get(Path(path).suffix.lower(), OTHER_CONTAINERS)


def decoders_for(backend: str, paths) -> dict[str, str]:
    """{container extension: decoder} for the files in `paths`, e.g. {".avi": "pyav", ".mp4": "decord"}."""
    return {ext: resolve_backend(backend, f"x{ext}") for ext in sorted({Path(p).suffix.lower() for p in paths})}


class VideoDecodeError(RuntimeError):
    """A video that cannot be read: missing, empty, not a video, or damaged."""

    def __init__(self, path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"cannot decode {self.path}: {reason}")

    def __reduce__(self):  # so the error crosses DataLoader worker boundaries intact
        return (type(self), (self.path, self.reason))


def _decode_errors() -> tuple[type[BaseException], ...]:
    """Every exception type a decoder raises for a bad file (decord's DECORDError is no RuntimeError)."""
    errors: list[type[BaseException]] = [RuntimeError, ValueError, OSError, EOFError]
    try:
        import decord

        errors.append(decord.DECORDError)
    except ImportError:  # pragma: no cover - decord is pinned, PyAV alone still works
        pass
    try:
        import av

        errors.append(av.error.FFmpegError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


class ShortVideoError(VideoDecodeError):
    """Fewer frames decode than the file promises (a corrupt middle or end): the clip is not
    decoded. Whether its decodable start may stand in is the caller's policy (`decode_video`)."""

    def __init__(self, path, reason: str, decodable: int = 0):
        self.decodable = int(decodable)
        super().__init__(path, reason)

    def __reduce__(self):
        return (type(self), (self.path, self.reason, self.decodable))


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise VideoDecodeError(path, "is a directory, not a video file")
    if not path.exists():
        raise VideoDecodeError(path, "file not found")
    if not path.is_file():
        raise VideoDecodeError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise VideoDecodeError(path, "empty file (0 bytes)")


NOT_A_VIDEO = "not a video file (no container FFmpeg can read, or no video stream in it)"


def _check_container(path: str) -> None:
    """VideoDecodeError(NOT_A_VIDEO) for a file FFmpeg cannot open as a container with a video stream, asked
    of PyAV, which is silent: decord's own FFmpeg would print its raw complaint before the clean message."""
    import av

    try:
        with av.open(path) as container:
            has_video = bool(container.streams.video)
    except _decode_errors() as exc:
        raise VideoDecodeError(path, f"{NOT_A_VIDEO}: {_short(exc)}") from None
    if not has_video:
        raise VideoDecodeError(path, NOT_A_VIDEO)


def count_packets(path) -> int:
    """Number of non-empty video packets, by demuxing only (no decoding). 0 if it cannot demux."""
    return stream_counts(path)[0]


def stream_counts(path) -> tuple[int, int]:
    """(non-empty video packets, frames the container declares: 0 if it does not say), by demuxing
    only (no decoding, milliseconds for a 10 s clip). (0, 0) if it cannot demux."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            declared = max(0, int(stream.frames or 0))
            return sum(1 for packet in container.demux(stream) if packet.size > 0), declared
    except (IndexError, *_decode_errors()):
        return 0, 0


# A file may declare a frame or two more than it holds (rounding in AVI headers, an empty last
# packet); beyond this it has lost frames, and its clips would not be the video it claims to be.
MISSING_FRAMES_TOLERATED = 0.02


def _check_length(path, readable: int, declared: int) -> None:
    """ShortVideoError when the file holds clearly fewer frames than it declares."""
    if declared > 0 and declared - readable > max(1, MISSING_FRAMES_TOLERATED * declared):
        raise ShortVideoError(path, f"only {readable} of the {declared} frames the file declares can be read: "
                              f"it is damaged or cut", decodable=readable)


class VideoReader:
    """Interface: ``num_frames`` (frames that can be asked for) and ``get_frames(indices)``."""

    path: str
    num_frames: int
    reported_frames: int
    strict_length: bool = True

    def _settle_frame_count(self, readable: int, reported: int, declared: int) -> None:
        """Set the frames that can be asked for; refuse a file with none, and (strict_length) one that
        holds clearly fewer frames than it declares (ShortVideoError)."""
        self.reported_frames, self.num_frames = reported, readable
        if readable <= 0:
            raise VideoDecodeError(self.path, f"no decodable video frames (container reports {reported})")
        if self.strict_length:
            _check_length(self.path, readable, declared)

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def clamp(self, indices: Sequence[int]) -> list[int]:
        """Indices clamped to ``[0, num_frames - 1]`` (out-of-range indices never reach the decoder)."""
        last = self.num_frames - 1
        return [min(max(int(i), 0), last) for i in indices]

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class DecordReader(VideoReader):
    """decord.VideoReader with one thread, a frame count clamped to real packets, errors wrapped."""

    def __init__(self, path, *, verify_frame_count: bool = True, fallback: bool = False, strict_length: bool = True):
        import decord

        self.fallback, self.strict_length = fallback, strict_length
        self.path = str(path)
        _check_file(Path(path))
        _check_container(self.path)  # before decord, whose FFmpeg prints raw lines on stderr for a non-video
        try:
            self._reader = decord.VideoReader(self.path, ctx=decord.cpu(0), num_threads=1)
            reported = len(self._reader)
        except _decode_errors() as exc:
            raise VideoDecodeError(path, f"decord could not open it ({_short(exc)})") from None
        packets, declared = stream_counts(self.path) if verify_frame_count else (reported, 0)
        self._settle_frame_count(min(reported, packets) if verify_frame_count else reported, reported, declared)

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        wanted = self.clamp(indices)
        try:
            return self._reader.get_batch(wanted).asnumpy()
        except _decode_errors() as exc:
            reason = f"decord failed on frames {wanted[:4]}... ({_short(exc)})"
        if not self.fallback:
            raise VideoDecodeError(self.path, reason)
        try:
            frames = PyAVReader(self.path, strict_length=self.strict_length).get_frames(wanted)
        except ShortVideoError as exc2:
            raise ShortVideoError(self.path, f"{reason}; PyAV fallback: {exc2.reason}", exc2.decodable) from None
        except VideoDecodeError as exc2:
            raise VideoDecodeError(self.path, f"{reason}; PyAV fallback: {exc2.reason}") from None
        log.warning("%s: %s; frames read with PyAV instead", self.path, reason)
        return frames

    def close(self) -> None:
        self._reader = None


class PyAVReader(VideoReader):
    """Sequential PyAV decoding up to the last requested frame (portable; no seeking surprises)."""

    def __init__(self, path, *, strict_length: bool = True):
        import av

        self.strict_length = strict_length
        self.path = str(path)
        _check_file(Path(path))
        try:
            with av.open(self.path) as container:
                if not container.streams.video:
                    raise VideoDecodeError(path, "the file has no video stream")
                reported = container.streams.video[0].frames
        except VideoDecodeError:
            raise
        except _decode_errors() as exc:
            raise VideoDecodeError(path, f"PyAV could not open it ({_short(exc)})") from None
        packets = count_packets(self.path)
        self._settle_frame_count(min(reported, packets) if reported > 0 else packets, reported, reported)

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        import av

        wanted = self.clamp(indices)
        needed = set(wanted)
        last = max(wanted)
        frames: dict[int, np.ndarray] = {}
        latest, count = None, 0
        try:
            with av.open(self.path) as container:
                stream = container.streams.video[0]
                stream.thread_count = 1
                for frame in container.decode(stream):
                    if count in needed or count == last:
                        # threads=1: with PyAV's default (0, one per core) every frame's converter owns a
                        # swscale thread pool; a frame still alive in a reference cycle (an exception's
                        # traceback) when a DataLoader worker forks is freed by the worker's GC, which then
                        # waits forever on the pool's condition variable (its threads stayed in the parent).
                        # One thread is also cheaper: a 90-frame 320x240 AVI decodes in 2.5x less CPU time.
                        latest = frame.to_ndarray(format="rgb24", threads=1)
                        frames[count] = latest
                    count += 1
                    if count > last:
                        break
        except _decode_errors() as exc:
            if not frames:
                raise VideoDecodeError(self.path, f"PyAV failed after {count} frames ({_short(exc)})") from None
            log.warning("%s: decoding stopped after %d frames (%s); using the frames that decoded",
                        self.path, count, _short(exc))
        if not frames:
            raise VideoDecodeError(self.path, "no frame decoded")
        if count <= last:  # fewer frames decode than the container promised: never stand in copies
            raise ShortVideoError(self.path, f"only {count} of {self.num_frames} frames decode (frame {last} "
                                  f"was asked for): the file is damaged after frame {count - 1}", decodable=count)
        return np.stack([frames[i] for i in wanted])


def open_video(path, backend: str = "auto", *, fallback: bool = True, strict_length: bool = True) -> VideoReader:
    """Open ``path`` with ``backend`` ("auto": the faster decoder for its container; "decord"; "pyav");
    raises VideoDecodeError.

    With ``fallback`` (default) a file decord refuses is retried with PyAV, which decodes the
    frames that precede the damage of a truncated file (decord raises DECORDError on the whole
    file as soon as one packet is cut). The error, if both fail, names both reasons.
    """
    path = os.fspath(path)
    if resolve_backend(backend, path) == "pyav":
        return PyAVReader(path, strict_length=strict_length)
    try:
        return DecordReader(path, fallback=fallback, strict_length=strict_length)
    except ShortVideoError:
        raise  # PyAV would count the same frames
    except VideoDecodeError as exc:
        if not fallback or exc.reason.startswith(NOT_A_VIDEO) or exc.reason in (
                "file not found", "empty file (0 bytes)", "not a regular file", "is a directory, not a video file"):
            raise
        try:
            reader = PyAVReader(path, strict_length=strict_length)
        except ShortVideoError as exc2:
            raise ShortVideoError(path, f"{exc.reason}; PyAV fallback: {exc2.reason}", exc2.decodable) from None
        except VideoDecodeError as exc2:
            raise VideoDecodeError(path, f"{exc.reason}; PyAV fallback: {exc2.reason}") from None
        log.warning("%s: decord failed (%s); reading %d frames with PyAV", path, exc.reason, reader.num_frames)
        return reader


def probe_video(path, backend: str = "auto", *, full: bool = False) -> dict:
    """Check one file the way a dataset will read it: opens, decodes first / middle / last frame.

    ``full=True`` decodes every frame (slow; used after re-encoding). Returns a dict with
    ``ok``, ``num_frames``, ``height``, ``width`` and ``error`` (never raises for a bad video).
    """
    try:
        with open_video(path, backend) as reader:
            n = reader.num_frames
            idx = list(range(n)) if full else sorted({0, n // 2, n - 1})
            frames = reader.get_frames(idx)
            return {"ok": True, "num_frames": n, "height": int(frames.shape[1]), "width": int(frames.shape[2]),
                    "error": None}
    except VideoDecodeError as exc:
        return {"ok": False, "num_frames": 0, "height": 0, "width": 0, "error": exc.reason}


def _short(exc: BaseException, limit: int = 160) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."

