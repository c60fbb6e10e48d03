"""`make bench`: run the benchmark sections and write bench/results/latest.{json,md}.

    python bench/run.py                  # every section, full sizes (CPU: a few minutes)
    python bench/run.py --quick          # tiny sizes (tests: well under a minute)
    python bench/run.py --only maka --only decoding
    python bench/run.py --threads 2 --out /tmp/bench --keep-workdir

Sections (one module each, all with run(quick=, threads=, workdir=) -> {"rows", "details"}):
  maka             MAKA vs mean pooling (time, peak memory) at K400 scale, vs a plain loop
  prompt_encoding  cached prompt features vs first encode; trimmed text length vs 77 tokens
  train_step       action-conditioned prompts (per-step budget k) vs the single prompt
  decoding         decord vs PyAV clips/core-second, before/after re-encoding to short side 256
  gpu              ViT-B/16 training videos/s, MFU, end-to-end with data loading (CUDA only)
  encode_once      six prompt x similarity variants from one video encoding vs one variant; feature cache

Every figure is a ratio of two measurements of the same run, shown with its target and
PASS / MISS ("info" where the issue sets no target). The header records machine, date, commit,
torch version, threads and the load average, because timings on a busy machine are noise.
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
for p in (str(BENCH_DIR), str(PROJECT_ROOT)):
    if p not in sys.path:
        sys.path.insert(0, p)

from apclip_core import atomic  # noqa: E402  (after the path set-up above)

SECTIONS = {  # name -> (module, title)
    "maka": ("maka_bench", "1. MAKA vs mean pooling (CPU)"),
    "prompt_encoding": ("prompt_encoding", "2. Prompt-bank encoding"),
    "train_step": ("train_step", "3. Training step: action-conditioned prompts vs single prompt"),
    "decoding": ("decoding", "4. Video decoding"),
    "gpu": ("gpu_throughput", "5. GPU training throughput"),
    "encode_once": ("encode_once", "6. Evaluation: encode once, score many"),
}


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info(threads: int) -> dict:
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        mem = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1]) * 1024
    except (OSError, StopIteration):
        pass
    versions = {}
    for name in ("decord", "av", "open_clip"):
        try:
            versions[name] = getattr(importlib.import_module(name), "__version__", "?")
        except ImportError:
            versions[name] = None
    commit = _git("rev-parse", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit[:12] + ("+dirty" if dirty else "") if commit else "unknown",
        "platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(), "memory_bytes": mem,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(), "torch": torch.__version__, "threads": threads,
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        **{f"{k}_version": v for k, v in versions.items()},
    }


def _fmt_value(r: dict) -> str:
    v = r.get("value")
    if v is None:
        return "-"
    if r.get("unit") == "x":
        return f"{v:.3g}x" if v < 100 else f"{v:.0f}x"
    return f"{v:.3g}"


def to_markdown(result: dict) -> str:
    m = result["machine"]
    load = m.get("load_average_start")
    lines = [
        "## Benchmarks (`make bench`)", "",
        f"{m['date']}, commit `{m['commit']}`{' (quick sizes)' if result['quick'] else ''}; "
        f"{m['cpu']} ({m['cpu_count']} cores), torch {m['torch']}, {m['threads']} threads; "
        f"GPU: {m['gpu'] or 'none'}; load average at start {load[0]:.1f}" + (
            f", at end {result['load_average_end'][0]:.1f}" if result.get("load_average_end") else "")
        + f"; {result['seconds']:.0f} s in all.", "",
        "| Figure | Value | Target | Status | Measured | Note |",
        "|---|---|---|---|---|---|",
    ]
    for name, sec in result["sections"].items():
        lines.append(f"| **{SECTIONS[name][1]}** ({sec['seconds']:.0f} s) | | | | | |")
        for r in sec["rows"]:
            cells = [r["figure"], _fmt_value(r), r.get("target", ""), r["status"], r.get("measured", ""), r.get("note", "")]
            lines.append("| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    lines += ["", "Ratios compare two measurements of the same run; timings are medians after a warm-up. "
              "See bench/README.md for what each figure measures and what limits the missed targets.", ""]
    return "\n".join(lines)




def _clean(obj):
    """JSON-safe: non-finite floats become null, tuples lists, unknown objects strings."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    return str(obj)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (tests, smoke runs)")
    parser.add_argument("--only", action="append", choices=list(SECTIONS), metavar="NAME",
                        help=f"run only this section (repeatable): {', '.join(SECTIONS)}")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: all cores, os.cpu_count())")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="folder for latest.json / latest.md")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--keep-workdir", action="store_true", help="keep the scratch folder (videos, caches)")
    args = parser.parse_args(argv)
    threads = args.threads or os.cpu_count() or 1
    os.environ.setdefault("APCLIP_PROGRESS", "0")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)

    import torch

    torch.set_num_threads(threads)
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="apclip_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    names = args.only or list(SECTIONS)
    result = {"quick": args.quick, "machine": machine_info(threads), "sections": {}}
    tic_all, failed = time.perf_counter(), []
    try:
        for name in names:
            module, title = SECTIONS[name]
            print(f">> {title}{' (quick)' if args.quick else ''}", flush=True)
            tic = time.perf_counter()
            try:
                out = importlib.import_module(module).run(quick=args.quick, threads=threads,
                                                          workdir=workdir / name)
            except Exception as exc:  # one broken section must not lose the others' numbers
                traceback.print_exc()
                failed.append(name)
                out = {"rows": [{"figure": f"{title}: section failed", "value": None, "unit": "", "target": "",
                                 "status": "error", "measured": f"{type(exc).__name__}: {exc}"[:300], "note": ""}],
                       "details": {"traceback": traceback.format_exc()}}
            out["seconds"] = time.perf_counter() - tic
            result["sections"][name] = out
            for r in out["rows"]:
                print(f"   {r['status']:>7}  {_fmt_value(r):>8}  {r['figure']}  [{r.get('measured', '')}]", flush=True)
    finally:
        if not args.keep_workdir and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    result["seconds"] = time.perf_counter() - tic_all
    result["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    result = _clean(result)
    atomic.write_text(args.out / "latest.json", json.dumps(result, indent=2) + "\n")
    atomic.write_text(args.out / "latest.md", to_markdown(result))
    print(f">> wrote {args.out / 'latest.json'} and {args.out / 'latest.md'} ({result['seconds']:.0f} s)")
    if failed:
        print(f">> sections that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
