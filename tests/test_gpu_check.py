"""`make gpu-check`, ready for a GPU: its steps run here on CPU (dry run, apclip-tiny), and the CUDA tests
it runs on a GPU live here too (skipped without one)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bf16_cuda_video_features_match_fp32_cpu():
    from apclip_core.model.video_clip import create_model

    torch.manual_seed(0)
    model = create_model("apclip-tiny", None).eval()
    video = torch.randn(2, 2, 4, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        cpu = model.encode_video(video)
        gpu = model.cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            cuda = gpu.encode_video(video.cuda()).float().cpu()
    assert torch.nn.functional.cosine_similarity(cpu, cuda, dim=-1).min() > 0.99


@pytest.mark.slow
def test_dry_run_goes_through_every_step_and_writes_one_results_file(tmp_path, bench_root):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = subprocess.run([sys.executable, "bench/gpu_check.py", "--dry-run", "--out", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=600, env={**os.environ, "TMPDIR": str(scratch)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert not list(scratch.glob("apclip_gpu_check_*"))  # its work folder (about 120 MB) is gone once it passed
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    steps = result["steps"]
    assert list(steps) == ["cuda_tests", "train", "eval", "bench_gpu", "measure"]
    assert steps["measure"]["status"] == "skipped"  # ViT-B/16 steps on CPU: test_plan measures apclip-tiny
    assert steps["cuda_tests"]["status"] in ("ok", "skipped")
    if not torch.cuda.is_available():
        assert "skipped" in steps["cuda_tests"].get("summary", "") or steps["cuda_tests"]["status"] == "skipped"
    # training went through torchrun and the real loader: measured steps, and evaluation of its checkpoint
    assert "torch.distributed.run" in steps["train"]["command"] and steps["train"]["samples_per_s"] > 0
    assert steps["eval"]["videos"] == 8 and steps["eval"]["failed_videos"] == 0 and steps["eval"]["videos_per_s"] > 0
    assert steps["bench_gpu"]["rows"]
    assert "| train | ok |" in (tmp_path / "gpu_check.md").read_text()


def test_without_a_gpu_the_real_check_refuses_and_points_at_the_dry_run(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the real check would run")
    done = subprocess.run([sys.executable, "bench/gpu_check.py", "--out", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--dry-run" in done.stderr and not list(tmp_path.iterdir())


def test_the_bench_gpu_figures_are_recorded_where_plan_reads_them(tmp_path):
    """gpu_check merges the bench's GPU section (and its evaluation step's rate) into latest.json, keeping the
    CPU sections, in the shape plan.throughput reads; a skipped section (no GPU) leaves the file alone."""
    sys.path.insert(0, str(REPO / "bench"))
    import gpu_check

    from apclip_core.paper import plan

    latest = tmp_path / "latest.json"
    cpu_sections = json.loads((REPO / "bench" / "results" / "latest.json").read_text())["sections"]
    latest.write_text(json.dumps({"quick": False, "sections": cpu_sections}))
    no_gpu = {"rows": [{"figure": "GPU training throughput", "status": "skipped"}], "details": {"device": None}}
    assert not gpu_check.record_for_plan(latest, no_gpu, None, frames=8)
    assert plan.throughput(latest).source.startswith("ASSUMED")
    measured = {"rows": [], "details": {"device": "NVIDIA H200", "e2e_videos_per_s": 40.0,
                                        "sizes": {"model": "ViT-B-16", "frames": 8, "batch": 32}}}
    assert gpu_check.record_for_plan(latest, measured, {"videos_per_s": 25.0}, frames=8)
    speed = plan.throughput(latest)
    assert speed.train_frames_per_s == 320.0 and speed.eval_frames_per_s == 25.0 * 8 * 4
    assert "NVIDIA H200" in speed.source and "batch 32/GPU" in speed.source
    assert set(json.loads(latest.read_text())["sections"]) == set(cpu_sections)  # the CPU figures are kept
