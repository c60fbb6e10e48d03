"""bench/: `run.py --quick` writes a complete results JSON + markdown, and the figures are sound.

No speed targets are asserted (the test machine is shared and noisy); what is asserted is that
every section ran and produced finite positive ratios, that the compared implementations agree
(MAKA vs its loop, trimmed vs 77-token text features, cached vs fresh features), and that the
memory probe really sees allocations.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
sys.path.insert(0, str(BENCH))

import maka_bench  # noqa: E402
import run as bench_run  # noqa: E402

STATUSES = {"PASS", "MISS", "info", "skipped", "n/a"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_out")
    env = dict(os.environ, APCLIP_PROGRESS="0", APCLIP_CACHE=str(out / "cache"))
    proc = subprocess.run([sys.executable, str(BENCH / "run.py"), "--quick", "--threads", "1", "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, json.loads((out / "latest.json").read_text()), (out / "latest.md").read_text()


@pytest.mark.slow
def test_quick_run_writes_every_section_with_finite_ratios(quick_run):
    _, result, markdown = quick_run
    assert list(result["sections"]) == list(bench_run.SECTIONS)
    machine = result["machine"]
    for key in ("date", "commit", "cpu", "torch", "threads", "load_average_start"):
        assert machine[key] not in (None, ""), key
    assert machine["threads"] == 1
    for name, section in result["sections"].items():
        assert section["rows"], name
        for r in section["rows"]:
            assert r["status"] in STATUSES, (name, r)
            if r["status"] in ("skipped", "n/a"):
                continue
            assert isinstance(r["value"], (int, float)) and math.isfinite(r["value"]) and r["value"] > 0, (name, r)
            if r["status"] in ("PASS", "MISS"):
                assert r["target"], r
    for title in (t for _, t in bench_run.SECTIONS.values()):
        assert title in markdown
    assert machine["commit"] in markdown and "| Figure | Value | Target | Status |" in markdown


@pytest.mark.slow
def test_quick_run_compared_implementations_agree(quick_run):
    _, result, _ = quick_run
    s = result["sections"]
    assert s["maka"]["details"]["loop_max_abs_diff"] < 1e-5
    pe = s["prompt_encoding"]["details"]
    assert pe["max_abs_diff_cached_vs_fresh"] == 0.0
    assert pe["max_abs_diff_trimmed_vs_77"] < 1e-4
    assert pe["token_length_max"] < 77          # trimming has something to save on these prompts
    # memory grows with MAKA's chunk (the bound it is checked against is per chunk)
    maka = s["maka"]["details"]["maka"]
    chunks = sorted(maka, key=int)
    assert maka[chunks[-1]]["peak_bytes"] > maka[chunks[0]]["peak_bytes"]
    # every decoded clip has the requested 8 frames, for every backend and variant
    for rate in s["decoding"]["details"]["rates"].values():
        assert rate["clips"] > 0 and all(shape[0] == 8 and shape[-1] == 3 for shape in rate["clip_shapes"])
    # the decoder table is checked on every container it names; auto and decord give the same features
    assert set(s["decoding"]["details"]["decoder_table"]) == {".avi", ".mp4", ".webm"}
    assert s["decoding"]["details"]["evaluation"]["features_identical"] is True
    if not torch.cuda.is_available():
        assert [r["status"] for r in s["gpu"]["rows"]] == ["skipped"]
        assert "no GPU" in s["gpu"]["rows"][0]["measured"]


def test_maka_agrees_with_plain_loop_on_bench_inputs():
    from apclip_core.model.maka import maka_similarity

    video, prompts, mask = maka_bench.make_inputs(3, 5, 7, 6, 16, ragged=True, seed=3)
    assert not mask.all()                      # ragged: the mask path is exercised
    ref = maka_bench.loop_maka(video, prompts, mask)
    for chunk in (1, 3, 64):
        assert torch.allclose(maka_similarity(video, prompts, mask, chunk_size=chunk), ref, atol=1e-6)
    floor = maka_bench.gemm_floor(video, prompts)
    assert floor.shape == (3 * 5, 7 * 6)


def test_peak_memory_probe_sees_an_allocation():
    # In its own process with the mmap threshold pinned, as the bench runs every case: inside a long
    # pytest process, freed memory already resident can serve the allocation and hide it from RSS.
    size = 64 * 2**20
    code = ("import torch, maka_bench; "
            f"print(*maka_bench.peak_delta(lambda: torch.ones({size // 4}).sum()), sep='|')")
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", PYTHONPATH=os.pathsep.join([str(BENCH), str(REPO)]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    peak, method = done.stdout.strip().split("|")
    assert size * 0.9 <= int(peak) <= size * 2, (peak, method, done.stderr[-2000:])


def test_unknown_section_is_refused_with_the_valid_names(capsys):
    with pytest.raises(SystemExit) as exc:
        bench_run.main(["--only", "nope"])
    assert exc.value.code == 2
    assert "maka" in capsys.readouterr().err


@pytest.mark.slow
def test_gpu_section_code_runs_on_cpu_with_tiny_sizes(tmp_path, monkeypatch):
    """The GPU measurement path (steps, FLOP count, loader, end-to-end) on CPU with apclip-tiny."""
    import gpu_throughput

    monkeypatch.setenv("APCLIP_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)
    out = gpu_throughput.run(quick=True, threads=1, workdir=tmp_path, device="cpu")
    d = out["details"]
    assert d["results"]["ac k=4"]["flops_per_step"] > d["results"]["single"]["flops_per_step"] > 0
    assert d["e2e_videos_per_s"] > 0 and d["loader_videos_per_s"] > 0
    assert d["limiter"] in ("decode + transforms (loader alone)", "host-to-device copy", "compute (fixed batch)")
    assert any("end-to-end" in r["figure"] and r["value"] > 0 for r in out["rows"])
