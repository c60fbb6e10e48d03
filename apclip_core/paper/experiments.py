"""The paper's experiments as functions the notebooks call: which trainings a table needs, run or
reused, and their numbers as rows.

A method of the paper is a set of config overrides (METHODS). A run is identified by the hash of
its full config, so two tables that need the same training (Table 2's ViFi-CLIP and Table 6's
"Single") share one run, and a killed run is resumed where it stopped, not restarted.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import asdict, replace
from pathlib import Path
from typing import Iterable, Optional

import pandas as pd

from apclip_core import atomic, paths
from apclip_core.errors import UnknownName
from apclip_core.data.presence import SHOWN  # names recorded per list (the first skipped or failed videos)
from apclip_core.progress import say

log = logging.getLogger(__name__)

# Method name (as in the paper's tables) -> TrainConfig overrides.
METHODS: dict[str, dict] = {
    "ViFi-CLIP": {"prompt_strategy": "single", "similarity": "mean"},
    "AP-CLIP": {"prompt_strategy": "action_conditioned", "similarity": "maka"},
    # Table 5: temporal module (TM) and the Body attributes
    "Base+TM": {"prompt_strategy": "single", "similarity": "mean", "temporal_module": True},
    "Ours+TM": {"prompt_strategy": "action_conditioned", "similarity": "maka", "temporal_module": True},
    "Ours+TM w/o Body": {"prompt_strategy": "action_conditioned", "similarity": "maka", "temporal_module": True,
                         "drop_attribute_groups": ["body"]},
    # Tables 6 and 7: prompting strategies, with and without MAKA
    "Single": {"prompt_strategy": "single", "similarity": "mean"},
    "Set": {"prompt_strategy": "set", "similarity": "mean"},
    "Customized": {"prompt_strategy": "customized", "similarity": "mean"},
    "Customized + MAKA": {"prompt_strategy": "customized", "similarity": "maka"},
    "LLMs-Direct": {"prompt_strategy": "llm_direct", "similarity": "mean"},
    "AP": {"prompt_strategy": "action_conditioned", "similarity": "mean"},
    "AP + MAKA": {"prompt_strategy": "action_conditioned", "similarity": "maka"},
}
METHODS["Ours"] = METHODS["AP-CLIP"]
METHODS["Base(ViFi-CLIP)"] = METHODS["ViFi-CLIP"]

# Config fields added after runs were named, with their defaults: left out of a run's identity at that
# default, so the names of runs trained before they existed stay valid (and those runs are reused).
FIELDS_ADDED_LATER = {"drop_attribute_groups": [], "short_videos": "fail", "quick_gelu": None,
                      "missing_videos": "stop", "max_videos_per_split": 0, "colour_jitter": True}

# Config fields that do not change a run's result (left out of its identity).
_NOT_IDENTITY = {"name", "output_dir", "num_workers", "device", "allow_cpu", "eval_batch_size", "tracker", "save_every_minutes"}

# Fields that do not change a run's result either, but were in its identity when runs were named: they
# enter it at the value they had then, whatever the config says, so every run keeps its name.
# video_backend: decord and PyAV decode bit-identical frames (tests/test_video_io.py checks it on every
# container the project writes), and the default became "auto" (the faster per container) after runs
# were named with "decord".
IDENTITY_AS_NAMED = {"video_backend": "decord"}


def method_overrides(method: str) -> dict:
    if method not in METHODS:
        raise UnknownName(f"unknown method {method!r}; valid methods: {', '.join(METHODS)}")
    return dict(METHODS[method])


# Tokens of a preset's name that say its protocol arguments (base2novel_hmdb51_s1: dataset hmdb51, seed 1):
# a run with other arguments gets them in its name too (seed 3 on SSv2: base2novel_ssv2_s3-<hash>), so
# `ls runs/` tells the runs apart without reading their configs. The hash alone carries the identity.
NAME_TOKENS = {"dataset": "{}", "seed": "s{}", "k": "k{}"}


def readable_name(preset_name: str, preset_args: dict, args: dict) -> str:
    parts = preset_name.split("_")
    for key, form in NAME_TOKENS.items():
        old, new = preset_args.get(key), args.get(key)
        if old is not None and new is not None and old != new and form.format(old) in parts:
            parts[parts.index(form.format(old))] = form.format(new)
    return "_".join(parts)


def make_config(config: str, method: str, **overrides):
    """The TrainConfig of `method` on preset `config`, named by its protocol arguments and identity hash."""
    from apclip_core.engine.config import load_config, preset_values

    cfg = load_config(config, **{**method_overrides(method), **overrides})
    if "name" not in overrides:
        cfg = replace(cfg, name=readable_name(cfg.name, preset_values(config).get("protocol_args") or {},
                                              cfg.protocol_args))
    identity = {k: v for k, v in asdict(cfg).items() if k not in _NOT_IDENTITY} | IDENTITY_AS_NAMED
    for key, default in FIELDS_ADDED_LATER.items():  # at their default, runs named before them keep their names
        if identity[key] == default:
            del identity[key]
    if cfg.pretrained == "tiny":
        # 'tiny' names whatever the pretraining defaults produce: pin the run to those weights
        from apclip_core.embedded.pretrain import config_hash, pretrain_config

        identity["pretrained"] = f"tiny:{config_hash(pretrain_config())}"
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:10]
    # named by identity alone: methods that are the same training (ViFi-CLIP / Single) share one run
    return replace(cfg, name=f"{cfg.name}-{digest}")


def finished_summary(run_dir: Path) -> Optional[dict]:
    """The final evaluation of a finished run, or None if it has not finished."""
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.exists():
        return None
    metrics = json.loads(metrics_path.read_text())
    # "complete" is written last by a run (runs from before it existed wrote param_checksums last)
    if not (metrics.get("complete") or "param_checksums" in metrics) or not metrics.get("epochs"):
        return None
    summary = dict(metrics["epochs"][-1].get("eval") or {})
    for record in _split_results(run_dir):
        summary[f"{record['split']}_top5"] = record["top5"]
    return summary


def _split_results(run_dir: Path) -> list[dict]:
    """The run's own per-split results (eval_<split>.json, written by training). `evaluate --checkpoint`
    writes its result beside the checkpoint too (eval_<dataset>_<protocol>_..., a summary over splits):
    that one is not a split of the run and is left alone."""
    out = []
    for path in sorted(run_dir.glob("eval_*.json")):
        record = json.loads(path.read_text())
        if isinstance(record, dict) and "split" in record and "top5" in record:
            out.append(record)
    return out


def per_video(run_dir: Path, evaluated_as: Optional[str] = None) -> dict[str, "np.ndarray"]:
    """Each evaluation split of a finished run -> bool per video of its list (True: top-1 right; a video that
    failed to decode counts as wrong), from its eval_<split>.json, or from reeval-<method>.json for the run
    re-evaluated as `evaluated_as` (reevaluate). What paired comparisons of two methods read (paper.stats)."""
    from apclip_core.paper import stats

    run_dir = Path(run_dir)
    if evaluated_as:
        records = json.loads((run_dir / f"reeval-{_slug(evaluated_as)}.json").read_text()).get("per_video") or {}
        records = [{"split": k, **v} for k, v in records.items()]
    else:
        records = _split_results(run_dir)
    out = {}
    for r in records:
        if not r.get("labels"):
            raise ValueError(f"{run_dir}: split {r['split']} records no per-video predictions (a run evaluated before "
                             f"they were recorded); evaluate it again to compare it video by video")
        out[r["split"]] = stats.correct(r["predicted"], r["labels"])
    return out


def video_labels(run_dir: Path) -> dict[str, "np.ndarray"]:
    """Each evaluation split of a finished run -> the label of each video of its list (what paired comparisons
    group videos by when they draw whole classes: paper.stats.paired_gain's clusters)."""
    import numpy as np

    return {r["split"]: np.asarray(r.get("labels") or []) for r in _split_results(Path(run_dir))}


def _slug(method: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", method.lower()).strip("-")


def run_record(run_dir: Path) -> dict:
    """What a finished run ran on, read from its folder: model and weights, frames and views, and per list
    the videos listed, used, skipped (not on disk), failed, replaced (training) and padded. A table records
    this for every run it used, and the paper profile's deviations are computed from it."""
    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    cfg = metrics.get("config") or {}
    epochs = metrics.get("epochs") or []
    train = dict(metrics.get("train_data") or _train_data_before_partial(cfg))
    for key in ("list_file", "root"):  # recorded in tables: relative to the project, as run folders are
        if train.get(key):
            train[key] = paths.portable(train[key])
    train.update(role="train", epochs=len(epochs),
                 replaced=sum(int(e.get("replaced_videos", 0)) for e in epochs),
                 padded=sum(int(e.get("padded_videos", 0)) for e in epochs))
    splits = [train]
    for r in _split_results(run_dir):
        protocol = r.get("protocol") or {}
        # results from before partial data existed: their list is the subset's source, or what was tried
        listed = r.get("n_listed") or protocol.get("subset_of") or r["n_videos"]
        list_file = protocol.get("list_file")
        splits.append({"split": r["split"], "role": "eval", "list_file": list_file and paths.portable(list_file),
                       "listed": listed, "evaluated": r["n_evaluated"],
                       "failed": r["n_failed"], "first_failed": [f["path"] for f in r.get("failed", [])[:SHOWN]],
                       "skipped": int(r.get("n_skipped", 0)), "first_skipped": list(r.get("skipped", []))[:SHOWN],
                       "padded": int(r.get("n_padded", 0)), "subset_of": protocol.get("subset_of")})
    ran = _as_it_ran(cfg, metrics)  # runs from before an option existed ran with its default
    return {"run_dir": paths.portable(run_dir),
            "model": {**{k: ran.get(k) for k in ("model_name", "pretrained", "quick_gelu")},
                      "pretrained_fingerprint": metrics.get("pretrained_fingerprint")},
            **{k: ran.get(k) for k in ("frames", "temporal_views", "spatial_crops", "eval_max_videos", "seed",
                                       "protocol", "protocol_args", "missing_videos", "max_videos_per_split")},
            "splits": splits, "config": ran, "prompt_sha256": metrics.get("prompt_sha256") or {}}


def _as_it_ran(cfg: dict, metrics: dict) -> dict:
    """The run's config as it ran: fields added after it was trained at the value they stand for (their default
    then), and the effective batch it realised where that can differ from what it asked (batch_size x processes x
    accumulation steps, rounded: batch 8 on 16 GPUs is 128 whatever effective_batch_size said)."""
    realised = metrics.get("effective_batch")
    return {**FIELDS_ADDED_LATER, **cfg, **({"effective_batch_size": realised} if realised else {})}


# The paper's settings that depend on the dataset rather than on the preset: SSv2's classes are direction-
# sensitive ("pushing something from left to right"), so it trains without horizontal flips.
PAPER_DATASET_SETTINGS = {"ssv2": {"flip": False}}


def paper_settings(preset: str, method: str, protocol_args: dict) -> dict:
    """The config the paper gives `method` on the paper-profile `preset` for this run's dataset (its
    protocol_args): the preset and the method's overrides, with the dataset's prompt file when the preset
    names its own dataset's (prompts/hmdb51.json -> prompts/ucf101.json) and PAPER_DATASET_SETTINGS. What
    a run's config is compared with to say whether it ran the paper's protocol (deviations.settings_lines)."""
    from apclip_core.data.protocols import canonical_dataset
    from apclip_core.engine.config import load_config

    overrides = method_overrides(method)
    preset_cfg = load_config(preset, **overrides)
    ours, theirs = (canonical_dataset(d) if d else d for d in (protocol_args.get("dataset"),
                                                                preset_cfg.protocol_args.get("dataset")))
    if ours and theirs and ours != theirs:
        if preset_cfg.prompt_file == f"prompts/{theirs}.json":
            overrides["prompt_file"] = f"prompts/{ours}.json"
        overrides.update(PAPER_DATASET_SETTINGS.get(ours, {}))
    return asdict(load_config(preset, **overrides))


def _train_data_before_partial(cfg: dict) -> dict:
    """The training list of a run trained before runs recorded it (metrics.json without train_data): read
    again from its protocol (such a run used every listed video, a missing one replaced like a broken one,
    and counted in replaced_videos); None counts when the lists cannot be read here."""
    from apclip_core.engine.config import TrainConfig, load_protocols

    try:
        split = load_protocols(TrainConfig(**cfg)).train[0]
        listed, name, list_file = len(split.records), split.name, split.list_file
    except Exception:  # lists moved or not downloaded here: the record says it does not know
        listed, name, list_file = None, None, None
    return {"split": name, "list_file": str(list_file) if list_file else None, "listed": listed, "skipped": 0,
            "first_skipped": [], "subset_of": None, "used": listed}


def train_command(preset: str, cfg, overrides: dict, *, gpus_per_node: int, nodes: int = 1,
                  rendezvous: str = "HEAD_NODE:29500") -> list[str]:
    """torchrun ... -m apclip_core train --config PRESET --resume --set ...: the run's own config (method and
    notebook overrides), its identity-hashed name and its folder, so whoever starts it (the plan's printed
    command, a SLURM script, run() itself), it is the same run, found and reused by run()."""
    from apclip_core.engine.config import run_dir_for

    sets = {**overrides, "name": cfg.name, "output_dir": str(run_dir_for(cfg))}
    launcher = ["torchrun", "--nproc_per_node", str(gpus_per_node)]
    launcher += ["--nnodes", str(nodes), "--rdzv_backend", "c10d", "--rdzv_endpoint", rendezvous] if nodes > 1 \
        else ["--standalone"]
    return [*launcher, "-m", "apclip_core", "train", "--config", preset, "--resume",
            "--set", *[f"{k}={json.dumps(v)}" for k, v in sets.items()]]


def launch_gpus() -> int:
    """APCLIP_GPUS (`make reproduce-tableN GPUS=8`): more than 1 launches each training with torchrun over
    that many processes; otherwise it trains in this process."""
    from apclip_core.errors import BadValue
    from apclip_core.arguments import MAX_GPUS_PER_NODE

    value = os.environ.get("APCLIP_GPUS", "").strip()
    try:
        gpus = int(value) if value else 0
    except ValueError:
        gpus = -1
    if not 0 <= gpus <= MAX_GPUS_PER_NODE:
        raise BadValue(f"GPUS (APCLIP_GPUS) must be a number of GPUs on this machine, 0 to {MAX_GPUS_PER_NODE}, "
                       f"got {value!r}")
    return gpus


def run(config: str, method: str, **overrides) -> dict:
    """Train `method` on preset `config` (or reuse/resume the identical run); return its final eval
    summary (split -> top-1, plus 'hm' or '<split>_mean/_std' where they apply) and the run folder."""
    from filelock import FileLock

    from apclip_core.engine.config import run_dir_for

    cfg = make_config(config, method, **overrides)
    run_dir = run_dir_for(cfg)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    # two notebooks (or tests) asking for the same run: the second waits and reuses the first's result
    with FileLock(str(run_dir) + ".lock"):
        return _run_locked(cfg, run_dir, method, preset=config, overrides=overrides)


# What run() did in this process, one entry per call: (method, run folder, "trained" | "resumed" |
# "reused", seconds). A notebook prints it as one line; a terminal user reads what came from cache.
RUN_LOG: list[tuple[str, str, str, float]] = []


def run_log_summary(since: int = 0) -> str:
    """One line: how many runs were trained, resumed or reused from cache, and where their logs are."""
    entries = RUN_LOG[since:]
    if not entries:
        return "no training runs"
    counts = {kind: sum(1 for e in entries if e[2] == kind) for kind in ("trained", "resumed", "reused")}
    seconds = sum(e[3] for e in entries if e[2] != "reused")
    done = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
    folders = sorted({paths.portable(Path(e[1]).parent) for e in entries})
    return (f"{len(entries)} run(s): {done}" + (f" in {seconds:.0f} s" if seconds else "") +
            f"; logs: <run folder>/train.log under {', '.join(folders)}")


def _run_locked(cfg, run_dir: Path, method: str, *, preset: str, overrides: dict) -> dict:
    import time

    from apclip_core.engine.launch import run_torchrun
    from apclip_core.engine.train import train

    summary = finished_summary(run_dir)
    start = time.monotonic()
    kind = "reused"
    if summary is None:
        resume = (run_dir / "last.pt").exists()
        kind = "resumed" if resume else "trained"
        log.info("%s %s: %s", "resuming" if resume else "training", method, run_dir)
        say(f"{'resuming' if resume else 'training'} {method} ({cfg.epochs} epochs; log: "
            f"{paths.portable(run_dir / 'train.log')})")
        if run_dir.exists() and not resume:
            # a run folder without a resumable state holds nothing worth keeping (it died before epoch 1)
            for f in run_dir.iterdir():
                f.unlink()
        gpus = launch_gpus()
        if gpus > 1:  # the same command the plan prints: the run is the same whoever launches it
            command = train_command(preset, cfg, {**method_overrides(method), **overrides}, gpus_per_node=gpus)
            log.info("launching %s on %d processes: %s", method, gpus, " ".join(command))
            run_torchrun(command[1:], cwd=paths.PROJECT_ROOT)  # stopped with the notebook (engine/launch.py)
        else:
            train(cfg, resume=resume)
        summary = finished_summary(run_dir)
        if summary is None:
            raise RuntimeError(f"training finished but {run_dir}/metrics.json has no final evaluation")
    else:
        log.info("reusing finished run %s", run_dir)
        say(f"{method}: reused the finished run {paths.portable(run_dir)}")
    RUN_LOG.append((method, str(run_dir), kind, time.monotonic() - start))
    return {"method": method, "run_dir": str(run_dir), **summary}


def trained_model(config: str = "bench_base2novel", method: str = "AP-CLIP", **overrides):
    """The fine-tuned model of run(config, method) (trained once, then reused), and its run folder."""
    from apclip_core.model.video_clip import load_checkpoint, run_checkpoint

    result = run(config, method, **overrides)
    return load_checkpoint(run_checkpoint(result["run_dir"])), result["run_dir"]


def reevaluate(result: dict, method: str, *, config: str, **overrides) -> dict:
    """Evaluate a finished run's checkpoint with another method's prompts and similarity, without
    retraining (Table 1's "+ Action prompts": the prompts plugged into another trained model).
    Cached beside the run as reeval-<method>.json."""
    from apclip_core.engine.evaluate import sha256_file, summarize
    from apclip_core.model.video_clip import load_checkpoint, run_checkpoint
    from apclip_core.engine.config import TrainConfig, load_protocols
    from apclip_core.engine.evaluate import evaluate_protocol

    run_dir = Path(result["run_dir"])
    cached = run_dir / f"reeval-{_slug(method)}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    trained = TrainConfig(**json.loads((run_dir / "config.json").read_text()))
    plug = make_config(config, method, **overrides)
    # the trained run's frames, views and subset; the plugged-in method's prompts and similarity
    plugged = replace(trained, prompt_strategy=plug.prompt_strategy, prompt_file=plug.prompt_file,
                       eval_prompt_files=plug.eval_prompt_files, similarity=plug.similarity)
    checkpoint = run_checkpoint(run_dir)
    results = evaluate_protocol(load_checkpoint(checkpoint), load_protocols(trained).eval, plugged,
                                record={"checkpoint": str(checkpoint), "checkpoint_sha256": sha256_file(checkpoint),
                                        "trained_as": result["method"], "evaluated_as": method})
    summary = {"method": f"{result['method']} + {method}", "run_dir": str(run_dir), **summarize(results),
               **{f"{r.split}_top5": r.top5 for r in results}}
    atomic.write_json(cached, {**summary, "per_video": {r.split: {"predicted": r.predicted, "labels": r.labels}
                                                        for r in results}})
    return summary


def metric_name(split_key: str) -> str:
    """'bench_base_val' -> 'base', 'hmdb51_novel_val' -> 'novel', '..._top5' kept as is; others unchanged."""
    match = re.search(r"(?:^|_)(base|novel)(?:_|$)", split_key.lower())
    if match and not split_key.endswith("_top5"):
        return match.group(1)
    return split_key


def grid(config: str, methods: Iterable[str], *, seeds: Iterable[int] = (None,), dataset: str,
         overrides: Optional[dict] = None, seed_arg: Optional[str] = "seed", train_seed: bool = False,
         **protocol_args) -> pd.DataFrame:
    """Run every method for every seed (protocol seed, e.g. the three 16-shot samples; with `train_seed` the
    training seed too); long rows: method, dataset, seed, metric, value, run_dir."""
    rows = []
    for method, seed, run_overrides in grid_runs(config, methods, seeds=seeds, overrides=overrides,
                                                 seed_arg=seed_arg, train_seed=train_seed, **protocol_args):
        result = run(config, method, **run_overrides)
        for key, value in result.items():
            if key in ("method", "run_dir") or not isinstance(value, (int, float)):
                continue
            rows.append({"method": method, "dataset": dataset, "seed": seed, "metric": metric_name(key),
                         "value": float(value), "run_dir": result["run_dir"]})
    return pd.DataFrame(rows)


def seed_argument(config: str, overrides: Optional[dict] = None) -> Optional[str]:
    """"seed" when the protocol of preset `config` (or of the overrides) takes one (the 16-shot or few-shot
    sample), else None: its seeds are training seeds only."""
    from apclip_core.data.protocols import protocol_arguments
    from apclip_core.engine.config import preset_values

    protocol = (overrides or {}).get("protocol") or preset_values(config).get("protocol")
    if protocol is None:
        from apclip_core.engine.config import TrainConfig

        protocol = TrainConfig().protocol
    return "seed" if "seed" in protocol_arguments(protocol) else None


def grid_runs(config: str, methods: Iterable[str], *, seeds: Iterable[int] = (None,), overrides: Optional[dict] = None,
              seed_arg: Optional[str] = "seed", train_seed: bool = False,
              **protocol_args) -> list[tuple[str, Optional[int], dict]]:
    """(method, seed, overrides of run()) for every training a grid needs: what grid() runs and what the
    plan prints, so both name the same runs. A seed sets the protocol argument `seed_arg` (None: none, the
    protocol has no seeds) and, with `train_seed`, the training seed as well (the smoke profile's seeds vary
    the few-shot sample, the data order, augmentation, mixup, prompt subsets and any new layer's init)."""
    from apclip_core.engine.config import load_config

    overrides = dict(overrides or {})
    base_args = {**load_config(config).protocol_args, **overrides.pop("protocol_args", {})}
    out = []
    for method in methods:
        for seed in seeds:
            args = {**base_args, **protocol_args}
            if seed is not None and seed_arg:
                args[seed_arg] = seed
            out.append((method, seed, {"protocol_args": args, **overrides,
                                       **({"seed": seed} if train_seed and seed is not None else {})}))
    return out


def mean_over_seeds(rows: pd.DataFrame) -> pd.DataFrame:
    """Average over seeds (the paper reports base-to-novel as the mean of the three 16-shot seeds);
    the harmonic mean is recomputed from the averaged base and novel, as the paper does."""
    from apclip_core.engine.metrics import harmonic_mean

    out = rows[rows.metric != "hm"].groupby(["method", "dataset", "metric"], as_index=False, sort=False)["value"].mean()
    wide = out.pivot_table(index=["method", "dataset"], columns="metric", values="value", sort=False)
    if {"base", "novel"} <= set(wide.columns):
        hm = [{"method": m, "dataset": d, "metric": "hm", "value": harmonic_mean(r["base"], r["novel"])}
              for (m, d), r in wide.iterrows()]
        out = pd.concat([out, pd.DataFrame(hm)], ignore_index=True)
    return out
