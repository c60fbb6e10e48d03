"""Deterministic multi-view evaluation of a VideoCLIP on one or more protocol splits.

Each video is decoded as `temporal_views` clips of `frames` frames (TSN centre frames), each clip in
`spatial_crops` crops; all V*T frame embeddings of a video go into the similarity at once
(MAKA: frames counted over all views; mean: one pooled embedding over all views), so "views"
never means averaging class scores of separate forward passes.

Nothing is dropped silently: the loader keeps the last partial batch, and a video that fails to
decode is reported by path and reason, counted in `n_failed`, and excluded from the accuracy. A run on
partial data (`missing_videos: skip`) leaves missing files out before decoding and counts them in
`n_skipped`; a subset (`max_videos_per_split`, `eval_max_videos`) is recorded as `subset_of`. A split
with no evaluated video is an error (UserError), never an accuracy of `nan`.
Every result records how it was obtained (model, checkpoint sha256, frames, views, prompts,
similarity, class and video counts), so a JSON file on its own says what was measured.

Encode once, score many: `evaluate_variants` scores several (prompt bank, similarity) pairs from one
encoding of the videos, and a `FrameFeatureCache` (engine.feature_cache; `--feature-cache DIR`) keeps
the per-frame features across calls and processes, keyed by image-tower weights, video file,
sampling and views.

CLI (a fine-tuned checkpoint, or any open_clip model and weights as they are):
    python -m apclip_core evaluate --checkpoint runs/x/checkpoint.safetensors --protocol bench_base_to_novel \
        --prompts prompts/apclip_bench.json --similarity maka
    python -m apclip_core evaluate --model ViT-B-16 --pretrained ~/openai_vitb16.pt --quick-gelu \
        --protocol zero_shot --protocol-arg dataset=hmdb51 --prompts prompts/hmdb51.json
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import sys
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from apclip_core import atomic
from apclip_core.data.transforms import SPATIAL_CROPS
from apclip_core.data.video_io import BACKENDS
from apclip_core.data.views import ViewSpec
from apclip_core.device import pick as pick_device
from apclip_core.engine import metrics
from apclip_core.model.similarity import (default_similarity, frame_features, get_similarity, said_why,
                                         similarity_names)
from apclip_core.progress import progress
from apclip_core.prompts.bank import resolve_prompt_file
from apclip_core.prompts.strategies import build_prompt_bank

logger = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """Accuracy of one split plus the record of how it was measured (all JSON-serialisable)."""
    split: str
    top1: float
    top5: float
    n_videos: int                 # videos this evaluation tried (evaluated + failed; skipped ones not included)
    n_evaluated: int              # videos that decoded and entered the accuracy
    n_failed: int
    failed: list[dict]            # [{"path", "error"}] in list order
    n_classes: int
    per_class_top1: dict[str, Optional[float]]   # None: no evaluated video of that class
    protocol: dict = field(default_factory=dict)
    n_padded: int = 0             # evaluated from the decodable start of a damaged file (policy short_videos=pad)
    padded: list[str] = field(default_factory=list)
    n_listed: Optional[int] = None  # videos in the split's list file (None: as n_videos, before partial data existed)
    n_skipped: int = 0            # listed but not on disk, left out before decoding (missing_videos=skip)
    skipped: list[str] = field(default_factory=list)   # their paths, in list order
    # per video of the evaluated list, in list order: the top-1 class index (None: failed to decode) and the
    # label. What paired comparisons need (paper.stats: two methods on the same videos, video by video).
    predicted: list[Optional[int]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def eval_transform_for(model, spatial_crops: int):
    """The deterministic test transform of the model's input size/normalisation with N crops."""
    from apclip_core.data.transforms import build_video_transform

    cfg = model.config
    return build_video_transform(cfg["image_size"], cfg["mean"], cfg["std"], train=False,
                                 num_spatial_crops=spatial_crops)


