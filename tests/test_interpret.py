"""Attention hooks, rollout, crop geometry, per-frame explanations and the Figure 5 rendering.

A random-init tiny CLIP is enough here (fast); the measured checks with the fine-tuned model are
in test_interpret_measures.py.
"""
from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch

from apclip_core.interpret import attention as A
from apclip_core.data.transforms import build_video_transform

matplotlib.use("Agg")
torch.set_num_threads(1)

MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


@pytest.fixture(scope="module")
def tiny():
    from apclip_core.model.video_clip import create_model

    torch.manual_seed(0)
    return create_model("apclip-tiny", pretrained=None).eval()


def _no_hooks(visual) -> bool:
    return all(not b.attn._forward_hooks and not b.attn._forward_pre_hooks for b in visual.transformer.resblocks)


# ---- hooks ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("temporal", [False, True])
def test_hooks_leave_features_unchanged_and_are_removed(tiny, temporal):
    model = tiny
    if temporal:
        from apclip_core.model.video_clip import create_model

        torch.manual_seed(1)
        model = create_model("apclip-tiny", pretrained=None, temporal_module=True).eval()
        with torch.no_grad():  # the temporal branch is zero-initialised: make it matter
            for p in model.temporal.parameters():
                p.normal_(0, 0.2)
    video = torch.randn(2, 1, 3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = model.encode_video(video)
        with A.record_attention(model.clip.visual) as rec:
            hooked = model.encode_video(video)
        after = model.encode_video(video)
    torch.testing.assert_close(hooked, plain, rtol=0, atol=1e-6)
    torch.testing.assert_close(after, plain, rtol=0, atol=0)
    assert _no_hooks(model.clip.visual)
    weights = rec.stacked()
    assert weights.shape == (4, 6, 4, 65, 65)              # layers, frames, heads, tokens, tokens
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 6, 4, 65))


def test_hooks_are_removed_when_the_forward_raises(tiny):
    with pytest.raises(RuntimeError, match="boom"):
        with A.record_attention(tiny.clip.visual, "last"):
            assert not _no_hooks(tiny.clip.visual)
            raise RuntimeError("boom")
    assert _no_hooks(tiny.clip.visual)


