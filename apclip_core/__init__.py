"""apclip_core: action-conditioned prompts and MAKA for open-vocabulary video action recognition.

The library behind the notebooks. Public entry points are imported lazily so that
`import apclip_core` stays fast and light (no torch import until a model is needed).
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> module that defines it
_LAZY = {
    "classify": "apclip_core.classify",
    "create_model_and_transforms": "apclip_core.model.video_clip",
    "load_checkpoint": "apclip_core.model.video_clip",
    "maka_similarity": "apclip_core.model.maka",
    "mean_pool_similarity": "apclip_core.model.maka",
    "PromptBank": "apclip_core.prompts.bank",
    "render_benchmark": "apclip_core.embedded.benchmark",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'apclip_core' has no attribute {name!r}")


__all__ = sorted(_LAZY) + ["__version__"]
