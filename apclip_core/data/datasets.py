"""A video dataset over a community-format list, and its two loaders: `TrainLoader` (the one
training pipeline: epoch-seeded augmentation, rank-sharded shuffle, resumable mid-epoch) and
`build_eval_loader` (every video, in list order).

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

import hashlib
import itertools
import logging
import random
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, SequentialSampler
from torch.utils.data._utils.collate import default_collate

from apclip_core.data.annotations import VideoRecord
from apclip_core.data.video_io import VideoDecodeError
from apclip_core.data.views import ViewSpec, decode_video

__all__ = ["VideoDataset", "TrainLoader", "build_eval_loader", "collate_videos", "EpochSeededDataset",
           "ResumableSampler"]

log = logging.getLogger(__name__)


class VideoDataset(Dataset):
    """Items: {"video": float [n_views, T, 3, S, S], "label", "index", "ok", "error", "replaced", "padded", "path"}.

    n_views = view.temporal_views x view.spatial_crops (temporal view major).
    """

    def __init__(self, records: Sequence[VideoRecord], root, *, view: ViewSpec, train: bool,
                 transform: Callable, seed: int = 0, max_replacements: int = 20):
        if train and view.temporal_views != 1:
            raise ValueError("training samples one clip per video; temporal_views must be 1 with train=True")
        if not records:
            raise ValueError(f"empty video list for {root}")
        self.records = list(records)
        self.root = Path(root)
        self.view = view
        self.train = train
        self.transform = transform
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

    def _load(self, index: int):
        if self.train and self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        return decode_video(self.root / self.records[index].path, self.view, self.transform,
                            rng=self._rng if self.train else None)   # clips [views * crops, T, 3, S, S]

    def _zero_video(self) -> torch.Tensor:
        if self._zeros is None:
            dummy = np.zeros((self.view.frames, 32, 32, 3), np.uint8)
            one = torch.zeros_like(self.transform(dummy))
            self._zeros = one.repeat(self.view.temporal_views, 1, 1, 1, 1)
        return self._zeros.clone()

    def replacement_index(self, index: int, attempt: int) -> int:
        """Deterministic stand-in for a failed training sample (same for every run and worker)."""
        return int(np.random.default_rng([self.seed, index, attempt]).integers(len(self.records)))

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        try:
            decoded = self._load(index)
            return self._item(index, decoded.clips, ok=True, error=None, replaced=None, padded=decoded.padded)
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
                    decoded = self._load(other)
                    return self._item(other, decoded.clips, ok=True, error=error, replaced=index, padded=decoded.padded)
                except VideoDecodeError as exc2:
                    self.failures.append({"index": other, "path": self.records[other].path, "error": exc2.reason})
            raise RuntimeError(f"{self.max_replacements} replacement samples for index {index} all failed to decode; "
                               f"check the dataset with `python -m apclip_core data check` (last error: {error})")

    def _item(self, index: int, video: torch.Tensor, *, ok: bool, error, replaced, padded: bool = False) -> dict:
        rec = self.records[index]
        return {"video": video, "label": rec.label, "index": index, "ok": ok, "error": error, "padded": padded,
                "replaced": replaced, "path": rec.path}


def collate_videos(items: list[dict]) -> dict:
    """Stack tensors/numbers; keep ``error``, ``replaced`` and ``path`` as plain lists (may hold None)."""
    lists = ("error", "replaced", "path")
    batch = default_collate([{k: v for k, v in it.items() if k not in lists} for it in items])
    for k in lists:
        batch[k] = [it.get(k) for it in items]
    return batch


class EpochSeededDataset(Dataset):
    """Wraps a dataset so each item's augmentation depends only on (seed, epoch, index).

    The global python/numpy/torch RNGs are seeded for the duration of __getitem__ and restored
    afterwards, so results do not depend on worker count, worker order or where a resumed run
    starts in the epoch.
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        seed = int.from_bytes(hashlib.sha256(f"{self.seed}/{self.epoch}/{index}".encode()).digest()[:8], "little")
        if hasattr(self.dataset, "reseed"):  # VideoDataset's own RNG for TSN frame offsets
            self.dataset.reseed(seed)
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            random.seed(seed)
            np.random.seed(seed % 2**32)
            torch.manual_seed(seed)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)


class ResumableSampler(DistributedSampler):
    """DistributedSampler (per-epoch seeded shuffle, sharded by rank) that can start mid-epoch."""

    start = 0

    def set_position(self, epoch: int, start: int) -> None:
        self.set_epoch(epoch)
        self.start = start

    def __iter__(self):
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self) -> int:
        return self.num_samples - self.start


class TrainLoader:
    """The training pipeline: every item's augmentation a function of (seed, epoch, index), the
    order a per-epoch seeded shuffle sharded by rank, the last partial batch dropped (as ViFi-CLIP),
    and `epoch(e, start)` starting mid-epoch so a resumed run sees exactly the batches it missed."""

    def __init__(self, dataset: VideoDataset, *, batch_size: int, num_workers: int, seed: int,
                 rank: int = 0, world_size: int = 1, pin_memory: bool = False):
        self.dataset = EpochSeededDataset(dataset, seed)
        self.sampler = ResumableSampler(self.dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
        self.batch_size, self.num_workers, self.pin_memory = batch_size, num_workers, pin_memory

    @property
    def batches_per_epoch(self) -> int:
        return self.sampler.num_samples // self.batch_size

    def epoch(self, epoch: int, start_batch: int = 0) -> DataLoader:
        """The loader of `epoch`, from its batch `start_batch` on."""
        self.dataset.set_epoch(epoch)
        self.sampler.set_position(epoch, start_batch * self.batch_size)
        return DataLoader(self.dataset, batch_size=self.batch_size, sampler=self.sampler, num_workers=self.num_workers,
                          collate_fn=collate_videos, drop_last=True, pin_memory=self.pin_memory,
                          persistent_workers=False)


def build_eval_loader(dataset: Dataset, *, batch_size: int, num_workers: int) -> DataLoader:
    """Every video in list order, the last partial batch kept: evaluation never loses a video."""
    return DataLoader(dataset, batch_size=batch_size, sampler=SequentialSampler(dataset), num_workers=num_workers,
                      collate_fn=collate_videos, drop_last=False, persistent_workers=False,
                      pin_memory=torch.cuda.is_available())
