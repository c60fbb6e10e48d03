"""`python -m apclip_core plan NOTEBOOK --profile paper --gpus 8 [--nodes N] [--slurm DIR]`
(`make plan-tableN PROFILE=paper GPUS=8`): every training run a table needs, before any is started.

Per run: method, seed, dataset, its run folder, the exact torchrun command, GPU-hours, wall time on
the GPUs given, and disk; then the table's totals. With --slurm DIR, one SLURM batch script per run
(srun + torchrun, any number of nodes). A run has one identity whoever starts it: the printed command
sets the run's name (its identity hash, experiments.make_config) and folder, so the notebook finds a
run started by hand or by a scheduler, reuses it when finished, and resumes it when not.

Costs come from a per-GPU throughput figure, the first of: measured on a GPU for the run's shape
(`--measure`, `make plan-tableN MEASURE=1`: a few real training steps and an evaluation forward on random
frames, seconds on a GPU; cached in <runs>/throughput.json and reused by later plans, engine/throughput.py;
a CPU's measurement is cached for the CPU estimates of train and preflight, never taken for a GPU's; its
evaluation time is a lower bound, decoding not included);
the GPU section of the bench's latest results (bench/results/latest.json, written by `make gpu-check`
or `make bench` on a GPU); ViFi-CLIP's reported cost (about 120 frames/s per A100 in training, data
loading included), stated as an assumption. Every run's estimate says which, with its assumptions.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Optional

from apclip_core import atomic, paths
from apclip_core.arguments import MAX_GPUS_PER_NODE, MAX_NODES, bounded

ASSUMED_TRAIN_FRAMES_PER_S = 120.0   # per GPU: ViFi-CLIP, 22 h on 8 A100 for 10 K-400 epochs x 240k videos x 32 frames
EVAL_SPEEDUP = 3.0                   # when evaluation is not measured: forward only vs forward + backward
BENCH_RESULTS = paths.PROJECT_ROOT / "bench" / "results" / "latest.json"
# the folders the plan was made with: the job must read and write the same ones as the notebook
PASSED_ENV = ("APCLIP_DATA", "APCLIP_RUNS", "APCLIP_CACHE", "APCLIP_SPLITS", "HF_HOME")
SLURM_TIME_MARGIN = 1.5              # the job's time limit: estimate x margin (the run resumes if it is cut)


@dataclass
class Throughput:
    train_frames_per_s: float        # per GPU
    source: str                      # where the figure comes from, said beside every estimate
    eval_frames_per_s: Optional[float] = None  # None: not measured, EVAL_SPEEDUP x training (said so)
    compute_only: bool = False       # measured on random frames (engine/throughput.py): no decoding, a lower bound

    @property
    def eval_rate(self) -> float:
        return self.eval_frames_per_s or self.train_frames_per_s * EVAL_SPEEDUP

    def describe(self) -> str:
        if self.eval_frames_per_s:
            return self.source
        return f"{self.source}; evaluation ASSUMED {EVAL_SPEEDUP:g}x the training rate (forward only, not measured)"


def throughput(results: Path = BENCH_RESULTS) -> Throughput:
    """The bench's measured end-to-end training frames/s per GPU, else the stated assumption."""
    try:
        gpu = json.loads(Path(results).read_text())["sections"]["gpu"]["details"]
        videos_per_s = float(gpu["e2e_videos_per_s"])
        sizes = gpu.get("sizes", {})
        frames = int(sizes.get("frames") or 8)
        device = gpu.get("device", "GPU")
        eval_rate = gpu.get("eval_frames_per_s")  # `make gpu-check` adds its evaluation step's figure
        return Throughput(videos_per_s * frames,
                          f"measured by the bench on {device} ({paths.portable(results)}): {sizes.get('model', '?')}, "
                          f"{frames} frames, batch {sizes.get('batch', '?')}/GPU, bf16, data loading included"
                          + (f"; evaluation {float(eval_rate):,.0f} frames/s by `make gpu-check` (decoding included)"
                             if eval_rate else ""),
                          float(eval_rate) if eval_rate else None)
    except (OSError, KeyError, TypeError, ValueError, json.JSONDecodeError):
        return Throughput(ASSUMED_TRAIN_FRAMES_PER_S,
                          f"ASSUMED {ASSUMED_TRAIN_FRAMES_PER_S:.0f} training frames/s per GPU (ViFi-CLIP's reported "
                          "K-400 cost on A100, data loading included); measure yours with `make plan-tableN MEASURE=1` "
                          "on a GPU node (seconds) or `make gpu-check`")