@torch.no_grad()
def encode_videos(model, dataset, *, batch_size: int = 8, num_workers: int = 0, device: str | torch.device = "cpu",
                  autocast_dtype: Optional[torch.dtype] = None, seed: int = 0, desc: str = "encode videos"):
    """Raw (unnormalised) frame embeddings of every video: (feats [N, V*T, D] float32 on CPU, labels [N], ok [N],
    errors {index: str}, padded: indices sampled from the decodable start of a damaged file). Raw, so that
    every similarity can be scored from them (`similarity.frame_features` normalises for those that need it).

    Videos that fail to decode come back as ok=False (their features are zeros and unused).
    """
    from apclip_core.data.datasets import build_eval_loader

    loader = build_eval_loader(dataset, batch_size=batch_size, num_workers=num_workers)
    device = torch.device(device)
    feats, labels, oks, errors, padded = [], [], [], {}, []
    was_training = model.training
    model.eval()
    for batch in progress(loader, desc=desc, total=len(loader)):
        video = batch["video"].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            feats.append(model.encode_video(video, normalize=False).cpu())
        labels.append(torch.as_tensor(batch["label"]))
        ok = torch.as_tensor(batch["ok"], dtype=torch.bool)
        oks.append(ok)
        for idx, good, err, pad in zip(torch.as_tensor(batch["index"]).tolist(), ok.tolist(), batch["error"],
                                       torch.as_tensor(batch["padded"]).tolist()):
            if not good:
                errors[idx] = str(err)
            elif pad:
                padded.append(idx)
    model.train(was_training)
    if len(torch.cat(labels)) != len(dataset):
        raise RuntimeError(f"the loader yielded {len(torch.cat(labels))} of {len(dataset)} videos (drop_last?)")
    return torch.cat(feats), torch.cat(labels), torch.cat(oks), errors, padded


@torch.no_grad()
def class_logits(video_feats: torch.Tensor, prompt_feats: torch.Tensor, prompt_mask: Optional[torch.Tensor],
                 similarity: str, *, chunk: int = 256) -> torch.Tensor:
    """Similarity [N, C] of N videos (raw frame features) to C classes, computed in chunks of videos."""
    fn = get_similarity(similarity)
    out = [fn(frame_features(similarity, video_feats[i:i + chunk]), prompt_feats, prompt_mask)
           for i in range(0, len(video_feats), chunk)]
    return torch.cat(out) if out else torch.zeros(0, prompt_feats.shape[0])


def score(split_name: str, classnames: Sequence[str], logits: torch.Tensor, labels: torch.Tensor,
          ok: torch.Tensor, failed: list[dict], protocol: Optional[dict] = None) -> EvalResult:
    """Top-1/top-5/per-class accuracy over the videos that decoded (ok), with the failures recorded and
    each video's top-1 prediction (None where it failed)."""
    predicted = [int(p) if good else None for p, good in zip(logits.argmax(1).tolist() if len(logits) else [],
                                                             ok.tolist())]
    all_labels = [int(v) for v in labels.tolist()]
    logits, labels = logits[ok], labels[ok]
    acc = metrics.topk_accuracy(logits, labels, ks=(1, 5))
    per_class = metrics.per_class_accuracy(logits.argmax(1), labels, len(classnames)) if len(labels) else \
        [math.nan] * len(classnames)
    per_class = [None if math.isnan(v) else v for v in per_class]  # strict JSON: no NaN
    return EvalResult(split=split_name, top1=acc[1], top5=acc[5], n_videos=int(len(ok)), n_evaluated=int(ok.sum()),
                      n_failed=len(failed), failed=failed, n_classes=len(classnames),
                      per_class_top1=dict(zip(classnames, per_class)), protocol=dict(protocol or {}),
                      predicted=predicted, labels=all_labels)


