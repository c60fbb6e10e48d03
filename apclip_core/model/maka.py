"""MAKA (Multi-modal Action Knowledge Alignment, paper eqs. 3-6) and the mean-pooling baseline.

For a video with frame embeddings v_1..v_nv and a class with prompt embeddings c_1..c_nt
(all L2-normalised):

    sim_v2t = mean_i max_j <v_i, c_j>      (each frame picks its best prompt)      eqs. (3)-(4)
    sim_t2v = mean_j max_i <v_i, c_j>      (each prompt picks its best frame)      eq. (5)
    sim     = (sim_v2t + sim_t2v) / 2                                              eq. (6)

Frames are counted over all views. Classes have different numbers of prompts, so prompt
tensors are padded to [C, Nt_max, D] with a boolean mask; a padded prompt never wins a max and
never counts in a mean. The [B, C, Nv, Nt] similarity tensor is built `chunk_size` classes at a
time and, when gradients are needed, each chunk is recomputed in the backward pass
(activation checkpointing), so peak memory is O(B * Nv * chunk * Nt), not O(B * Nv * C * Nt).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


def _check(video_feats: torch.Tensor, prompt_feats: torch.Tensor,
           prompt_mask: Optional[torch.Tensor]) -> torch.Tensor:
    if video_feats.ndim != 3 or prompt_feats.ndim != 3:
        raise ValueError(f"expected video_feats [B, Nv, D] and prompt_feats [C, Nt, D], got "
                         f"{tuple(video_feats.shape)} and {tuple(prompt_feats.shape)}")
    if video_feats.shape[-1] != prompt_feats.shape[-1]:
        raise ValueError(f"embedding sizes differ: video {video_feats.shape[-1]} vs prompts {prompt_feats.shape[-1]}")
    C, Nt = prompt_feats.shape[:2]
    if prompt_mask is None:
        prompt_mask = torch.ones(C, Nt, dtype=torch.bool, device=prompt_feats.device)
    if prompt_mask.shape != (C, Nt) or prompt_mask.dtype != torch.bool:
        raise ValueError(f"prompt_mask must be bool [C, Nt] = [{C}, {Nt}], got {prompt_mask.dtype} "
                         f"{tuple(prompt_mask.shape)}")
    empty = (~prompt_mask.any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(f"classes {empty[:20]}{' ...' if len(empty) > 20 else ''} have no valid prompt "
                         "(every prompt masked out); each class needs at least one prompt")
    return prompt_mask.to(prompt_feats.device)


def _maka_chunk(video_feats: torch.Tensor, prompt_feats: torch.Tensor, prompt_mask: torch.Tensor) -> torch.Tensor:
    """[B, Nv, D] x [c, Nt, D] (mask [c, Nt]) -> [B, c]."""
    sim = torch.einsum("bvd,cnd->bcvn", video_feats, prompt_feats)           # [B, c, Nv, Nt]
    valid = prompt_mask[None, :, None, :]                                     # [1, c, 1, Nt]
    v2t = sim.masked_fill(~valid, float("-inf")).amax(dim=3).mean(dim=2)      # [B, c]
    best_frame = sim.amax(dim=2)                                              # [B, c, Nt]
    t2v = torch.where(prompt_mask, best_frame, 0.0).sum(dim=2) / prompt_mask.sum(dim=1)
    return 0.5 * (v2t + t2v)


def maka_similarity(video_feats: torch.Tensor, prompt_feats: torch.Tensor,
                    prompt_mask: Optional[torch.Tensor] = None, *, chunk_size: int = 64) -> torch.Tensor:
    """MAKA similarity [B, C] between videos [B, Nv, D] and classes' prompts [C, Nt, D] (mask [C, Nt])."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    prompt_mask = _check(video_feats, prompt_feats, prompt_mask)
    needs_grad = torch.is_grad_enabled() and (video_feats.requires_grad or prompt_feats.requires_grad)
    out = []
    for start in range(0, prompt_feats.shape[0], chunk_size):
        args = (video_feats, prompt_feats[start:start + chunk_size], prompt_mask[start:start + chunk_size])
        out.append(checkpoint(_maka_chunk, *args, use_reentrant=False) if needs_grad else _maka_chunk(*args))
    return torch.cat(out, dim=1)


def mean_pool_similarity(video_feats: torch.Tensor, prompt_feats: torch.Tensor,
                         prompt_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Cosine [B, C] between the mean frame embedding and each class's mean prompt embedding
    (both re-normalised): ViFi-CLIP's mean pooling and, for a template set, Open-VCLIP's average."""
    prompt_mask = _check(video_feats, prompt_feats, prompt_mask)
    video = F.normalize(video_feats.mean(dim=1), dim=-1)
    summed = torch.where(prompt_mask[..., None], prompt_feats, 0.0).sum(dim=1)
    classes = F.normalize(summed / prompt_mask.sum(dim=1, keepdim=True), dim=-1)
    return video @ classes.T
