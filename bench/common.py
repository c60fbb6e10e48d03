"""Shared helpers of the benchmark scripts: timing, result rows, child processes for memory.

Every figure of `make bench` is a *ratio* of two things measured in the same run (so a busy or
slow machine moves both sides), reported next to its target as PASS / MISS, or "info" where the
issue sets no target. Timings: warm-up first, then the median of `repeats` runs.
"""
from __future__ import annotations

import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent


def timeit(fn: Callable[[], object], *, repeats: int = 3, warmup: int = 1, keep: Optional[list] = None) -> dict:
    """Median / min / all wall-clock seconds of fn() after `warmup` untimed calls.
    keep: a list that receives the last call's return value (to check results without another call)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - tic)
    if keep is not None:
        keep.append(value)
    return {"median_s": statistics.median(times), "min_s": min(times), "times_s": times}


def ratio(numerator: float, denominator: float) -> Optional[float]:
    """numerator / denominator, or None when it is not a finite positive number."""
    if not denominator or not math.isfinite(numerator) or not math.isfinite(denominator):
        return None
    value = numerator / denominator
    return value if math.isfinite(value) and value > 0 else None


def row(figure: str, value: Optional[float], *, target: str = "", ok: Optional[bool] = None,
        measured: str = "", note: str = "", unit: str = "x") -> dict:
    """One table row. ok=None means the issue sets no target here (status "info")."""
    status = "info" if ok is None else ("PASS" if ok else "MISS")
    return {"figure": figure, "value": value, "unit": unit, "target": target, "status": status,
            "measured": measured, "note": note}


def skipped(figure: str, why: str, *, status: str = "skipped") -> dict:
    """A row without a number: "skipped" (could not run here) or "n/a" (does not apply)."""
    return {"figure": figure, "value": None, "unit": "", "target": "", "status": status, "measured": why,
            "note": ""}


def max_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def run_child(module_path: Path, args: list[str], *, threads: int, timeout: float = 600) -> dict:
    """Run `python module_path args...` in a fresh process and parse the JSON of its last stdout line.

    Used for peak-memory figures: each case gets its own process, so getrusage's max RSS of that
    process is the case's peak and nothing allocated by another case can hide in it.
    """
    # A fixed glibc mmap threshold: large tensors are mmapped and returned to the OS when freed, so
    # RSS follows live memory (the dynamic threshold would keep freed blocks resident in the heap).
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), APCLIP_PROGRESS="0",
               MALLOC_MMAP_THRESHOLD_="131072")
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), str(BENCH_DIR), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, str(module_path), *args, "--threads", str(threads)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{module_path.name} {' '.join(args)} failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError(f"{module_path.name} {' '.join(args)} printed no result; stderr:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def fmt_s(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} us"


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