def encode_split(model, split, view: ViewSpec, *, batch_size: int = 8, num_workers: int = 0,
                 device: str | torch.device = "cpu", autocast_dtype: Optional[torch.dtype] = None,
                 feature_cache=None):
    """Frame features of a split's videos: (feats [N, V*T, D], labels [N], ok [N], errors {index: str},
    padded [indices], number of videos actually encoded). With a FrameFeatureCache, only the videos it
    does not hold (for these weights, files, sampling and views) are decoded and encoded; failures and
    padded videos (short_videos=pad) are never cached, so a reuse counts them again."""
    from apclip_core.data.datasets import VideoDataset

    transform = eval_transform_for(model, view.spatial_crops)
    records = list(split.records)
    if feature_cache is None:
        dataset = VideoDataset(records, split.root, view=view, train=False, transform=transform)
        feats, labels, ok, errors, padded = encode_videos(model, dataset, batch_size=batch_size,
                                                          num_workers=num_workers, device=device,
                                                          autocast_dtype=autocast_dtype, desc=f"evaluate {split.name}")
        return feats, labels, ok, errors, padded, len(records)
    from apclip_core.engine.feature_cache import FrameFeatureCache, visual_fingerprint

    cfg = model.config
    # "frame_features": entries stored before (L2-normalised features) are never read as raw ones
    spec = {"image_size": cfg["image_size"], "mean": list(cfg["mean"]), "std": list(cfg["std"]),
            "spatial_crops": view.spatial_crops, "frame_features": "raw"}
    group = FrameFeatureCache.group_key(visual_fingerprint(model), view, spec)
    keys = [FrameFeatureCache.video_id(Path(split.root) / r.path) for r in records]
    found = feature_cache.get_many(group, keys)
    todo = [i for i, f in enumerate(found) if f is None]
    ok = torch.ones(len(records), dtype=torch.bool)
    errors: dict[int, str] = {}
    padded: list[int] = []
    if todo:
        dataset = VideoDataset([records[i] for i in todo], split.root, view=view, train=False, transform=transform)
        feats, _, good, errs, pads = encode_videos(model, dataset, batch_size=batch_size, num_workers=num_workers,
                                                   device=device, autocast_dtype=autocast_dtype,
                                                   desc=f"evaluate {split.name}")
        new = {}
        for j, i in enumerate(todo):
            if not good[j]:
                ok[i], errors[i] = False, errs[j]
            elif j in pads:
                found[i] = feats[j]
                padded.append(i)
            else:
                found[i] = new[keys[i]] = feats[j]
        feature_cache.put_many(group, new)
    empty = torch.zeros(view.views * view.frames, int(cfg["embed_dim"]))
    feats = torch.stack([f if f is not None else empty for f in found])
    labels = torch.tensor([r.label for r in records], dtype=torch.long)
    return feats, labels, ok, errors, sorted(padded), len(todo)


def shard_of(path: str, world_size: int) -> int:
    """The rank that encodes a video: by its path, so a video several splits list falls to the same rank in each
    (its features are reused there: SharedVideosCache)."""
    return zlib.crc32(path.encode()) % world_size


def encode_split_sharded(model, split, view: ViewSpec, *, shard, **kwargs):
    """encode_split over the ranks of a process group (`shard`: engine.distributed.Dist): each rank encodes its
    share of the videos (shard_of), rank 0 gathers them in list order and gets encode_split's tuple for the whole
    split; the other ranks get None. Every video is encoded exactly as one process would (same model, views and
    batches of its own), so the numbers are one process's."""
    import torch.distributed as dist

    mine = [i for i, r in enumerate(split.records) if shard_of(r.path, shard.world_size) == shard.rank]
    part = dataclasses.replace(split, records=[split.records[i] for i in mine])
    encoded = encode_split(model, part, view, **kwargs) if mine else None
    gathered = [None] * shard.world_size if shard.main else None
    dist.gather_object((mine, encoded), gathered, dst=0)
    if not shard.main:
        return None
    shape = next(e[0].shape[1:] for _, e in gathered if e is not None)
    n = len(split.records)
    feats, ok = torch.zeros(n, *shape), torch.ones(n, dtype=torch.bool)
    errors: dict[int, str] = {}
    padded: list[int] = []
    n_encoded = 0
    for indices, part_encoded in gathered:
        if part_encoded is None:
            continue
        part_feats, _, part_ok, part_errors, part_padded, part_n = part_encoded
        index = torch.tensor(indices, dtype=torch.long)
        feats[index], ok[index] = part_feats.float(), part_ok
        errors.update({indices[j]: message for j, message in part_errors.items()})
        padded += [indices[j] for j in part_padded]
        n_encoded += part_n
    labels = torch.tensor([r.label for r in split.records], dtype=torch.long)
    return feats, labels, ok, errors, sorted(padded), n_encoded