def speed_for(cfg, *, measure: bool = False, device: str = "auto", measured: Optional[dict] = None) -> Throughput:
    """The run's per-GPU throughput: measured here now on a GPU (measure=True; once per workload in `measured`),
    else cached from an earlier GPU measurement of the same workload, else the bench's GPU figure, else the
    stated assumption. A CPU measurement is never taken for a GPU's: it is cached for the CPU estimates of
    train and the preflight (engine/cost.py) and the plan says so."""
    from apclip_core.engine import throughput as measuring

    work = measuring.workload(cfg)
    m = None
    if measure:
        measured = {} if measured is None else measured
        if work not in measured:
            measured[work] = measuring.measure(cfg, device)
        m = measured[work]
    on_cpu = m is not None and measuring.is_cpu(m)
    if m is None or on_cpu:
        m = measuring.recorded(work)  # GPU entries only
    if m is not None:
        return Throughput(m.train_frames_per_s, m.describe(), m.eval_frames_per_s, compute_only=True)
    fallback = throughput()
    if on_cpu:
        fallback.source += (f"; this machine's CPU was measured ({measured[work].train_frames_per_s:,.1f} training "
                            "frames/s), kept for the CPU estimates of train and preflight, not a GPU's figure")
    return fallback


@dataclass
class PlannedRun:
    method: str
    seed: Optional[int]              # the protocol argument the table varies: seed (16-shot sample) or k (shots)
    varies: str
    dataset: str
    name: str
    run_dir: str
    command: list[str]               # argv of the torchrun command (no shell)
    train_videos: int
    eval_videos: Optional[int]       # None: the lists are not downloaded yet
    gpu_hours: float                 # compute: training over all GPUs + evaluation
    wall_hours: float                # on the GPUs given: training and evaluation both split over them
    eval_hours: float                # of wall_hours: the evaluations (each GPU encodes its share of the videos)
    evaluations: int                 # evaluation passes over the eval lists (eval_every_epochs, the last epoch)
    eval_lower_bound: bool           # eval_hours from a compute-only measurement: decoding not included
    throughput: str                  # where the figures come from and what they assume
    disk_gb: float
    status: str                      # finished | partial (resumes) | not started
    effective_batch: int = 0         # what batch_size x GPUs x accumulation realises (train.py's rounding)
    asked_batch: int = 0             # the config's effective_batch_size (the paper's)
    train_listed: int = 0            # in the training list (train_videos: those the run uses, PARTIAL / subsets)
    train_per_epoch: int = 0         # trained per epoch (max_steps_per_epoch caps it)
    eval_listed: Optional[int] = None  # in the evaluation lists (eval_videos: those each evaluation decodes)

    def shell(self) -> str:
        return " ".join(shlex.quote(a) for a in self.command)


_PARAMS: dict[str, int] = {}


def parameter_count(model_name: str) -> int:
    """Parameters of an open_clip model (built once, without weights)."""
    if model_name not in _PARAMS:
        import open_clip

        from apclip_core.model.video_clip import register_model_configs

        register_model_configs()
        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # "no pretrained weights loaded": none are wanted here
        try:
            model = open_clip.create_model(model_name, pretrained=None)
        finally:
            logging.getLogger().setLevel(quiet)
        _PARAMS[model_name] = sum(p.numel() for p in model.parameters())
    return _PARAMS[model_name]


def disk_gb(model_name: str) -> float:
    """What a finished run keeps: checkpoint.safetensors (fp32 weights, for evaluation) + last.pt (weights and AdamW's
    two moments, for resume; step checkpoints overwrite it): 4 copies of the weights (ViT-B/16: 2.4 GB)."""
    return parameter_count(model_name) * 4 * 4 / 1e9


