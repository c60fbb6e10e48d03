"""When training saves its resumable state (last.pt) besides each epoch's end: every save_every_steps optimizer
steps, every save_every_minutes of wall time (a K-400 epoch can outlast a scheduler's preemption notice), and
whenever `<run folder>/save.request` appears (the SLURM script's preemption handler creates it on USR1 and waits
for it to go: plan.slurm_script). Time and requests are decided on every rank at once: rank 0's clock and any
rank's sight of the request file are agreed by an all-reduce (max), so every rank saves at the same step.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.distributed as dist

from apclip_core.engine.distributed import Dist

SAVE_REQUEST = "save.request"


class CheckpointClock:
    def __init__(self, *, every_steps: int, every_minutes: float, run_dir: Path, d: Dist, device: torch.device):
        self.every_steps, self.every_s = every_steps, every_minutes * 60.0
        self.request, self.d, self.device = Path(run_dir) / SAVE_REQUEST, d, device
        self.last = time.monotonic()

    def due(self, global_step: int) -> bool:
        """At an optimizer step: whether to save now (the same answer on every rank)."""
        by_steps = bool(self.every_steps) and global_step % self.every_steps == 0
        wanted = bool(self.every_s) and time.monotonic() - self.last >= self.every_s or self.request.exists()
        if self.d.enabled:  # a clock or a file seen by one rank only must not split the ranks
            flag = torch.tensor([float(wanted)], device=self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            wanted = bool(flag.item())
        return by_steps or wanted

    def saved(self) -> None:
        """After a save (step or epoch): the clock restarts and a pending request is answered."""
        self.last = time.monotonic()
        if self.d.main:
            self.request.unlink(missing_ok=True)
