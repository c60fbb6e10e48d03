"""Encode once, score many: per-frame video features cached by what they depend on.

A video's frame features depend on the image tower (its weights, and the config that shapes its
forward: architecture, activation, neighbour-frame attention, temporal module), on the video file,
on how frames are sampled (frames per clip and temporal views: TSN segment centres, deterministic in
evaluation) and on how they are seen (spatial crops, image size, pixel mean/std, decoder). The cache
key hashes all of these; change any one and the old entry is simply never found again, so a stale
feature cannot be read. Prompts and similarities are not in the key: any number of prompt strategies
x similarities is scored from one encoding (`engine.evaluate.evaluate_variants`).

Entries live in memory and, when the cache has a folder, on disk (one small file per video, written
atomically), so another process (a notebook, the zoo's next model row) reuses them too.
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
    """Per-video frame features [V*T, D], keyed by video_key(); in memory and optionally under `root`."""

    def __init__(self, root: Optional[str | Path] = None):
        self.root = Path(root) if root is not None else None
        self._memory: dict[str, torch.Tensor] = {}
        self.hits = 0
        self.misses = 0

    @staticmethod
    def video_key(fingerprint: str, path: str | Path, view, transform_spec: dict) -> str:
        """The key of one video's features: weights, file identity (path, size, mtime), sampling and view."""
        path = Path(path)
        try:
            stat = path.stat()
            identity = [str(path.resolve()), stat.st_size, stat.st_mtime_ns]
        except OSError:  # a missing file is never a hit: it fails to decode and is not stored
            identity = [str(path), None, None]
        spec = {"weights": fingerprint, "video": identity, "view": view.to_dict(), "transform": transform_spec}
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()

    def _file(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.pt"

    def get(self, key: str) -> Optional[torch.Tensor]:
        feats = self._memory.get(key)
        if feats is None and self.root is not None and self._file(key).is_file():
            try:
                feats = torch.load(self._file(key), map_location="cpu", weights_only=True)
            except Exception:  # noqa: BLE001 - an unreadable entry is a miss; it is rewritten
                feats = None
            if feats is not None:
                self._memory[key] = feats
        if feats is None:
            self.misses += 1
        else:
            self.hits += 1
        return feats

    def put(self, key: str, feats: torch.Tensor) -> None:
        feats = feats.detach().cpu().clone()
        self._memory[key] = feats
        if self.root is not None:
            atomic.torch_save(feats, self._file(key))
