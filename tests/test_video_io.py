"""Decoding real files written with PyAV (mp4/H.264 and avi/MPEG-4), good and broken."""
from __future__ import annotations

import gc
import os
import pickle
import signal
import time
from pathlib import Path

import numpy as np
import pytest

import torch

from apclip_core.data.video_io import (DECODER_BY_CONTAINER, DecordReader, PyAVReader, ShortVideoError,
                                       VideoDecodeError, count_packets, decoders_for, open_video, probe_video,
                                       resolve_backend)
from apclip_core.data.views import ViewSpec, decode_video

CODECS = {".mp4": "libx264", ".avi": "mpeg4"}


def make_video(path, *, frames: int = 16, width: int = 80, height: int = 64, fps: int = 8,
               faststart: bool = False, pattern: str = "ramp") -> Path:
    """Write a small video whose frame i has red channel ~ 15 * i (so frame order is checkable)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as c:
        s = c.add_stream(CODECS[path.suffix], rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            if pattern == "noise":  # incompressible: packets fill the file evenly (for truncation)
                img = np.random.default_rng(i).integers(0, 255, (height, width, 3), dtype=np.uint8)
            else:
                img = np.zeros((height, width, 3), np.uint8)
                img[..., 0] = min(255, 15 * i)
                img[:, : width // 4, 2] = 200  # left band blue: shows horizontal flips
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def make_broken(folder) -> dict[str, Path]:
    """zero-byte, garbage, truncated (index lost) and missing files, in both containers."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    (folder / "zero.mp4").write_bytes(b"")
    out["zero"] = folder / "zero.mp4"
    (folder / "garbage.avi").write_bytes(np.random.default_rng(0).bytes(4000))
    out["garbage"] = folder / "garbage.avi"
    for ext in (".mp4", ".avi"):
        good = make_video(folder / f"full{ext}")
        data = good.read_bytes()
        (folder / f"truncated{ext}").write_bytes(data[: len(data) // 3])
        out[f"truncated{ext}"] = folder / f"truncated{ext}"
        good.unlink()
    out["missing"] = folder / "does_not_exist.mp4"
    return out


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    return {ext: make_video(d / f"clip{ext}") for ext in CODECS}


@pytest.mark.parametrize("backend", ["auto", "decord", "pyav"])
@pytest.mark.parametrize("ext", [".mp4", ".avi"])
def test_decodes_both_containers_in_order(videos, backend, ext):
    with open_video(videos[ext], backend) as r:
        assert r.num_frames == 16
        frames = r.get_frames([0, 5, 15])
    assert frames.shape == (3, 64, 80, 3) and frames.dtype == np.uint8
    red = frames[:, 32, 60, 0].astype(int)
    assert abs(red[0] - 0) < 12 and abs(red[1] - 75) < 12 and abs(red[2] - 225) < 12
    assert frames[0, 32, 5, 2] > 150 and frames[0, 32, 70, 2] < 60  # left band, not flipped


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_out_of_range_indices_are_clamped(videos, backend):
    with open_video(videos[".mp4"], backend) as r:
        frames = r.get_frames([-3, 15, 400])
        last = r.get_frames([15])[0]
    assert frames.shape[0] == 3
    np.testing.assert_array_equal(frames[1], last)
    np.testing.assert_array_equal(frames[2], last)


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_broken_files_raise_one_error_type_with_reason(tmp_path, backend):
    broken = make_broken(tmp_path)
    reasons = {}
    for name, path in broken.items():
        with pytest.raises(VideoDecodeError) as info:
            with open_video(path, backend) as r:
                r.get_frames([0])
        assert info.value.path == str(path)
        reasons[name] = info.value.reason
    assert reasons["zero"] == "empty file (0 bytes)"
    assert reasons["missing"] == "file not found"
    assert reasons["garbage"] and reasons["truncated.mp4"]


def make_cut(folder) -> Path:
    """A faststart MP4 of 32 frames cut at 60 %: its index promises 32 frames, fewer decode."""
    good = make_video(Path(folder) / "fs.mp4", frames=32, faststart=True, pattern="noise")
    cut = Path(folder) / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: int(good.stat().st_size * 0.6)])
    return cut


