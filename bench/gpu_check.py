"""`make gpu-check`: everything this project can only check on a GPU, in one script, in under 8 minutes
on one H200, written to one results file (bench/results/gpu_check.{json,md}).

    python bench/gpu_check.py              # on a GPU machine
    python bench/gpu_check.py --dry-run    # CPU, apclip-tiny, tiny sizes: the same steps (CI runs this)

Steps, each with its own time limit so one stuck step cannot take the others' time:
  cuda_tests      pytest -m cuda (tests that need a CUDA device; skipped, not failed, on CPU)
  train           a few paper-profile training steps: ViT-B/16 at 224, 8 frames, bf16, through torchrun and
                  the real training loader (engine/train.py, data.datasets.TrainLoader), on the embedded
                  benchmark's videos (real files, decoded in loader workers; random init, since the GPU
                  machine may have no network for weights). Records step time and samples/s.
  eval            evaluation throughput of that run's checkpoint (python -m apclip_core evaluate): videos/s
                  with 2 x 2 views of 8 frames, as the paper evaluates.
  bench_gpu       the bench's GPU section (bench/run.py --only gpu): compute-only and end-to-end videos/s,
                  MFU. Merged into <out>/latest.json (bench/results/latest.json, the other sections kept) with
                  the eval step's frames/s: what `apclip plan` reads for its cost estimates.
  measure         `apclip plan` Table 2 --measure on this GPU: the paper runs' own training step (ViT-B/16,
                  batch 8, bf16; ViFi-CLIP's and AP-CLIP's class side) timed and cached in the runs folder
                  (<runs>/throughput.json), where every later plan reads it first. Skipped in the dry run
                  (ViT-B/16 on CPU takes minutes; the CPU tests measure apclip-tiny through the same code).
Nothing here needs the network. The figures go to bench/README.md and the README by hand, with the date.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(PROJECT_ROOT))

from apclip_core import atomic  # noqa: E402

# paper profile on one GPU: the step the 8-GPU run takes per GPU (batch 8 per GPU, 8 frames, 224, bf16)
FULL = dict(model="ViT-B-16", batch_size=8, frames=8, steps=12, eval_videos=96, eval_batch=16, workers=8,
            precision="bf16", limits=dict(cuda_tests=60, train=150, eval=60, bench_gpu=175, measure=35))  # 8 min at most
DRY = dict(model="apclip-tiny", batch_size=2, frames=2, steps=2, eval_videos=8, eval_batch=4, workers=0,
           precision="fp32", limits=dict(cuda_tests=90, train=120, eval=60, bench_gpu=120, measure=0))
EVAL_VIEWS = 2 * 2                    # the eval step's temporal views x spatial crops
TABLE2 = PROJECT_ROOT / "notebooks" / "12_table2_base_to_novel.ipynb"


def _run(cmd: list[str], limit: float, env: dict, cwd: Path = PROJECT_ROOT) -> dict:
    """Run one step as a subprocess with a time limit; its status, seconds and the tail of its output."""
    tic = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=limit)
        status, rc, out = ("ok" if done.returncode == 0 else "failed"), done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        status, rc = "timed out", None
        out = (exc.stdout or b"").decode(errors="replace") + (exc.stderr or b"").decode(errors="replace") \
            if isinstance(exc.stdout, (bytes, type(None))) else str(exc.stdout) + str(exc.stderr)
    return {"status": status, "returncode": rc, "seconds": round(time.perf_counter() - tic, 1),
            "limit_s": limit, "command": " ".join(cmd), "output_tail": out[-3000:]}


def step_cuda_tests(s: dict, env: dict) -> dict:
    # only the files that hold CUDA tests: collecting the whole suite costs a minute on a small machine
    files = sorted(str(p.relative_to(PROJECT_ROOT)) for p in (PROJECT_ROOT / "tests").glob("test_*.py")
                   if "mark.cuda" in p.read_text())
    if not files:
        return {"status": "skipped", "why": "no test is marked cuda", "seconds": 0}
    result = _run([sys.executable, "-m", "pytest", *files, "-m", "cuda", "-q", "-p", "no:cacheprovider"],
                  s["limits"]["cuda_tests"], env)
    if result["returncode"] == 5:  # pytest: no test selected (none marked) is not a failure of the GPU
        result["status"] = "ok"
    summary = [line for line in result["output_tail"].splitlines() if " passed" in line or " skipped" in line
               or " failed" in line]
    result["summary"] = summary[-1] if summary else ""
    return result


def step_train(s: dict, env: dict, run_dir: Path) -> dict:
    sets = {"model_name": s["model"], "pretrained": None, "frames": s["frames"], "batch_size": s["batch_size"],
            "effective_batch_size": s["batch_size"], "epochs": 1, "max_steps_per_epoch": s["steps"],
            "precision": s["precision"], "num_workers": s["workers"], "eval_every_epochs": 0,
            "eval_max_videos": 2, "eval_batch_size": s["eval_batch"], "output_dir": str(run_dir),
            "warmup_epochs": 0}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "-m", "apclip_core", "train",
           "--config", "bench_base2novel", "--allow-cpu", "--set", *[f"{k}={json.dumps(v)}" for k, v in sets.items()]]
    result = _run(cmd, s["limits"]["train"], env)
    metrics = run_dir / "metrics.json"
    if metrics.exists():
        epoch = json.loads(metrics.read_text())["epochs"][-1]
        result.update(step_time_s=epoch.get("step_time_s"), samples_per_s=epoch.get("samples_per_s"),
                      frames_per_s=(epoch.get("samples_per_s") or 0) * s["frames"])
    elif result["status"] == "ok":
        result["status"] = "failed"
        result["why"] = f"training ended without {metrics}"
    return result


def step_eval(s: dict, env: dict, run_dir: Path, out: Path) -> dict:
    from apclip_core.model.video_clip import run_checkpoint

    checkpoint = run_checkpoint(run_dir)
    if not checkpoint.exists():
        return {"status": "skipped", "why": "no checkpoint from the train step"}
    cmd = [sys.executable, "-m", "apclip_core", "evaluate", "--checkpoint", str(checkpoint), "--protocol",
           "bench_base_to_novel", "--prompts", "prompts/apclip_bench.json", "--frames", str(s["frames"]),
           "--temporal-views", "2", "--spatial-crops", "2", "--batch-size", str(s["eval_batch"]),
           "--num-workers", str(s["workers"]), "--max-videos", str(s["eval_videos"] // 2), "--out", str(out)]
    result = _run(cmd, s["limits"]["eval"], env)
    if out.exists():
        splits = json.loads(out.read_text())["results"]
        videos = sum(r["n_videos"] for r in splits)
        seconds = sum(r["protocol"]["seconds"] for r in splits)
        result.update(videos=videos, videos_per_s=videos / max(seconds, 1e-9),
                      failed_videos=sum(r["n_failed"] for r in splits))
    return result


def step_bench_gpu(s: dict, env: dict, out: Path, dry_run: bool) -> dict:
    cmd = [sys.executable, str(BENCH_DIR / "run.py"), "--only", "gpu", "--out", str(out)] + (["--quick"] if dry_run else [])
    result = _run(cmd, s["limits"]["bench_gpu"], env)
    latest = out / "latest.json"
    if latest.exists():
        section = json.loads(latest.read_text())["sections"]["gpu"]
        result["rows"] = [{k: r.get(k) for k in ("figure", "value", "unit", "status", "measured")}
                          for r in section["rows"]]
    return result


def record_for_plan(latest: Path, section: dict, eval_step: Optional[dict], frames: int) -> bool:
    """Merge a measured GPU section into `latest` (keeping its other sections) with the eval step's frames/s,
    in the shape `apclip plan` reads (plan.throughput). A section without a measurement changes nothing."""
    if not section.get("details", {}).get("e2e_videos_per_s"):
        return False
    section = json.loads(json.dumps(section))
    if eval_step and eval_step.get("videos_per_s"):
        section["details"]["eval_frames_per_s"] = eval_step["videos_per_s"] * frames * EVAL_VIEWS
    try:
        results = json.loads(latest.read_text())
    except (OSError, ValueError):
        results = {"quick": False, "sections": {}}
    results.setdefault("sections", {})["gpu"] = section
    atomic.write_text(latest, json.dumps(results, indent=2) + "\n")
    return True


def step_measure(s: dict, env: dict, dry_run: bool) -> dict:
    if dry_run:
        return {"status": "skipped", "why": "dry run: ViT-B/16 steps on CPU take minutes (tests/test_plan.py measures "
                                            "apclip-tiny through the same code)", "seconds": 0}
    user_env = {k: v for k, v in env.items() if k != "APCLIP_RUNS"} | (
        {"APCLIP_RUNS": os.environ["APCLIP_RUNS"]} if "APCLIP_RUNS" in os.environ else {})  # where plans read it
    cmd = [sys.executable, "-m", "apclip_core", "plan", str(TABLE2), "--profile", "paper", "--measure",
           "--device", "cuda"]
    tic = time.time()
    result = _run(cmd, s["limits"]["measure"], user_env)
    from apclip_core.engine import throughput

    cache = throughput.cache_path()
    try:  # what this step measured: the cache's entries written since it started
        entries = json.loads(cache.read_text())["measurements"] if cache.stat().st_mtime >= tic else []
    except (OSError, ValueError, KeyError):
        entries = []
    result.update(recorded_in=str(cache), measurements=entries,
                  throughput=[f"{e['workload']['class_prompts']} class prompts/step: {e['train_frames_per_s']:,.0f} "
                              f"training, {e['eval_frames_per_s']:,.0f} evaluation frames/s on {e['device']}"
                              for e in entries if not e["device"].startswith("cpu")])
    return result


def to_markdown(result: dict) -> str:
    lines = [f"# GPU check ({'dry run, CPU' if result['dry_run'] else 'GPU'})", "",
             f"{result['date']}, commit `{result['commit'][:12]}`, device: {result['device']}, "
             f"{result['seconds']:.0f} s in all", "", "| step | status | seconds | figures |", "|---|---|---|---|"]
    for name, r in result["steps"].items():
        figures = {"cuda_tests": r.get("summary", ""),
                   "train": f"step {r.get('step_time_s') or 0:.3f} s, {r.get('samples_per_s') or 0:.1f} videos/s, "
                            f"{r.get('frames_per_s') or 0:.0f} frames/s",
                   "eval": f"{r.get('videos_per_s') or 0:.1f} videos/s over {r.get('videos', 0)} videos (2 x 2 views)",
                   "bench_gpu": "; ".join(f"{row['figure']}: {row['measured']}" for row in r.get("rows", []))
                   + (f" (recorded in {r['recorded_in']} for `apclip plan`)" if r.get("recorded_in") else ""),
                   "measure": " | ".join(r.get("throughput", [])) or r.get("why", "")}[name]
        lines.append(f"| {name} | {r['status']} | {r.get('seconds', '')} | {figures} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/gpu_check.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, apclip-tiny, tiny sizes (CI)")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="folder for gpu_check.{json,md}")
    parser.add_argument("--only", action="append", choices=["cuda_tests", "train", "eval", "bench_gpu", "measure"],
                        help="run only these steps (repeatable; eval needs train)")
    args = parser.parse_args(argv)

    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("no CUDA device visible: `make gpu-check` is for a GPU machine (--dry-run runs its steps on CPU)",
              file=sys.stderr)
        return 2
    atomic.writable_folder(args.out)  # a read-only --out, or a file, stops here, not after minutes of steps
    s = DRY if args.dry_run else FULL
    work = Path(tempfile.mkdtemp(prefix="apclip_gpu_check_"))
    env = {**os.environ, "APCLIP_PROGRESS": "0", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(PROJECT_ROOT),
           "APCLIP_RUNS": str(work / "runs")}
    steps = args.only or ["cuda_tests", "train", "eval", "bench_gpu", "measure"]
    tic = time.perf_counter()
    result = {"dry_run": args.dry_run, "sizes": s,
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                                       text=True).stdout.strip(),
              "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", "steps": {}}
    run_dir = work / "train_run"
    for name in steps:
        print(f">> {name}", flush=True)
        if name == "cuda_tests":
            r = step_cuda_tests(s, env)
        elif name == "train":
            r = step_train(s, env, run_dir)
        elif name == "eval":
            r = step_eval(s, env, run_dir, work / "eval.json")
        elif name == "bench_gpu":
            r = step_bench_gpu(s, env, work / "bench", args.dry_run)
            latest = work / "bench" / "latest.json"
            if latest.exists() and record_for_plan(args.out / "latest.json",
                                                   json.loads(latest.read_text())["sections"]["gpu"],
                                                   result["steps"].get("eval"), s["frames"]):
                r["recorded_in"] = str(args.out / "latest.json")
        else:
            r = step_measure(s, env, args.dry_run)
        result["steps"][name] = r
        print(f"   {r['status']} ({r.get('seconds', 0)} s)", flush=True)
    result["seconds"] = round(time.perf_counter() - tic, 1)
    atomic.write_text(args.out / "gpu_check.json", json.dumps(result, indent=2, default=str) + "\n")
    atomic.write_text(args.out / "gpu_check.md", to_markdown(result))
    print(to_markdown(result))
    print(f">> wrote {args.out / 'gpu_check.json'} and {args.out / 'gpu_check.md'}")
    ok = all(r["status"] in ("ok", "skipped") for r in result["steps"].values())
    if ok:  # its runs and benchmark files (about 120 MB for --dry-run): what mattered is in args.out
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f">> kept the work folder for a look at what failed: {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    from apclip_core.errors import run_command

    sys.exit(run_command(main, sys.argv[1:]))
