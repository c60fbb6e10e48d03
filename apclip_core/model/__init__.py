"""The video CLIP: an open_clip model applied to frames (`video_clip`), the temporal module
(`temporal`), and the similarities between a video's frames and a class's prompts (`similarity`,
with MAKA in `maka`).

The names below are imported on first use, so that a light submodule (convert_cli: `convert --help`)
does not pull in open_clip and torch through this package."""
from __future__ import annotations

import importlib

__all__ = ["VideoCLIP", "create_model", "create_model_and_transforms", "load_checkpoint", "save_checkpoint",
           "weights_fingerprint"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module("apclip_core.model.video_clip"), name)
    raise AttributeError(f"module 'apclip_core.model' has no attribute {name!r}")
