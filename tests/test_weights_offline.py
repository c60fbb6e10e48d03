"""Weights that are neither cached nor downloadable: one message within seconds, the same in every entry
point. The real path, offline: nothing is mocked; the hub endpoint is a closed local port (as a machine
without network sees it) or HF_HUB_OFFLINE=1, and the cache an empty HF_HOME."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def offline_env(hf_home: Path, **extra) -> dict:
    return {**os.environ, "HF_HOME": str(hf_home), "HF_ENDPOINT": "http://127.0.0.1:9", "APCLIP_PROGRESS": "0",
            "PYTHONPATH": str(REPO), **extra}


def assert_the_one_message(text: str, hf_home: Path) -> None:
    assert "ViT-B-16 / 'openai'" in text and "timm/vit_base_patch16_clip_224.openai" in text
    assert str(hf_home / "hub") in text                          # where the cache is
    assert "HF_HOME=" in text and "HF_HUB_OFFLINE=1" in text     # how to fetch once, then run offline
    assert "local weights file" in text and "--quick-gelu" in text
    assert "Traceback" not in text


@pytest.fixture(scope="module")
def bench(bench_root):
    return bench_root


@pytest.mark.parametrize("entry", ["evaluate", "classify", "train"])
def test_every_entry_point_says_the_same_within_seconds(entry, tmp_path, bench):
    video = sorted((bench / "videos").rglob("*.avi"))[0]
    args = {"evaluate": ["evaluate", "--model", "ViT-B-16", "--protocol", "bench_base_to_novel"],
            "classify": ["classify", str(video), "--actions", "a", "b", "--no-generate"],
            "train": ["train", "--config", "bench_base2novel", "--allow-cpu", "--set", "model_name=ViT-B-16",
                      "pretrained=openai", f"output_dir={tmp_path / 'run'}"]}[entry]
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "apclip_core", *args], cwd=REPO, capture_output=True, text=True,
                          env=offline_env(tmp_path / "hf"), timeout=120)
    seconds = time.monotonic() - start
    assert done.returncode == 1, done.stderr[-3000:]  # a failure, not a usage error
    assert "Traceback" not in done.stderr
    assert_the_one_message(done.stderr, tmp_path / "hf")
    assert "could not be reached" in done.stderr
    assert seconds < 30, f"{entry} took {seconds:.0f} s to say the weights are unavailable (open_clip alone: ~50 s)"


def test_preflight_and_hf_hub_offline_use_the_same_words(tmp_path, monkeypatch):
    import open_clip  # noqa: F401  (imported before the clock starts: the check itself is timed)

    from apclip_core.paper.preflight import _weights_problem

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    start = time.monotonic()
    message = _weights_problem("ViT-B-16", "openai")
    assert time.monotonic() - start < 2  # offline: the network is not even asked
    assert_the_one_message(message, tmp_path / "hf")
    assert "HF_HUB_OFFLINE is set" in message
