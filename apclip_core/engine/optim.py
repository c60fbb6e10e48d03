"""Optimisation pieces of the ViFi-CLIP recipe: AdamW groups, the warm-up + cosine schedule,
mixup/cutmix with soft targets, and the losses."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from apclip_core.engine.config import TrainConfig


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over all parameters; no weight decay on biases, norms, embeddings' 1-D and scalar params."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)


def lr_at(step: int, *, lr: float, lr_min: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up from 0, then cosine from lr to lr_min (timm CosineLRScheduler as in ViFi-CLIP)."""
    if step < warmup_steps:
        return lr * step / warmup_steps
    progress_frac = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return lr_min + (lr - lr_min) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress_frac)))


def build_scheduler(optimizer, cfg: TrainConfig, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    total = cfg.epochs * steps_per_epoch
    warmup = min(int(round(cfg.warmup_epochs * steps_per_epoch)), max(0, total - 1))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_at(s, lr=cfg.lr, lr_min=cfg.lr_min, warmup_steps=warmup, total_steps=total) / cfg.lr)


def smooth_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    off = smoothing / num_classes
    return torch.full((len(labels), num_classes), off, device=labels.device).scatter_(
        1, labels.view(-1, 1), 1.0 - smoothing + off)


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.sum(-targets * F.log_softmax(logits, dim=-1), dim=-1).mean()


def mixup_cutmix(video: torch.Tensor, labels: torch.Tensor, num_classes: int, rng: np.random.Generator, *,
                 mixup_alpha: float, cutmix_alpha: float, switch_prob: float, smoothing: float):
    """Blend each video with the batch's reversed order (X-CLIP/ViFi-CLIP CutmixMixupBlending).

    video [B, ..., H, W]; the cutmix box is the same for every view and frame of a clip, so the
    pasted region is a consistent spatio-temporal tube. Returns (mixed video, soft targets [B, C]).
    """
    targets = smooth_one_hot(labels, num_classes, smoothing)
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or rng.random() < switch_prob)
    lam = float(rng.beta(cutmix_alpha, cutmix_alpha) if use_cutmix else rng.beta(mixup_alpha, mixup_alpha))
    other = video.flip(0)
    if use_cutmix:
        H, W = video.shape[-2:]
        cut = math.sqrt(1.0 - lam)
        ch, cw = int(H * cut), int(W * cut)
        cy, cx = int(rng.integers(H)), int(rng.integers(W))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, H)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, W)
        video = video.clone()
        video[..., y0:y1, x0:x1] = other[..., y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / float(H * W)
    else:
        video = video * lam + other * (1.0 - lam)
    return video, targets * lam + targets.flip(0) * (1.0 - lam)