def evaluate_variants(model, split, variants: Sequence[tuple[Any, Optional[str]]], *, view: ViewSpec, batch_size: int = 8,
                      num_workers: int = 0, device: str | torch.device = "cpu",
                      autocast_dtype: Optional[torch.dtype] = None, cache_prompts: bool = False,
                      record: Optional[dict] = None, feature_cache=None,
                      prepared: Optional["PreparedSplit"] = None, shard=None) -> list[EvalResult]:
    """Accuracy of `model` on one split for several (PromptBank, similarity) pairs, from ONE encoding
    of the videos: decoding and the image tower dominate, prompts and similarities are cheap. A similarity
    of None is the model's default (similarity.default_similarity: a converted checkpoint's recorded
    pooling, else MAKA); each result records the similarity used and what chose it.

    record: extra fields for each result's protocol record (e.g. checkpoint path and sha256).
    feature_cache: a FrameFeatureCache, so that a later call (other prompts, another process) reuses it.
    prepared: how `split` was cut from its list (prepare_split: missing videos skipped, a subset), recorded
    in each result; without it, `split` is its whole list.
    """
    for bank, _ in variants:
        if list(bank.classnames) != list(split.classnames):
            raise ValueError(f"the prompt bank's classes do not match split {split.name!r} "
                             f"({len(bank.classnames)} vs {len(split.classnames)} classes, or a different order)")
    prepared = prepared or PreparedSplit(split, len(split.records))
    if not split.records:  # every listed video skipped: nothing to decode
        raise no_video_evaluated(split, prepared, {})
    start = time.perf_counter()
    encode = dict(batch_size=batch_size, num_workers=num_workers, device=device, autocast_dtype=autocast_dtype,
                  feature_cache=feature_cache)
    if shard is not None and shard.enabled:  # shard: every rank encodes its share, rank 0 scores (the others: [])
        encoded = encode_split_sharded(model, split, view, shard=shard, **encode)
        if encoded is None:
            return []
    else:
        encoded = encode_split(model, split, view, **encode)
    feats, labels, ok, errors, padded, n_encoded = encoded
    encode_seconds = time.perf_counter() - start
    if not bool(ok.any()):
        raise no_video_evaluated(split, prepared, errors)
    failed = [{"path": split.records[i].path, "error": errors[i]} for i in sorted(errors)]
    for item in failed:
        logger.warning("split %s: %s failed to decode (%s); excluded from the accuracy", split.name,
                       item["path"], item["error"])
    for i in padded:
        logger.warning("split %s: %s decodes only in part; evaluated on the frames that decode (short_videos=pad)",
                       split.name, split.records[i].path)
    results = []
    encoded_banks: dict[int, Any] = {}  # a bank scored with several similarities is encoded once
    for bank, given in variants:
        began = time.perf_counter()
        similarity, chosen_by = default_similarity(model.config, given)
        if id(bank) not in encoded_banks:
            encoded_banks[id(bank)] = bank.encode(model, cache=cache_prompts)
        encoded = encoded_banks[id(bank)]
        logits = class_logits(feats, encoded.feats.float().cpu(),
                              None if encoded.mask is None else encoded.mask.cpu(), similarity)
        n_prompts = [len(p) for p in bank.prompts]
        protocol = {
            "model": model.config.get("model_name"),
            "pretrained": model.config.get("pretrained"),
            "temporal_module": bool(model.config.get("temporal_module", False)),
            **view.record(r.path for r in split.records), "dataset": split.dataset, "role": split.role,
            "prompt_strategy": bank.strategy, "prompts_per_class": [min(n_prompts), max(n_prompts)],
            "n_prompts": sum(n_prompts), "similarity": similarity, "similarity_chosen_by": chosen_by,
            "n_classes": len(split.classnames), "n_videos": len(split.records), "split_root": str(split.root),
            "seconds": None, "videos_encoded": n_encoded, "encoding_shared_by": len(variants),
            "encoded_over_ranks": shard.world_size if shard is not None and shard.enabled else 1,
            **(record or {}),
        }
        protocol.setdefault("subset_of", prepared.subset_of)
        protocol["missing_videos"] = prepared.missing_videos
        protocol["list_file"] = str(split.list_file) if split.list_file else None
        result = score(split.name, split.classnames, logits, labels, ok, failed, protocol)
        result.padded = [split.records[i].path for i in padded]
        result.n_padded = len(padded)
        result.n_listed, result.skipped, result.n_skipped = prepared.listed, list(prepared.skipped), len(prepared.skipped)
        # this variant's own time plus the shared encoding (counted in full for each: what one run would cost)
        result.protocol["seconds"] = round(encode_seconds + time.perf_counter() - began, 2)
        logger.info("%s: top1 %.2f top5 %.2f (%d videos, %d failed, %d classes, %s prompts, %s)", split.name,
                    result.top1, result.top5, result.n_videos, result.n_failed, result.n_classes, bank.strategy,
                    similarity)
        results.append(result)
    return results


