"""Video-to-class similarities, by name: the registry that training, evaluation and classify read.

A similarity takes (video frames [B, Nv, D], prompt features [C, Nt, D], prompt mask [C, Nt] or
None) and returns [B, C]. Prompt features are L2-normalised; frame features too, unless the
similarity is registered with `raw_frames=True`: then it gets the image tower's raw outputs, whose
norms it may use (`frame_features(name, raw)` gives each similarity what it takes). Built in:
"maka" (the paper's late interaction, eqs. 3-6), "mean" (the cosine of the mean of L2-normalised
frames with the mean prompt: OST, Open-VCLIP and FROSTER rank classes this way) and "mean_raw"
(ViFi-CLIP's pooling: the mean of RAW frame features, then L2, so frames weigh by their feature norm).
`pooled_similarity(model.config)` names the one a converted checkpoint's authors pool with;
`default_similarity(model.config)` is what evaluate and classify use when not told one.
Add one with `register_similarity("name", fn)`; every config, CLI and notebook then accepts it.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F

from apclip_core.errors import BadValue
from apclip_core.model.maka import maka_similarity, mean_pool_similarity

Similarity = Callable  # (video [B,Nv,D], prompts [C,Nt,D], mask [C,Nt] | None) -> [B, C]

# mean_raw is mean_pool_similarity itself: given raw frames, its mean is ViFi-CLIP's mean of raw features
_SIMILARITIES: dict[str, Similarity] = {"maka": maka_similarity, "mean": mean_pool_similarity,
                                        "mean_raw": mean_pool_similarity}
_RAW_FRAMES: set[str] = {"mean_raw"}   # the similarities that take raw (unnormalised) frame features

# a checkpoint's recorded video pooling (model.convert) -> the similarity that ranks classes as its authors do
POOLING_SIMILARITY = {"mean_then_l2": "mean_raw",          # ViFi-CLIP
                      "l2_then_mean": "mean",              # OST, OpenAI CLIP
                      "mean_of_frame_logits": "mean"}      # Open-VCLIP, FROSTER: the mean of cosines ranks as "mean"


def register_similarity(name: str, fn: Similarity, *, raw_frames: bool = False, replace: bool = False) -> Similarity:
    """Register `fn` under `name`; raw_frames=True: it is given unnormalised frame features."""
    if name in _SIMILARITIES and not replace:
        raise ValueError(f"similarity {name!r} is already registered; pass replace=True to override it")
    _SIMILARITIES[name] = fn
    (_RAW_FRAMES.add if raw_frames else _RAW_FRAMES.discard)(name)
    return fn


def takes_raw_frames(name: str) -> bool:
    """Whether similarity `name` is given the image tower's raw frame features (else L2-normalised ones)."""
    get_similarity(name)
    return name in _RAW_FRAMES


def frame_features(name: str, raw: torch.Tensor) -> torch.Tensor:
    """The frame features similarity `name` scores, from raw ones [..., D]: as they are, or L2-normalised."""
    return raw if takes_raw_frames(name) else F.normalize(raw, dim=-1)


def pooled_similarity(model_config: dict) -> str:
    """The similarity that pools frames as the checkpoint's authors do, from its recorded `video_pooling`
    (model.convert writes it); "mean" when the checkpoint records none (apclip's own)."""
    pooling = model_config.get("video_pooling")
    if pooling is None:
        return "mean"
    if pooling not in POOLING_SIMILARITY:
        raise BadValue(f"unknown video_pooling {pooling!r} in the checkpoint's config; "
                         f"known: {', '.join(POOLING_SIMILARITY)}")
    return POOLING_SIMILARITY[pooling]


DEFAULT_SIMILARITY = "maka"   # the paper's, for a model that records no pooling (apclip's own, plain open_clip)


def default_similarity(model_config: dict, given: Optional[str] = None) -> tuple[str, str]:
    """(similarity, why): `given` when the caller names one ("given"); else (evaluate, classify) a run's
    checkpoint is scored with the similarity it was trained with (even when it started from a converted
    checkpoint: its pooling is the starting weights', not this model's); else a converted checkpoint's recorded
    video pooling decides (pooled_similarity: ViFi-CLIP's is "mean_raw"); else the paper's MAKA."""
    if given:
        return given, "given"
    if model_config.get("trained_similarity"):
        return model_config["trained_similarity"], "the similarity the checkpoint was trained with"
    pooling = model_config.get("video_pooling")
    if pooling is None:
        return DEFAULT_SIMILARITY, "the default: the model records no video pooling"
    source = model_config.get("source_format")
    return pooled_similarity(model_config), (f"the checkpoint's recorded video pooling {pooling}"
                                             + (f" (converted from {source})" if source else ""))


def said_why(chosen_by: str) -> str:
    """default_similarity's reason as the CLIs print it."""
    return "given by --similarity" if chosen_by == "given" else chosen_by


def similarity_names() -> tuple[str, ...]:
    return tuple(_SIMILARITIES)


def get_similarity(name: str) -> Similarity:
    if name not in _SIMILARITIES:
        raise BadValue(f"unknown similarity {name!r}; valid: {', '.join(_SIMILARITIES)}")
    return _SIMILARITIES[name]
