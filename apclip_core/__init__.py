"""apclip_core: action-conditioned prompts and MAKA for open-vocabulary video action recognition.

The library behind the notebooks. Public entry points are imported lazily so that
`import apclip_core` stays fast and light (no torch import until a model is needed).
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# `classify` is bound eagerly: the module apclip_core/classify.py is named after its function, and a
# lazy import would leave the package attribute pointing at the module. The module imports torch
# only when called, so `import apclip_core` stays light.
from apclip_core.classify import classify  # noqa: E402

# name -> module that defines it
_LAZY = {
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


__all__ = sorted(_LAZY) + ["classify", "__version__"]