def _eval_only(protocol: str, args: Optional[dict]) -> dict:
    """A protocol's arguments with those that only choose its training list set so that none is read: its
    evaluation lists are the same, and the plan counts them where the training list is not here (the full
    Kinetics-400 lists are built locally from the annotation CSV, not in the public snapshot)."""
    args = {k: v for k, v in (args or {}).items() if k != "train_root"}  # zero_shot: no training split at all
    if args.get("full_base_train"):
        args["full_base_train"] = False
    if protocol == "kinetics400":
        args["train_list"] = "tiny"
    return args


def _as_run(split, cfg, cap: int, listing: dict) -> int:
    """The videos of `split` a run decodes: those on disk with missing_videos=skip (one directory listing per
    folder, presence.missing_videos), then at most `cap` (an evenly spaced subset; 0: no cap)."""
    from apclip_core.data.presence import missing_videos

    n = len(split.records)
    if cfg.missing_videos == "skip":
        n -= len(missing_videos(split, listing))
    return min(n, cap) if cap else n


def _eval_videos(cfg) -> Optional[int]:
    return _eval_counts(cfg)[0]


def _eval_counts(cfg) -> tuple[Optional[int], Optional[int]]:
    """(videos every evaluation pass decodes, as the run will: missing_videos, eval_max_videos, max_videos_per_split;
    videos listed) over the protocol's eval lists and extra_eval's; None when the lists are not here."""
    from apclip_core.data.protocols import load_protocol

    specs = [(cfg.protocol, cfg.protocol_args), *((e["protocol"], e.get("args")) for e in cfg.extra_eval)]
    caps = [n for n in (cfg.eval_max_videos, cfg.max_videos_per_split) if n]
    listing: dict = {}
    try:
        splits = [split for name, args in specs for split in load_protocol(name, _eval_only(name, args)).eval]
    except Exception:  # evaluation lists not downloaded: the plan says so instead of guessing
        return None, None
    return (sum(_as_run(split, cfg, min(caps) if caps else 0, listing) for split in splits),
            sum(len(split.records) for split in splits))


def _train_videos(cfg, gpus: int) -> tuple[int, int, int]:
    """(training videos the run uses, listed, trained per epoch): missing_videos and max_videos_per_split as
    training applies them, and max_steps_per_epoch's cap on micro-batches; the published size when the list is
    not here (engine.cost.count_train_videos)."""
    from apclip_core.data.protocols import load_protocol
    from apclip_core.engine.cost import count_train_videos

    try:
        split = load_protocol(cfg.protocol, cfg.protocol_args).train[0]
    except Exception:
        used = listed = count_train_videos(cfg)
    else:
        listed, used = len(split.records), _as_run(split, cfg, cfg.max_videos_per_split, {})
    per_epoch = min(used, cfg.max_steps_per_epoch * cfg.batch_size * gpus) if cfg.max_steps_per_epoch else used
    return used, listed, per_epoch


def _dataset(cfg) -> str:
    """The run's dataset as the protocol states it ('hmdb51'; zero-shot: 'kinetics400 -> hmdb51, ...')."""
    args = cfg.protocol_args
    evaluated = [str(args.get("dataset", cfg.protocol))] + [str(e.get("args", {}).get("dataset", e.get("protocol")))
                                                             for e in cfg.extra_eval]
    if "train_root" in args:
        return f"trained on {args['train_root']}, zero-shot on {', '.join(evaluated)}"
    return ", ".join(evaluated)


def _status(run_dir: Path) -> str:
    from apclip_core.paper.experiments import finished_summary

    if finished_summary(run_dir) is not None:
        return "finished"
    return "partial (resumes)" if (run_dir / "last.pt").exists() else "not started"


def evaluations(cfg) -> int:
    """How many times training evaluates: every eval_every_epochs epochs and after the last (engine/train.py)."""
    every = cfg.eval_every_epochs
    return sum(1 for e in range(1, cfg.epochs + 1) if e == cfg.epochs or (every and e % every == 0))


