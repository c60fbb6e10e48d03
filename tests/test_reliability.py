"""Never silently wrong, never a raw traceback: the fault-injection suite.

* a run killed during each of its file writes, then resumed, ends exactly like an uninterrupted run;
* a broken-video matrix (both containers) through `data check`, the loader and `classify`;
* a table of bad inputs to every command: one message naming the file, no traceback, exit 1 or 2.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from apclip_core import atomic

REPO = Path(__file__).resolve().parent.parent

# The smallest real run: random-init tiny CLIP, one optimizer step, two evaluated videos per split.
TINY_RUN = dict(pretrained=None, prompt_strategy="single", similarity="maka", epochs=1, max_steps_per_epoch=1,
                batch_size=2, effective_batch_size=2, frames=2, temporal_views=1, spatial_crops=1, eval_max_videos=2,
                eval_every_epochs=1, num_workers=0, warmup_epochs=1, lr=1e-4)


class SimulatedKill(BaseException):
    """What a kill -9 in the middle of a write leaves: a partial temporary, no rename, no clean-up."""


def _outputs(run: Path) -> tuple[dict, list]:
    weights = load_file(run / "checkpoint.safetensors")
    metrics = json.loads((run / "metrics.json").read_text())
    for e in metrics["epochs"]:  # wall-clock numbers differ between runs; nothing else may
        e.pop("step_time_s"), e.pop("samples_per_s")
    return weights, metrics["epochs"]


@pytest.mark.slow
def test_a_kill_during_any_write_then_resume_ends_like_the_uninterrupted_run(tmp_path, bench_root, monkeypatch):
    from apclip_core.engine.config import load_config
    from apclip_core.engine.train import train

    real_write = atomic._write
    writes: list[str] = []

    def counting(path, fill):
        writes.append(Path(path).name)
        return real_write(path, fill)

    monkeypatch.setattr(atomic, "_write", counting)
    ref = train(load_config("bench_base2novel", **TINY_RUN, output_dir=str(tmp_path / "ref")))
    ref_weights, ref_epochs = _outputs(ref)
    n_writes = len(writes)
    assert {"config.json", "checkpoint.safetensors", "metrics.json", "last.pt"} <= set(writes), writes

    for k in range(n_writes):
        run = tmp_path / f"kill{k}"
        calls = []

        def killing(path, fill):
            calls.append(path)
            if len(calls) == k + 1:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                (Path(path).parent / f".{Path(path).name}.tmp-999999999-dead").write_bytes(b"half a file")
                raise SimulatedKill(str(path))
            return real_write(path, fill)

        monkeypatch.setattr(atomic, "_write", killing)
        with pytest.raises(SimulatedKill):
            train(load_config("bench_base2novel", **TINY_RUN, output_dir=str(run)))
        monkeypatch.setattr(atomic, "_write", real_write)
        train(load_config("bench_base2novel", **TINY_RUN, output_dir=str(run)), resume=True)
        weights, epochs = _outputs(run)
        assert epochs == ref_epochs, f"killed during write {k + 1} ({writes[k]})"
        assert all(torch.equal(weights[n], ref_weights[n]) for n in ref_weights), f"write {k + 1} ({writes[k]})"
        assert json.loads((run / "metrics.json").read_text())["complete"] is True
        assert not list(run.glob(".*.tmp-*")), f"orphan temporaries after write {k + 1}: {list(run.glob('.*.tmp-*'))}"


# ---- the broken-video matrix: data check, the loader and classify --------------------------------
def _broken_matrix(folder: Path) -> dict[str, Path]:
    """Every way a listed video can be bad, in both containers where the container matters."""
    import av
    import numpy as np

    from test_video_io import make_video

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for ext in (".mp4", ".avi"):
        good = make_video(folder / f"good{ext}", frames=60, pattern="noise")
        data = bytearray(good.read_bytes())
        (folder / f"zero{ext}").write_bytes(b"")
        (folder / f"truncated{ext}").write_bytes(bytes(data[: len(data) // 3]))
        (folder / f"garbage{ext}").write_bytes(np.random.default_rng(0).bytes(4000))
        n = len(data)
        data[n // 3: n // 3 + n // 4] = np.random.default_rng(1).bytes(n // 4)
        (folder / f"corrupt_middle{ext}").write_bytes(bytes(data))
        out.update({f"{kind}{ext}": folder / f"{kind}{ext}" for kind in ("zero", "truncated", "garbage", "corrupt_middle")})
        good.unlink()
    (folder / "a_directory.mp4").mkdir()
    out["directory"] = folder / "a_directory.mp4"
    with av.open(str(folder / "audio_only.mp4"), "w") as c:
        stream = c.add_stream("aac", rate=16000)
        for _ in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 16000
            for p in stream.encode(frame):
                c.mux(p)
        for p in stream.encode():
            c.mux(p)
    out["audio only"] = folder / "audio_only.mp4"
    (folder / "text.mp4").write_text("this is a text file, not a video\n")
    out["text named .mp4"] = folder / "text.mp4"
    out["missing"] = folder / "does_not_exist.avi"
    return out


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    return _broken_matrix(tmp_path_factory.mktemp("matrix"))


def test_data_check_reports_every_broken_video_with_its_reason(broken):
    from apclip_core.data.prepare import _probe

    for kind, path in broken.items():
        result = _probe((str(path), True, "decord"))
        assert result["status"] != "ok" and result["error"], (kind, result)
        if kind == "directory":
            assert result["error"] == "is a directory, not a video file"
        if kind.startswith("corrupt_middle"):  # the damaged file's frames fall short: never passed by a copy
            assert "of the 60 frames" in result["error"] or "frames decode" in result["error"], result


def test_the_loader_counts_every_broken_video_as_failed_and_pads_only_when_asked(broken):
    from apclip_core.data.annotations import VideoRecord
    from apclip_core.data.datasets import VideoDataset, build_eval_loader
    from apclip_core.data.transforms import build_video_transform
    from apclip_core.data.views import ViewSpec

    root = next(iter(broken.values())).parent
    records = [VideoRecord(p.name, 0) for p in broken.values()]
    transform = build_video_transform(32, (0.5,) * 3, (0.25,) * 3, train=False)
    for policy in ("fail", "pad"):
        ds = VideoDataset(records, root, view=ViewSpec(8, short_videos=policy), train=False, transform=transform)
        items = [item for batch in build_eval_loader(ds, batch_size=4, num_workers=0)
                 for item in zip(batch["path"], batch["ok"].tolist(), batch["padded"].tolist())]
        assert len(items) == len(records)  # every video accounted for
        padded = {p for p, ok, pad in items if ok and pad}
        failed = {p for p, ok, _ in items if not ok}
        if policy == "fail":
            assert failed == {r.path for r in records} and not padded
        else:  # only the damaged files whose start decodes stand in, and they say so
            assert padded and all(p.startswith(("corrupt_middle", "truncated")) for p in padded)
            assert failed == {r.path for r in records} - padded


def test_classify_refuses_every_broken_video(broken):
    import importlib

    from apclip_core.data.video_io import VideoDecodeError
    from apclip_core.model.video_clip import create_model

    classify = importlib.import_module("apclip_core.classify").classify
    torch.manual_seed(0)
    model = create_model("apclip-tiny", None)
    for kind, path in broken.items():
        with pytest.raises(VideoDecodeError):
            classify(path, ["walking", "running"], model=model, generate=False, num_frames=4)