def evaluate(model, split, bank, *, similarity: Optional[str] = None, view: ViewSpec, batch_size: int = 8,
             num_workers: int = 0, device: str | torch.device = "cpu", autocast_dtype: Optional[torch.dtype] = None,
             cache_prompts: bool = False, record: Optional[dict] = None, feature_cache=None,
             prepared: Optional["PreparedSplit"] = None, shard=None) -> Optional[EvalResult]:
    """Accuracy of `model` on one protocol split (name, records, classnames, root) with a PromptBank.

    similarity: None for the model's default (a converted checkpoint's recorded pooling, else MAKA).

    record: extra fields for the result's protocol record (e.g. checkpoint path and sha256).
    feature_cache: a FrameFeatureCache (engine.feature_cache): videos already encoded are not again.
    prepared: how `split` was cut from its list (prepare_split), recorded in the result.
    shard: a process group's Dist: every rank encodes its share of the videos; rank 0 gets the result, the
    others None (encode_split_sharded).
    """
    results = evaluate_variants(model, split, [(bank, similarity)], view=view, batch_size=batch_size,
                                num_workers=num_workers, device=device, autocast_dtype=autocast_dtype,
                                cache_prompts=cache_prompts, record=record, feature_cache=feature_cache,
                                prepared=prepared, shard=shard)
    return results[0] if results else None


def evaluate_zero_shot(model, split, *, view: ViewSpec, batch_size: int = 8, num_workers: int = 0,
                       device: str | torch.device = "cpu", autocast_dtype: Optional[torch.dtype] = None,
                       record: Optional[dict] = None, prepared: Optional["PreparedSplit"] = None) -> EvalResult:
    """Accuracy of a converted peer scored as its own zero-shot evaluation scores (`model.zero_shot_logits`: its
    class text from the split's class names, its temporal module, scale and view averaging). The one way to
    evaluate MoTE and TC-CLIP, whose video features depend on the label set (no frame features to cache)."""
    return evaluate_zero_shot_variants(model, split, [None], view=view, batch_size=batch_size,
                                       num_workers=num_workers, device=device, autocast_dtype=autocast_dtype,
                                       record=record, prepared=prepared)[0]


@torch.no_grad()
def evaluate_zero_shot_variants(model, split, prompt_sets: Sequence[Optional[Any]], *, view: ViewSpec,
                                batch_size: int = 8, num_workers: int = 0, device: str | torch.device = "cpu",
                                autocast_dtype: Optional[torch.dtype] = None, record: Optional[dict] = None,
                                prepared: Optional["PreparedSplit"] = None) -> list[EvalResult]:
    """evaluate_zero_shot for several class texts from one decoding of the videos: each of `prompt_sets` is
    None (the model's own class text) or a PromptBank whose texts take its place (zero_shot_logits(prompts=))."""
    from apclip_core.data.datasets import VideoDataset, build_eval_loader

    prepared = prepared or PreparedSplit(split, len(split.records))
    if not split.records:
        raise no_video_evaluated(split, prepared, {})
    start = time.perf_counter()
    dataset = VideoDataset(list(split.records), split.root, view=view, train=False,
                           transform=eval_transform_for(model, view.spatial_crops))
    device = torch.device(device)
    model.eval()
    logits, labels, oks, errors = [[] for _ in prompt_sets], [], [], {}
    for batch in progress(build_eval_loader(dataset, batch_size=batch_size, num_workers=num_workers),
                          desc=f"evaluate {split.name}"):
        ok = torch.as_tensor(batch["ok"], dtype=torch.bool)
        video = batch["video"].to(device)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            for out, bank in zip(logits, prompt_sets):
                texts = {} if bank is None else {"prompts": bank.prompts}
                out.append(model.zero_shot_logits(video, list(split.classnames), **texts).float().cpu())
        labels.append(torch.as_tensor(batch["label"]))
        oks.append(ok)
        for idx, good, err in zip(torch.as_tensor(batch["index"]).tolist(), ok.tolist(), batch["error"]):
            if not good:
                errors[idx] = str(err)
    ok = torch.cat(oks)
    if not bool(ok.any()):
        raise no_video_evaluated(split, prepared, errors)
    failed = [{"path": split.records[i].path, "error": errors[i]} for i in sorted(errors)]
    results = []
    for out, bank in zip(logits, prompt_sets):
        protocol = {"model": model.config.get("model_name"), "source_format": model.config.get("source_format"),
                    **view.record(r.path for r in split.records), "dataset": split.dataset, "role": split.role,
                    "prompt_strategy": "the model's own (zero_shot_logits)" if bank is None else bank.strategy,
                    "n_prompts": None if bank is None else sum(len(p) for p in bank.prompts),
                    "similarity": "the model's own", "n_classes": len(split.classnames),
                    "n_videos": len(split.records), "videos_encoded": len(split.records),
                    "missing_videos": prepared.missing_videos, "subset_of": prepared.subset_of,
                    "seconds": round(time.perf_counter() - start, 2), **(record or {})}
        result = score(split.name, split.classnames, torch.cat(out), torch.cat(labels), ok, failed, protocol)
        result.n_listed, result.skipped, result.n_skipped = prepared.listed, list(prepared.skipped), len(prepared.skipped)
        results.append(result)
    return results


