"""A video dataset over a community-format list, and the DataLoader that goes with it.

Bad videos are never silently dropped:

* training: the failure is logged, counted (``dataset.failures`` in the process that met it) and
  the sample is replaced by another one chosen deterministically from (seed, index, attempt);
  the item says so (``replaced`` = the index that failed, ``error`` = why), so the training loop
  can count replacements across workers from the batches it receives.
* evaluation: the item comes back with ``ok=False``, the error, and an all-zero video; the
  evaluator counts it as failed in the protocol's counts. No ``drop_last`` at evaluation.

The decoder is opened inside ``__getitem__`` (so inside each DataLoader worker), one thread each.
"""
from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, SequentialSampler
from torch.utils.data._utils.collate import default_collate

from apclip_core.data.annotations import VideoRecord
from apclip_core.data.sampling import multi_view_indices, segment_indices
from apclip_core.data.video_io import BACKENDS, VideoDecodeError, open_video

__all__ = ["VideoDataset", "build_loader", "collate_videos", "seed_worker"]

log = logging.getLogger(__name__)


class VideoDataset(Dataset):
    """Items: {"video": float [n_views, T, 3, S, S], "label", "index", "ok", "error", "replaced", "path"}.

    n_views = num_temporal_views x the transform's spatial crops (temporal view major).
    """

    def __init__(self, records: Sequence[VideoRecord], root, *, num_frames: int, train: bool,
                 transform: Callable, num_temporal_views: int = 1, backend: str = "decord",
                 seed: int = 0, max_replacements: int = 20):
        if backend not in BACKENDS:
            raise ValueError(f"unknown video backend {backend!r}; valid choices: {', '.join(BACKENDS)}")
        if train and num_temporal_views != 1:
            raise ValueError("training samples one clip per video; num_temporal_views must be 1 with train=True")
        if not records:
            raise ValueError(f"empty video list for {root}")
        self.records = list(records)
        self.root = Path(root)
        self.num_frames = int(num_frames)
        self.train = train
        self.transform = transform
        self.num_temporal_views = int(num_temporal_views)
        self.backend = backend
        self.seed = int(seed)
        self.max_replacements = int(max_replacements)
        self.failures: list[dict] = []   # in this process (each worker has its own copy)
        self._rng: np.random.Generator | None = None
        self._zeros: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.records)

    def reseed(self, seed: int) -> None:
        """Frame-offset RNG for training (build_loader's worker_init calls this per worker)."""
        self._rng = np.random.default_rng(seed)

    def _load(self, index: int) -> torch.Tensor:
        rec = self.records[index]
        with open_video(self.root / rec.path, self.backend) as reader:
            n = reader.num_frames
            if self.train:
                if self._rng is None:
                    self._rng = np.random.default_rng(self.seed)
                views = [segment_indices(n, self.num_frames, train=True, rng=self._rng)]
            else:
                views = multi_view_indices(n, self.num_frames, self.num_temporal_views)
            flat = [i for v in views for i in v]
            frames = reader.get_frames(flat)
        out = []
        for k in range(len(views)):
            clip = frames[k * self.num_frames:(k + 1) * self.num_frames]
            out.append(self.transform(clip))          # [crops, T, 3, S, S]
        return torch.cat(out, dim=0)                  # [views * crops, T, 3, S, S]

    def _zero_video(self) -> torch.Tensor:
        if self._zeros is None:
            dummy = np.zeros((self.num_frames, 32, 32, 3), np.uint8)
            one = torch.zeros_like(self.transform(dummy))
            self._zeros = one.repeat(self.num_temporal_views, 1, 1, 1, 1)
        return self._zeros.clone()

    def replacement_index(self, index: int, attempt: int) -> int:
        """Deterministic stand-in for a failed training sample (same for every run and worker)."""
        return int(np.random.default_rng([self.seed, index, attempt]).integers(len(self.records)))

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        try:
            video = self._load(index)
            return self._item(index, video, ok=True, error=None, replaced=None)
        except VideoDecodeError as exc:
            error = exc.reason
            self.failures.append({"index": index, "path": self.records[index].path, "error": error})
            if not self.train:
                log.warning("evaluation: %s (%s) counted as failed", self.records[index].path, error)
                return self._item(index, self._zero_video(), ok=False, error=error, replaced=None)
            for attempt in range(1, self.max_replacements + 1):
                other = self.replacement_index(index, attempt)
                log.warning("training: %s failed (%s); replaced by sample %d", self.records[index].path, error, other)
                try:
                    return self._item(other, self._load(other), ok=True, error=error, replaced=index)
                except VideoDecodeError as exc2:
                    self.failures.append({"index": other, "path": self.records[other].path, "error": exc2.reason})
            raise RuntimeError(f"{self.max_replacements} replacement samples for index {index} all failed to decode; "
                               f"check the dataset with `python -m apclip_core data check` (last error: {error})")

    def _item(self, index: int, video: torch.Tensor, *, ok: bool, error, replaced) -> dict:
        rec = self.records[index]
        return {"video": video, "label": rec.label, "index": index, "ok": ok, "error": error,
                "replaced": replaced, "path": rec.path}


def collate_videos(items: list[dict]) -> dict:
    """Stack tensors/numbers; keep ``error``, ``replaced`` and ``path`` as plain lists (may hold None)."""
    lists = ("error", "replaced", "path")
    batch = default_collate([{k: v for k, v in it.items() if k not in lists} for it in items])
    for k in lists:
        batch[k] = [it.get(k) for it in items]
    return batch


def seed_worker(worker_id: int) -> None:
    """Per-worker seeds from torch's worker seed (= loader seed + worker id, new every epoch)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    info = torch.utils.data.get_worker_info()
    if info is not None and hasattr(info.dataset, "reseed"):
        info.dataset.reseed(seed)


def build_loader(dataset: Dataset, *, batch_size: int, train: bool, num_workers: int, seed: int,
                 distributed: bool = False) -> DataLoader:
    """DataLoader with seeded shuffling and workers; training drops the last partial batch, evaluation never.

    distributed=True uses DistributedSampler (call ``loader.sampler.set_epoch(epoch)`` each epoch);
    at evaluation it pads the last rank with repeated samples: deduplicate by ``batch["index"]``.
    """
    generator = torch.Generator().manual_seed(seed)
    if distributed:
        sampler = DistributedSampler(dataset, shuffle=train, seed=seed, drop_last=False)
    elif train:
        sampler = RandomSampler(dataset, generator=generator)
    else:
        sampler = SequentialSampler(dataset)
    if train and num_workers == 0 and hasattr(dataset, "reseed"):
        dataset.reseed(seed)  # workers reseed themselves in seed_worker; evaluation has no randomness
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      collate_fn=collate_videos, worker_init_fn=seed_worker, generator=generator,
                      drop_last=train, persistent_workers=False, pin_memory=torch.cuda.is_available())
