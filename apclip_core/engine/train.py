"""Fine-tune a video CLIP the ViFi-CLIP way, with AP-CLIP's prompts and MAKA similarity.

Read top to bottom: the classifier a step optimises -> per-step RNGs -> device, precision and
logging -> the loop state (one object, saved whole) -> the loop (its CLI: engine.train_cli). The run config is
engine.config, optimisation pieces engine.optim, DDP and RNG state engine.distributed, the data
pipeline data.datasets.TrainLoader, evaluation engine.evaluate.

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
DDP:  torchrun --nproc_per_node 8 -m apclip_core train --config base2novel
"""
from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from apclip_core import atomic
from apclip_core.device import pick as pick_device
from apclip_core.errors import BadValue
from apclip_core.engine.checkpoint_clock import CheckpointClock
from apclip_core.engine.config import RESUME_FREE_FIELDS, TrainConfig, load_protocols, run_dir_for
from apclip_core.engine.cost import check_device, requirements
from apclip_core.engine.distributed import (Dist, barrier, broadcast_object, gather_objects, params_checksum,
                                            rng_state, set_rng_state, setup_distributed)
from apclip_core.engine.evaluate import evaluate_protocol, sha256_file, summarize
from apclip_core.engine.launch import RunInUse, RunLock, die_with_parent
from apclip_core.engine.step import PromptClassifier, autocast_dtype, training_bank
from apclip_core.engine.tracking import open_tracker
from apclip_core.engine.optim import build_optimizer, build_scheduler, mixup_cutmix, soft_target_cross_entropy
from apclip_core.model import known_weights
from apclip_core.progress import progress
from apclip_core.prompts.bank import resolve_prompt_file
from apclip_core.prompts.strategies import needs_prompt_file

logger = logging.getLogger("apclip_core.engine.train")  # not "__main__" under torchrun -m


def micro_step_rngs(cfg: TrainConfig, epoch: int, micro_step: int, rank: int):
    """Per-step generators: mixup/cutmix (differs per rank, like each GPU's own draw in ViFi-CLIP)
    and the prompt subset (the same on every rank)."""
    mix = np.random.default_rng([cfg.seed, epoch, micro_step, rank])
    prompts = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch * 100_003 + micro_step)
    return mix, prompts


def resolve_device(cfg: TrainConfig, d: Dist) -> torch.device:
    if cfg.device == "auto":
        return torch.device(f"cuda:{d.local_rank}" if torch.cuda.is_available() else "cpu")
    if cfg.device == "cuda":
        return pick_device(f"cuda:{d.local_rank}")
    return pick_device(cfg.device)


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
    """Rank 0: INFO to run_dir/train.log, and to stderr in a terminal; inside a Jupyter kernel stderr
    gets warnings only (INFO there is pages of config and epoch lines above the result; the notebook
    prints one summary line instead). Other ranks: warnings only."""
    root = logging.getLogger("apclip_core")
    root._apclip_level_before_train = root.level  # close_logging puts it back
    root.setLevel(logging.INFO if d.main else logging.WARNING)
    fmt = logging.Formatter(f"%(asctime)s [rank {d.rank}] %(levelname)s %(message)s", "%H:%M:%S")
    for h in list(root.handlers):
        if getattr(h, "_apclip_train", False):
            root.removeHandler(h)
    console = logging.StreamHandler(sys.stderr)
    if "ipykernel" in sys.modules:
        console.setLevel(logging.WARNING)
    handlers = [console]
    if d.main:
        handlers.append(logging.FileHandler(run_dir / "train.log"))
    for h in handlers:
        h.setFormatter(fmt)
        h._apclip_train = True
        root.addHandler(h)
    root.propagate = False


def close_logging() -> None:
    """Detach a finished run's handlers: later messages of the process (the next run reused from cache,
    say) must not land in this run's train.log."""
    root = logging.getLogger("apclip_core")
    for h in list(root.handlers):
        if getattr(h, "_apclip_train", False):
            root.removeHandler(h)
            h.close()
    root.propagate = True
    # the level too: left at INFO, every later INFO line of the process (a notebook's next cell) would
    # reach the root logger's handlers, a stray line with an absolute path in the notebook's output
    root.setLevel(getattr(root, "_apclip_level_before_train", logging.NOTSET))


