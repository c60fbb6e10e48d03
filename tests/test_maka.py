"""MAKA and mean pooling pinned against plain Python loops written straight from eqs. (3)-(6)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from apclip_core.model.maka import maka_similarity, mean_pool_similarity


def loop_maka(video, prompts, counts):
    """Eqs. (3)-(6) literally: per video, per class, over the class's real prompts only."""
    out = torch.zeros(video.shape[0], len(counts), dtype=video.dtype)
    rows = []
    for b in range(video.shape[0]):
        row = []
        for c, n_t in enumerate(counts):
            v, t = video[b], prompts[c, :n_t]
            v2t = sum(max(v[i] @ t[j] for j in range(n_t)) for i in range(v.shape[0])) / v.shape[0]
            t2v = sum(max(v[i] @ t[j] for i in range(v.shape[0])) for j in range(n_t)) / n_t
            row.append(0.5 * (v2t + t2v))
        rows.append(torch.stack(row))
    return torch.stack(rows) if rows else out


def loop_mean(video, prompts, counts):
    rows = []
    for b in range(video.shape[0]):
        v = F.normalize(sum(video[b]) / video.shape[1], dim=0)
        rows.append(torch.stack([v @ F.normalize(sum(prompts[c, :n]) / n, dim=0) for c, n in enumerate(counts)]))
    return torch.stack(rows)


def ragged(B=3, Nv=5, counts=(4, 1, 3, 2, 4), D=8, seed=0, pad_value=0.0):
    g = torch.Generator().manual_seed(seed)
    video = F.normalize(torch.randn(B, Nv, D, generator=g, dtype=torch.float64), dim=-1)
    prompts = F.normalize(torch.randn(len(counts), max(counts), D, generator=g, dtype=torch.float64), dim=-1)
    mask = torch.arange(max(counts))[None] < torch.tensor(counts)[:, None]
    prompts = torch.where(mask[..., None], prompts, torch.full_like(prompts, pad_value))
    return video, prompts, mask, list(counts)


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 64])
def test_maka_matches_loop_values_and_gradients(chunk_size):
    video, prompts, mask, counts = ragged()
    video.requires_grad_(True)
    prompts.requires_grad_(True)
    fast = maka_similarity(video, prompts, mask, chunk_size=chunk_size)
    slow = loop_maka(video, prompts, counts)
    torch.testing.assert_close(fast, slow)
    weights = torch.randn_like(fast)
    g_fast = torch.autograd.grad((fast * weights).sum(), (video, prompts))
    g_slow = torch.autograd.grad((slow * weights).sum(), (video, prompts))
    for a, b in zip(g_fast, g_slow):
        torch.testing.assert_close(a, b)
    assert g_fast[1][~mask].abs().max() == 0  # padded prompts receive no gradient


def test_padding_never_wins_a_max_nor_counts_in_a_mean():
    # Padding rows equal to a frame embedding would win every max if the mask were ignored.
    video, prompts, mask, counts = ragged(counts=(3, 1, 2))
    prompts = torch.where(mask[..., None], prompts, video[0, 0].expand_as(prompts))
    fast = maka_similarity(video, prompts, mask, chunk_size=2)
    torch.testing.assert_close(fast, loop_maka(video, prompts, counts))
    unmasked = maka_similarity(video, prompts, None)
    assert not torch.allclose(unmasked, fast)  # the test would catch an ignored mask
    torch.testing.assert_close(mean_pool_similarity(video, prompts, mask), loop_mean(video, prompts, counts))


def test_maka_without_mask_is_full_bank_and_matches_einsum_formula():
    video, prompts, _, _ = ragged(counts=(3, 3, 3))
    sim = torch.einsum("bvd,cnd->bcvn", video, prompts)
    expected = 0.5 * (sim.amax(3).mean(2) + sim.amax(2).mean(2))
    torch.testing.assert_close(maka_similarity(video, prompts), expected)


def test_mean_pool_matches_loop():
    video, prompts, mask, counts = ragged(counts=(2, 5, 1), seed=3)
    torch.testing.assert_close(mean_pool_similarity(video, prompts, mask), loop_mean(video, prompts, counts))


def test_single_prompt_single_frame_is_cosine():
    video, prompts, _, _ = ragged(B=2, Nv=1, counts=(1, 1, 1))
    torch.testing.assert_close(maka_similarity(video, prompts), video[:, 0] @ prompts[:, 0].T)


def test_class_without_prompts_is_a_clear_error():
    video, prompts, mask, _ = ragged(counts=(2, 2, 2))
    mask[1] = False
    with pytest.raises(ValueError, match=r"classes \[1\] have no valid prompt"):
        maka_similarity(video, prompts, mask)
    with pytest.raises(ValueError, match="no valid prompt"):
        mean_pool_similarity(video, prompts, mask)
    with pytest.raises(ValueError, match="prompt_mask must be bool"):
        maka_similarity(video, prompts, mask.float())


def test_backward_memory_does_not_grow_with_classes():
    """With gradients on, each chunk is recomputed in backward, so autograd keeps no [B, C, Nv, Nt]
    similarity tensor: what it stores beyond the inputs stays within one chunk as C grows."""
    def stored_beyond_inputs(C, chunk_size=4):
        video, prompts, mask, _ = ragged(B=2, Nv=16, counts=(8,) * C, D=4)
        video.requires_grad_(True)
        prompts.requires_grad_(True)
        inputs = {t.untyped_storage().data_ptr() for t in (video, prompts, mask)}
        stored = []

        def pack(t):
            if t.untyped_storage().data_ptr() not in inputs:
                stored.append(t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = maka_similarity(video, prompts, mask, chunk_size=chunk_size)
        out.sum().backward()
        return sum(stored)

    one_chunk = 2 * 16 * 4 * 8  # B * Nv * chunk * Nt
    assert stored_beyond_inputs(64) <= one_chunk
    assert stored_beyond_inputs(64) == stored_beyond_inputs(8)


def test_chunked_speed_is_sane():
    import time

    video = F.normalize(torch.randn(8, 16, 64), dim=-1)
    prompts = F.normalize(torch.randn(51, 36, 64), dim=-1)
    t0 = time.perf_counter()
    out = maka_similarity(video, prompts)
    assert out.shape == (8, 51)
    assert time.perf_counter() - t0 < 2.0
