"""Accuracy numbers as the papers report them.

Kept free of models and data so the reporting code (tables, notebooks) can import it cheaply.
Percentages everywhere (0-100), like the tables of AP-CLIP and ViFi-CLIP.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, torch.Tensor]:
    """Per-sample hit flags for each k: {k: bool tensor [N]}.

    k larger than the number of classes counts as "every class" (so top-5 on a 3-class split is 100%),
    which is what the reference implementations do when they clamp k.
    """
    if logits.ndim != 2 or labels.ndim != 1 or logits.shape[0] != labels.shape[0]:
        raise ValueError(f"expected logits [N, C] and labels [N], got {tuple(logits.shape)} and {tuple(labels.shape)}")
    if len(labels) == 0:
        return {k: torch.zeros(0, dtype=torch.bool) for k in ks}
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices  # [N, kmax]
    hits = top.eq(labels.view(-1, 1))
    return {k: hits[:, : min(k, kmax)].any(dim=1) for k in ks}


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Top-k accuracy in percent for each k. Empty input -> NaN (no videos is not 0% accuracy)."""
    hits = topk_correct(logits, labels, ks)
    return {k: (100.0 * h.float().mean().item()) if len(h) else math.nan for k, h in hits.items()}


def per_class_accuracy(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[float]:
    """Top-1 accuracy (percent) per class; NaN for a class without videos."""
    out = []
    for c in range(num_classes):
        mask = labels == c
        n = int(mask.sum())
        out.append(100.0 * float((predictions[mask] == c).sum()) / n if n else math.nan)
    return out


def harmonic_mean(base: float, novel: float) -> float:
    """HM of base and novel accuracy (Table 2). 0 when either is 0; NaN propagates."""
    if math.isnan(base) or math.isnan(novel):
        return math.nan
    if base < 0 or novel < 0:
        raise ValueError(f"accuracies must be >= 0, got base={base}, novel={novel}")
    if base + novel == 0:
        return 0.0
    return 2.0 * base * novel / (base + novel)


def mean_std(values: Iterable[float], ddof: int = 1) -> tuple[float, float]:
    """Mean and standard deviation over splits (default: sample std, ddof=1, = numpy.std(ddof=1)).

    The zero-shot tables report "mean +- std" over the three splits; the papers do not say which
    std, so it is a parameter. A single value has std 0.
    """
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("mean_std needs at least one value")
    mean = sum(vals) / len(vals)
    if len(vals) == 1:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in vals) / (len(vals) - ddof)
    return mean, math.sqrt(var)


def format_mean_std(values: Iterable[float], digits: int = 1) -> str:
    """'55.4 ± 0.8' as in Table 1."""
    mean, std = mean_std(values)
    return f"{mean:.{digits}f} ± {std:.{digits}f}"
