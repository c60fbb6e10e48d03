"""One training per run folder, and no training outliving its launcher (issue 23, item 11), with real processes:
a lock held by another live process refuses a second training and names it; a launcher killed as a notebook's
kernel is (SIGKILL) takes its torchrun and every rank with it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apclip_core.engine.launch import LOCK_NAME, RunInUse, RunLock

REPO = Path(__file__).resolve().parent.parent
HOLD = "import sys, time; from apclip_core.engine.launch import RunLock; RunLock(sys.argv[1]).acquire(); " \
       "print('held', flush=True); time.sleep(60)"


def gone(pid: int) -> bool:
    """Not running: no such process, or a zombie waiting for its parent to reap it."""
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def wait_for(condition, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def test_a_run_folder_held_by_a_live_process_is_refused_and_a_dead_holders_lock_taken_over(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunInUse, match=rf"in use by another training: pid {holder.pid} on .*kill {holder.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    lock = RunLock(tmp_path)  # its holder was killed (-9): the lock it left is stale
    assert lock.acquire() == f"took over a stale lock of pid {holder.pid} on {os.uname().nodename} ({tmp_path / LOCK_NAME})"
    assert lock.acquire() is not None  # this very process again (a training retried in a notebook): taken over
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


@pytest.mark.slow
def test_killing_the_launcher_stops_torchrun_and_its_ranks_and_a_second_launcher_is_refused(tmp_path, bench_root):
    out = tmp_path / "run"
    train = ["-m", "apclip_core", "train", "--config", "bench_base2novel", "--set", "pretrained=null", "epochs=1000",
             "max_steps_per_epoch=1000", "eval_every_epochs=0", "batch_size=2", "effective_batch_size=4", "frames=2",
             "temporal_views=1", "spatial_crops=1", "num_workers=0", f"output_dir={out}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "APCLIP_PROGRESS": "0", "APCLIP_RUNS": str(tmp_path)}
    launcher = subprocess.Popen([sys.executable, "-c", "import sys; from apclip_core.engine.launch import run_torchrun; "
                                 "run_torchrun(sys.argv[1:])", "--standalone", "--nproc_per_node", "2", *train],
                                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: (out / LOCK_NAME).exists() and RunLock(out).holder(), 120), "training never started"
        rank0 = RunLock(out).holder()["pid"]
        torchrun = int(Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split()[0])
        ranks = [int(p) for p in Path(f"/proc/{torchrun}/task/{torchrun}/children").read_text().split()]
        assert rank0 in ranks and len(ranks) == 2

        second = subprocess.run([sys.executable, *train, "--resume"], cwd=REPO, env=env, capture_output=True, text=True)
        assert second.returncode != 0 and f"is in use by another training: pid {rank0}" in second.stderr
        assert "Traceback" not in second.stderr

        launcher.send_signal(signal.SIGKILL)  # as a notebook's kernel dies: no chance to clean up
        launcher.wait()
        assert wait_for(lambda: all(gone(p) for p in (torchrun, *ranks)), 60), "training outlived its launcher"
    finally:
        launcher.kill()
        for pid in locals().get("ranks", []) + ([locals()["torchrun"]] if "torchrun" in locals() else []):
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