def plan_runs(table: str, params: dict, *, gpus_per_node: int = 8, nodes: int = 1,
              speed: Optional[Throughput] = None, measure: bool = False, device: str = "auto") -> list[PlannedRun]:
    """Every distinct run table `table` needs with the notebook's parameters (runs shared by two methods,
    e.g. ViFi-CLIP and Single, appear once). speed: one figure for every run (else each run's own, speed_for)."""
    from apclip_core.engine.config import run_dir_for
    from apclip_core.engine.text_cost import text_cost
    from apclip_core.paper import experiments, reproduce
    from apclip_core.paper.experiments import train_command

    gpus = gpus_per_node * nodes
    runs, seen, measured = [], set(), {}
    for method, (seed_arg, seed), preset, overrides in reproduce.table_runs(table, **params):
        run_overrides = {**experiments.method_overrides(method), **overrides}
        cfg = experiments.make_config(preset, method, **overrides)
        if cfg.name in seen:
            continue
        seen.add(cfg.name)
        (n_train, train_listed, per_epoch), (n_eval, eval_listed) = _train_videos(cfg, gpus), _eval_counts(cfg)
        run_speed = speed or speed_for(cfg, measure=measure, device=device, measured=measured)
        text = None if run_speed.compute_only else text_cost(cfg)  # a measurement of the run's shape has it in
        factor = text.factor if text is not None and abs(text.factor - 1) > 0.01 else 1.0
        if factor != 1.0:  # the figure is a one-prompt step's: the run's text tower on top, said as assumed
            run_speed = replace(run_speed, source=f"{run_speed.source}; {text.describe()}")
        train_s = per_epoch * cfg.epochs * cfg.frames / run_speed.train_frames_per_s * factor
        passes = evaluations(cfg)
        eval_s = passes * (n_eval or 0) * cfg.frames * cfg.temporal_views * cfg.spatial_crops / run_speed.eval_rate
        run_dir = run_dir_for(cfg)
        runs.append(PlannedRun(
            method=method, seed=seed, varies=seed_arg, dataset=_dataset(cfg),
            name=cfg.name, run_dir=str(run_dir),
            command=train_command(preset, cfg, run_overrides, gpus_per_node=gpus_per_node, nodes=nodes),
            train_videos=n_train, eval_videos=n_eval, gpu_hours=(train_s + eval_s) / 3600,
            wall_hours=(train_s + eval_s) / gpus / 3600, eval_hours=eval_s / gpus / 3600, evaluations=passes,
            eval_lower_bound=run_speed.compute_only and run_speed.eval_frames_per_s is not None,
            throughput=run_speed.describe(), disk_gb=disk_gb(cfg.model_name), status=_status(run_dir),
            effective_batch=realised_batch(cfg, gpus), asked_batch=cfg.effective_batch_size,
            train_listed=train_listed, train_per_epoch=per_epoch, eval_listed=eval_listed))
    return runs


def realised_batch(cfg, gpus: int) -> int:
    """The effective batch training realises on `gpus` processes (engine/train.py: whole accumulation steps)."""
    accum = max(1, round(cfg.effective_batch_size / (cfg.batch_size * gpus)))
    return accum * cfg.batch_size * gpus


SLURM_SAVE_MINUTES = 30   # last.pt at least this often in a batch job (a K-400 epoch outlasts it)
PREEMPT_NOTICE_S = 600    # SLURM's USR1 this long before the time limit (or a preemption): time to save last.pt
RDZV_PORTS = (20000, 20000)  # the rendezvous port: base + job id modulo span, so two jobs on one head node differ