def summarize(results: Sequence[EvalResult]) -> dict[str, Any]:
    """Headline numbers of a protocol's eval splits.

    - every split: top1;
    - a split pair named *base* / *novel*: their harmonic mean ("hm"), as in Table 2;
    - splits sharing a name up to a trailing number (val1, val2, val3 -> val): mean and std of top1
      over them, as in Table 1.
    """
    out: dict[str, Any] = {r.split: r.top1 for r in results}
    base = [r for r in results if r.protocol.get("role", "") == "base" or "base" in r.split.lower()]
    novel = [r for r in results if r.protocol.get("role", "") == "novel" or "novel" in r.split.lower()]
    if len(base) == 1 and len(novel) == 1:
        out["hm"] = metrics.harmonic_mean(base[0].top1, novel[0].top1)
    groups: dict[str, list[float]] = {}
    for r in results:
        stem = r.split.rstrip("0123456789").rstrip("_-")
        if stem != r.split:
            groups.setdefault(stem, []).append(r.top1)
    for stem, vals in groups.items():
        if len(vals) > 1:
            mean, std = metrics.mean_std(vals)
            out[f"{stem}_mean"], out[f"{stem}_std"] = mean, std
    return out


# ---- a protocol's eval splits as a run config says ----------------------------------------------
def eval_prompt_file(cfg, split) -> Optional[str]:
    """The prompt file for an eval split: eval_prompt_files[its dataset], else prompt_file
    (cross-dataset zero-shot evaluates HMDB/UCF/K600 classes with their own prompts)."""
    return resolve_prompt_file(cfg.eval_prompt_files.get(split.dataset, cfg.prompt_file))


def eval_subset(split, max_videos: int):
    """max_videos > 0: an evenly spaced subset of the split's videos (smoke runs); else the split itself."""
    from apclip_core.data.presence import subset

    part, subset_of = subset(split, max_videos)
    if subset_of is not None:
        logger.warning("evaluating %d of the %d videos of %s (a subset)", len(part.records), subset_of, split.name)
    return part


@dataclass
class PreparedSplit:
    """A split as an evaluation will see it, and how it was cut from its list file."""
    split: Any
    listed: int                   # videos in the list file
    skipped: list[str] = field(default_factory=list)   # missing on disk, left out (missing_videos=skip)
    subset_of: Optional[int] = None                     # a subset drawn from this many present videos
    missing_videos: str = "stop"


