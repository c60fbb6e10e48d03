"""What a run will cost and need, said before it starts: CPU time estimates, weights, data, prompt files."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from apclip_core import paths
from apclip_core.data.protocols import load_protocol
from apclip_core.engine.config import TrainConfig
from apclip_core.prompts.bank import resolve_prompt_file

# The fallback when this machine's CPU was never measured for the run's shape (engine/throughput.py):
# training seconds per frame on 2 cores, scaled to the cores present
CPU_SECONDS_PER_FRAME = {"ViT-B-16": 0.6, "ViT-B-32": 0.2, "ViT-L-14": 2.5}
B2N_TRAIN_SIZES = {"hmdb51": 416, "ucf101": 816, "k400": 3200, "ssv2": 1392}   # 16-shot base lists


NUM_CLASSES = {"hmdb51": 51, "ucf101": 101, "ssv2": 174, "k400": 400}


K400_TRAIN_SIZE = 240_000


def count_train_videos(cfg: TrainConfig) -> int:
    """Length of the training list if it can be read, else the known size of the protocol's list."""
    try:
        return len(load_protocol(cfg.protocol, cfg.protocol_args).train[0])
    except Exception:  # lists not downloaded yet: fall back to the published sizes
        dataset = str(cfg.protocol_args.get("dataset", "")).lower()
        if cfg.protocol == "base_to_novel":
            return B2N_TRAIN_SIZES.get(dataset, 3200)
        if cfg.protocol == "few_shot":
            return int(cfg.protocol_args.get("k", 16)) * NUM_CLASSES.get(dataset, 101)
        return K400_TRAIN_SIZE


def cpu_estimate(cfg: TrainConfig, n_videos: int) -> tuple[float, str]:
    """(training days on this machine's CPU, where the figure comes from): this CPU's measured throughput
    for the run's shape when one is cached, else the stated constant."""
    from apclip_core.engine import throughput

    frames = n_videos * cfg.epochs * cfg.frames
    try:
        measured = throughput.recorded(throughput.workload(cfg), device="cpu")
    except Exception:  # the run's shape cannot be worked out here (a prompt file or list missing): the constant
        measured = None
    if measured is not None:
        return frames / measured.train_frames_per_s / 86400, measured.describe()
    per_frame = CPU_SECONDS_PER_FRAME.get(cfg.model_name.replace("-quickgelu", ""), 0.6)
    per_frame *= 2 / max(1, os.cpu_count() or 1)
    return frames * per_frame / 86400, (
        f"ASSUMED {per_frame:.2f} s per training frame on this CPU's {os.cpu_count()} cores (a constant, not measured; "
        "measure it, minutes for ViT-B/16 on a CPU: `python -m apclip_core plan NOTEBOOK --profile paper --measure --device cpu`)")


def estimate_cpu_days(cfg: TrainConfig, n_videos: int) -> float:
    return cpu_estimate(cfg, n_videos)[0]


def requirements(cfg: TrainConfig) -> list[str]:
    """What this run needs before it can start (printed up front)."""
    needs = [f"model {cfg.model_name} with weights {cfg.pretrained!r}"]
    if cfg.pretrained == "openai":
        hf = os.environ.get("HF_HOME", "~/.cache/huggingface")
        needs[-1] += f" (fetched once from the Hugging Face hub into {hf}/hub; set HF_HUB_OFFLINE=1 afterwards)"
    elif cfg.pretrained == "tiny":
        needs[-1] += " (contrastively pretrained on the embedded benchmark; cached, ~6 min on first use)"
    elif cfg.pretrained:
        needs[-1] += f" (file must exist: {'yes' if Path(cfg.pretrained).is_file() else 'NO'})"
    if cfg.protocol.startswith("bench_"):
        needs.append("the embedded benchmark (rendered on first use, < 30 s)")
    else:
        needs.append(f"the videos and split lists of protocol {cfg.protocol} {cfg.protocol_args or ''} "
                     f"(prepare with `python -m apclip_core data`; data folder {paths.data_dir()})")
    for prompt_file in [cfg.prompt_file, *cfg.eval_prompt_files.values()]:
        if prompt_file:
            ok = Path(resolve_prompt_file(prompt_file)).is_file()
            needs.append(f"prompt file {prompt_file} ({'found' if ok else 'MISSING: generate it with `python -m apclip_core prompts`'})")
    return needs


def check_device(cfg: TrainConfig, device: torch.device) -> None:
    """Refuse a big model on CPU at once, with the estimated cost, unless allow_cpu."""
    if device.type != "cpu" or cfg.allow_cpu or cfg.model_name == "apclip-tiny":
        return
    n_videos = count_train_videos(cfg)
    days, source = cpu_estimate(cfg, n_videos)
    cost = f"~{days:,.0f} days" if days >= 2 else f"~{days * 24:,.0f} hours"
    raise SystemExit(
        f"refusing to train {cfg.model_name} on CPU: no GPU visible (torch.cuda.is_available() is False).\n"
        f"Estimated training cost on this machine ({os.cpu_count()} cores, evaluation not included): {cost} "
        f"({days:.2f} days) for {cfg.epochs} epochs of "
        f"~{n_videos:,} videos x {cfg.frames} frames; throughput {source}.\nRun it on GPUs: `python -m apclip_core plan NOTEBOOK --profile paper "
        f"--gpus N` (`make plan-tableN PROFILE=paper GPUS=N`) prints the exact torchrun command of each run; pick a "
        f"bench_* config for a CPU run, or pass --allow-cpu to insist.\n"
        + "\n".join(f"It also needs: {n}" for n in requirements(cfg)))
