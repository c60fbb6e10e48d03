"""Saving by time and on request (issue 23, item 10): a preemption loses minutes, not an epoch, and every rank
saves at the same step (two real gloo processes)."""
from __future__ import annotations

import os
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from apclip_core.engine.checkpoint_clock import SAVE_REQUEST, CheckpointClock
from apclip_core.engine.distributed import Dist


def test_saves_every_n_steps_every_n_minutes_and_on_request(tmp_path):
    clock = CheckpointClock(every_steps=3, every_minutes=0, run_dir=tmp_path, d=Dist(), device=torch.device("cpu"))
    assert [clock.due(s) for s in (1, 2, 3)] == [False, False, True]
    (tmp_path / SAVE_REQUEST).touch()  # the SLURM script's handler, on USR1
    assert clock.due(4)
    clock.saved()
    assert not (tmp_path / SAVE_REQUEST).exists() and not clock.due(5)  # answered: the handler may requeue
    timed = CheckpointClock(every_steps=0, every_minutes=0.5 / 60, run_dir=tmp_path, d=Dist(), device=torch.device("cpu"))
    assert not timed.due(1)
    time.sleep(0.6)
    assert timed.due(2)
    timed.saved()
    assert not timed.due(3)


def _rank(rank: int, port: int, folder: str, answers) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        # rank 0's clock is due at once, rank 1's never: both must save (or the ranks would part at the save)
        clock = CheckpointClock(every_steps=0, every_minutes=1e-9 if rank == 0 else 0, run_dir=folder,
                                d=Dist(rank, 2), device=torch.device("cpu"))
        answers[rank] = clock.due(1)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_every_rank_agrees_to_save_when_one_ranks_clock_says_so(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    answers = mp.Manager().dict()
    mp.spawn(_rank, args=(port, str(tmp_path), answers), nprocs=2, join=True)
    assert dict(answers) == {0: True, 1: True}