def slurm_script(run: PlannedRun, *, gpus_per_node: int, nodes: int, hours: float) -> str:
    """One batch script: srun starts one torchrun per node, which rendezvous on the first node. Preemptible:
    --requeue, and on USR1 (--signal, PREEMPT_NOTICE_S before the end) a handler asks the run to save
    (checkpoint_clock: <run folder>/save.request), waits for it, and requeues the job, which resumes (--resume);
    the log is appended to across requeues (--open-mode=append)."""
    limit = max(30, math.ceil(hours * SLURM_TIME_MARGIN * 60) + 15)  # + start-up (weights, prompt features)
    torchrun = run.command[run.command.index("-m"):]
    if not any(a.startswith("save_every_minutes=") for a in torchrun):  # a crash without notice loses minutes
        torchrun.append(f"save_every_minutes={SLURM_SAVE_MINUTES}")  # not the run's identity: the same run
    request = shlex.quote(str(Path(run.run_dir) / "save.request"))
    base, span = RDZV_PORTS
    return "\n".join([
        "#!/bin/bash",
        f"# apclip run {run.name}: {run.method}, {run.varies} {run.seed}, {run.dataset}; written by `apclip plan`.",
        "# Resubmitting it resumes the run (--resume); a finished run is not trained again by the notebook.",
        "# Your cluster's partition, account and memory: remove one '#' from these lines and fill them in (or",
        "# export SBATCH_PARTITION / SBATCH_ACCOUNT / SBATCH_MEM_PER_NODE before sbatch, which reads them).",
        "##SBATCH --partition=<partition>",
        "##SBATCH --account=<account>",
        "##SBATCH --mem=<memory per node, e.g. 400G>",
        f"#SBATCH --job-name={run.name}",
        f"#SBATCH --nodes={nodes}",
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --gpus-per-node={gpus_per_node}",
        f"#SBATCH --cpus-per-task={8 * gpus_per_node}",
        f"#SBATCH --time={limit // 60:d}:{limit % 60:02d}:00",
        "#SBATCH --requeue",
        f"#SBATCH --signal=B:USR1@{PREEMPT_NOTICE_S}",
        "#SBATCH --open-mode=append",
        f"#SBATCH --output={run.run_dir}.slurm-%j.log",
        "set -euo pipefail",
        f"cd {shlex.quote(str(paths.PROJECT_ROOT))}",
        "export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}  # weights fetched once beforehand (README: CLIP weights)",
        *[f"export {var}={shlex.quote(os.environ[var])}" for var in PASSED_ENV if os.environ.get(var)],
        "# recent Slurm does not pass --cpus-per-task on to srun: say it again, for the loader's workers",
        'export SRUN_CPUS_PER_TASK="$SLURM_CPUS_PER_TASK"',
        'head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        f'port=$(({base} + SLURM_JOB_ID % {span}))  # not a fixed port: two jobs sharing a head node do not collide',
        "on_notice() {  # USR1: the end (time limit or preemption) is near: save, then requeue (resumes from last.pt)",
        f'  echo "apclip: USR1 at $(date): asking the run to save ({request}), then requeueing"',
        f"  touch {request} 2>/dev/null || true  # no run folder yet: nothing to save",
        f"  for _ in $(seq {PREEMPT_NOTICE_S // 2}); do [ -e {request} ] || break; sleep 1; done",
        '  scontrol requeue "$SLURM_JOB_ID"',
        "}",
        "trap on_notice USR1",
        "srun --ntasks-per-node=1 -c \"$SLURM_CPUS_PER_TASK\" .venv/bin/torchrun --nnodes \"$SLURM_NNODES\" "
        f"--nproc_per_node {gpus_per_node} --rdzv_id \"$SLURM_JOB_ID\" --rdzv_backend c10d "
        "--rdzv_endpoint \"$head:$port\" \\\n    " + " ".join(shlex.quote(a) for a in torchrun) + " &",
        "step=$!",
        "set +e  # a trapped USR1 interrupts `wait`: wait again until the step itself ends, and exit with its status",
        'wait "$step"; status=$?',
        'while kill -0 "$step" 2>/dev/null; do wait "$step"; status=$?; done',
        'exit "$status"',
        ""])


def _hours(h: float) -> str:
    return f"{h * 60:.0f} min" if h < 1 else f"{h:.1f} h"


def _evaluation(run: PlannedRun) -> str:
    if run.eval_lower_bound:  # the measurement times the model on random frames: decoding the videos comes on top
        return f"at least {_hours(run.eval_hours)}: a lower bound, compute only, video decoding not included"
    return _hours(run.eval_hours)


