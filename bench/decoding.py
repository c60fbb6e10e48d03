"""Video decoding: sampled clips per second per core, decord against PyAV (issue figure 4), whether
video_io's decoder table still names the faster one per container, and the evaluation's throughput
with the table ("auto") against the old default (decord).

Test videos are written here with PyAV (procedural content: moving shapes over a gradient, plus
noise, so the codecs do real work):
  hmdb-like      AVI, MPEG-4 Part 2, 320x240, 90 frames at 30 fps (HMDB-51's and UCF-101's format)
  kinetics-like  MP4, H.264 (x264 defaults: one keyframe per 250 frames, as the usual Kinetics
                 download-and-trim scripts write), 640x360, 250 frames at 25 fps
  kinetics-like  WebM, VP9 (realtime speed settings), same size and length (many Kinetics downloads)
and the AVI/MP4 files re-encoded with apclip_core.data.prepare.reencode_videos (short side 256) - the
HMDB-like files are already below 256 and are only copied, so they have no "after" figure.

Decoder table: for each container, the decoder video_io.DECODER_BY_CONTAINER names ("auto") against
the other, on the files as datasets ship them (original size). Within TABLE_TIE (5 %) either is right.

Evaluation throughput: engine.evaluate.encode_videos (build_eval_loader, VideoDataset: decode, the
test transform, apclip-tiny's image tower) over the HMDB-like AVIs with the zoo's views (8 frames,
2 temporal views x 2 crops), backend "auto" against "decord"; clips = videos x temporal views.

A clip is what a training worker reads: open_video(path, backend) (decord: one thread; PyAV: one
thread), 8 TSN-sampled frames (segment_indices, train=True), decoded to RGB. The rate is
clips per CPU-second of this process (time.process_time, all threads counted): "per core", and far
less sensitive to other load on the machine than wall-clock; wall-clock rates are in the JSON.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from common import BENCH_DIR, PROJECT_ROOT, ratio, row, skipped

FULL = dict(videos=4, clips_per_video=2, frames=8, eval_repeats=2,
            hmdb=dict(width=320, height=240, frames=90, fps=30),
            kinetics=dict(width=640, height=360, frames=250, fps=25))
QUICK = dict(videos=1, clips_per_video=2, frames=8, eval_repeats=1,
             hmdb=dict(width=320, height=240, frames=30, fps=30),
             kinetics=dict(width=480, height=272, frames=40, fps=25))
EVAL_VIEWS = dict(temporal_views=2, spatial_crops=2)   # the zoo's (and the paper's) evaluation views
TABLE_TIE = 0.05
# Grain strength: sigma 7 gives ~1 Mbit/s for the 640x360 H.264 files, in the range of real Kinetics
# downloads; stronger noise makes the bitrate (and the gain of re-encoding, which smooths it away) unrealistic.
NOISE_SIGMA = 7.0
FORMATS = {"hmdb": (".avi", "mpeg4", {"qscale": "4"}),
           "kinetics": (".mp4", "libx264", {"crf": "23", "preset": "veryfast"}),
           "kinetics-webm": (".webm", "libvpx-vp9", {"crf": "32", "b": "0", "deadline": "realtime", "cpu-used": "8"})}
SETS = {"hmdb-like avi": ("hmdb", "hmdb"), "kinetics-like mp4": ("kinetics", "kinetics"),
        "kinetics-like webm": ("kinetics-webm", "kinetics")}   # name -> (format, size spec)


def synthetic_frames(width: int, height: int, frames: int, seed: int):
    """uint8 [H, W, 3] frames: a colour gradient, three moving rectangles and a disc, Gaussian noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // max(1, width - 1), yy * 255 // max(1, height - 1),
                     np.full_like(xx, int(rng.integers(60, 200)))], axis=-1).astype(np.int16)
    shapes = [(rng.integers(0, width), rng.integers(0, height), rng.integers(-6, 7), rng.integers(-4, 5),
               rng.integers(width // 10, width // 4), rng.integers(height // 10, height // 4),
               rng.integers(0, 256, 3)) for _ in range(3)]
    noise = rng.normal(0, NOISE_SIGMA, size=(4, height, width, 3)).astype(np.int16)
    for t in range(frames):
        img = base.copy()
        for x0, y0, dx, dy, w, h, colour in shapes:
            x, y = int(x0 + dx * t) % width, int(y0 + dy * t) % height
            img[y:y + h, x:x + w] = colour
        cx, cy = int(width / 2 + width / 3 * np.cos(t / 9)), int(height / 2 + height / 3 * np.sin(t / 7))
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < (height // 8) ** 2] = (250, 250, 250)
        img += noise[t % 4]
        yield np.clip(img, 0, 255).astype(np.uint8)


def write_video(path: Path, kind: str, *, width: int, height: int, frames: int, fps: int, seed: int) -> Path:
    import av

    ext, codec, options = FORMATS[kind]
    path = Path(path).with_suffix(ext)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.thread_count = 1
        for t, img in enumerate(synthetic_frames(width, height, frames, seed)):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_dataset(root: Path, kind: str, n: int, spec: dict) -> list[Path]:
    """n videos of `kind` under root/<kind>/ (reused when already there)."""
    paths = []
    for i in range(n):
        target = root / kind / f"{kind}_{i}{FORMATS[kind][0]}"
        paths.append(target if target.is_file() else write_video(target, kind, seed=1000 * len(kind) + i, **spec))
    return paths


class RawDecord:
    """decord.VideoReader alone (no PyAV packet count, no clamping): what video_io's checks cost."""

    def __init__(self, path):
        import decord

        self._reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        self.num_frames = len(self._reader)

    def get_frames(self, indices):
        return self._reader.get_batch(list(indices)).asnumpy()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._reader = None


def clip_rate(paths: list[Path], backend: str, *, clips_per_video: int, frames: int, seed: int = 0) -> dict:
    """Sampled clips per CPU-second (and per wall-second) reading `paths` with `backend`
    ("decord" / "pyav" through apclip_core.data.video_io.open_video, or "decord-raw")."""
    from apclip_core.data.sampling import segment_indices
    from apclip_core.data.video_io import open_video

    if backend == "decord-raw":
        def open_video(path, _backend):  # noqa: F811 - same call shape as video_io.open_video
            return RawDecord(path)

    rng = np.random.default_rng(seed)
    with open_video(paths[0], backend) as reader:          # warm-up: libraries, codec tables
        reader.get_frames([0])
    cpu0, wall0 = time.process_time(), time.perf_counter()
    shapes = set()
    for _ in range(clips_per_video):
        for path in paths:
            with open_video(path, backend) as reader:
                clip = reader.get_frames(segment_indices(reader.num_frames, frames, train=True, rng=rng))
                shapes.add(tuple(clip.shape))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    n = clips_per_video * len(paths)
    return {"clips": n, "cpu_s": cpu, "wall_s": wall, "clips_per_cpu_s": n / max(cpu, 1e-9),
            "clips_per_wall_s": n / max(wall, 1e-9), "clip_shapes": sorted(shapes)}


def write_sets(root: Path, quick: bool) -> dict[str, list[Path]]:
    """Every set of SETS under root/ (files already there are reused)."""
    s = QUICK if quick else FULL
    return {name: write_dataset(root, fmt, s["videos"], s[size]) for name, (fmt, size) in SETS.items()}


def write_sets_apart(root: Path, quick: bool) -> dict[str, list[Path]]:
    """write_sets in a fresh process: in one where decord is loaded (run.py's machine record imports it),
    decord's bundled libvpx (ABI 6) takes the symbols of PyAV's VP9 encoder (libvpx 12) and opening
    the encoder fails with EINVAL."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(BENCH_DIR), str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--write-sets", str(root)] + ["--quick"] * quick,
                   env=env, check=True, timeout=600)
    return write_sets(root, quick)   # all there now: only the paths


def eval_rate(model, paths: list[Path], backend: str, *, frames: int, repeats: int) -> dict:
    """Evaluation clips per CPU-second: encode_videos (decode, test transform, image tower) over `paths`
    (each `repeats` times) with the zoo's views, read with `backend`."""
    import torch

    from apclip_core.data.annotations import VideoRecord
    from apclip_core.data.datasets import VideoDataset
    from apclip_core.data.views import ViewSpec
    from apclip_core.engine.evaluate import encode_videos, eval_transform_for

    root = paths[0].parent
    view = ViewSpec(frames, EVAL_VIEWS["temporal_views"], EVAL_VIEWS["spatial_crops"], backend)
    transform = eval_transform_for(model, view.spatial_crops)

    def dataset(records):
        return VideoDataset(records, root, view=view, train=False, transform=transform)

    records = [VideoRecord(p.name, 0) for p in paths] * repeats
    encode_videos(model, dataset(records[:1]), desc="warm-up")            # libraries, codec tables
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with torch.no_grad():
        feats, _, ok, errors, _ = encode_videos(model, dataset(records), batch_size=8, desc=f"evaluate ({backend})")
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if not ok.all():
        raise RuntimeError(f"evaluation with {backend} failed on {errors}")
    clips = len(records) * view.temporal_views
    return {"videos": len(records), "clips": clips, "cpu_s": cpu, "wall_s": wall,
            "clips_per_cpu_s": clips / max(cpu, 1e-9), "clips_per_wall_s": clips / max(wall, 1e-9), "feats": feats}


def table_rows(rates: dict, sets: dict) -> tuple[list[dict], dict]:
    """Per container: does video_io.DECODER_BY_CONTAINER still name the faster decoder?"""
    from apclip_core.data.video_io import resolve_backend

    rows, verdicts = [], {}
    for name, paths in sets.items():
        ext = paths[0].suffix.lower()
        picked = resolve_backend("auto", paths[0])
        other = "pyav" if picked == "decord" else "decord"
        a, b = rates[(name, "original", picked)]["clips_per_cpu_s"], rates[(name, "original", other)]["clips_per_cpu_s"]
        faster, factor = (picked, a / b) if a >= b else (other, b / a)
        holds = faster == picked or factor <= 1 + TABLE_TIE
        verdict = (f"auto picks {picked} for {ext}: measured {faster} faster by {factor:.2f}x"
                   + ("" if faster == picked else f" (within {TABLE_TIE:.0%}: either is right)" if holds else
                      f": the table is out of date, set DECODER_BY_CONTAINER[{ext!r}] = {faster!r}"))
        verdicts[ext] = {"picked": picked, "faster": faster, "factor": factor, "table_holds": holds,
                         "clips_per_cpu_s": {picked: a, other: b}}
        rows.append(row(f"decoder table, {ext} ({name}): auto's choice / the other decoder", ratio(a, b),
                        target=f">= {1 - TABLE_TIE:.2f}x (the table names the faster)", ok=holds, measured=verdict,
                        note=f"{picked} {a:.1f} vs {other} {b:.1f} clips/core-s"))
    return rows, verdicts


def run(*, quick: bool, threads: int, workdir: Path) -> dict:
    import torch

    from apclip_core.data.prepare import reencode_videos
    from apclip_core.model.video_clip import create_model

    s = QUICK if quick else FULL
    root = workdir / "videos"
    tic = time.perf_counter()
    sets = write_sets_apart(root, quick)
    write_s = time.perf_counter() - tic
    tic = time.perf_counter()
    to_reencode = [str(p.relative_to(root)) for name, ps in sets.items() if not name.endswith("webm") for p in ps]
    report = reencode_videos(root, workdir / "videos_256", to_reencode, short_side=256, jobs=1)
    reencode_s = time.perf_counter() - tic
    if report["failed"]:
        raise RuntimeError(f"re-encoding failed: {report['failures']}")
    reencoded = {name: [workdir / "videos_256" / p.relative_to(root) for p in ps] for name, ps in sets.items()}
    rates, rows, bitrates = {}, [], {}
    for name, paths in sets.items():
        spec = s[SETS[name][1]]
        variants = {"original": paths}
        if min(spec["width"], spec["height"]) > 256 and not name.endswith("webm"):
            variants["short side 256"] = reencoded[name]
        for variant, vpaths in variants.items():
            for backend in ("decord", "pyav", "decord-raw"):
                rates[(name, variant, backend)] = clip_rate(vpaths, backend, clips_per_video=s["clips_per_video"],
                                                            frames=s["frames"])
            d, p = rates[(name, variant, "decord")], rates[(name, variant, "pyav")]
            size = f"{spec['width']}x{spec['height']}" if variant == "original" else "short side 256"
            mbps = sum(p.stat().st_size for p in vpaths) * 8 / (len(vpaths) * spec["frames"] / spec["fps"]) / 1e6
            bitrates[f"{name} | {variant}"] = mbps
            rows.append(row(f"decord / PyAV clips per core-second: {name}, {size}, {spec['frames']} frames",
                            ratio(d["clips_per_cpu_s"], p["clips_per_cpu_s"]), target="info",
                            measured=f"decord {d['clips_per_cpu_s']:.1f} vs PyAV {p['clips_per_cpu_s']:.1f} clips/core-s",
                            note=f"{mbps:.2f} Mbit/s; {s['frames']} TSN frames per clip, open included; decord.VideoReader alone "
                                 f"(no PyAV packet count): {rates[(name, variant, 'decord-raw')]['clips_per_cpu_s']:.1f}"))
        if "short side 256" in variants:
            for backend in ("decord", "pyav"):
                a, b = rates[(name, "short side 256", backend)], rates[(name, "original", backend)]
                rows.append(row(f"re-encoded (short side 256) / original: {name}, {backend}",
                                ratio(a["clips_per_cpu_s"], b["clips_per_cpu_s"]), target="> 1x (info)",
                                measured=f"{a['clips_per_cpu_s']:.1f} vs {b['clips_per_cpu_s']:.1f} clips/core-s"))
        elif name.startswith("hmdb"):
            rows.append(skipped(f"re-encoded / original: {name}", status="n/a",
                                why=f"short side {min(spec['width'], spec['height'])} <= 256: copied, not re-encoded"))
    table, verdicts = table_rows(rates, sets)
    rows += table
    torch.manual_seed(0)
    model = create_model("apclip-tiny", None).eval()
    evals = {backend: eval_rate(model, sets["hmdb-like avi"], backend, frames=s["frames"], repeats=s["eval_repeats"])
             for backend in ("auto", "decord")}
    auto, old = evals["auto"], evals["decord"]
    same = torch.equal(auto.pop("feats"), old.pop("feats"))
    rows.append(row("evaluation clips per core-second, hmdb-like avi: auto / decord (the old default)",
                    ratio(auto["clips_per_cpu_s"], old["clips_per_cpu_s"]), target="info (> 1x: auto is faster)",
                    measured=f"auto {auto['clips_per_cpu_s']:.1f} vs decord {old['clips_per_cpu_s']:.1f} clips/core-s",
                    note=f"encode_videos, apclip-tiny, {auto['videos']} videos x {EVAL_VIEWS['temporal_views']} temporal "
                         f"views x {EVAL_VIEWS['spatial_crops']} crops x {s['frames']} frames; features identical: {same}"))
    return {"rows": rows,
            "details": {"sizes": s, "write_s": write_s, "reencode_s": reencode_s, "reencode": {k: v for k, v in report.items()
                                                                                                 if k != "manifest"},
                        "rates": {" | ".join(k): v for k, v in rates.items()}, "bitrate_mbit_s": bitrates,
                        "reencoded_root": str(workdir / "videos_256"), "decoder_table": verdicts,
                        "evaluation": {**evals, "features_identical": same, "views": EVAL_VIEWS}}}


if __name__ == "__main__":  # write_sets_apart's child
    parser = argparse.ArgumentParser()
    parser.add_argument("--write-sets", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    cli = parser.parse_args()
    write_sets(cli.write_sets, cli.quick)
