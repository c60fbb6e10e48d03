"""Evaluation across ranks (issue 23, item 8): every rank encodes its share of the videos, rank 0 scores, and the
numbers are one process's, with two real gloo processes."""
from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from apclip_core.data.protocols import bench_base_to_novel

N_VIDEOS = 8


def _evaluate(root: str, rank: int, world: int, out: str) -> None:
    from dataclasses import replace

    from apclip_core.engine.config import load_config
    from apclip_core.engine.distributed import Dist
    from apclip_core.engine.evaluate import evaluate_protocol, shard_of
    from apclip_core.model.video_clip import create_model

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = create_model("apclip-tiny", None)
    split = bench_base_to_novel(root).eval[1]
    splits = [replace(split, records=split.records[:N_VIDEOS])]
    cfg = load_config("bench_base2novel", frames=2, temporal_views=1, spatial_crops=1, eval_batch_size=2,
                      num_workers=0, prompt_strategy="single")
    encoded = []
    original = type(model).encode_video
    type(model).encode_video = lambda self, video, **kw: encoded.append(video.shape[0]) or original(self, video, **kw)
    results = evaluate_protocol(model, splits, cfg, shard=Dist(rank, world) if world > 1 else None)
    mine = sum(shard_of(r.path, world) == rank for r in splits[0].records)
    with open(os.path.join(out, f"rank{rank}_of{world}.json"), "w") as f:
        json.dump({"results": [r.to_json() for r in results], "encoded": sum(encoded), "mine": mine}, f)


def _rank(rank: int, port: int, root: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        _evaluate(root, rank, 2, out)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_share_the_encoding_and_score_as_one_process(bench_root, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(port, str(bench_root), str(tmp_path)), nprocs=2, join=True)
    _evaluate(str(bench_root), 0, 1, str(tmp_path))
    one = json.loads((tmp_path / "rank0_of1.json").read_text())
    ranks = [json.loads((tmp_path / f"rank{r}_of2.json").read_text()) for r in (0, 1)]
    assert ranks[1]["results"] == []  # rank 0 scores
    assert [r["encoded"] for r in ranks] == [r["mine"] for r in ranks] and 0 < ranks[0]["mine"] < N_VIDEOS
    assert sum(r["encoded"] for r in ranks) == one["encoded"] == N_VIDEOS  # each video once, over the ranks
    sharded, alone = ranks[0]["results"][0], one["results"][0]
    assert (sharded["protocol"]["encoded_over_ranks"], alone["protocol"]["encoded_over_ranks"]) == (2, 1)
    for key in ("top1", "top5", "n_evaluated", "per_class_top1", "n_failed"):
        assert sharded[key] == alone[key], key