def render(table: str, runs: list[PlannedRun], *, gpus_per_node: int, nodes: int) -> str:
    gpus = gpus_per_node * nodes
    sources = list(dict.fromkeys(r.throughput for r in runs))  # each said once, referred to by letter
    letter = {src: chr(ord("a") + i) for i, src in enumerate(sources)}
    lines = [f"{table}: {len(runs)} training run(s) on {gpus} GPU(s) ({nodes} node(s) x {gpus_per_node}), "
             f"one run at a time over all GPUs"]
    lines += [f"throughput ({letter[src]}): {src}" for src in sources]
    lines.append("")
    for i, r in enumerate(runs, 1):
        evals = (f"{r.eval_videos:,}" if r.eval_videos is not None else "? (lists not downloaded)") + " evaluation videos"
        if r.eval_listed is not None and r.eval_listed != r.eval_videos:  # PARTIAL=1, eval_max_videos: as they run
            evals += f" (of {r.eval_listed:,} listed)"
        trains = f"{r.train_videos:,} training videos"
        if r.train_listed != r.train_videos:
            trains += f" (of {r.train_listed:,} listed)"
        if r.train_per_epoch < r.train_videos:
            trains += f", {r.train_per_epoch:,} per epoch (max_steps_per_epoch)"
        varied = f"{'K' if r.varies == 'k' else r.varies} {r.seed}" if r.seed is not None else "one run"
        lines += [f"{i}. {r.method} | {varied} | {r.dataset} | {r.status}",
                  f"   run folder: {r.run_dir}",
                  f"   {trains}, {evals} x {r.evaluations} evaluation(s); "
                  f"{r.gpu_hours:.1f} GPU-hours, wall {_hours(r.wall_hours)} on {gpus} GPU(s) (of which evaluation "
                  f"{_evaluation(r)}, over the {gpus} GPU(s)); disk {r.disk_gb:.1f} GB (checkpoint.safetensors + last.pt); "
                  f"throughput ({letter[r.throughput]})",
                  *([f"   WARNING: effective batch {r.effective_batch} on {gpus} GPU(s), not the config's "
                       f"{r.asked_batch} (batch_size x GPUs exceeds it, or does not divide it): another schedule than "
                       "the paper's, said among the table's deviations; use fewer GPUs or nodes, or a smaller batch_size"]
                    if r.effective_batch != r.asked_batch else []),
                  f"   {r.shell()}", ""]
    todo = [r for r in runs if r.status != "finished"]
    total, wall = sum(r.gpu_hours for r in todo), sum(r.wall_hours for r in todo)
    lines.append(f"total still to run: {len(todo)} of {len(runs)} runs, {total:.1f} GPU-hours of compute, wall "
                 f"{_hours(wall)} on {gpus} GPU(s) ({wall * gpus:.1f} GPU-hours held); "
                 f"disk {sum(r.disk_gb for r in runs):.1f} GB")
    lines.append("then the notebook (`make reproduce-...`) finds these runs by name and only evaluates and tabulates.")
    return "\n".join(lines)


ZOO = "table1_zoo"


