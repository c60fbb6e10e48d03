"""Evaluation on real decoded videos: multi-view, deterministic, failures reported and excluded."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from apclip_core.data.annotations import VideoRecord
from apclip_core.data.video_io import DECODER_BY_CONTAINER
from apclip_core.data.views import ViewSpec
from apclip_core.engine.evaluate import EvalResult, evaluate, score, sha256_file, summarize
from apclip_core.prompts.strategies import build_prompt_bank
from apclip_core.data.protocols import Split, bench_base_to_novel

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny_model():
    from apclip_core.model.video_clip import create_model

    torch.manual_seed(0)
    return create_model("apclip-tiny", None)


@pytest.fixture()
def split_with_a_broken_video(tmp_path, bench_root):
    """7 real benchmark videos (3 classes) + one file that is not a video, in a fresh root."""
    source = bench_base_to_novel(bench_root).eval[1]
    records = []
    for label in range(3):
        for rec in [r for r in source.records if r.label == label][:2 + (label == 0)]:
            (tmp_path / rec.path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source.root / rec.path, tmp_path / rec.path)
            records.append(VideoRecord(rec.path, label))
    (tmp_path / "videos" / "broken.mp4").write_bytes(b"this is not an mp4 file" * 50)
    records.insert(3, VideoRecord("videos/broken.mp4", 1))
    return Split("tiny_val", records, source.classnames[:3], tmp_path)


def test_failed_video_is_reported_counted_and_excluded(tiny_model, split_with_a_broken_video):
    split = split_with_a_broken_video
    bank = build_prompt_bank("set", split.classnames)
    kw = dict(similarity="maka", view=ViewSpec(4, 2, 2), batch_size=3)  # 8 videos: no full last batch
    result = evaluate(tiny_model, split, bank, record={"checkpoint_sha256": "abc"}, **kw)
    assert (result.n_videos, result.n_evaluated, result.n_failed) == (8, 7, 1)
    assert result.failed[0]["path"] == "videos/broken.mp4" and result.failed[0]["error"]
    p = result.protocol
    assert (p["frames"], p["temporal_views"], p["spatial_crops"], p["views"]) == (4, 2, 2, 4)
    assert (p["prompt_strategy"], p["similarity"], p["n_classes"], p["n_videos"]) == ("set", "maka", 3, 8)
    assert p["prompts_per_class"] == [28, 28] and p["checkpoint_sha256"] == "abc"
    # which decoder read each container of the split (the benchmark writes both)
    assert p["video_backend"] == "auto"
    assert p["decoders"] == {ext: DECODER_BY_CONTAINER[ext] for ext in (".avi", ".mp4")}
    assert 0 <= result.top1 <= 100 and result.top5 == 100.0  # 3 classes: every class is in the top 5
    # accuracy is over the 7 decoded videos: a multiple of 100/7
    assert round(result.top1 * 7 / 100, 6) == round(result.top1 * 7 / 100)
    again = evaluate(tiny_model, split, bank, record={"checkpoint_sha256": "abc"}, **kw)
    assert (again.top1, again.per_class_top1) == (result.top1, result.per_class_top1)  # deterministic
    json.dumps(result.to_json())


def test_views_enter_one_similarity(tiny_model, split_with_a_broken_video):
    """mean similarity over 1 view vs 4 views differ (frames of all views are pooled together)."""
    split = split_with_a_broken_video
    bank = build_prompt_bank("single", split.classnames)
    one = evaluate(tiny_model, split, bank, similarity="mean", view=ViewSpec(4))
    assert one.protocol["views"] == 1 and one.n_failed == 1


def test_score_and_summary_arithmetic():
    logits = torch.tensor([[3.0, 1.0], [0.0, 2.0], [5.0, 0.0], [9.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 0])
    ok = torch.tensor([True, True, True, False])
    r = score("x_base_val", ["a", "b"], logits, labels, ok, [{"path": "v", "error": "bad"}])
    assert (r.top1, r.n_evaluated, r.n_failed, r.per_class_top1) == (pytest.approx(200 / 3), 3, 1,
                                                                    {"a": 100.0, "b": 50.0})
    mk = lambda name, top1: EvalResult(name, top1, 100.0, 1, 1, 0, [], 1, {})
    s = summarize([mk("hmdb_base_val", 80.0), mk("hmdb_novel_val", 40.0)])
    assert s["hm"] == pytest.approx(2 * 80 * 40 / 120)
    s = summarize([mk("hmdb51_val1", 50.0), mk("hmdb51_val2", 52.0), mk("hmdb51_val3", 54.0), mk("k600_split1", 1.0)])
    assert s["hmdb51_val_mean"] == pytest.approx(52.0) and s["hmdb51_val_std"] == pytest.approx(2.0)
    assert "k600_split_mean" not in s and "hm" not in s


def test_prompt_bank_strategies_and_errors(bench_root):
    names = bench_base_to_novel(bench_root).eval[1].classnames
    bank = build_prompt_bank("action_conditioned", names, REPO / "prompts" / "apclip_bench.json")
    assert len(bank.prompts[0]) == 36 and bank.prompts[0][0].startswith("a video of")
    with pytest.raises(ValueError, match="valid: single, set, action_conditioned"):
        build_prompt_bank("fancy", names)
    with pytest.raises(ValueError, match="needs a prompt file"):
        build_prompt_bank("customized", names)


@pytest.mark.slow
def test_cli_evaluates_a_checkpoint_on_a_protocol(tmp_path, tiny_model, bench_root):
    from apclip_core.model.video_clip import save_checkpoint

    ckpt = save_checkpoint(tiny_model, tmp_path / "checkpoint.pt")
    out = tmp_path / "result.json"
    cmd = [sys.executable, "-m", "apclip_core", "evaluate", "--checkpoint", str(ckpt), "--protocol",
           "bench_base_to_novel", "--protocol-arg", f"root={bench_root}", "--prompts", "prompts/apclip_bench.json",
           "--frames", "2", "--temporal-views", "1", "--spatial-crops", "1", "--batch-size", "32", "--out", str(out)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={"APCLIP_PROGRESS": "0",
                                                                               **__import__("os").environ})
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(out.read_text())
    assert [r["split"] for r in data["results"]] == ["bench_base_val", "bench_novel_val"]
    assert {"bench_base_val", "bench_novel_val", "hm"} <= set(data["summary"])
    rec = data["results"][1]["protocol"]
    assert rec["checkpoint_sha256"] == sha256_file(ckpt) and rec["prompt_strategy"] == "action_conditioned"
    assert rec["model"] == "apclip-tiny" and rec["n_videos"] == data["results"][1]["n_videos"] > 0
    assert not math.isnan(data["summary"]["hm"])


def test_default_result_names_carry_dataset_protocol_and_seed(splits_root):
    """One checkpoint evaluated on HMDB-51 and on UCF-101 (or on two seeds) must not share a file."""
    from apclip_core.data.protocols import load_protocol
    from apclip_core.engine.evaluate import default_result_name

    names = {}
    for dataset, seed in (("hmdb51", 1), ("ucf101", 1), ("hmdb51", 2)):
        args = {"dataset": dataset, "seed": seed, "splits_root": str(splits_root)}
        splits = load_protocol("base_to_novel", args).eval
        names[dataset, seed] = default_result_name("base_to_novel", args, splits, "action_conditioned", "maka")
    assert names["hmdb51", 1] == "eval_hmdb51_base_to_novel_seed1_action_conditioned_maka.json"
    assert len(set(names.values())) == 3 and names["ucf101", 1].startswith("eval_ucf101_")


def test_a_video_several_splits_list_is_encoded_once_with_the_same_numbers(tiny_model, bench_root, monkeypatch):
    """K600's three zero-shot splits share most videos (issue 23, item 8): evaluate_protocol encodes each once,
    scoring it in every split that lists it, and every split's result is the one it gets alone."""
    from dataclasses import replace

    from apclip_core.engine.config import load_config
    from apclip_core.engine.evaluate import evaluate_protocol

    source = bench_base_to_novel(bench_root).eval[1]
    a = replace(source, name="bench_novel_a", records=source.records[:4])
    b = replace(source, name="bench_novel_b", records=source.records[2:6])  # 2 videos in both
    cfg = load_config("bench_base2novel", frames=2, temporal_views=1, spatial_crops=1, eval_batch_size=4,
                      num_workers=0)
    encoded = []
    original = type(tiny_model).encode_video
    monkeypatch.setattr(type(tiny_model), "encode_video",
                        lambda self, video, **kw: encoded.append(video.shape[0]) or original(self, video, **kw))
    together = evaluate_protocol(tiny_model, [a, b], cfg)
    assert sum(encoded) == 6  # distinct videos, not 4 + 4
    alone = [evaluate_protocol(tiny_model, [s], cfg)[0] for s in (a, b)]
    for t, s in zip(together, alone):
        assert (t.top1, t.top5, t.per_class_top1) == (s.top1, s.top5, s.per_class_top1)