def test_recorded_weights_are_the_blocks_softmax_attention(tiny):
    """Recompute the last block's per-head attention from its input and projection weights."""
    visual = tiny.clip.visual
    block = visual.transformer.resblocks[-1]
    seen = {}
    handle = block.register_forward_pre_hook(lambda m, args: seen.__setitem__("x", args[0]))
    try:
        with torch.no_grad(), A.record_attention(visual, "last") as rec:
            visual(torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(2)))
    finally:
        handle.remove()
    mha = block.attn
    h = block.ln_1(seen["x"])                                         # [N, L, W] (batch first)
    q, k, _ = torch.nn.functional.linear(h, mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
    N, L, W = q.shape
    heads = mha.num_heads
    q = q.reshape(N, L, heads, W // heads).transpose(1, 2)
    k = k.reshape(N, L, heads, W // heads).transpose(1, 2)
    expected = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(W // heads), dim=-1)
    torch.testing.assert_close(rec.weights(-1), expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(KeyError, match="hooked blocks"):
        rec.weights(0)


def test_cls_attention_and_rollout_by_hand():
    g = torch.Generator().manual_seed(0)
    grid = (2, 2)
    w = torch.softmax(torch.randn(3, 1, 2, 5, 5, generator=g), dim=-1)  # 3 layers, 1 image, 2 heads, CLS + 4 patches
    last = A.cls_attention(w[-1], grid)
    torch.testing.assert_close(last, w[-1].mean(1)[:, 0, 1:].reshape(1, 2, 2))
    # rollout reference: R = Â3 Â2 Â1 with Â = (mean_heads A + I) / 2 (rows of A sum to one)
    a = [(layer.mean(1)[0] + torch.eye(5)) / 2 for layer in w]
    ref = (a[2] @ a[1] @ a[0])[0, 1:].reshape(1, 2, 2)
    torch.testing.assert_close(A.attention_rollout(w, grid), ref)
    # pure self-attention everywhere: nothing flows from the patches into CLS
    eye = torch.eye(5).expand(3, 1, 2, 5, 5)
    assert A.attention_rollout(eye, grid).abs().max() == 0
    with pytest.raises(ValueError, match="layers, N, heads"):
        A.attention_rollout(w[0], grid)


# ---- geometry ---------------------------------------------------------------------------------------
def _ramp(h: int, w: int) -> np.ndarray:
    """R = 3 x, G = 3 y (pixel indices): linear, so any resize keeps value = 3 * (coordinate - 0.5)."""
    y, x = np.mgrid[0:h, 0:w]
    frame = np.stack([3 * x, 3 * y, np.zeros_like(x)], axis=-1)
    return frame[None].astype(np.uint8)


@pytest.mark.parametrize("hw,size,crops", [((64, 80), 64, 1), ((64, 80), 64, 2), ((64, 80), 64, 3),
                                           ((64, 80), 48, 4), ((80, 60), 40, 1), ((80, 60), 40, 3)])
def test_crop_geometry_matches_the_eval_transform(hw, size, crops):
    """Every crop pixel's content comes from where CropGeometry says it does in the frame."""
    transform = build_video_transform(size, MEAN, STD, train=False, num_spatial_crops=crops)
    out = transform(_ramp(*hw))                                       # [crops, 1, 3, S, S]
    pixels = (out[:, 0] * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)) * 255
    for c in range(crops):
        geo = A.crop_geometry(hw, transform, c)
        u = np.arange(size) + 0.5                                     # crop pixel centres
        xf, yf = geo.to_frame(u, u)
        expect_x, expect_y = 3 * (xf - 0.5), 3 * (yf - 0.5)
        # interior only: at the frame's border a resize clamps, the ramp does not continue
        ok_x = (xf > 1.5) & (xf < hw[1] - 1.5)
        ok_y = (yf > 1.5) & (yf < hw[0] - 1.5)
        got_x = pixels[c, 0].numpy().mean(axis=0)                     # R depends on x only
        got_y = pixels[c, 1].numpy().mean(axis=1)
        assert np.abs(got_x - expect_x)[ok_x].max() < 1.0, (c, geo)
        assert np.abs(got_y - expect_y)[ok_y].max() < 1.0, (c, geo)
        np.testing.assert_allclose(geo.to_crop(*geo.to_frame(3.0, 7.0)), (3.0, 7.0))


def test_benchmark_frame_geometry_and_peak_mapping():
    """80x64 benchmark frames, 64x64 model input: a bright square's patch maps back inside the square."""
    transform = build_video_transform(64, MEAN, STD, train=False)
    geo = A.crop_geometry((64, 80), transform)
    assert (geo.resized_w, geo.resized_h, geo.size) == (91, 73, 64)   # short side round(64 * 256/224)
    x0, x1, y1, y0 = geo.extent()
    assert 0 < x0 < x1 < 80 and 0 < y0 < y1 < 64
    for box in ([16, 10, 25, 19], [55, 40, 64, 49], [40, 30, 48, 38]):
        frame = np.zeros((1, 64, 80, 3), np.uint8)
        frame[0, box[1]:box[3], box[0]:box[2]] = 255
        crop = transform(frame)[0, 0].mean(0)                         # [S, S]
        patches = crop.reshape(8, 8, 8, 8).permute(0, 2, 1, 3).mean((2, 3))  # [rows, cols] mean brightness
        x, y = A.peak_in_frame(patches, geo)
        assert A.box_contains(box, x, y), (box, x, y)
        assert 0 < A.patch_box_fraction(box, geo, (8, 8)) < 0.1
    with pytest.raises(ValueError, match="train=False"):
        A.crop_geometry((64, 80), build_video_transform(64, MEAN, STD, train=True))


# ---- explanations and the figure ------------------------------------------------------------------
def test_group_frames():
    from apclip_core.interpret.explain import group_frames

    assert group_frames(["a", "a", "b", "a"]) == [(0, 2), (2, 3), (3, 4)]
    assert group_frames([1]) == [(0, 1)]
    assert group_frames([]) == []


@pytest.fixture(scope="module")
def explanation(tiny, bench_root):
    from apclip_core.data import annotations
    from apclip_core.embedded import benchmark
    from apclip_core.interpret import explain as interpret

    bank, attrs, groups = interpret.benchmark_bank(bench_root)
    rec = annotations.read_video_list(bench_root / "splits" / "val.txt")[5]
    boxes = benchmark.load_boxes(bench_root)[rec.path]
    return interpret.explain_video(tiny, bench_root / rec.path, bank, label=rec.label, boxes=boxes, num_frames=6), boxes


def test_explain_video_is_consistent(explanation, tiny):
    from apclip_core.model.maka import maka_similarity

    ex, all_boxes = explanation
    T = ex.num_frames
    assert T == 6 and ex.frames.shape == (6, 64, 80, 3)
    assert ex.maps["last"].shape == ex.maps["rollout"].shape == (6, 8, 8)
    np.testing.assert_array_equal(ex.boxes, all_boxes[ex.frame_indices])
    top = ex.top_prompts(2, 5)
    assert len(top) == 5 and [s for *_, s in top] == sorted((s for *_, s in top), reverse=True)
    best = np.nanmax(ex.cosine[2])
    assert top[0][2] == pytest.approx(best)
    spans = ex.groups(5)
    assert spans[0][0] == 0 and spans[-1][1] == T and all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    for start, end in spans:  # within a group the top-5 sets agree, across a boundary they differ
        sets = [{(c, j) for c, j, _ in ex.top_prompts(t)} for t in range(start, end)]
        assert all(s == sets[0] for s in sets)
    ch = ex.maka_choices()
    assert ch.class_index == int(np.argmax(ex.class_scores))
    # MAKA (eq. 6) from the choices: mean of each frame's pick and of each prompt's pick
    v2t = ch.cosine[np.arange(T), ch.frame_to_prompt].mean()
    t2v = ch.cosine[ch.prompt_to_frame, np.arange(len(ch.prompts))].mean()
    assert (v2t + t2v) / 2 == pytest.approx(ch.score, abs=1e-5)
    # and with maka.py: identity "frames" against prompts whose coordinates are the cosine columns
    cos = torch.tensor(ch.cosine)                                     # [T, Nt]
    assert maka_similarity(torch.eye(T)[None], cos.T[None])[0, 0] == pytest.approx(ch.score, abs=1e-5)
    x, y = ex.attention_peak(0, "last")
    assert 0 <= x < 80 and 0 <= y < 64
    with pytest.raises(ValueError, match="choose one of"):
        ex.attention_peak(0, "mean")


def test_figure5_png_pdf_and_interactive_view(explanation, tmp_path, monkeypatch):
    from apclip_core.interpret import figure5

    ex, _ = explanation
    fig = figure5.render_figure5(ex, tmp_path / "fig5.png", attention="last")
    n_groups = len(ex.groups())
    assert len(fig.axes) == 2 * ex.num_frames + n_groups + 2          # + MAKA panel and its colour bar
    png, pdf = tmp_path / "fig5.png", tmp_path / "fig5.pdf"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"
    assert b"/CreationDate" not in pdf.read_bytes()                    # no timestamp: re-renders leave git clean
    assert figure5.short_prompt("a video of blorping. The actor is red.") == "The actor is red."
    view = figure5.interactive_view(ex)
    slider = view.children[0].children[0]
    assert list(slider.options) == [(str(f), t) for t, f in enumerate(ex.frame_indices)]  # frame numbers
    slider.value = ex.num_frames - 1                                  # redraws without error
    assert slider.label == str(ex.frame_indices[-1])
    strip = figure5.attention_strip(ex)
    assert [ax.get_title() for ax in strip.axes] == [f"frame {f}" for f in ex.frame_indices]
    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    assert figure5.explore(ex) is None       # a returned widget would be drawn again as the cell's value
    kinds = [type(obj).__name__ for obj in shown]
    assert kinds.count(type(view).__name__) == 1 and kinds[-1] == "Figure"     # the slider once, then the strip


def test_compare_models_table_and_verdict_name_the_strongest_baseline(tiny, bench_root):
    from apclip_core.data import annotations
    from apclip_core.embedded import benchmark
    from apclip_core.interpret import explain as interpret

    bank, attrs, groups = interpret.benchmark_bank(bench_root)
    records = annotations.read_video_list(bench_root / "splits" / "val.txt")[::192]      # 8 videos
    models = {"a": tiny, "b": interpret.random_init_model(tiny, seed=1), "c": interpret.random_init_model(tiny, seed=2)}
    table, measures = interpret.compare_models(models, records, bench_root, bank, benchmark.load_boxes(bench_root),
                                               class_attributes=attrs, num_frames=4)
    assert list(table.columns) == ["a", "b", "c", "chance"]
    assert "pointing game (rollout)" in table.index and "top-1 prompt of true class" in table.index
    for name, ms in measures.items():
        assert ms.n_frames == 8 * 4
        assert table.loc["pointing game (rollout)", name] == ms.pointing["rollout"]
    best = max("bc", key=lambda n: measures[n].pointing["last"])
    margin = measures["a"].pointing["last"] - measures[best].pointing["last"]
    verdict = interpret.pointing_verdict(measures, "a", ["b", "c"], "last")
    assert f"best of 2 baselines ({best})" in verdict and f"margin {margin:+.3f}" in verdict
    with pytest.raises(ValueError, match="choose one of"):
        interpret.pointing_verdict(measures, "a", ["b"], "gradcam")
