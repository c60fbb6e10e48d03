"""Encode once, score many: evaluate_variants and the per-frame feature cache (engine.feature_cache)."""
from __future__ import annotations

import os
import shutil

import pytest
import torch

from apclip_core.data.annotations import VideoRecord
from apclip_core.data.protocols import Split, bench_base_to_novel
from apclip_core.data.views import ViewSpec
from apclip_core.engine.evaluate import evaluate, evaluate_variants
from apclip_core.engine.feature_cache import FrameFeatureCache
from apclip_core.prompts.strategies import build_prompt_bank

VIEW = ViewSpec(4, 1, 2)


@pytest.fixture()
def tiny_model():
    from apclip_core.model.video_clip import create_model

    torch.manual_seed(0)
    return create_model("apclip-tiny", None).eval()


@pytest.fixture()
def split(tmp_path, bench_root):
    """6 benchmark videos of 3 classes, copied so that the test may touch them, plus a broken file."""
    source = bench_base_to_novel(bench_root).eval[1]
    records = []
    for label in range(3):
        for rec in [r for r in source.records if r.label == label][:2]:
            (tmp_path / rec.path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source.root / rec.path, tmp_path / rec.path)
            records.append(VideoRecord(rec.path, label))
    (tmp_path / "videos" / "broken.mp4").write_bytes(b"not a video" * 40)
    records.append(VideoRecord("videos/broken.mp4", 2))
    return Split("cache_val", records, source.classnames[:3], tmp_path)


def count_encodes(model):
    """Counts the clips that go through the image tower."""
    calls = {"videos": 0}
    original = model.encode_video

    def counting(video, **kw):
        calls["videos"] += video.shape[0]
        return original(video, **kw)
    model.encode_video = counting
    return calls


def test_variants_share_one_encoding_and_equal_separate_evaluations(tiny_model, split):
    variants = [(build_prompt_bank(s, split.classnames), sim) for s in ("single", "set") for sim in ("mean", "maka")]
    variants.append((variants[0][0], "mean_raw"))             # ViFi-CLIP's pooling, from the same (raw) features
    separate = [evaluate(tiny_model, split, bank, similarity=sim, view=VIEW) for bank, sim in variants]
    calls = count_encodes(tiny_model)
    together = evaluate_variants(tiny_model, split, variants, view=VIEW, batch_size=4)
    assert calls["videos"] == len(split.records)               # every video once, for five variants
    for a, b in zip(separate, together):
        assert (a.top1, a.top5, a.per_class_top1, a.failed) == (b.top1, b.top5, b.per_class_top1, b.failed)
        assert b.protocol["encoding_shared_by"] == 5 and b.n_failed == 1


def test_cache_hits_and_every_key_part_invalidates(tiny_model, split, tmp_path):
    bank = build_prompt_bank("single", split.classnames)
    cache = FrameFeatureCache(tmp_path / "cache")
    first = evaluate(tiny_model, split, bank, similarity="maka", view=VIEW, feature_cache=cache)
    assert first.protocol["videos_encoded"] == 7 and first.n_failed == 1
    calls = count_encodes(tiny_model)

    def encoded(**kw):
        result = evaluate(tiny_model, split, bank, similarity="maka", **{"view": VIEW, "feature_cache": cache, **kw})
        return result, result.protocol["videos_encoded"]

    again, n = encoded()
    assert n == 1 and again.top1 == first.top1      # only the broken video is tried again (failures not cached)
    _, n = encoded(feature_cache=FrameFeatureCache(tmp_path / "cache"))   # another process: from disk
    assert n == 1
    _, n = encoded(view=ViewSpec(4, 2, 2))           # sampling: more temporal views
    assert n == 7
    _, n = encoded(view=ViewSpec(4, 1, 1))           # view: spatial crops
    assert n == 7
    video = split.root / split.records[0].path
    os.utime(video, ns=(video.stat().st_atime_ns, video.stat().st_mtime_ns + 10**9))  # the file changed
    _, n = encoded()
    assert n == 2
    with torch.no_grad():                            # the text tower does not change video features ...
        tiny_model.clip.ln_final.weight.mul_(1.5)
    _, n = encoded()
    assert n == 1
    with torch.no_grad():                            # ... the image tower does
        tiny_model.clip.visual.proj.mul_(1.5)
    changed, n = encoded()
    assert n == 7
    assert calls["videos"] == 1 + 1 + 7 + 7 + 2 + 1 + 7   # what "videos_encoded" said is what went through the tower
    tiny_model.config["mean"] = [0.5, 0.5, 0.5]      # pixel normalisation is part of the key
    _, n = encoded()
    assert n == 7