def test_a_cut_file_is_not_decoded_unless_asked_and_then_only_from_its_real_frames(tmp_path):
    # decord raises DECORDError (not a RuntimeError subclass) at open; PyAV reads the frames that precede the cut.
    cut = make_cut(tmp_path)
    with pytest.raises(VideoDecodeError, match="DECORDError"):
        open_video(cut, "decord", fallback=False)
    with pytest.raises(ShortVideoError, match=r"only \d+ of the 32 frames") as short:
        open_video(cut)                                 # a clip is decoded or it is not
    assert 0 < short.value.decodable < 32
    with open_video(cut, strict_length=False) as r:  # the caller's explicit choice
        assert r.reported_frames == 32 and r.num_frames == short.value.decodable <= count_packets(cut)
    padded = decode_video(cut, ViewSpec(8, short_videos="pad"), lambda clip: torch.as_tensor(clip)[None])
    assert padded.padded and padded.clips.shape == (1, 8, 64, 80, 3)
    assert max(padded.indices[0]) < short.value.decodable      # only frames that really decode
    with pytest.raises(ShortVideoError):
        decode_video(cut, ViewSpec(8), lambda clip: torch.as_tensor(clip)[None])


def test_probe_and_pickling(videos, tmp_path):
    assert probe_video(videos[".avi"])["ok"] and probe_video(videos[".avi"])["num_frames"] == 16
    bad = probe_video(tmp_path / "nope.mp4")
    assert not bad["ok"] and bad["error"] == "file not found"
    err = pickle.loads(pickle.dumps(VideoDecodeError("x.mp4", "why")))
    assert (err.path, err.reason) == ("x.mp4", "why")


@pytest.mark.parametrize("ext", [".mp4", ".avi"])
def test_decord_and_pyav_decode_identical_frames(videos, ext):
    # what lets "auto" pick either per container, and keeps the decoder out of a run's identity
    with open_video(videos[ext], "decord") as d, open_video(videos[ext], "pyav") as p:
        assert d.num_frames == p.num_frames == 16
        np.testing.assert_array_equal(d.get_frames(range(16)), p.get_frames(range(16)))


def test_auto_reads_each_container_with_the_decoder_of_the_table(videos):
    assert set(DECODER_BY_CONTAINER.values()) <= {"decord", "pyav"}
    readers = {"pyav": PyAVReader, "decord": DecordReader}
    for ext in (".avi", ".mp4"):
        assert isinstance(open_video(videos[ext]), readers[DECODER_BY_CONTAINER[ext]])
        assert resolve_backend("auto", f"a/b{ext.upper()}") == DECODER_BY_CONTAINER[ext]  # case does not matter
        for forced, cls in readers.items():
            assert isinstance(open_video(videos[ext], forced), cls)        # explicit choices still win
    assert resolve_backend("auto", "clip.mkv") == "decord"                 # other containers: decord
    assert decoders_for("auto", ["x/a.avi", "b.mp4", "c.AVI"]) == {".avi": DECODER_BY_CONTAINER[".avi"],
                                                                  ".mp4": DECODER_BY_CONTAINER[".mp4"]}
    assert decoders_for("pyav", ["a.avi", "b.mp4"]) == {".avi": "pyav", ".mp4": "pyav"}
    view = ViewSpec(4)
    assert view.backend == "auto" and view.record(["a.avi"])["decoders"] == {".avi": DECODER_BY_CONTAINER[".avi"]}


def test_unknown_backend_lists_choices(videos):
    with pytest.raises(ValueError, match="decord, pyav"):
        open_video(videos[".mp4"], "opencv")


def test_a_process_forked_after_a_failed_pyav_decode_does_not_hang(tmp_path):
    # A failed decode leaves its last converted frame in the exception's traceback. Held in a reference
    # cycle (as a test runner or a logger holds exceptions), it is freed by the GC of whichever process
    # runs next: a forked DataLoader worker. With PyAV's default converter threads that worker hung for
    # ever freeing the frame's swscale thread pool (the pool's threads stayed in the parent).
    cut = make_cut(tmp_path)
    gc.collect()
    gc.disable()
    try:
        with pytest.raises(ShortVideoError) as info:
            PyAVReader(cut, strict_length=False).get_frames(range(32))   # every frame converted, the last kept
        cycle = [info.value]
        cycle.append(cycle)
        del cycle, info
        pid = os.fork()
        if pid == 0:  # the worker: collect the inherited garbage, then leave without any clean-up
            gc.collect()
            os._exit(0)
    finally:
        gc.enable()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("a process forked after a PyAV decode hung freeing the decoded frames")
