"""Open-vocabulary classification of one real video file from a list of names."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import importlib

classify_mod = importlib.import_module("apclip_core.classify")  # the module (apclip_core.classify is the function)
from apclip_core.model.video_clip import create_model, save_checkpoint
from apclip_core.paths import PROJECT_ROOT
from fake_openai_server import FakeOpenAIServer

BENCH_PROMPTS = PROJECT_ROOT / "prompts" / "apclip_bench.json"


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return create_model("apclip-tiny", pretrained=None)


@pytest.fixture(scope="module")
def video(bench_root):
    return sorted((bench_root / "videos" / "chorving_slowly").glob("*.avi"))[0]


def test_ranks_every_action_with_shipped_prompts_and_says_when_it_falls_back(tiny_model, video):
    actions = ["chorving slowly", "blorping upward", "making sushi"]
    result = classify_mod.classify(video, actions, model=tiny_model, prompt_files=[BENCH_PROMPTS],
                                   generate=False, num_frames=4, temporal_views=2, spatial_crops=1)
    assert sorted(a for a, _ in result.ranking) == sorted(actions)
    scores = [s for _, s in result.ranking]
    assert scores == sorted(scores, reverse=True)
    assert result.prompt_sources["chorving slowly"] == "shipped: apclip_bench.json"
    assert result.prompt_sources["making sushi"].startswith("single prompt")
    assert any("making sushi" in note for note in result.notes)
    assert any("OPENAI_API_KEY" in note and "--base-url" in note for note in result.notes)  # how to do better
    assert any("embedded benchmark's toy" in note for note in result.notes)                 # the tiny CLIP
    # one row per frame over all views, each the best prompts first
    assert len(result.per_frame) == 4 * 2
    for frame in result.per_frame:
        assert len(frame) == 5
        assert [s for *_, s in frame] == sorted((s for *_, s in frame), reverse=True)
    # the prompts shown are the bank's: action-conditioned ones carry the class prefix
    shown = {p for frame in result.per_frame for _, p, _ in frame}
    assert all(p.startswith("a video of ") for p in shown)


def test_mean_pooling_and_maka_give_different_scores(tiny_model, video):
    kwargs = dict(model=tiny_model, prompt_files=[BENCH_PROMPTS], generate=False, num_frames=4)
    maka = dict(classify_mod.classify(video, ["chorving slowly", "blorping upward"], similarity="maka", **kwargs).ranking)
    mean = dict(classify_mod.classify(video, ["chorving slowly", "blorping upward"], similarity="mean", **kwargs).ranking)
    assert maka.keys() == mean.keys() and maka != mean
    with pytest.raises(ValueError, match="maka"):
        classify_mod.classify(video, ["a", "b"], similarity="max", **kwargs)


def test_unknown_names_get_generated_prompts_from_an_openai_compatible_server(tiny_model, video, tmp_path, monkeypatch):
    monkeypatch.setenv("APCLIP_CACHE", str(tmp_path))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAIServer() as server:
        result = classify_mod.classify(
            video, ["chorving slowly", "zorbing downhill"], model=tiny_model, prompt_files=[BENCH_PROMPTS],
            num_frames=4, generator_options={"base_url": server.base_url, "model": "local-model"})
        assert server.count("zorbing downhill") == 3          # one request per LLM-prompt
        assert server.count("chorving slowly") == 0                  # known names are not asked
    assert result.prompt_sources["zorbing downhill"] == "generated"
    assert not [n for n in result.notes if "single prompt" in n or "OPENAI_API_KEY" in n]  # no fallback note
    assert f"prompt files searched, first match wins: {BENCH_PROMPTS}" in result.notes


def test_command_line_ranks_actions_for_a_checkpoint(tiny_model, video, tmp_path):
    checkpoint = save_checkpoint(tiny_model, tmp_path / "model.safetensors")
    out = subprocess.run([sys.executable, "-m", "apclip_core", "classify", str(video), "--actions", "chorving slowly",
                          "blorping upward", "--checkpoint", str(checkpoint), "--prompts", str(BENCH_PROMPTS),
                          "--frames", "4", "--no-generate"],
                         capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT)
    assert out.returncode == 0, out.stderr
    assert "1. " in out.stdout and "chorving slowly" in out.stdout and "blorping upward" in out.stdout
    missing = subprocess.run([sys.executable, "-m", "apclip_core", "classify", str(tmp_path / "nope.mp4"),
                              "--actions", "a", "b"], capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    assert missing.returncode == 2 and "video not found" in missing.stderr


def test_names_match_across_spellings_and_near_misses_are_suggested():
    bank, sources = classify_mod.build_prompt_bank(["juggling_balls", "juggling", "riding a bike"], generate=False)
    assert sources["juggling_balls"] == "shipped: k400.json"            # K-400's 'juggling balls', first in order
    assert "juggling balls (k400.json)" in sources["juggling"]           # a near miss says what was meant
    bank, sources = classify_mod.build_prompt_bank(["riding a bicycle"], generate=False,
                                                   prompt_files=[PROJECT_ROOT / "prompts" / "hmdb51.json"])
    assert "ride bike (hmdb51.json)" in sources["riding a bicycle"]
    assert classify_mod.close_shipped_names("fly a kite")[0] == "flying kite (k400.json)"
    assert classify_mod.close_shipped_names("proving a theorem") == []   # no far-fetched suggestions


def test_help_shows_defaults_and_how_prompts_are_found(capsys):
    with pytest.raises(SystemExit):
        classify_mod.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "classify" in text and "(default: ViT-B-16)" in text
    assert "similarity (default: the one matching the video pooling a converted checkpoint records, e.g. ViFi-CLIP's " \
           "mean_raw; else maka) --frames" in text
    assert "OPENAI_API_KEY" in text and "--base-url" in text


