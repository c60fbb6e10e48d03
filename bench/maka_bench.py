"""MAKA against mean pooling (time, peak memory) at Kinetics-400 scale, and against a plain loop.

Issue figure 1. Sizes (full run): 64 videos x 32 frame-views, 400 classes x 36 prompts, D = 512,
evaluation (no gradient), CPU.

* time: maka_similarity / mean_pool_similarity on the same inputs (median of repeats).
  MAKA multiplies every frame with every prompt (B*Nv*C*Nt*D multiply-adds, 19 G at K400 scale)
  where mean pooling multiplies one vector per video with one per class (B*C*D, 13 M): no
  implementation of MAKA can come near mean pooling's time. The second timing figure therefore
  compares MAKA with the single matrix product it cannot avoid (frames x all prompts, `gemm`): that
  ratio says how close the implementation is to the arithmetic floor.
* memory: each case runs in its own process; after one warm-up call, peak = VmHWM (peak RSS,
  reset through /proc/self/clear_refs just before the call) minus the RSS before the call, so
  inputs, the interpreter and code pages are not counted (fallback where /proc is missing: getrusage max-RSS delta).
  glibc's mmap threshold is pinned (MALLOC_MMAP_THRESHOLD_) so freed tensors leave RSS at once.
  The bound checked: peak <= 3 x one chunk's [B, Nv, chunk, Nt] float32 similarity tensor + 16 MiB
  (the chunk, its masked copy and reductions), so the memory follows chunk_size, not C.
* loop: a plain Python loop over (video, class) pairs, each a [Nv, Nt] product over the class's
  real prompts, on a small ragged case only (it is slow); MAKA must agree with it.
"""
from __future__ import annotations

import argparse
import gc
import json
import re
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from common import fmt_bytes, fmt_s, ratio, row, run_child, timeit

FULL = dict(B=64, Nv=32, C=400, Nt=36, D=512, chunks=(16, 64, 400), repeats=3)
QUICK = dict(B=16, Nv=8, C=64, Nt=36, D=128, chunks=(8, 64), repeats=2)
SMALL_FULL = dict(B=8, Nv=16, C=51, Nt=36, D=512, repeats=3)
SMALL_QUICK = dict(B=2, Nv=4, C=6, Nt=5, D=16, repeats=2)
DEFAULT_CHUNK = 64