@dataclass
class LoopState:
    """Where the loop is, all of it: saved whole in last.pt, so a resumed run continues exactly."""
    epoch: int = 0                 # the epoch being run (0-based)
    micro_step: int = 0            # the next micro-batch of that epoch
    global_step: int = 0           # optimizer steps taken
    history: list = field(default_factory=list)   # one entry per finished epoch
    partial: dict = field(default_factory=lambda: {"loss_sum": 0.0, "n": 0, "seconds": 0.0, "replaced": 0, "padded": 0})

    def next_epoch(self) -> None:
        self.epoch, self.micro_step = self.epoch + 1, 0
        self.partial = LoopState().partial


def save_loop_state(path: Path, *, model, optimizer, scheduler, scaler, state: LoopState, cfg: TrainConfig,
                    d: Dist) -> None:
    """All ranks call this (RNG states are gathered); rank 0 writes."""
    rngs = gather_objects(rng_state(), d)
    if not d.main:
        return
    atomic.torch_save({
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
        "rng": rngs, "epoch": state.epoch, "micro_step": state.micro_step, "global_step": state.global_step,
        "history": state.history, "partial": state.partial, "config": cfg.to_json()}, path)


def load_loop_state(path: Path, *, model, optimizer, scheduler, scaler, cfg: TrainConfig, d: Dist) -> LoopState:
    from apclip_core.model.video_clip import read_torch_file

    saved_state = read_torch_file(path, what="training state")
    saved = json.loads(saved_state["config"])
    now = json.loads(cfg.to_json())
    diff = sorted(k for k in saved if k not in RESUME_FREE_FIELDS and saved[k] != now.get(k))
    if diff:
        raise SystemExit(f"cannot resume {path}: config differs in {diff} (saved vs now)")
    model.load_state_dict(saved_state["model"])
    optimizer.load_state_dict(saved_state["optimizer"])
    scheduler.load_state_dict(saved_state["scheduler"])
    scaler.load_state_dict(saved_state["scaler"])
    set_rng_state(saved_state["rng"][min(d.rank, len(saved_state["rng"]) - 1)])
    return LoopState(epoch=saved_state["epoch"], micro_step=saved_state["micro_step"],
                     global_step=saved_state["global_step"], history=list(saved_state["history"]),
                     partial=dict(saved_state["partial"]))


def evaluate_epoch(model, protocol, cfg: TrainConfig, run_dir: Path, epoch: int, *, device, amp_dtype,
                   d: Dist = Dist()) -> Optional[dict]:
    """Every eval split of the protocol with all prompts, called on every rank: each encodes its share of the
    videos (evaluate.encode_split_sharded), rank 0 scores, writes eval_<split>.json and returns the summary
    (the other ranks: None)."""
    results = evaluate_protocol(model, protocol.eval, cfg, device=device, autocast_dtype=amp_dtype,
                                record={"run": str(run_dir), "epoch": epoch + 1}, shard=d)
    if not d.main:
        return None
    for r in results:
        atomic.write_json(run_dir / f"eval_{r.split}.json", r.to_json())
    return summarize(results)


def write_metrics(run_dir: Path, cfg: TrainConfig, history: list, **extra) -> None:
    atomic.write_json(run_dir / "metrics.json", {"config": asdict(cfg), "epochs": history,
                                                 "prompt_sha256": prompt_sha256(cfg), **extra})


def prompt_sha256(cfg: TrainConfig) -> dict:
    """{prompt file as the config names it: sha256 of its content} for the training and evaluation prompt
    files: what "same protocol" compares (a path says nothing of what the file held when the run read it)."""
    if not needs_prompt_file(cfg.prompt_strategy):  # templates: no file is read
        return {}
    named = [cfg.prompt_file, *cfg.eval_prompt_files.values()]
    return {name: sha256_file(resolve_prompt_file(name)) for name in dict.fromkeys(named)
            if name and Path(resolve_prompt_file(name)).is_file()}


