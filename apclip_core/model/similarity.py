"""Video-to-class similarities, by name: the registry that training, evaluation and classify read.

A similarity takes (video frames [B, Nv, D], prompt features [C, Nt, D], prompt mask [C, Nt] or
None) and returns [B, C]; features are L2-normalised. Built in: "maka" (the paper's late
interaction, eqs. 3-6) and "mean" (ViFi-CLIP's cosine of mean-pooled frames and prompts).
Add one with `register_similarity("name", fn)`; every config, CLI and notebook then accepts it.
"""
from __future__ import annotations

from typing import Callable

from apclip_core.model.maka import maka_similarity, mean_pool_similarity

Similarity = Callable  # (video [B,Nv,D], prompts [C,Nt,D], mask [C,Nt] | None) -> [B, C]

_SIMILARITIES: dict[str, Similarity] = {"maka": maka_similarity, "mean": mean_pool_similarity}


def register_similarity(name: str, fn: Similarity, *, replace: bool = False) -> Similarity:
    if name in _SIMILARITIES and not replace:
        raise ValueError(f"similarity {name!r} is already registered; pass replace=True to override it")
    _SIMILARITIES[name] = fn
    return fn


def similarity_names() -> tuple[str, ...]:
    return tuple(_SIMILARITIES)


def get_similarity(name: str) -> Similarity:
    if name not in _SIMILARITIES:
        raise ValueError(f"unknown similarity {name!r}; valid: {', '.join(_SIMILARITIES)}")
    return _SIMILARITIES[name]
