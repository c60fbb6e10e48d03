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

from apclip_core import atomic

REPO = Path(__file__).resolve().parent.parent

# The smallest real run: random-init tiny CLIP, one optimizer step, two evaluated videos per split.
TINY_RUN = dict(pretrained=None, prompt_strategy="single", similarity="maka", epochs=1, max_steps_per_epoch=1,
                batch_size=2, effective_batch_size=2, frames=2, temporal_views=1, spatial_crops=1, eval_max_videos=2,
                eval_every_epochs=1, num_workers=0, warmup_epochs=1, lr=1e-4)


class SimulatedKill(BaseException):
    """What a kill -9 in the middle of a write leaves: a partial temporary, no rename, no clean-up."""


def _outputs(run: Path) -> tuple[dict, list]:
    weights = torch.load(run / "checkpoint.pt", weights_only=True)["state_dict"]
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
    assert {"config.json", "checkpoint.pt", "metrics.json", "last.pt"} <= set(writes), writes

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