def prepare_split(full, *, missing_videos: str = "stop", max_videos: int = 0) -> PreparedSplit:
    """The videos an evaluation of `full` will decode: with missing_videos="skip" the files not on disk (or
    empty, or not a video container) are left out first (before any decoding, so no all-zero clip reaches the
    model), then a subset of
    `max_videos` is drawn from what is left. Both are recorded in the results."""
    from apclip_core.data.presence import present_only

    present, skipped = present_only(full) if missing_videos == "skip" else (full, [])
    if skipped:
        logger.warning("%s: %d of its %d listed videos are not on disk or not video files; skipped (missing_videos=skip)",
                       full.name, len(skipped), len(full.records))
    split = eval_subset(present, max_videos) if present.records else present
    return PreparedSplit(split, len(full.records), skipped,
                         len(present.records) if split is not present else None, missing_videos)


def no_video_evaluated(split, prepared: PreparedSplit, errors: dict):
    """The error for a split none of whose videos could be evaluated: an accuracy over nothing is no number."""
    from apclip_core.data.presence import SHOWN, list_name
    from apclip_core.errors import UserError

    why = []
    if prepared.skipped:
        why.append(f"{len(prepared.skipped)} skipped, not on disk or not a video file (first: "
                   f"{', '.join(prepared.skipped[:SHOWN])})")
    if errors:
        first = errors[min(errors)]
        why.append(f"{len(errors)} failed to decode (first: {split.records[min(errors)].path}: {first})")
    return UserError(
        f"split {split.name}: none of the {prepared.listed} videos listed in {list_name(split)} could be evaluated "
        f"under {split.root} ({'; '.join(why) or 'no video left'}). Get the videos (`python -m apclip_core data "
        f"check {split.dataset} --root {split.root}` lists what is wrong), point the dataset root at them "
        f"(APCLIP_DATA), or leave this split out of the protocol")


def evaluate_protocol(model, splits, cfg, *, device: str | torch.device = "cpu",
                      autocast_dtype: Optional[torch.dtype] = None, record: Optional[dict] = None,
                      shard=None) -> list:
    """Evaluate every eval split of a protocol as ``cfg`` says: its prompt strategy and files (one bank
    per split), similarity, frames, views, ``missing_videos`` (skip: left out before decoding, counted) and
    ``eval_max_videos`` / ``max_videos_per_split`` (a subset, recorded as subset_of). shard (a process group's
    Dist, called on every rank): the videos are encoded across the ranks, rank 0 gets the results, the others []."""
    from apclip_core.engine.feature_cache import SharedVideosCache

    caps = [n for n in (cfg.eval_max_videos, getattr(cfg, "max_videos_per_split", 0)) if n]
    prepared_splits = [prepare_split(full, missing_videos=getattr(cfg, "missing_videos", "stop"),
                                     max_videos=min(caps) if caps else 0) for full in splits]
    # a video several splits list (K600's zero-shot splits) is encoded once, its features scored in each
    shared = SharedVideosCache.for_splits([p.split for p in prepared_splits])
    results = []
    for prepared in prepared_splits:
        split = prepared.split
        bank = build_prompt_bank(cfg.prompt_strategy, split.classnames, eval_prompt_file(cfg, split),
                                 drop_groups=cfg.drop_attribute_groups)
        results.append(evaluate(model, split, bank, similarity=cfg.similarity, view=cfg.view(),
                                batch_size=cfg.eval_batch_size, num_workers=cfg.num_workers, device=device,
                                autocast_dtype=autocast_dtype, record=dict(record or {}), prepared=prepared,
                                feature_cache=shared, shard=shard))
    return [r for r in results if r is not None]


def default_result_name(protocol_name: str, protocol_args: dict, splits, strategy: str, similarity: str) -> str:
    """`eval_<dataset>_<protocol>[_<args>]_<strategy>_<similarity>.json`: the result of one checkpoint on
    HMDB-51 and on UCF-101 (or on seed 1 and seed 2) must land in two files, never replace each other.

    The dataset comes from the splits themselves (a cross-dataset protocol joins them with '+'); the
    protocol's scalar arguments other than the dataset and folders (seed, k) are part of the name.
    """
    import re

    datasets = "+".join(dict.fromkeys(s.dataset for s in splits if s.dataset)) or "unknown-dataset"
    args = [f"{k}{v}" for k, v in sorted(protocol_args.items())
            if k != "dataset" and not k.endswith("root") and isinstance(v, (int, float, str)) and len(str(v)) < 20]
    parts = [datasets, protocol_name, *args, strategy, similarity]
    return "eval_" + "_".join(re.sub(r"[^A-Za-z0-9_+.-]+", "-", str(p)).strip("-") for p in parts) + ".json"