def training_videos(split, cfg: TrainConfig):
    """The training list as the run will see it, and its record for metrics.json (`train_data`): with
    missing_videos=skip the files not on disk, empty or not a video container are left out before any
    decoding (never replaced by another sample, never a zero clip through the model), then
    max_videos_per_split draws a subset."""
    from apclip_core.data.presence import SHOWN, list_name, present_only, subset
    from apclip_core.errors import UserError

    present, skipped = present_only(split) if cfg.missing_videos == "skip" else (split, [])
    if not present.records:
        raise UserError(f"training split {split.name}: none of the {len(split.records)} videos listed in "
                        f"{list_name(split)} is a video file on disk under {split.root} (first: "
                        f"{', '.join(skipped[:SHOWN])}). "
                        f"Get the videos (`python -m apclip_core data check {split.dataset} --root {split.root}`) "
                        f"or point the dataset root at them (APCLIP_DATA)")
    if skipped:
        logger.warning("training split %s: %d of its %d listed videos are not on disk or not video files; skipped "
                       "(missing_videos=skip; first: %s)", split.name, len(skipped), len(split.records), ", ".join(skipped[:SHOWN]))
    used, subset_of = subset(present, cfg.max_videos_per_split)
    if subset_of is not None:
        logger.warning("training on %d of the %d videos of %s (max_videos_per_split)", len(used.records), subset_of,
                       split.name)
    record = {"split": split.name, "list_file": str(split.list_file) if split.list_file else None,
              "root": str(split.root), "listed": len(split.records), "skipped": len(skipped),
              "first_skipped": skipped[:SHOWN], "subset_of": subset_of, "used": len(used.records),
              "missing_videos": cfg.missing_videos}
    return used, record


TRAINING_LIST = "train_videos.json"   # in the run folder: the training videos decided when the run started


def decided_training_videos(split, cfg: TrainConfig, run_dir: Path, d: Dist, *, resume: bool):
    """training_videos, decided once for every rank and every resume. With missing_videos=skip the list
    depends on the disk, which can change under a run (files still arriving on a shared filesystem): rank 0
    decides, the other ranks receive its decision (a rank deciding alone could shard another list), and the
    decision is kept in <run>/train_videos.json, so a resumed run trains on the same videos even if more
    arrived since (logged when the disk now differs). Without skip the list is the list file itself."""
    from apclip_core.errors import UserError

    if cfg.missing_videos != "skip":
        return training_videos(split, cfg)
    decided = None
    if d.main:
        saved = run_dir / TRAINING_LIST
        try:
            if resume and saved.is_file():
                decided = _resumed_training_videos(split, cfg, saved)
            else:
                used, record = training_videos(split, cfg)
                atomic.write_json(saved, {"about": "the training videos this run decided on when it started "
                                                   "(missing_videos=skip); a resume trains on the same ones",
                                          "split": split.name, "record": record,
                                          "videos": [r.path for r in used.records]})
                decided = ([r.path for r in used.records], record)
        except UserError as err:  # every rank stops with rank 0's message instead of waiting for its decision
            decided = err
        except Exception as err:  # noqa: BLE001 - disk full, unreadable list...: said on every rank, none left waiting
            decided = UserError(f"rank 0 could not decide the training list ({saved}): {type(err).__name__}: {err}")
    decided = broadcast_object(decided, d)
    if isinstance(decided, UserError):
        raise decided
    paths, record = decided
    return _restricted(split, paths, run_dir / TRAINING_LIST), record


def _restricted(split, paths: list[str], source: Path):
    """The split cut to `paths` (its own records, in list order); a path the list no longer holds is an error."""
    from apclip_core.errors import UserError

    by_path = {r.path: r for r in split.records}
    unknown = [p for p in paths if p not in by_path]
    if unknown:
        raise UserError(f"{source}: {len(unknown)} of the training videos this run started with are no longer in "
                        f"{split.list_file or split.name} (first: {', '.join(unknown[:3])}); the list changed since, "
                        f"so this is not the same run: start a new one (another output_dir or name), or restore the list")
    return dataclasses.replace(split, records=[by_path[p] for p in paths])


