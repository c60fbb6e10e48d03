"""Training processes that never outlive whoever started them, and one training per run folder.

A notebook launches a multi-GPU training as `torchrun` under its kernel. Interrupted (Ctrl-C under make, or a
kernel shut down), the kernel goes but a child would be re-parented and keep training, holding the GPUs. So:
the launcher's torchrun asks Linux for SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG), torchrun's own
SIGTERM handling stops its ranks, each rank asks the same of torchrun (engine/train.py), and an interrupted
`run_torchrun` stops torchrun before it re-raises. `RunLock` then refuses a second training in a run folder in
use (its lock names the process), and takes over a lock whose holder is gone.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

from apclip_core.errors import UserError

PR_SET_PDEATHSIG = 1
STOP_GRACE_S = 30.0       # torchrun's time to stop its ranks on SIGTERM before it is killed
LOCK_NAME = "train.lock"
HEARTBEAT_S = 60.0        # the holder touches its lock this often (any host can tell it is alive)
STALE_AFTER_S = 600.0     # a lock untouched this long has no live holder (another host, a SIGKILL)


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """This process gets `sig` when its parent dies (Linux; elsewhere nothing: the launcher's own stop stands)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


def run_torchrun(args: list[str], *, cwd: Optional[Path] = None) -> None:
    """`torchrun ARGS` (torch.distributed.run with this interpreter) until it ends; interrupted, it is stopped
    (SIGTERM, which torchrun passes to its ranks; SIGKILL after STOP_GRACE_S), then the interruption re-raised."""
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *args], cwd=cwd,
                            preexec_fn=die_with_parent)
    try:
        code = proc.wait()
    except BaseException:
        stop(proc)
        raise
    if code:
        raise subprocess.CalledProcessError(code, proc.args)


def stop(proc: subprocess.Popen, grace: float = STOP_GRACE_S) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class RunInUse(UserError, RuntimeError):
    """Another training holds this run folder; str() names it and says what to do."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class RunLock:
    """<run folder>/train.lock: {pid, host, started}, held by training's rank 0 and touched every HEARTBEAT_S.
    A lock is stale (taken over) when its process is gone on this host, when it is this very process (a training
    that raised in a notebook, retried), or when it has not been touched for STALE_AFTER_S."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self._stop = threading.Event()
        self._beat: Optional[threading.Thread] = None

    def holder(self) -> Optional[dict]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def _stale(self, held: dict) -> bool:
        if held.get("host") == socket.gethostname() and (held.get("pid") == os.getpid() or not _alive(int(held["pid"]))):
            return True
        try:
            return time.time() - self.path.stat().st_mtime > STALE_AFTER_S
        except OSError:
            return True

    def acquire(self) -> Optional[str]:
        """Take the lock; returns a note when a stale one was taken over; raises RunInUse when it is held."""
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        note = None
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                held = self.holder() or {}
                if held and not self._stale(held):
                    raise RunInUse(
                        f"{self.path.parent} is in use by another training: pid {held.get('pid')} on "
                        f"{held.get('host')}, started {held.get('started')} ({self.path}). Stop that one first "
                        f"(kill {held.get('pid')}: a torchrun stops its ranks too), or wait for it to finish; a lock "
                        f"whose process is gone is taken over by itself") from None
                note = f"took over a stale lock of pid {held.get('pid')} on {held.get('host')} ({self.path})"
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self._beat = threading.Thread(target=self._heartbeat, daemon=True)
            self._beat.start()
            return note
        raise RunInUse(f"could not take {self.path}: another training took it at the same moment")

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                return

    def release(self) -> None:
        self._stop.set()
        held = self.holder()
        if held and held.get("pid") == os.getpid() and held.get("host") == socket.gethostname():
            self.path.unlink(missing_ok=True)
