"""Fine-tune a video CLIP the ViFi-CLIP way, with AP-CLIP's prompts and MAKA similarity.

Read top to bottom: config -> optimisation pieces (schedule, mixup/cutmix, losses) -> distributed
and checkpoint machinery -> data -> the training loop -> CLI.

Protocol (ViFi-CLIP, see GUIDE.md): full fine-tuning of both towers, AdamW (0.9, 0.98, eps 1e-8,
wd 0.001 on matrices), cosine schedule stepped per optimizer step with a linear warm-up from 0 over
5 epochs and lr_min = lr/100, label smoothing 0.1, mixup 0.8 / cutmix 1.0 (switch prob 0.5) with a
soft-target cross-entropy, effective batch kept with gradient accumulation when GPUs are fewer.
AP-CLIP's change: the class side of the logits is a *set* of prompts per class and the similarity
is MAKA (late interaction of frames and prompts) instead of the cosine of mean-pooled embeddings:

    logits[b, c] = logit_scale.exp() * similarity(frames of video b, prompts of class c)

Encoding all prompts of all classes at every step is the expensive part (36 per class for
action-conditioned prompts), so each step uses a random subset of `prompts_per_class_per_step`
prompts per class (the per-step prompt budget k); evaluation always uses all of them.

Reproducibility: every random draw that shapes a step is a pure function of (seed, epoch, index):
the sample order (DistributedSampler seeded per epoch), the augmentation of each sample (global RNGs
seeded per (epoch, sample) around __getitem__), mixup/cutmix and the prompt subset (per-step
generators). So a run killed at any point and resumed from its last checkpoint continues exactly
like the uninterrupted run; the global RNG states are saved as well for anything else.

Run:  python -m apclip_core train --config bench_base2novel [--set key=value ...] [--resume]
DDP:  torchrun --nproc_per_node 8 -m apclip_core.engine.train --config base2novel
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import hashlib
import inspect
import itertools
import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from apclip_core import paths
from apclip_core.engine.evaluate import PROMPT_STRATEGIES, SIMILARITIES, build_prompt_bank, evaluate, similarity_fn, summarize
from apclip_core.progress import progress

logger = logging.getLogger("apclip_core.engine.train")  # not "__main__" under torchrun -m

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


# ==== config ========================================================================================
@dataclass
class TrainConfig:
    """Everything that defines a run. Saved as JSON with every checkpoint; presets in configs/*.yaml."""
    name: str = "bench_base2novel"           # run name: the run folder is runs_dir()/name unless output_dir
    # model
    model_name: str = "apclip-tiny"          # any open_clip model name; the paper: ViT-B-16
    pretrained: Optional[str] = "tiny"       # "openai" | a local state-dict file | "tiny" (pretrained tiny CLIP) | None
    temporal_module: bool = False            # Table 5's "+TM" (neighbour-frame attention)
    # data
    protocol: str = "bench_base_to_novel"    # a function of apclip_core.data.protocols (train + eval splits)
    protocol_args: dict = field(default_factory=dict)  # its arguments; relative *_root paths are under data_dir()
    extra_eval: list = field(default_factory=list)     # more eval splits: [{protocol: name, args: {...}}]
    frames: int = 8                          # frames per clip (TSN segments); the paper: 8, fully supervised 16
    temporal_views: int = 2                  # evaluation views: the paper 2 x 2, fully supervised 3 x 4
    spatial_crops: int = 2
    flip: bool = True                        # horizontal flip augmentation (off for the benchmark: mirrored motion)
    video_backend: str = "decord"
    num_workers: int = 2
    # prompts and similarity
    prompt_strategy: str = "single"          # single | set | action_conditioned | customized | llm_direct
    prompt_file: Optional[str] = None        # prompt JSON for the file strategies (training classes)
    eval_prompt_files: dict = field(default_factory=dict)  # {substring of an eval split name: prompt JSON}
    similarity: str = "mean"                 # maka | mean
    prompts_per_class_per_step: int = 8      # k: prompts per class sampled at each step (0 = all)
    # optimisation (ViFi-CLIP)
    epochs: int = 11
    lr: float = 2e-6
    min_lr: Optional[float] = None           # None -> lr / 100
    warmup_epochs: float = 5.0
    weight_decay: float = 0.001
    betas: tuple = (0.9, 0.98)
    eps: float = 1e-8
    effective_batch_size: int = 64           # samples per optimizer step over all processes
    batch_size: int = 4                      # samples per process per forward (per GPU)
    eval_batch_size: int = 8
    label_smoothing: float = 0.1
    mixup_alpha: float = 0.8                 # 0 disables mixup
    cutmix_alpha: float = 1.0                # 0 disables cutmix
    mixup_switch_prob: float = 0.5           # probability of cutmix when both are on
    grad_clip_norm: float = 0.0              # 0 = no clipping (ViFi-CLIP does not clip)
    precision: str = "auto"                  # auto (bf16 autocast on GPU, fp32 on CPU) | bf16 | fp16 | fp32
    seed: int = 0
    # run control
    max_steps_per_epoch: int = 0             # cap on micro-batches per epoch (0 = whole epoch); smoke runs
    eval_every_epochs: int = 1               # 0: evaluate only after the last epoch
    eval_max_videos: int = 0                 # >0: evaluate an evenly spaced subset per split (recorded; tests)
    save_every_steps: int = 0                # extra step checkpoints every N optimizer steps (0 = per epoch only)
    output_dir: Optional[str] = None
    device: str = "auto"                     # auto | cpu | cuda
    allow_cpu: bool = False                  # train a big model on CPU anyway

    def __post_init__(self):
        for f in dataclasses.fields(self):  # YAML 1.1 reads "1e-4" as a string
            value = getattr(self, f.name)
            if "float" in str(f.type) and isinstance(value, str):
                try:
                    setattr(self, f.name, float(value))
                except ValueError:
                    raise ValueError(f"{f.name} must be a number, got {value!r}") from None
        self.betas = tuple(float(b) for b in self.betas)
        self.protocol_args = dict(self.protocol_args or {})
        self.extra_eval = [dict(e) for e in (self.extra_eval or [])]
        self.eval_prompt_files = dict(self.eval_prompt_files or {})
        choices = {"prompt_strategy": PROMPT_STRATEGIES, "similarity": SIMILARITIES, "precision": PRECISIONS,
                   "device": ("auto", "cpu", "cuda")}
        for key, valid in choices.items():
            value = getattr(self, key)
            if value not in valid and not (key == "device" and str(value).startswith("cuda:")):
                raise ValueError(f"{key}={value!r} is not valid; choose one of: {', '.join(valid)}")
        if self.prompt_strategy in ("action_conditioned", "customized", "llm_direct") and not self.prompt_file:
            raise ValueError(f"prompt_strategy={self.prompt_strategy!r} needs prompt_file (a prompts/*.json)")
        for key in ("epochs", "frames", "temporal_views", "spatial_crops", "batch_size", "effective_batch_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")

    @property
    def lr_min(self) -> float:
        return self.lr / 100 if self.min_lr is None else self.min_lr

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def config_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_config(name_or_path: str | Path = "bench_base2novel", **overrides) -> TrainConfig:
    """A preset (configs/<name>.yaml) or a YAML file, with keyword overrides on top.

    Unknown keys are an error that lists the valid ones (a typo must not silently train the default).
    """
    import yaml

    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no config {name_or_path!r}: not a file and not a preset; "
                                f"presets: {', '.join(config_names())}")
    values = yaml.safe_load(path.read_text()) or {}
    values.update(overrides)
    valid = [f.name for f in dataclasses.fields(TrainConfig)]
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown} in {path.name} or overrides; valid keys: {', '.join(valid)}")
    return TrainConfig(**values)


# ==== optimisation ==================================================================================
def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over all parameters; no weight decay on biases, norms, embeddings' 1-D and scalar params."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)


def lr_at(step: int, *, lr: float, lr_min: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up from 0, then cosine from lr to lr_min (timm CosineLRScheduler as in ViFi-CLIP)."""
    if step < warmup_steps:
        return lr * step / warmup_steps
    progress_frac = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return lr_min + (lr - lr_min) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress_frac)))


def build_scheduler(optimizer, cfg: TrainConfig, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    total = cfg.epochs * steps_per_epoch
    warmup = min(int(round(cfg.warmup_epochs * steps_per_epoch)), max(0, total - 1))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_at(s, lr=cfg.lr, lr_min=cfg.lr_min, warmup_steps=warmup, total_steps=total) / cfg.lr)


def smooth_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    off = smoothing / num_classes
    return torch.full((len(labels), num_classes), off, device=labels.device).scatter_(
        1, labels.view(-1, 1), 1.0 - smoothing + off)


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.sum(-targets * F.log_softmax(logits, dim=-1), dim=-1).mean()


def mixup_cutmix(video: torch.Tensor, labels: torch.Tensor, num_classes: int, rng: np.random.Generator, *,
                 mixup_alpha: float, cutmix_alpha: float, switch_prob: float, smoothing: float):
    """Blend each video with the batch's reversed order (X-CLIP/ViFi-CLIP CutmixMixupBlending).

    video [B, ..., H, W]; the cutmix box is the same for every view and frame of a clip, so the
    pasted region is a consistent spatio-temporal tube. Returns (mixed video, soft targets [B, C]).
    """
    targets = smooth_one_hot(labels, num_classes, smoothing)
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or rng.random() < switch_prob)
    lam = float(rng.beta(cutmix_alpha, cutmix_alpha) if use_cutmix else rng.beta(mixup_alpha, mixup_alpha))
    other = video.flip(0)
    if use_cutmix:
        H, W = video.shape[-2:]
        cut = math.sqrt(1.0 - lam)
        ch, cw = int(H * cut), int(W * cut)
        cy, cx = int(rng.integers(H)), int(rng.integers(W))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, H)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, W)
        video = video.clone()
        video[..., y0:y1, x0:x1] = other[..., y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / float(H * W)
    else:
        video = video * lam + other * (1.0 - lam)
    return video, targets * lam + targets.flip(0) * (1.0 - lam)


class PromptClassifier(nn.Module):
    """logits = logit_scale.exp() * similarity(video frames, prompt set of each class).

    A module (not a function) so DDP wraps the whole step: the text tower runs inside forward and
    its gradients are synchronised like the visual tower's.
    """

    def __init__(self, model: nn.Module, bank, similarity: str, prompts_per_step: int):
        super().__init__()
        self.model, self.bank = model, bank
        self.k = prompts_per_step if prompts_per_step > 0 else max(len(p) for p in bank.prompts)
        self.similarity = similarity_fn(similarity)

    def forward(self, video: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        frames = self.model.encode_video(video)                                  # [B, V*T, D]
        prompts, mask = self.bank.features_for_training(self.model, self.k, generator)  # [C, k', D]
        sim = self.similarity(frames.float(), prompts.float(), mask)
        return self.model.logit_scale.exp() * sim


# ==== distributed, RNG, checkpoints =================================================================
@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup_distributed(device_type: str) -> Dist:
    """torchrun sets RANK/WORLD_SIZE/LOCAL_RANK/MASTER_*: join with env:// (nccl on GPU, gloo on CPU)."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Dist()
    if not dist.is_initialized():
        # Generous timeout: rank 0 evaluates alone while the others wait at a barrier.
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo", init_method="env://",
                                timeout=datetime.timedelta(hours=3))
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def rng_state() -> dict:
    """Global RNG states (python, numpy, torch, cuda) in a form torch.load(weights_only=True) accepts."""
    np_state = np.random.get_state(legacy=False)
    state = {"python": random.getstate(),
             "numpy": {"key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                       "pos": int(np_state["state"]["pos"]), "has_gauss": int(np_state["has_gauss"]),
                       "gauss": float(np_state["gauss"])},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state({"bit_generator": "MT19937", "state": {"key": n["key"].numpy().astype(np.uint32),
                                                               "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_torch_save(obj: Any, path: Path) -> None:
    """Write to a temporary file in the same folder, fsync, then os.replace: a crash at any moment
    leaves either the old file or the new one, never a truncated one."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def params_checksum(model: nn.Module) -> str:
    """sha256 of every parameter's bytes: equal across DDP ranks iff the replicas are in sync."""
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def gather_objects(obj: Any, d: Dist) -> list:
    if not d.enabled:
        return [obj]
    out = [None] * d.world_size
    dist.all_gather_object(out, obj)
    return out


# ==== data ==========================================================================================
def load_protocols(cfg: TrainConfig):
    """The config's protocol, with the eval splits of cfg.extra_eval appended."""
    protocol = load_protocol(cfg.protocol, cfg.protocol_args)
    for extra in cfg.extra_eval:
        unknown = set(extra) - {"protocol", "args"}
        if unknown or "protocol" not in extra:
            raise ValueError(f"extra_eval entries look like {{protocol: name, args: {{...}}}}, got {extra}")
        protocol.eval.extend(load_protocol(extra["protocol"], extra.get("args")).eval)
    return protocol


def load_protocol(name: str, args: Optional[dict] = None):
    """Call apclip_core.data.protocols.<name>(**args).

    Embedded-benchmark protocols (bench_*) get the rendered benchmark's root unless given one
    (rendering is idempotent and cached). Relative paths in *_root arguments are taken under
    paths.data_dir(), so configs can say `train_root: kinetics400`.
    """
    from apclip_core.data import protocols

    fn = getattr(protocols, name, None)
    valid = sorted(n for n, f in vars(protocols).items()
                   if inspect.isfunction(f) and not n.startswith("_") and f.__module__ == protocols.__name__
                   and inspect.signature(f).return_annotation in ("Protocol", getattr(protocols, "Protocol", None)))
    if fn is None or name not in valid:
        raise ValueError(f"unknown protocol {name!r}; valid: {', '.join(valid)}")
    args = dict(args or {})
    for key, value in args.items():
        if key.endswith("root") and isinstance(value, str) and not Path(value).is_absolute():
            args[key] = paths.data_dir() / value
    if name.startswith("bench_") and args.get("root") is None:
        from apclip_core.embedded.benchmark import render_benchmark

        args["root"] = render_benchmark().root
    return fn(**args)


class EpochSeededDataset(Dataset):
    """Wraps a dataset so each item's augmentation depends only on (seed, epoch, index).

    The global python/numpy/torch RNGs are seeded for the duration of __getitem__ and restored
    afterwards, so results do not depend on worker count, worker order or where a resumed run
    starts in the epoch.
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        seed = int.from_bytes(hashlib.sha256(f"{self.seed}/{self.epoch}/{index}".encode()).digest()[:8], "little")
        if hasattr(self.dataset, "reseed"):  # VideoDataset's own RNG for TSN frame offsets
            self.dataset.reseed(seed)
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            random.seed(seed)
            np.random.seed(seed % 2**32)
            torch.manual_seed(seed)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)


class ResumableSampler(DistributedSampler):
    """DistributedSampler (per-epoch seeded shuffle, sharded by rank) that can start mid-epoch."""

    start = 0

    def set_position(self, epoch: int, start: int) -> None:
        self.set_epoch(epoch)
        self.start = start

    def __iter__(self):
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self) -> int:
        return self.num_samples - self.start


def micro_step_rngs(cfg: TrainConfig, epoch: int, micro_step: int, rank: int):
    """Per-step generators: mixup/cutmix (differs per rank, like each GPU's own draw in ViFi-CLIP)
    and the prompt subset (the same on every rank)."""
    mix = np.random.default_rng([cfg.seed, epoch, micro_step, rank])
    prompts = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch * 100_003 + micro_step)
    return mix, prompts


# ==== preflight =====================================================================================
# Rough training cost per frame (forward + backward of the visual tower) on 2 CPU cores, from the
# measured ViT-B/16 forward of ~0.2 s/frame at 224 px (GUIDE.md) x 3 for the backward pass.
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


def estimate_cpu_days(cfg: TrainConfig, n_videos: int) -> float:
    per_frame = CPU_SECONDS_PER_FRAME.get(cfg.model_name.replace("-quickgelu", ""), 0.6)
    per_frame *= 2 / max(1, os.cpu_count() or 1)
    return n_videos * cfg.epochs * cfg.frames * per_frame / 86400


def requirements(cfg: TrainConfig) -> list[str]:
    """What this run needs before it can start (printed up front)."""
    needs = [f"model {cfg.model_name} with weights {cfg.pretrained!r}"]
    if cfg.pretrained == "openai":
        hf = os.environ.get("HF_HOME", "~/.cache/huggingface")
        needs[-1] += f" (fetched once from the Hugging Face hub into {hf}/hub; set HF_HUB_OFFLINE=1 afterwards)"
    elif cfg.pretrained == "tiny":
        needs[-1] += " (contrastively pretrained on the embedded benchmark; cached, ~3 min on first use)"
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
    days = estimate_cpu_days(cfg, n_videos)
    cost = f"~{days:,.0f} days" if days >= 2 else f"~{days * 24:,.0f} hours"
    raise SystemExit(
        f"refusing to train {cfg.model_name} on CPU: no GPU visible (torch.cuda.is_available() is False).\n"
        f"Estimated training cost on this machine ({os.cpu_count()} cores, evaluation not included): {cost} "
        f"({days:.2f} days) for {cfg.epochs} epochs of "
        f"~{n_videos:,} videos x {cfg.frames} frames.\nRun it on GPUs (torchrun --nproc_per_node N -m apclip_core.engine.train "
        f"--config {cfg.name}), pick a bench_* config for a CPU run, or pass --allow-cpu to insist.\n"
        + "\n".join(f"It also needs: {n}" for n in requirements(cfg)))


# ==== the training loop =============================================================================
def resolve_device(cfg: TrainConfig, d: Dist) -> torch.device:
    if cfg.device == "auto":
        return torch.device(f"cuda:{d.local_rank}" if torch.cuda.is_available() else "cpu")
    if cfg.device == "cuda":
        return torch.device(f"cuda:{d.local_rank}")
    return torch.device(cfg.device)


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> Optional[torch.dtype]:
    if cfg.precision == "fp32" or (cfg.precision == "auto" and device.type == "cpu"):
        return None
    return torch.float16 if cfg.precision == "fp16" else torch.bfloat16


def resolve_pretrained(cfg: TrainConfig, d: Dist) -> Optional[str]:
    """'tiny' -> the cached pretrained tiny CLIP (rank 0 builds it, the others wait)."""
    if cfg.pretrained != "tiny":
        return cfg.pretrained
    from apclip_core.embedded.pretrain import pretrained_tiny_clip

    if d.main:
        path = pretrained_tiny_clip()
    barrier(d)
    if not d.main:
        path = pretrained_tiny_clip()
    return str(path)


def setup_logging(run_dir: Path, d: Dist) -> None:
    """Rank 0: INFO to stderr and run_dir/train.log. Other ranks: warnings only."""
    root = logging.getLogger("apclip_core")
    root.setLevel(logging.INFO if d.main else logging.WARNING)
    fmt = logging.Formatter(f"%(asctime)s [rank {d.rank}] %(levelname)s %(message)s", "%H:%M:%S")
    for h in list(root.handlers):
        if getattr(h, "_apclip_train", False):
            root.removeHandler(h)
    handlers = [logging.StreamHandler(sys.stderr)]
    if d.main:
        handlers.append(logging.FileHandler(run_dir / "train.log"))
    for h in handlers:
        h.setFormatter(fmt)
        h._apclip_train = True
        root.addHandler(h)
    root.propagate = False


def run_dir_for(cfg: TrainConfig) -> Path:
    return Path(cfg.output_dir) if cfg.output_dir else paths.runs_dir() / cfg.name


def resolve_prompt_file(path: Optional[str]) -> Optional[str]:
    """A prompt file as given, or relative to the project root (configs say prompts/x.json)."""
    if not path or Path(path).is_file():
        return path
    candidate = paths.PROJECT_ROOT / path
    return str(candidate) if candidate.is_file() else path


def eval_prompt_file(cfg: TrainConfig, split_name: str) -> Optional[str]:
    """The prompt file for an eval split: the first eval_prompt_files key contained in its name, else
    prompt_file (cross-dataset zero-shot evaluates HMDB/UCF/K600 classes with their own prompts)."""
    for key, path in cfg.eval_prompt_files.items():
        if key.lower() in split_name.lower():
            return resolve_prompt_file(path)
    return resolve_prompt_file(cfg.prompt_file)


def eval_subset(split, max_videos: int):
    """max_videos > 0: an evenly spaced subset of the split's videos (smoke runs); else the split itself."""
    if not max_videos or len(split.records) <= max_videos:
        return split
    stride = len(split.records) / max_videos
    records = [split.records[int(i * stride)] for i in range(max_videos)]
    logger.warning("evaluating %d of the %d videos of %s (eval_max_videos)", len(records), len(split.records),
                   split.name)
    return dataclasses.replace(split, records=records)


def evaluate_protocol(model, splits, cfg: TrainConfig, *, device: str | torch.device = "cpu",
                      autocast_dtype: Optional[torch.dtype] = None, record: Optional[dict] = None) -> list:
    """Evaluate every eval split of a protocol as ``cfg`` says: its prompt strategy and files (one bank
    per split), similarity, frames, views and ``eval_max_videos`` (a subset is recorded as subset_of)."""
    results = []
    for full in splits:
        split = eval_subset(full, cfg.eval_max_videos)
        bank = build_prompt_bank(cfg.prompt_strategy, split.classnames, eval_prompt_file(cfg, split.name))
        subset_of = len(full.records) if split is not full else None
        results.append(evaluate(model, split, bank, similarity=cfg.similarity, frames=cfg.frames,
                                temporal_views=cfg.temporal_views, spatial_crops=cfg.spatial_crops,
                                batch_size=cfg.eval_batch_size, num_workers=cfg.num_workers, device=device,
                                autocast_dtype=autocast_dtype, backend=cfg.video_backend,
                                record={**(record or {}), "subset_of": subset_of}))
    return results


# Fields that may differ between a run and its resumption (they do not change the result).
RESUME_FREE_FIELDS = {"num_workers", "output_dir", "device", "allow_cpu", "eval_batch_size"}


def train(cfg: TrainConfig, *, resume: bool = False) -> Path:
    """Fine-tune per cfg; returns the run folder (checkpoint.pt + .json, last.pt, metrics.json, train.log)."""
    d = setup_distributed("cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu")
    device = resolve_device(cfg, d)
    check_device(cfg, device)  # before anything slow: a CPU-only machine hears "no" at once

    from apclip_core.data.datasets import VideoDataset, collate_videos
    from apclip_core.model.video_clip import create_model_and_transforms, save_checkpoint
    from apclip_core.data.transforms import AugConfig
    if device.type == "cuda":
        torch.cuda.set_device(device)
    run_dir = run_dir_for(cfg)
    state_path = run_dir / "last.pt"
    if d.main:
        if run_dir.exists() and not resume and (state_path.exists() or (run_dir / "metrics.json").exists()):
            raise SystemExit(f"{run_dir} already holds a run; pass --resume to continue it or set output_dir/name")
        run_dir.mkdir(parents=True, exist_ok=True)
    barrier(d)
    setup_logging(run_dir, d)
    logger.info("run folder %s | %d process(es) | device %s", run_dir, d.world_size, device)
    for need in requirements(cfg):
        logger.info("needs: %s", need)
    logger.info("config:\n%s", cfg.to_json())
    if d.main:
        atomic_write_text(run_dir / "config.json", cfg.to_json() + "\n")

    # ---- data ----
    protocol = load_protocols(cfg) if d.main else None
    barrier(d)
    if not d.main:
        protocol = load_protocols(cfg)
    if len(protocol.train) != 1:
        raise ValueError(f"protocol {cfg.protocol} has {len(protocol.train)} training splits; pick one with protocol_args")
    train_split = protocol.train[0]
    classnames = list(train_split.classnames)

    # ---- model, prompts ----
    random.seed(cfg.seed)  # the same on every rank: a randomly initialised model starts identical
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    pretrained = resolve_pretrained(cfg, d)
    model, train_tf, _ = create_model_and_transforms(
        cfg.model_name, pretrained, temporal_module=cfg.temporal_module, device=device,
        num_spatial_crops=cfg.spatial_crops, aug=AugConfig(flip=cfg.flip))
    prompt_file = resolve_prompt_file(cfg.prompt_file)
    bank = build_prompt_bank(cfg.prompt_strategy, classnames, prompt_file)
    classifier = PromptClassifier(model, bank, cfg.similarity, cfg.prompts_per_class_per_step).to(device)
    ddp = nn.parallel.DistributedDataParallel(
        classifier, device_ids=[device.index] if device.type == "cuda" else None) if d.enabled else classifier

    dataset = EpochSeededDataset(VideoDataset(train_split.records, train_split.root, num_frames=cfg.frames, train=True,
                                              transform=train_tf, backend=cfg.video_backend, seed=cfg.seed),
                              cfg.seed)
    sampler = ResumableSampler(dataset, num_replicas=d.world_size, rank=d.rank, shuffle=True, seed=cfg.seed)
    accum = max(1, round(cfg.effective_batch_size / (cfg.batch_size * d.world_size)))
    if accum * cfg.batch_size * d.world_size != cfg.effective_batch_size:
        logger.warning("effective batch %d is not a multiple of batch_size %d x %d processes; using %d",
                       cfg.effective_batch_size, cfg.batch_size, d.world_size, accum * cfg.batch_size * d.world_size)
    micro_per_epoch = sampler.num_samples // cfg.batch_size  # drop_last in training, as ViFi-CLIP
    if cfg.max_steps_per_epoch:
        micro_per_epoch = min(micro_per_epoch, cfg.max_steps_per_epoch)
    if micro_per_epoch < 1:
        raise ValueError(f"{len(dataset)} training videos / {d.world_size} processes < batch_size {cfg.batch_size}")
    steps_per_epoch = math.ceil(micro_per_epoch / accum)

    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
    amp_dtype = autocast_dtype(cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    logger.info("%d training videos, %d classes | batch %d x %d process(es) x %d accumulation = %d | "
                "%d optimizer steps/epoch | autocast %s | prompts %s (%s), %d per class per step, similarity %s",
                len(dataset), len(classnames), cfg.batch_size, d.world_size, accum,
                cfg.batch_size * d.world_size * accum, steps_per_epoch, amp_dtype, cfg.prompt_strategy,
                prompt_file if cfg.prompt_strategy not in ("single", "set") else "templates",
                cfg.prompts_per_class_per_step, cfg.similarity)

    # ---- resume ----
    epoch, micro_start, global_step = 0, 0, 0
    history: list[dict] = []
    partial = {"loss_sum": 0.0, "n": 0, "seconds": 0.0, "replaced": 0}
    if resume and state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        saved = json.loads(state["config"])
        diff = sorted(k for k in saved if k not in RESUME_FREE_FIELDS and saved[k] != json.loads(cfg.to_json()).get(k))
        if diff:
            raise SystemExit(f"cannot resume {state_path}: config differs in {diff} (saved vs now)")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"][min(d.rank, len(state["rng"]) - 1)])
        epoch, micro_start, global_step = state["epoch"], state["micro_step"], state["global_step"]
        history, partial = list(state["history"]), dict(state["partial"])
        logger.info("resumed from %s: epoch %d, micro-step %d, optimizer step %d", state_path, epoch, micro_start,
                    global_step)
    else:  # per-rank streams for anything that draws from the global RNGs
        if resume:
            logger.info("--resume: no %s yet, starting from scratch", state_path)
        random.seed(cfg.seed + d.rank)
        np.random.seed(cfg.seed + d.rank)
        torch.manual_seed(cfg.seed + d.rank)

    def save_state(next_epoch: int, micro_step: int) -> None:
        """All ranks call this (RNG states are gathered); rank 0 writes."""
        rngs = gather_objects(rng_state(), d)
        if not d.main:
            return
        atomic_torch_save({
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "rng": rngs, "epoch": next_epoch, "micro_step": micro_step, "global_step": global_step,
            "history": history, "partial": partial, "config": cfg.to_json()}, state_path)

    def run_eval() -> dict:
        """Rank 0 evaluates every eval split of the protocol with all prompts; returns the summary."""
        results = evaluate_protocol(model, protocol.eval, cfg, device=device, autocast_dtype=amp_dtype,
                                    record={"run": str(run_dir), "epoch": epoch + 1})
        for r in results:
            atomic_write_text(run_dir / f"eval_{r.split}.json", json.dumps(r.to_json(), indent=2) + "\n")
        return summarize(results)

    def write_metrics(**extra) -> None:
        atomic_write_text(run_dir / "metrics.json",
                          json.dumps({"config": asdict(cfg), "epochs": history, **extra}, indent=2) + "\n")

    # ---- loop ----
    ddp.train()
    while epoch < cfg.epochs:
        dataset.set_epoch(epoch)
        sampler.set_position(epoch, micro_start * cfg.batch_size)
        loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                            collate_fn=collate_videos, drop_last=True, pin_memory=device.type == "cuda",
                            persistent_workers=False)
        bar = progress(total=micro_per_epoch, initial=micro_start, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       enabled=None if d.main else False)
        tic = time.perf_counter()
        for micro, batch in zip(range(micro_start, micro_per_epoch), loader):
            video = batch["video"].to(device, non_blocking=True)
            labels = batch["label"].to(device, non_blocking=True)
            mix_rng, prompt_gen = micro_step_rngs(cfg, epoch, micro, d.rank)
            if cfg.mixup_alpha > 0 or cfg.cutmix_alpha > 0:
                video, targets = mixup_cutmix(video, labels, len(classnames), mix_rng, mixup_alpha=cfg.mixup_alpha,
                                              cutmix_alpha=cfg.cutmix_alpha, switch_prob=cfg.mixup_switch_prob,
                                              smoothing=cfg.label_smoothing)
            else:
                targets = None
            is_step = (micro + 1) % accum == 0 or micro + 1 == micro_per_epoch
            sync = contextlib.nullcontext() if is_step or not d.enabled else ddp.no_sync()
            with sync:
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    logits = ddp(video, prompt_gen).float()
                loss = soft_target_cross_entropy(logits, targets) if targets is not None else \
                    F.cross_entropy(logits, labels, label_smoothing=cfg.label_smoothing)
                scaler.scale(loss / accum).backward()
            partial["loss_sum"] += loss.item()
            partial["n"] += 1
            partial["replaced"] += sum(r is not None for r in batch["replaced"])
            bar.update(1)
            if is_step:
                if cfg.grad_clip_norm > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip_norm)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                global_step += 1
                with torch.no_grad():  # CLIP's clamp: temperature at most 100
                    model.logit_scale.clamp_(0, math.log(100))
                if cfg.save_every_steps and global_step % cfg.save_every_steps == 0 and micro + 1 < micro_per_epoch:
                    partial["seconds"] += time.perf_counter() - tic
                    tic = time.perf_counter()
                    save_state(epoch, micro + 1)
                    logger.info("step checkpoint: epoch %d, micro-step %d, optimizer step %d, loss %.4f",
                                epoch + 1, micro + 1, global_step, loss.item())
        bar.close()
        partial["seconds"] += time.perf_counter() - tic

        # ---- end of epoch: log, evaluate, checkpoint ----
        totals = torch.tensor([partial["loss_sum"], partial["n"], partial["replaced"]], dtype=torch.float64)
        if d.enabled:
            dist.all_reduce(totals)
        entry = {"epoch": epoch + 1, "step": global_step, "loss": float(totals[0] / totals[1]),
                 "replaced_videos": int(totals[2]),
                 "lr": optimizer.param_groups[0]["lr"],
                 "step_time_s": partial["seconds"] / max(1, partial["n"]) * accum,
                 "samples_per_s": partial["n"] * cfg.batch_size * d.world_size / max(1e-9, partial["seconds"])}
        if d.main and (epoch + 1 == cfg.epochs or (cfg.eval_every_epochs and (epoch + 1) % cfg.eval_every_epochs == 0)):
            entry["eval"] = run_eval()
        barrier(d)
        history.append(entry)
        epoch, micro_start, partial = epoch + 1, 0, {"loss_sum": 0.0, "n": 0, "seconds": 0.0, "replaced": 0}
        save_state(epoch, 0)
        if d.main:
            save_checkpoint(model, run_dir / "checkpoint.pt", train_config=asdict(cfg), epoch=epoch,
                            global_step=global_step, metrics=history[-1])
            write_metrics()
        evals = " ".join(f"{k} {v:.2f}" for k, v in entry.get("eval", {}).items())
        logger.info("epoch %d/%d | loss %.4f | lr %.3g | %.3f s/step | %s", entry["epoch"], cfg.epochs, entry["loss"],
                    entry["lr"], entry["step_time_s"], evals or "no eval")

    # ---- done: replicas must be identical ----
    checksums = gather_objects(params_checksum(model), d)
    if d.main:
        logger.info("parameter checksums per rank: %s", " ".join(f"rank{r}={c}" for r, c in enumerate(checksums)))
        write_metrics(param_checksums=checksums, world_size=d.world_size)
        logger.info("done: %s", run_dir)
    barrier(d)
    if d.enabled:
        dist.destroy_process_group()
    return run_dir


# ==== CLI ===========================================================================================
def parse_overrides(items: list[str]) -> dict:
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="apclip train", description=__doc__.split("\n\n")[0],
                                     epilog=f"presets: {', '.join(config_names())}")
    parser.add_argument("--config", default="bench_base2novel", help="preset name or YAML path")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override config fields (YAML values), e.g. --set epochs=2 similarity=maka")
    parser.add_argument("--resume", action="store_true", help="continue from <run>/last.pt if present")
    parser.add_argument("--allow-cpu", action="store_true", help="train a large model on CPU anyway")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and what it needs")
    args = parser.parse_args(argv)
    try:
        overrides = parse_overrides(args.set)
        if args.allow_cpu:
            overrides["allow_cpu"] = True
        cfg = load_config(args.config, **overrides)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.print_config:
        print(cfg.to_json())
        print("\n".join(f"needs: {n}" for n in requirements(cfg)))
        return 0
    train(cfg, resume=args.resume)
    return 0


if __name__ == "__main__":
    sys.exit(main())