def _resumed_training_videos(split, cfg: TrainConfig, saved: Path) -> tuple[list[str], dict]:
    """The list decided when the run started, and a log line when the disk now holds another one."""
    from apclip_core.data.presence import SHOWN, present_only, subset

    kept = json.loads(saved.read_text())
    paths, record = list(kept["videos"]), dict(kept["record"])
    now, _ = present_only(split)
    now = subset(now, cfg.max_videos_per_split)[0]
    now_paths = {r.path for r in now.records}
    arrived, gone = sorted(now_paths - set(paths)), [p for p in paths if p not in now_paths]
    if arrived or gone:
        logger.warning("resume: training on the %d videos decided when the run started (%s), as before; the disk "
                       "now differs: %d more would be used today (first: %s), %d of those decided are missing or "
                       "unreadable now (first: %s)", len(paths), saved, len(arrived), ", ".join(arrived[:SHOWN]) or "-",
                       len(gone), ", ".join(gone[:SHOWN]) or "-")
    else:
        logger.info("resume: training on the %d videos decided when the run started (%s)", len(paths), saved)
    return paths, record


def train(cfg: TrainConfig, *, resume: bool = False) -> Path:
    """Fine-tune per cfg; returns the run folder (checkpoint.safetensors + .json, last.pt, metrics.json,
    train.log; train_videos.json with missing_videos=skip). last.pt stays a torch file (read with
    weights_only=True): it holds what only this run reads back to resume (AdamW's per-parameter state in
    param groups, the scaler, every rank's RNG states), nested Python structures that safetensors, a flat
    name -> tensor map, cannot hold without a hand-written flattening of its own."""
    if "TORCHELASTIC_RUN_ID" in os.environ:  # a torchrun rank: never outlive the launcher (engine/launch.py)
        die_with_parent()
    d = setup_distributed("cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu")
    device = resolve_device(cfg, d)
    check_device(cfg, device)  # before anything slow: a CPU-only machine hears "no" at once

    from apclip_core.data.datasets import TrainLoader, VideoDataset
    from apclip_core.data.transforms import AugConfig
    from apclip_core.model.video_clip import CHECKPOINT_FILE, create_model_and_transforms, save_checkpoint
    if device.type == "cuda":
        torch.cuda.set_device(device)
    run_dir = run_dir_for(cfg)
    state_path = run_dir / "last.pt"
    if d.main:
        if run_dir.exists() and not resume and (state_path.exists() or (run_dir / "metrics.json").exists()):
            raise SystemExit(f"{run_dir} already holds a run; pass --resume to continue it or set output_dir/name")
        run_dir.mkdir(parents=True, exist_ok=True)
    lock, refused, took_over = RunLock(run_dir), None, None
    if d.main:  # one training per run folder: a second launcher is refused, on every rank
        try:
            took_over = lock.acquire()
            atexit.register(lock.release)
        except RunInUse as e:
            refused = str(e)
    refused = broadcast_object(refused, d)
    if refused:
        raise RunInUse(refused)
    barrier(d)
    setup_logging(run_dir, d)
    if took_over:
        logger.info("%s", took_over)
    logger.info("run folder %s | %d process(es) | device %s", run_dir, d.world_size, device)
    for need in requirements(cfg):
        logger.info("needs: %s", need)
    logger.info("config:\n%s", cfg.to_json())
    if d.main:
        atomic.write_text(run_dir / "config.json", cfg.to_json() + "\n")

    # ---- data ----
    protocol = load_protocols(cfg) if d.main else None
    barrier(d)
    if not d.main:
        protocol = load_protocols(cfg)
    if len(protocol.train) != 1:
        raise BadValue(f"protocol {cfg.protocol} has {len(protocol.train)} training splits; pick one with protocol_args")
    # a decision is reused only by a run that trained: a folder left before its first save decides again
    train_split, train_data = decided_training_videos(protocol.train[0], cfg, run_dir, d,
                                                      resume=resume and state_path.exists())
    classnames = list(train_split.classnames)

    # ---- model, prompts ----
    random.seed(cfg.seed)  # the same on every rank: a randomly initialised model starts identical
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    pretrained = resolve_pretrained(cfg, d)
    model, train_tf, _ = create_model_and_transforms(
        cfg.model_name, pretrained, temporal_module=cfg.temporal_module, quick_gelu=cfg.quick_gelu, device=device,
        num_spatial_crops=cfg.spatial_crops, aug=AugConfig(flip=cfg.flip, **({} if cfg.colour_jitter else {"color_jitter_p": 0.0, "grayscale_p": 0.0})))
    # the weights it started from, by content (known_weights): recorded before any step changes them
    weights = {"pretrained_fingerprint": known_weights.of_model(model)}
    prompt_file = resolve_prompt_file(cfg.prompt_file)
    bank = training_bank(cfg, classnames)
    classifier = PromptClassifier(model, bank, cfg.similarity, cfg.prompts_per_class_per_step).to(device)
    ddp = nn.parallel.DistributedDataParallel(
        classifier, device_ids=[device.index] if device.type == "cuda" else None) if d.enabled else classifier

    loader = TrainLoader(VideoDataset(train_split.records, train_split.root, view=cfg.view(train=True), train=True,
                                      transform=train_tf, seed=cfg.seed),
                         batch_size=cfg.batch_size, num_workers=cfg.num_workers, seed=cfg.seed, rank=d.rank,
                         world_size=d.world_size, pin_memory=device.type == "cuda")
    accum = max(1, round(cfg.effective_batch_size / (cfg.batch_size * d.world_size)))
    if accum * cfg.batch_size * d.world_size != cfg.effective_batch_size:
        logger.warning("effective batch %d is not a multiple of batch_size %d x %d processes; using %d",
                       cfg.effective_batch_size, cfg.batch_size, d.world_size, accum * cfg.batch_size * d.world_size)
    micro_per_epoch = loader.batches_per_epoch  # drop_last in training, as ViFi-CLIP
    if cfg.max_steps_per_epoch:
        micro_per_epoch = min(micro_per_epoch, cfg.max_steps_per_epoch)
    if micro_per_epoch < 1:
        raise BadValue(f"{len(train_split.records)} training videos / {d.world_size} processes < batch_size {cfg.batch_size}")
    steps_per_epoch = math.ceil(micro_per_epoch / accum)

    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
    amp_dtype = autocast_dtype(cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    logger.info("%d training videos (%d listed, %d skipped: missing or not a video file), %d classes | batch %d x %d process(es) x %d accumulation = %d | "
                "%d optimizer steps/epoch | autocast %s | prompts %s (%s), %d per class per step, similarity %s",
                len(train_split.records), train_data["listed"], train_data["skipped"], len(classnames), cfg.batch_size, d.world_size, accum,
                cfg.batch_size * d.world_size * accum, steps_per_epoch, amp_dtype, cfg.prompt_strategy,
                prompt_file if cfg.prompt_strategy not in ("single", "set") else "templates",
                cfg.prompts_per_class_per_step, cfg.similarity)

    # ---- resume ----
    state = LoopState()
    if resume and state_path.exists():
        state = load_loop_state(state_path, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                                cfg=cfg, d=d)
        logger.info("resumed from %s: epoch %d, micro-step %d, optimizer step %d", state_path, state.epoch,
                    state.micro_step, state.global_step)
    else:  # per-rank streams for anything that draws from the global RNGs
        if resume:
            logger.info("--resume: no %s yet, starting from scratch", state_path)
        random.seed(cfg.seed + d.rank)
        np.random.seed(cfg.seed + d.rank)
        torch.manual_seed(cfg.seed + d.rank)
    save = dict(model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, state=state, cfg=cfg, d=d)
    tracker = open_tracker(cfg.tracker, run_dir) if d.main else None
    clock = CheckpointClock(every_steps=cfg.save_every_steps, every_minutes=cfg.save_every_minutes, run_dir=run_dir,
                            d=d, device=device)

    # ---- loop ----
    ddp.train()
    while state.epoch < cfg.epochs:
        epoch = state.epoch
        bar = progress(total=micro_per_epoch, initial=state.micro_step, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       enabled=None if d.main else False)
        tic = time.perf_counter()
        for micro, batch in zip(range(state.micro_step, micro_per_epoch), loader.epoch(epoch, state.micro_step)):
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
            state.partial["loss_sum"] += loss.item()
            state.partial["n"] += 1
            state.partial["replaced"] += sum(r is not None for r in batch["replaced"])
            state.partial["padded"] = state.partial.get("padded", 0) + int(torch.as_tensor(batch["padded"]).sum())
            bar.update(1)
            if is_step:
                if cfg.grad_clip_norm > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip_norm)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                state.global_step += 1
                with torch.no_grad():  # CLIP's clamp: temperature at most 100
                    model.logit_scale.clamp_(0, math.log(100))
                if clock.due(state.global_step) and micro + 1 < micro_per_epoch:  # the epoch's end saves anyway
                    state.partial["seconds"] += time.perf_counter() - tic
                    tic = time.perf_counter()
                    state.micro_step = micro + 1
                    save_loop_state(state_path, **save)
                    clock.saved()
                    logger.info("step checkpoint: epoch %d, micro-step %d, optimizer step %d, loss %.4f",
                                epoch + 1, micro + 1, state.global_step, loss.item())
        bar.close()
        state.partial["seconds"] += time.perf_counter() - tic
        if epoch + 1 == cfg.epochs and state.micro_step < micro_per_epoch:
            # the last epoch's training kept before its evaluation (hours on Kinetics): a job cut during it
            # resumes with every step done (the loop above has nothing left) and only evaluates again
            state.micro_step = micro_per_epoch
            save_loop_state(state_path, **save)
            clock.saved()
            logger.info("step checkpoint before the final evaluation: optimizer step %d", state.global_step)

        # ---- end of epoch: log, evaluate, checkpoint ----
        totals = torch.tensor([state.partial["loss_sum"], state.partial["n"], state.partial["replaced"],
                               state.partial.get("padded", 0)], dtype=torch.float64)
        if d.enabled:
            dist.all_reduce(totals)
        entry = {"epoch": epoch + 1, "step": state.global_step, "loss": float(totals[0] / totals[1]),
                 "replaced_videos": int(totals[2]), "padded_videos": int(totals[3]),
                 "lr": optimizer.param_groups[0]["lr"],
                 "step_time_s": state.partial["seconds"] / max(1, state.partial["n"]) * accum,
                 "samples_per_s": state.partial["n"] * cfg.batch_size * d.world_size / max(1e-9, state.partial["seconds"])}
        if epoch + 1 == cfg.epochs or (cfg.eval_every_epochs and (epoch + 1) % cfg.eval_every_epochs == 0):
            summary = evaluate_epoch(model, protocol, cfg, run_dir, epoch, device=device, amp_dtype=amp_dtype, d=d)
            if d.main:
                entry["eval"] = summary
        barrier(d)
        state.history.append(entry)
        if tracker is not None:
            tracker.log(entry)
        state.next_epoch()
        # Order matters for a kill at any moment: the epoch's outputs first, last.pt (the marker that
        # the epoch is done) last, so a resume re-does every epoch whose marker was not written.
        if d.main:
            save_checkpoint(model, run_dir / CHECKPOINT_FILE, train_config=asdict(cfg), epoch=state.epoch,
                            global_step=state.global_step, metrics=state.history[-1])
            write_metrics(run_dir, cfg, state.history, train_data=train_data, **weights)
        barrier(d)
        save_loop_state(state_path, **save)
        clock.saved()
        evals = " ".join(f"{k} {v:.2f}" for k, v in entry.get("eval", {}).items())
        logger.info("epoch %d/%d | loss %.4f | lr %.3g | %.3f s/step | %s", entry["epoch"], cfg.epochs, entry["loss"],
                    entry["lr"], entry["step_time_s"], evals or "no eval")

    # ---- done: replicas must be identical ----
    checksums = gather_objects(params_checksum(model), d)
    if d.main:
        logger.info("parameter checksums per rank: %s", " ".join(f"rank{r}={c}" for r, c in enumerate(checksums)))
        # written last of all: `complete` is what says the run finished (experiments.finished_summary)
        write_metrics(run_dir, cfg, state.history, train_data=train_data, **weights, param_checksums=checksums,
                      world_size=d.world_size, effective_batch=cfg.batch_size * d.world_size * accum, complete=True)
        logger.info("done: %s", run_dir)
        if tracker is not None:
            tracker.close()
    barrier(d)
    if d.main:
        lock.release()
    if d.enabled:
        dist.destroy_process_group()
    close_logging()
    return run_dir

