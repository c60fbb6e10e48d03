"""End-to-end training runs as real subprocesses on the embedded benchmark (tiny CLIP, few steps):

* a run killed with SIGKILL mid-epoch and resumed ends exactly like an uninterrupted run;
* torchrun with 2 CPU processes (gloo) keeps the replicas in sync and checkpoints once.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parent.parent

# Random-init tiny CLIP (no pretraining needed), the 28-template set with a per-step budget of 4
# prompts per class and MAKA, so every random draw of a step is exercised; few, small steps.
SMALL = ["pretrained=null", "prompt_strategy=set", "similarity=maka", "prompts_per_class_per_step=4",
         "epochs=2", "max_steps_per_epoch=6", "batch_size=4", "effective_batch_size=4", "frames=4",
         "temporal_views=1", "spatial_crops=1", "eval_max_videos=12", "eval_every_epochs=1", "num_workers=0",
         "warmup_epochs=1", "lr=1e-4"]


def _env(tmp_path: Path) -> dict:
    env = dict(os.environ, APCLIP_PROGRESS="0", OMP_NUM_THREADS="1", PYTHONHASHSEED="0",
               APCLIP_RUNS=str(tmp_path / "runs"))
    env.pop("RANK", None)
    return env


def _train_cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "apclip_core", "train", "--config", "bench_base2novel",
            "--set", *SMALL, f"output_dir={out}", *extra]


def _final_state(run: Path) -> dict:
    return load_file(run / "checkpoint.safetensors")


def _metrics(run: Path) -> list[dict]:
    epochs = json.loads((run / "metrics.json").read_text())["epochs"]
    for e in epochs:  # wall-clock numbers differ between runs; everything else must not
        e.pop("step_time_s"), e.pop("samples_per_s")
    return epochs


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path, bench_root):
    env = _env(tmp_path)
    ref, crash = tmp_path / "ref", tmp_path / "crash"
    subprocess.run(_train_cmd(ref, "save_every_steps=2"), env=env, check=True, cwd=REPO, capture_output=True)

    proc = subprocess.Popen(_train_cmd(crash, "save_every_steps=2"), env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    try:
        for line in proc.stderr:  # the log goes to stderr line by line
            seen.append(line)
            if "step checkpoint: epoch 1, micro-step 2," in line:
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL, "".join(seen[-20:])
    state = torch.load(crash / "last.pt", weights_only=True)
    assert state["epoch"] == 0 and state["micro_step"] >= 2       # killed mid-epoch 1
    assert not (crash / "metrics.json").exists()

    resumed = subprocess.run(_train_cmd(crash, "save_every_steps=2") + ["--resume"], env=env, cwd=REPO,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr and "epoch 0, micro-step" in resumed.stderr

    assert _metrics(crash) == _metrics(ref)
    a, b = _final_state(ref), _final_state(crash)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert "eval" in _metrics(ref)[-1] and "hm" in _metrics(ref)[-1]["eval"]


@pytest.mark.slow
def test_torchrun_two_cpu_processes_stay_in_sync(tmp_path, bench_root):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "apclip_core", "train", "--config", "bench_base2novel", "--set", *SMALL,
           "epochs=1", "effective_batch_size=8", "missing_videos=skip", f"output_dir={out}"]
    # Normally ~10 s. A hang (seen once in a full CI run, during rank 0's evaluation; never reproduced in 31
    # runs alone) fails within 4 minutes with every thread's Python stack of both ranks: SIGABRT to the process
    # group makes faulthandler (PYTHONFAULTHANDLER) print them into the captured stderr.
    proc = subprocess.Popen(cmd, env={**_env(tmp_path), "PYTHONFAULTHANDLER": "1"}, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        ranks = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")  # torchrun starts them in their own session
        for rank in (ranks.read_text().split() if ranks.exists() else []):
            os.kill(int(rank), signal.SIGABRT)
        os.killpg(proc.pid, signal.SIGABRT)
        _, stderr = proc.communicate()
        pytest.fail(f"2-process training hung for 240 s; stacks:\n{stderr[-12000:]}")
    assert proc.returncode == 0, stderr[-3000:]
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["world_size"] == 2 and summary["effective_batch"] == 8  # as it ran: what deviations compare
    checksums = summary["param_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]
    assert "batch 4 x 2 process(es) x 1 accumulation = 8" in (out / "train.log").read_text()
    assert (out / "checkpoint.safetensors").is_file() and (out / "last.pt").is_file()
    # missing_videos=skip: rank 0 decided the training list, kept in the run folder, and both ranks got it
    decided = json.loads((out / "train_videos.json").read_text())
    assert summary["train_data"] == decided["record"] and decided["record"]["used"] == len(decided["videos"]) > 0
    # the replicas really trained: the weights moved away from the random initialisation
    assert torch.load(out / "last.pt", weights_only=True)["global_step"] == 6
