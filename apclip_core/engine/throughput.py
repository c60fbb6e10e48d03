"""Training and evaluation throughput measured on this machine's device in seconds, cached so that
every later cost estimate (plan, preflight, train's CPU refusal) uses it instead of a constant.

`measure(cfg, device)` builds the config's real model (open_clip, random init: weights do not change
the compute) and the class side it trains with (its prompt strategy over its training classes, k
prompts per class per step, its similarity), then times train.py's step: forward, loss, backward,
AdamW step, under the config's precision (auto: bf16 autocast on CUDA, fp32 on CPU), and an
evaluation forward of a batch of the evaluation views. Warm-up steps are not timed. The input frames
are random: this is the compute part only, data loading (decode, augmentation) is not included, so
an estimate from it is a lower bound when the loader cannot keep up (bench/gpu_throughput.py's
end-to-end figure says whether it does).

Measurements go to <runs>/throughput.json keyed by device, model, image size, frames, batch per device,
precision and the class prompts per step (ViFi-CLIP encodes 1 prompt per class per step, AP-CLIP 8:
the text tower is a third of the step), so a plan reuses the figure for every run of the same shape.
"""
from __future__ import annotations

import datetime
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch

from apclip_core import atomic, paths
from apclip_core.device import pick as pick_device
from apclip_core.engine.config import TrainConfig

CACHE_NAME = "throughput.json"
WARMUP_STEPS = 2          # allocator, autotuning, AdamW's state: not throughput
TIMED_STEPS = 5
TIME_BUDGET_S = 10.0      # stop timing after this once 2 steps are in (a big model on CPU)
# When the lists are not downloaded: the training classes of each protocol's list (base classes in base-to-novel)
TRAIN_CLASSES = {"base_to_novel": {"hmdb51": 26, "ucf101": 51, "k400": 200, "ssv2": 87},
                 "few_shot": {"hmdb51": 51, "ucf101": 101, "k400": 400, "ssv2": 174}}


@dataclass(frozen=True)
class Workload:
    """What one device computes per step: the measurement's key with the device's name."""
    model_name: str
    image_size: int
    frames: int
    batch_size: int             # videos per device per training step
    precision: str              # as configured (auto: bf16 on CUDA, fp32 on CPU)
    class_prompts: int          # prompts through the text tower per step: classes x k
    temporal_module: bool
    eval_batch_size: int
    eval_views: int             # temporal views x spatial crops

    def describe(self) -> str:
        return (f"{self.model_name} at {self.image_size}, {self.frames} frames, batch {self.batch_size}/device, "
                f"{self.class_prompts} class prompts/step")


@dataclass
class Measurement:
    device: str                 # torch.cuda.get_device_name or "cpu (N threads)"
    workload: Workload
    autocast: str               # bf16 | fp16 | fp32 (none)
    train_frames_per_s: float   # per device, forward + backward + optimizer step
    eval_frames_per_s: float    # per device, forward only, evaluation batches of all views
    steps: int
    warmup_steps: int
    seconds: float              # the whole measurement, model build included
    date: str

    def describe(self) -> str:
        return (f"measured on {self.device} on {self.date}: {self.workload.describe()}, {self.autocast}; "
                f"{self.train_frames_per_s:,.0f} training / {self.eval_frames_per_s:,.0f} evaluation frames/s "
                f"({self.steps} steps after {self.warmup_steps} warm-up; random input frames: compute only, "
                f"data loading not included, so the hours it gives are a lower bound)")


def cache_path() -> Path:
    return paths.runs_dir() / CACHE_NAME


def _image_size(model_name: str) -> int:
    import open_clip

    from apclip_core.model.video_clip import register_model_configs

    register_model_configs()
    size = (open_clip.get_model_config(model_name) or {}).get("vision_cfg", {}).get("image_size", 224)
    return int(size[0] if isinstance(size, (list, tuple)) else size)


def training_classnames(cfg: TrainConfig) -> tuple[list[str], str]:
    """The classes the run trains on (from its list), else stand-ins of the known number; and what they are."""
    from apclip_core.data.protocols import load_protocol

    try:
        return list(load_protocol(cfg.protocol, cfg.protocol_args).train[0].classnames), "its training list"
    except Exception:  # lists not downloaded: the known class count, names from the prompt file when it has them
        dataset = str(cfg.protocol_args.get("dataset", "k400")).lower()
        n = TRAIN_CLASSES.get(cfg.protocol, {}).get(dataset, 400)
        names: list[str] = []
        if cfg.prompt_file:
            from apclip_core.prompts.bank import resolve_prompt_file

            try:
                names = list(json.loads(Path(resolve_prompt_file(cfg.prompt_file)).read_text())["classes"])[:n]
            except (OSError, KeyError, ValueError):
                names = []
        return (names if len(names) == n else [f"action {i}" for i in range(n)]), f"{n} stand-in classes"


def _bank(cfg: TrainConfig, classnames: list[str]):
    from apclip_core.engine.step import training_bank

    try:
        return training_bank(cfg, classnames)
    except (KeyError, ValueError, OSError):  # stand-in names the prompt file does not hold: one prompt each
        from apclip_core.prompts.strategies import build_prompt_bank

        return build_prompt_bank("single", classnames)


def class_prompts(cfg: TrainConfig, bank) -> int:
    per_class = cfg.prompts_per_class_per_step or max(len(p) for p in bank.prompts)
    return sum(min(per_class, len(p)) for p in bank.prompts)