def make_inputs(B: int, Nv: int, C: int, Nt: int, D: int, *, ragged: bool, seed: int = 0):
    """L2-normalised random features; ragged=True gives classes between Nt//2 and Nt prompts."""
    g = torch.Generator().manual_seed(seed)
    video = F.normalize(torch.randn(B, Nv, D, generator=g), dim=-1)
    prompts = F.normalize(torch.randn(C, Nt, D, generator=g), dim=-1)
    if ragged:
        counts = torch.randint(max(1, Nt // 2), Nt + 1, (C,), generator=g)
        counts[0] = Nt
    else:
        counts = torch.full((C,), Nt)
    mask = torch.arange(Nt)[None] < counts[:, None]
    prompts = torch.where(mask[..., None], prompts, 0.0)
    return video, prompts, mask


def loop_maka(video: torch.Tensor, prompts: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Eqs. (3)-(6) one (video, class) pair at a time: the obvious implementation MAKA replaces."""
    out = torch.empty(video.shape[0], prompts.shape[0])
    for b in range(video.shape[0]):
        for c in range(prompts.shape[0]):
            sim = video[b] @ prompts[c][mask[c]].T             # [Nv, n_c]
            out[b, c] = 0.5 * (sim.max(dim=1).values.mean() + sim.max(dim=0).values.mean())
    return out


def gemm_floor(video: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
    """The one product MAKA needs: every frame x every prompt, [B*Nv, C*Nt] (no reductions)."""
    return video.reshape(-1, video.shape[-1]) @ prompts.reshape(-1, prompts.shape[-1]).T


# ---- child process: one case, time + peak memory ---------------------------------------------------
def _rss_now() -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) * 1024


def _hwm() -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", text).group(1)) * 1024


def peak_delta(fn) -> tuple[int, str]:
    """Peak extra resident memory of one fn() call, bytes, and the method used."""
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS high-water mark
        before = _rss_now()
        fn()
        return _hwm() - before, "VmHWM after clear_refs reset minus VmRSS before"
    except OSError:
        from common import max_rss_bytes
        before = max_rss_bytes()
        fn()
        return max_rss_bytes() - before, "getrusage max-RSS delta"


def child_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--case", choices=("mean", "maka", "gemm"), required=True)
    for k in ("B", "Nv", "C", "Nt", "D", "chunk", "repeats", "threads"):
        p.add_argument(f"--{k}", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from apclip_core.model.maka import maka_similarity, mean_pool_similarity

    video, prompts, mask = make_inputs(a.B, a.Nv, a.C, a.Nt, a.D, ragged=False)
    fn = {"mean": lambda: mean_pool_similarity(video, prompts, mask),
          "maka": lambda: maka_similarity(video, prompts, mask, chunk_size=a.chunk),
          "gemm": lambda: gemm_floor(video, prompts)}[a.case]
    with torch.no_grad():
        fn()                                   # warm-up: code pages and thread pools become resident
        peak, method = peak_delta(fn)          # then the call's own peak (freed tensors leave RSS at once)
        t = timeit(fn, repeats=a.repeats, warmup=0)
    print(json.dumps({"case": a.case, "chunk": a.chunk, "peak_bytes": peak, "memory_method": method, **t}))
    return 0


# ---- section -------------------------------------------------------------------------------------
def run(*, quick: bool, threads: int, workdir: Path) -> dict:
    from apclip_core.model.maka import maka_similarity, mean_pool_similarity

    s = QUICK if quick else FULL
    dims = ["--B", str(s["B"]), "--Nv", str(s["Nv"]), "--C", str(s["C"]), "--Nt", str(s["Nt"]), "--D", str(s["D"]),
            "--repeats", str(s["repeats"])]
    me = Path(__file__)
    mean = run_child(me, ["--case", "mean", *dims], threads=threads)
    gemm = run_child(me, ["--case", "gemm", *dims], threads=threads)
    chunks = sorted(set(s["chunks"]) | ({DEFAULT_CHUNK} if not quick else set()))
    maka = {c: run_child(me, ["--case", "maka", "--chunk", str(c), *dims], threads=threads) for c in chunks}
    default = DEFAULT_CHUNK if DEFAULT_CHUNK in maka else chunks[0]
    size = f"{s['B']} videos x {s['Nv']} frames, {s['C']} classes x {s['Nt']} prompts, D={s['D']}"
    macs = s["B"] * s["Nv"] * s["C"] * s["Nt"] * s["D"]
    t_maka, t_mean, t_gemm = maka[default]["median_s"], mean["median_s"], gemm["median_s"]
    r_mean = ratio(t_maka, t_mean)
    rows = [
        row(f"MAKA / mean-pool time ({size}, chunk {default})", r_mean, target="<= 1.5x",
            ok=r_mean is not None and r_mean <= 1.5,
            measured=f"MAKA {fmt_s(t_maka)} vs mean {fmt_s(t_mean)}",
            note=f"MAKA does Nv*Nt = {s['Nv'] * s['Nt']}x the multiply-adds of mean pooling "
                 f"({macs / 1e9:.1f} G MACs, {2 * macs / t_maka / 1e9:.0f} GFLOP/s): arithmetic-bound, see next row"),
    ]
    r_gemm = ratio(t_maka, t_gemm)
    rows.append(row("MAKA / its unavoidable frames x prompts matmul", r_gemm, target="info (1.0 = floor)",
                    measured=f"MAKA {fmt_s(t_maka)} vs matmul {fmt_s(t_gemm)}",
                    note="how close the chunked implementation is to the arithmetic floor"))
    bounds = {}
    for c, res in maka.items():
        chunk_bytes = s["B"] * s["Nv"] * min(c, s["C"]) * s["Nt"] * 4
        bound = 3 * chunk_bytes + 16 * 2**20
        bounds[c] = bound
        r = ratio(res["peak_bytes"], bound) if res["peak_bytes"] > 0 else None
        rows.append(row(f"MAKA peak memory / bound, chunk {c}", r if r is not None else 0.0,
                        target="<= 1.0 (3 chunk tensors + 16 MiB)", ok=res["peak_bytes"] <= bound,
                        measured=f"peak {fmt_bytes(res['peak_bytes'])}, bound {fmt_bytes(bound)}, "
                                 f"{fmt_s(res['median_s'])}",
                        note=f"mean-pool peak {fmt_bytes(mean['peak_bytes'])}"))
    if len(maka) >= 2:
        lo, hi = min(maka), max(maka)
        r = ratio(max(maka[hi]["peak_bytes"], 1), max(maka[lo]["peak_bytes"], 1))
        rows.append(row(f"MAKA peak memory chunk {hi} / chunk {lo}", r, target="info (grows with chunk)",
                        measured=f"{fmt_bytes(maka[hi]['peak_bytes'])} vs {fmt_bytes(maka[lo]['peak_bytes'])}"))

    # plain loop, small ragged case, in this process (time only) + agreement
    sm = SMALL_QUICK if quick else SMALL_FULL
    video, prompts, mask = make_inputs(sm["B"], sm["Nv"], sm["C"], sm["Nt"], sm["D"], ragged=True, seed=1)
    with torch.no_grad():
        ref = loop_maka(video, prompts, mask)
        got = maka_similarity(video, prompts, mask, chunk_size=DEFAULT_CHUNK)
        t_loop = timeit(lambda: loop_maka(video, prompts, mask), repeats=sm["repeats"])
        t_vec = timeit(lambda: maka_similarity(video, prompts, mask, chunk_size=DEFAULT_CHUNK), repeats=sm["repeats"])
        t_mean_small = timeit(lambda: mean_pool_similarity(video, prompts, mask), repeats=sm["repeats"])
    max_diff = float((ref - got).abs().max())
    small = f"{sm['B']} x {sm['Nv']} frames, {sm['C']} classes x <= {sm['Nt']} ragged prompts, D={sm['D']}"
    r_loop = ratio(t_loop["median_s"], t_vec["median_s"])
    rows.append(row(f"plain loop / MAKA time ({small})", r_loop, target="> 1x (info)",
                    ok=None, measured=f"loop {fmt_s(t_loop['median_s'])} vs MAKA {fmt_s(t_vec['median_s'])}",
                    note=f"max |MAKA - loop| = {max_diff:.2e}"))
    rows.append(row("MAKA / mean-pool time, small case", ratio(t_vec["median_s"], t_mean_small["median_s"]),
                    measured=f"MAKA {fmt_s(t_vec['median_s'])} vs mean {fmt_s(t_mean_small['median_s'])}"))
    return {"rows": rows,
            "details": {"sizes": s, "small_sizes": sm, "mean": mean, "gemm": gemm,
                        "maka": {str(c): v for c, v in maka.items()},
                        "memory_bounds": {str(c): b for c, b in bounds.items()},
                        "loop": t_loop, "maka_small": t_vec, "mean_small": t_mean_small,
                        "loop_max_abs_diff": max_diff, "macs": macs,
                        "memory_method": mean["memory_method"]}}


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