# ---- CLI ------------------------------------------------------------------------------------------
def _parse_value(text: str):
    import yaml

    return yaml.safe_load(text)


def run_command_line(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """The `evaluate` command once its arguments are parsed (engine.evaluate_cli, which imports no torch)."""
    if args.similarity is not None and args.similarity not in similarity_names():
        parser.error(f"argument --similarity: invalid choice {args.similarity!r} (choose from "
                     f"{', '.join(similarity_names())})")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    from apclip_core.model.video_clip import create_model, load_checkpoint
    from apclip_core.data.protocols import load_protocol
    from apclip_core.errors import ActivationUnstated

    device = pick_device(args.device)
    if args.out:  # a folder that cannot take the result stops here, not after the evaluation
        if Path(args.out).is_dir():
            parser.error(f"--out {args.out} is a folder; give the result's file name (e.g. {Path(args.out) / 'eval.json'})")
        atomic.writable_folder(Path(args.out).parent)
    # the model first: a wrong spec (activation, weights) is said before any list or video is read
    if args.checkpoint:
        model = load_checkpoint(args.checkpoint, device=device)
        record = {"checkpoint": str(args.checkpoint), "checkpoint_sha256": sha256_file(args.checkpoint)}
    else:
        args.pretrained = args.pretrained or "openai"
        try:
            model = create_model(args.model, args.pretrained, quick_gelu=args.quick_gelu, device=device)
        except ActivationUnstated as err:  # a usage error; unavailable weights end in errors.run_command
            parser.error(str(err))
        record = {"checkpoint": None, "model_spec": {"model_name": args.model, "pretrained": args.pretrained,
                                                      "quick_gelu": model.config["quick_gelu"]}}
    similarity, chosen_by = default_similarity(model.config, args.similarity)
    print(f"similarity: {similarity} ({said_why(chosen_by)})")
    protocol_args = {}
    for item in args.protocol_arg:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--protocol-arg expects KEY=VALUE, got {item!r}")
        protocol_args[key] = _parse_value(value)
    protocol = load_protocol(args.protocol, protocol_args)
    if args.prompts in ("single", "set"):
        strategy, prompt_file = args.prompts, None
    else:
        strategy, prompt_file = args.prompt_strategy, args.prompts
        if not Path(prompt_file).is_file():
            parser.error(f"--prompts: {prompt_file} is neither 'single', 'set' nor an existing prompt file")
    record.update(protocol_name=args.protocol, protocol_args=protocol_args, prompt_file=prompt_file)
    autocast_dtype = torch.bfloat16 if device.type == "cuda" else None
    from apclip_core.engine.feature_cache import FrameFeatureCache

    feature_cache = FrameFeatureCache(args.feature_cache) if args.feature_cache else None
    results = []
    for full in protocol.eval:
        prepared = prepare_split(full, missing_videos=args.missing_videos, max_videos=args.max_videos)
        split = prepared.split
        bank = build_prompt_bank(strategy, split.classnames, prompt_file)
        results.append(evaluate(model, split, bank, similarity=args.similarity,  # None: chosen as above, recorded
                                view=ViewSpec(args.frames, args.temporal_views, args.spatial_crops,
                                              args.video_backend, short_videos=args.short_videos),
                                batch_size=args.batch_size, num_workers=args.num_workers, device=device,
                                autocast_dtype=autocast_dtype, record=dict(record), feature_cache=feature_cache,
                                prepared=prepared))
    summary = summarize(results)
    name = default_result_name(args.protocol, protocol_args, protocol.eval, strategy, similarity)
    if not args.checkpoint:  # no run folder to sit beside: under runs/, named after the model too
        from apclip_core import paths

        name = name.replace("eval_", f"eval_{Path(args.model).name}-{Path(str(args.pretrained)).stem}_", 1)
    out = Path(args.out) if args.out else (Path(args.checkpoint).parent if args.checkpoint else paths.runs_dir()) / name
    atomic.write_json(out, {"summary": summary, "similarity": similarity, "similarity_chosen_by": chosen_by,
                            "results": [r.to_json() for r in results]})
    for key, value in summary.items():
        print(f"{key:>24}: {value:.2f}")
    print(f"wrote {out}")
    return 0

