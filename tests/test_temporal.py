"""The temporal module starts as the image model exactly and mixes neighbouring frames once trained."""
from __future__ import annotations

import pytest
import torch

from apclip_core.model.video_clip import create_model
from apclip_core.model.temporal import neighbour_tokens

TINY = "apclip-tiny"


def clip_pair():
    torch.manual_seed(0)
    plain = create_model(TINY, None).eval()
    temporal = create_model(TINY, None, temporal_module=True).eval()
    temporal.clip.load_state_dict(plain.clip.state_dict())
    return plain, temporal


def video(seed=0, B=1, V=2, T=3):
    return torch.randn(B, V, T, 3, 64, 64, generator=torch.Generator().manual_seed(seed))


def test_identical_to_image_model_at_init():
    plain, temporal = clip_pair()
    assert sum(p.numel() for p in temporal.temporal.parameters()) == 4 * 128  # layers x width gates only
    x = video()
    with torch.no_grad():
        torch.testing.assert_close(temporal.encode_video(x), plain.encode_video(x), rtol=0, atol=0)


def test_mixes_neighbouring_frames_within_a_view_after_one_step():
    _, model = clip_pair()
    x = video()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    feats = model.encode_video(x)
    (feats[:, :, :8].sum()).backward()  # any loss that depends on the features
    assert model.temporal.gate.grad.abs().sum() > 0
    opt.step()
    assert model.temporal.gate.abs().sum() > 0
    model.eval()

    perturbed = x.clone()
    perturbed[0, 0, 0] += 1.0   # view 0, frame 0
    with torch.no_grad():
        before, after = model.encode_video(x)[0], model.encode_video(perturbed)[0]
    changed = (before - after).abs().amax(dim=-1) > 1e-6    # rows: view-major, T = 3 per view
    assert changed[0]                    # the frame itself
    assert changed[1]                    # its neighbour now sees it
    assert not changed[3:].any()         # frames of the other view never mix with view 0


def test_no_mixing_when_gate_closed_even_if_frames_change():
    plain, temporal = clip_pair()
    x = video()
    perturbed = x.clone()
    perturbed[0, 0, 0] += 1.0
    with torch.no_grad():
        diff = (temporal.encode_video(x) - temporal.encode_video(perturbed))[0].abs().amax(-1)
    assert diff[0] > 0 and (diff[1:] == 0).all()


def test_neighbour_tokens_windows_and_padding():
    T, L, W = 3, 2, 1
    h = torch.arange(T, dtype=torch.float).repeat_interleave(L).view(T, L, W)  # token value = frame index
    keys, ignore = neighbour_tokens(h, T, window=1)
    assert keys.shape == (T, 2 * L, W) and ignore.shape == (T, 2 * L)
    # frame 1 sees frames 0 and 2; frame 0 only frame 1 (its "previous" slot is ignored)
    assert keys[1, :, 0].tolist() == [0, 0, 2, 2] and not ignore[1].any()
    assert ignore[0].tolist() == [True, True, False, False] and keys[0, 2:, 0].tolist() == [1, 1]
    assert ignore[2].tolist() == [False, False, True, True]
    with pytest.raises(ValueError, match="whole number"):
        neighbour_tokens(torch.zeros(5, L, W), 3, 1)


def test_single_frame_clips_pass_through():
    plain, temporal = clip_pair()
    with torch.no_grad():
        temporal.temporal.gate.fill_(1.0)
        x = video(T=1)
        torch.testing.assert_close(temporal.encode_video(x), plain.encode_video(x), rtol=0, atol=0)