def zoo_needs(params: dict, speed: Optional[Throughput] = None) -> dict:
    """Table 1's zoo trains nothing, so it has no run to plan: what it needs instead (its model files, each
    dataset's videos, one GPU) and its evaluation's estimated GPU time, from the evaluation throughput the
    training plans use (measured, or said to be assumed). Every video is encoded once per model."""
    from apclip_core.engine.config import load_config
    from apclip_core.paper import zoo

    # the zero-shot preset's evaluation workload (ViT-B/16, 8 frames): a GPU measurement of it, else the bench's
    speed = speed or speed_for(load_config(zoo.PAPER_PRESET))
    views = int(params.get("temporal_views", 2)) * int(params.get("spatial_crops", 2))
    frames = int(params.get("frames", 8)) * views
    given = params.get("models") or {}
    models = ([{"name": m.name, "file": m.given_as, "present": m.provided} for m in zoo.resolve_models(given)]
              if given else [{"name": name, "file": f"embedded stand-in ({fmt})", "present": True}
                             for name, fmt in zoo.SOURCE_FORMATS.items()])
    datasets = []
    for name in params.get("datasets") or []:
        ds = zoo.zoo_dataset(name)
        try:
            splits = zoo.eval_splits(ds, name, params.get("video_roots"))
        except Exception as err:  # lists not downloaded: the plan says so instead of guessing
            datasets.append({"dataset": ds.label, "splits": None, "videos": None, "problem": str(err)})
            continue
        cap = int(params.get("max_videos") or 0)
        # the splits of a dataset share videos (HMDB-51's val1-3): the feature cache encodes each once per model
        unique = len({(str(s.root), r.path) for s in splits
                      for r in (s.records[:cap] if cap else s.records)})  # an upper bound under max_videos
        datasets.append({"dataset": ds.label, "splits": [s.name for s in splits], "videos": unique})
    videos = sum(d["videos"] or 0 for d in datasets)
    seconds = videos * frames * len(models) / speed.eval_rate  # every model listed, converted or still to be
    return {"table": ZOO, "trains": False, "profile": params.get("profile", "smoke"), "models": models,
            "datasets": datasets, "frames_per_video": frames, "videos_per_model": videos,
            "models_present": sum(m["present"] for m in models),
            "gpu_hours": seconds / 3600, "throughput": speed.describe(), "complete": all(d["videos"] is not None
                                                                                     for d in datasets)}


def render_zoo(needs: dict) -> str:
    lines = [f"{ZOO}: nothing to plan: the zoo trains nothing (it evaluates released checkpoints, converted, as "
             "they are), so there is no training run, torchrun command or SLURM script. What it needs:"]
    lines.append("- model files (converted by `python -m apclip_core convert`, README 'Importing the peers' "
                 "checkpoints'; a missing one is a 'not provided' row): "
                 + "; ".join(f"{m['name']}: {m['file'] or 'no file given'} ({'here' if m['present'] else 'MISSING'})"
                             for m in needs["models"]))
    for d in needs["datasets"]:
        lines.append(f"- {d['dataset']}: " + (f"{d['videos']:,} videos to encode per model (splits "
                                               f"{', '.join(d['splits'])})" if d["videos"] is not None
                                               else f"lists not found ({d['problem']})"))
    smoke = needs["profile"] != "paper"
    lines.append("- no GPU: the smoke profile's tiny CLIP runs in seconds on a CPU" if smoke else
                 "- one GPU (a CPU takes days on ViT-B/16; `python -m apclip_core preflight` checks every video)")
    total = "under 1 min" if needs["gpu_hours"] * 60 < 1 else _hours(needs["gpu_hours"])
    lines.append(f"estimated GPU time (ViT-B/16's rate{': the tiny CLIP is far faster' if smoke else ''}): "
                 f"{needs['videos_per_model']:,} videos x {needs['frames_per_video']} frames x "
                 f"{len(needs['models'])} model(s) ({needs['models_present']} here) = {total} of image-tower time"
                 + ("" if needs["complete"] else " (without the datasets whose lists are missing)")
                 + f"; throughput: {needs['throughput']}. Decoding runs on the CPU loader workers beside it and can be "
                   "the bound (README, Table 1's zoo).")
    from apclip_core.paper.tables import profiled_name

    lines.append(f"then: make reproduce-table1-zoo PROFILE={needs['profile']} (preflight, notebook 18, "
                 f"figures/{profiled_name(ZOO, needs['profile'])}.*)")
    return "\n".join(lines)


