"""Encode once, score many: per-frame video features cached by what they depend on.

A video's frame features depend on the image tower (its weights, and the config that shapes its
forward: architecture, activation, neighbour-frame attention, temporal module), on the video file,
on how frames are sampled (frames per clip and temporal views: TSN segment centres, deterministic in
evaluation) and on how they are seen (spatial crops, image size, pixel mean/std, decoder). The cache
key hashes all of these; change any one and the old entry is simply never found again, so a stale
feature cannot be read. Prompts and similarities are not in the key: any number of prompt strategies
x similarities is scored from one encoding (`engine.evaluate.evaluate_variants`).

Entries live in memory and, when the cache has a folder, on disk (one file per group and call, written
atomically: a split's new videos cost one write), so another process (a notebook, the zoo's next
prompt set) reuses them too.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

import torch

from apclip_core import atomic

# model config fields that change the image tower's output (text-only fields are left out on purpose)
VISUAL_CONFIG_KEYS = ("model_name", "quick_gelu", "temporal_module", "temporal_window", "expand_temporal_view",
                      "open_clip_config", "precision", "image_size", "mean", "std")


def visual_fingerprint(model) -> str:
    """sha256 of the image tower's tensors (and the temporal module's), plus the config shaping them."""
    h = hashlib.sha256()
    h.update(json.dumps({k: model.config.get(k) for k in VISUAL_CONFIG_KEYS}, sort_keys=True, default=str).encode())
    state = {k: v for k, v in model.state_dict().items() if k.startswith(("clip.visual.", "temporal."))}
    for k in sorted(state):
        v = state[k].detach()
        h.update(f"{k}:{v.dtype}:{tuple(v.shape)}".encode())
        h.update(v.cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


class FrameFeatureCache:
    """Per-video raw frame features [V*T, D] (unnormalised: every similarity can be scored from them),
    grouped by (weights, view, transform) and keyed by video file.

    On disk, each call of put_many writes ONE file (atomically) into its group's folder, so a split
    costs one write, not one fsync per video; a group's files are read together the first time the
    group is asked for.
    """

    def __init__(self, root: Optional[str | Path] = None):
        self.root = Path(root) if root is not None else None
        self._groups: dict[str, dict[str, torch.Tensor]] = {}

    @staticmethod
    def group_key(fingerprint: str, view, transform_spec: dict) -> str:
        """The image tower (fingerprint), the sampling and views (ViewSpec) and the transform."""
        spec = {"weights": fingerprint, "view": view.to_dict(), "transform": transform_spec}
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:32]

    @staticmethod
    def video_id(path: str | Path) -> str:
        """The video file: resolved path, size and modification time (a rewritten file is a new video)."""
        path = Path(path)
        try:
            stat = path.stat()
            identity = [str(path.resolve()), stat.st_size, stat.st_mtime_ns]
        except OSError:  # a missing file is never a hit: it fails to decode and is not stored
            identity = [str(path), None, None]
        return hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:32]

    def _group(self, group: str) -> dict[str, torch.Tensor]:
        if group not in self._groups:
            entries: dict[str, torch.Tensor] = {}
            folder = self.root / group if self.root is not None else None
            if folder is not None and folder.is_dir():
                for file in sorted(folder.glob("*.pt")):
                    try:
                        entries.update(torch.load(file, map_location="cpu", weights_only=True))
                    except Exception:  # noqa: BLE001 - an unreadable file only means its videos are encoded again
                        continue
            self._groups[group] = entries
        return self._groups[group]

    def get_many(self, group: str, video_ids: list[str]) -> list[Optional[torch.Tensor]]:
        entries = self._group(group)
        return [entries.get(v) for v in video_ids]

    def put_many(self, group: str, items: dict[str, torch.Tensor]) -> None:
        if not items:
            return
        items = {k: v.detach().cpu().clone() for k, v in items.items()}
        self._group(group).update(items)
        if self.root is not None:
            name = hashlib.sha256("".join(sorted(items)).encode()).hexdigest()[:16]
            atomic.torch_save(items, self.root / group / f"{name}.pt")


class SharedVideosCache(FrameFeatureCache):
    """In memory, only the videos that more than one split of an evaluation decodes (Kinetics-600's three
    zero-shot splits list 42,198 videos, far fewer distinct): each is encoded once and scored in every split
    that lists it; a video of one split only is not kept (a K-400 evaluation would otherwise hold gigabytes)."""

    def __init__(self, shared_ids: set[str]):
        super().__init__(None)
        self.shared = shared_ids

    @classmethod
    def for_splits(cls, splits) -> Optional["SharedVideosCache"]:
        """The cache for these splits (each with .root and .records), or None when no video is in two of them."""
        from collections import Counter

        listed = Counter(str(Path(s.root) / r.path) for s in splits for r in s.records)
        shared = {cls.video_id(path) for path, n in listed.items() if n > 1}
        return cls(shared) if shared else None

    def put_many(self, group: str, items: dict[str, torch.Tensor]) -> None:
        super().put_many(group, {k: v for k, v in items.items() if k in self.shared})