def workload(cfg: TrainConfig, bank=None) -> Workload:
    bank = bank if bank is not None else _bank(cfg, training_classnames(cfg)[0])
    return Workload(model_name=cfg.model_name, image_size=_image_size(cfg.model_name), frames=cfg.frames,
                    batch_size=cfg.batch_size, precision=cfg.precision, class_prompts=class_prompts(cfg, bank),
                    temporal_module=cfg.temporal_module, eval_batch_size=cfg.eval_batch_size,
                    eval_views=cfg.temporal_views * cfg.spatial_crops)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({torch.get_num_threads()} threads)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(step, device: torch.device, frames_per_step: int) -> tuple[float, int]:
    """frames/s over up to TIMED_STEPS steps after WARMUP_STEPS (at least 2 timed, then a time budget)."""
    for _ in range(WARMUP_STEPS):
        step()
    _sync(device)
    tic, steps = time.perf_counter(), 0
    while steps < TIMED_STEPS and (steps < 2 or time.perf_counter() - tic < TIME_BUDGET_S):
        step()
        steps += 1
    _sync(device)
    return steps * frames_per_step / (time.perf_counter() - tic), steps


def measure(cfg: TrainConfig, device: str | torch.device = "auto") -> Measurement:
    """Time the config's training step and evaluation forward on `device`; recorded in the cache."""
    import torch.nn.functional as F

    from apclip_core.engine.optim import build_optimizer
    from apclip_core.engine.step import PromptClassifier, autocast_dtype
    from apclip_core.model.video_clip import create_model

    device = pick_device(device)
    start = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.set_device(device)
    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # "no pretrained weights": none are wanted for timing
    try:
        torch.manual_seed(0)
        model = create_model(cfg.model_name, None, temporal_module=cfg.temporal_module, quick_gelu=cfg.quick_gelu,
                             device=device)
    finally:
        logging.getLogger().setLevel(quiet)
    classnames, _ = training_classnames(cfg)
    bank = _bank(cfg, classnames)
    work = workload(cfg, bank)
    clf = PromptClassifier(model, bank, cfg.similarity, cfg.prompts_per_class_per_step).to(device).train()
    optimizer = build_optimizer(model, cfg)
    amp = autocast_dtype(cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    g = torch.Generator().manual_seed(0)
    size = work.image_size
    video = torch.randn(cfg.batch_size, 1, cfg.frames, 3, size, size, generator=g).to(device)
    labels = torch.randint(0, len(classnames), (cfg.batch_size,), generator=g).to(device)

    def train_step():  # train.py's micro-step + optimizer step (mixup's cost is negligible beside it)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            logits = clf(video, g).float()
        scaler.scale(F.cross_entropy(logits, labels, label_smoothing=cfg.label_smoothing)).backward()
        scaler.step(optimizer)
        scaler.update()

    train_rate, steps = _rate(train_step, device, cfg.batch_size * cfg.frames)
    del optimizer, video
    views = cfg.temporal_views * cfg.spatial_crops
    clips = torch.randn(cfg.eval_batch_size, views, cfg.frames, 3, size, size, generator=g).to(device)
    model.eval()

    def eval_step():  # prompt features are encoded once per split in evaluation: only the frames count
        with torch.no_grad(), torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            model.encode_video(clips)

    eval_rate, _ = _rate(eval_step, device, cfg.eval_batch_size * views * cfg.frames)
    result = Measurement(device=device_name(device), workload=work,
                         autocast={torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}.get(amp, "fp32"),
                         train_frames_per_s=train_rate, eval_frames_per_s=eval_rate, steps=steps,
                         warmup_steps=WARMUP_STEPS, seconds=round(time.perf_counter() - start, 2),
                         date=datetime.date.today().isoformat())
    record(result)
    return result


def _load(path: Path) -> list[dict]:
    try:
        entries = json.loads(path.read_text())["measurements"]
        return entries if isinstance(entries, list) else []
    except (OSError, KeyError, TypeError, ValueError):
        return []


def record(m: Measurement, path: Optional[Path] = None) -> None:
    """Keep the newest measurement per (device, workload)."""
    path = path or cache_path()
    entry = asdict(m)
    kept = [e for e in _load(path) if (e.get("device"), e.get("workload")) != (entry["device"], entry["workload"])]
    atomic.write_json(path, {"about": "apclip throughput measurements (apclip_core/engine/throughput.py)",
                             "measurements": kept + [entry]})


def is_cpu(m: Measurement) -> bool:
    """Not a CUDA GPU's figure (device_name: a GPU's name, else "cpu (N threads)" or "mps (N threads)")."""
    return m.device.startswith(("cpu", "mps"))


def recorded(work: Workload, *, device: Optional[str] = None, path: Optional[Path] = None) -> Optional[Measurement]:
    """The newest cached measurement of this workload on `device` ("cpu" matches any CPU entry, a GPU's name
    that GPU); with no device, the newest GPU one only: a CPU's figure is never a GPU's (plan's GPU-hours),
    it serves the CPU estimates (engine/cost.py), which ask for "cpu"."""
    newest = None
    for e in _load(path or cache_path()):
        try:
            m = Measurement(**{**e, "workload": Workload(**e["workload"])})
        except TypeError:  # written by another version: not this shape
            continue
        if m.workload != work or (device and not m.device.startswith(device)) or (not device and is_cpu(m)):
            continue
        if not (math.isfinite(m.train_frames_per_s) and m.train_frames_per_s > 0):
            continue
        newest = m  # entries are appended: the last one is the newest
    return newest