def render_shared(plans: dict[str, list[PlannedRun]], *, gpus_per_node: int, nodes: int) -> str:
    """Several tables' plans together: a run two tables need (same name: same identity) is trained once and found
    by both, so the totals count it once; the naive sum beside them says what sharing saves."""
    gpus = gpus_per_node * nodes
    distinct: dict[str, PlannedRun] = {}
    needed_by: dict[str, list[str]] = {}
    for table, runs in plans.items():
        for r in runs:
            distinct.setdefault(r.name, r)
            needed_by.setdefault(r.name, []).append(table)
    todo = [r for r in distinct.values() if r.status != "finished"]
    naive = sum(r.gpu_hours for runs in plans.values() for r in runs if r.status != "finished")
    total, wall = sum(r.gpu_hours for r in todo), sum(r.wall_hours for r in todo)
    shared = {name: tables for name, tables in needed_by.items() if len(tables) > 1}
    lines = [f"all {len(plans)} tables: {sum(len(r) for r in plans.values())} runs asked for, {len(distinct)} distinct "
             f"({len(shared)} shared by two tables or more: trained once, found by name by each)",
             f"total still to run: {len(todo)} distinct runs, {total:.1f} GPU-hours of compute (naive sum over the "
             f"tables: {naive:.1f}), wall {_hours(wall)} on {gpus} GPU(s) ({wall * gpus:.1f} GPU-hours held); disk "
             f"{sum(r.disk_gb for r in distinct.values()):.1f} GB"]
    lines += [f"  shared: {distinct[name].method} {distinct[name].run_dir} by {', '.join(tables)}"
              for name, tables in shared.items()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    from apclip_core.paper.preflight import notebook_parameters

    parser = argparse.ArgumentParser(prog="python -m apclip_core plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", type=Path, nargs="+",
                        help="a table notebook, e.g. notebooks/12_table2_base_to_novel.ipynb; several (make plan-all): "
                             "each table's plan, then the runs they share counted once")
    parser.add_argument("--profile", default="smoke", choices=["smoke", "paper"])
    parser.add_argument("--gpus", type=bounded(int, 1, MAX_GPUS_PER_NODE, "GPUs per node"), default=8,
                        help="GPUs per node")
    parser.add_argument("--nodes", type=bounded(int, 1, MAX_NODES), default=1)
    parser.add_argument("--slurm", type=Path, help="write one SLURM batch script per run into this folder")
    parser.add_argument("--params", type=Path, action="append", default=[],
                        help="YAML of parameters on top of the profile (make PARAMS=file), as the notebook gets them")
    parser.add_argument("--partial", action="store_true",
                        help="the runs on the videos present (make PARTIAL=1), as the notebook will name them")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument("--measure", action="store_true",
                        help="measure training and evaluation throughput of each run's shape on this machine's "
                             "device first (seconds on a GPU; cached in <runs>/throughput.json for later plans)")
    parser.add_argument("--device", default="auto", help="the device --measure times: auto | cuda | cuda:N | cpu")
    args = parser.parse_args(argv)
    if args.gpus < 1 or args.nodes < 1:
        parser.error("--gpus and --nodes must be >= 1")
    if args.slurm:  # a read-only folder, or a file, stops the plan before it measures or prints anything
        atomic.writable_folder(args.slurm)
    plans: dict[str, list[PlannedRun]] = {}
    for i, notebook in enumerate(args.notebook):
        table = notebook.stem.split("_", 1)[1] if "_" in notebook.stem else notebook.stem
        params = notebook_parameters(notebook, args.profile, args.params, partial=args.partial)
        if i and not args.json:
            print()
        if table == ZOO:
            needs = zoo_needs(params)
            print(json.dumps(needs, indent=2) if args.json else render_zoo(needs))
            continue
        runs = plans[table] = plan_runs(table, params, gpus_per_node=args.gpus, nodes=args.nodes,
                                        measure=args.measure, device=args.device)
        if args.json:
            print(json.dumps({"table": table, "runs": [asdict(r) for r in runs]}, indent=2))
        else:
            print(render(table, runs, gpus_per_node=args.gpus, nodes=args.nodes))
    if len(plans) > 1 and not args.json:
        print("\n" + render_shared(plans, gpus_per_node=args.gpus, nodes=args.nodes))
    if args.slurm:
        distinct = {r.name: r for runs in plans.values() for r in runs}  # a shared run: one script
        for r in distinct.values():
            script = args.slurm / f"{r.name}.sbatch"
            atomic.write_text(script, slurm_script(r, gpus_per_node=args.gpus, nodes=args.nodes,
                                                   hours=r.wall_hours))
            script.chmod(0o755)
        print(f"\nwrote {len(distinct)} SLURM script(s) to {args.slurm}: submit with "
              f"`for f in {args.slurm}/*.sbatch; do sbatch \"$f\"; done`")
    return 0
