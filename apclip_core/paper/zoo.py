"""Table 1's zoo: the peers' released models, with no retraining, under every prompt strategy x similarity.

For each model (vanilla CLIP and the peers' checkpoints converted by `python -m apclip_core convert`)
and each dataset's zero-shot splits, `evaluate_variants` scores the six variants {single, set (Open-VCLIP's
28 templates), action_conditioned} x {mean, maka} from ONE encoding of every video (per-frame features
in a FrameFeatureCache, so a rerun or a later prompt set encodes nothing again). We report mean +- std over
the splits per (model, dataset, prompts, similarity), and beside it:

- the published number of the model, on the row of its own prompts (`OWN_VARIANT`), with the paper and
  protocol it comes from (`paper_tables/zoo_published.csv`: the protocols differ from ours and between papers);
- on the action-prompt rows, the gain over the model's own prompts, ours beside the paper's where a paper
  has one (AP-CLIP's "+ Action prompts": Open-VCLIP 53.9 -> 57.0 on HMDB-51). Action prompts plugged into
  ViFi-CLIP, FROSTER, OST or vanilla CLIP are rows no paper has: marked "new: no published number".

A model whose file is missing is listed as "not provided", never dropped. Every result records what it
ran on: the checkpoint files (sha256, image-tower fingerprint, the conversion record), frames and views,
the splits with their video and class counts, the prompt files; the markdown, PNG and notebook say per split
the videos listed, evaluated, failed to decode and skipped. `partial_data` (`make reproduce-table1-zoo
PARTIAL=1`) evaluates on the videos present (`missing_videos: skip`, as the training tables), and the paper
profile says "same protocol" only when nothing deviates (paper.deviations' wording), else every deviation.

Smoke profile: the embedded benchmark's novel classes (`bench_zero_shot`), and for models the pretrained
tiny CLIP written in each peer's file layout (`embedded.peer_files`) and converted by the real importer.
Every stand-in holds the same tiny CLIP, so their rows differ only by what each peer's format implies
(pixel normalisation, Open-VCLIP/FROSTER's neighbour-frame attention, ViFi-CLIP's pooling). The tiny CLIP
is not OpenAI's convention (4 heads of 32 and GELU, where OpenAI's CLIP has heads of 64 and QuickGELU,
which shapes cannot tell apart), so the stand-ins are converted with `--heads 4 --no-quick-gelu`, recorded
in each conversion record: the converted OpenAI-layout stand-in computes exactly the tiny CLIP's features.
The smoke zoo checks the path from a released file to the table, not any peer's accuracy.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from apclip_core import paths
from apclip_core.data.presence import SHOWN
from apclip_core.device import pick as pick_device
from apclip_core.errors import BadValue, UserError
from apclip_core.paper import deviations, tables
from apclip_core.paper.reproduce import TableResult

logger = logging.getLogger(__name__)

NAME = "table1_zoo"
STRATEGIES = ("single", "set", "action_conditioned")
SIMILARITIES = ("mean", "maka")
ACTION = "action_conditioned"
GAIN_SIMILARITY = "maka"   # the headline "+ Action prompts" row: action-conditioned prompts with MAKA (as Table 1's plug-in)
NEW = "new: no published number"

# Each peer's own way to score, among the zoo's variants: the row its published number belongs beside and
# the baseline of the action prompts' gain. Vanilla CLIP and ViFi-CLIP score one prompt per class, Open-VCLIP
# and FROSTER their 28 templates; OST's LLM descriptors with optimal transport are not among the variants, so
# its baseline is the single prompt. Pooling: a model's "mean" rows pool frames as its authors do, by the
# pooling its checkpoint records (model.similarity.pooled_similarity): L2 per frame then mean ranks classes as
# Open-VCLIP, FROSTER and OST pool; ViFi-CLIP's rows average its raw frame features ("mean_raw").
# MoTE and TC-CLIP score as their own evaluations do (zero_shot_logits: MoTE's 28 templates and temporal module,
# TC-CLIP's learned context rewritten per video), on the row of their own prompts; with action prompts, each
# description takes the place of their class text in that same scoring (the "mean" row; no MAKA).
OWN_VARIANT = {"openai": ("single", "mean"), "vificlip": ("single", "mean"), "ost": ("single", "mean"),
               "openvclip": ("set", "mean"), "froster": ("set", "mean"), "mote": ("set", "mean"),
               "tcclip": ("single", "mean")}

# the zoo's models and the importer's --from of each (the smoke profile writes a stand-in of each file)
SOURCE_FORMATS = {"Vanilla CLIP": "openai", "ViFi-CLIP": "vificlip", "Open-VCLIP": "openvclip", "FROSTER": "froster",
                  "OST": "ost"}
# the released models apclip re-implements (model.mote, model.tcclip): in the paper profile's models; the smoke
# profile's stand-ins (peer_files.write_standins writes them too) are not among its five yet
PEER_MODEL_FORMATS = {"TC-CLIP": "tcclip", "MoTE": "mote"}
ALL_FORMATS = {**SOURCE_FORMATS, **PEER_MODEL_FORMATS}


class NoModelError(UserError, FileNotFoundError):
    """None of the zoo's model files is there: nothing to evaluate."""


@dataclass(frozen=True)
class ZooDataset:
    label: str              # as the paper's tables name it
    protocol: str           # a registered protocol whose eval splits are the zero-shot splits
    args: dict
    prompt_file: str        # the action-conditioned prompts of its classes


DATASETS = {
    "hmdb51": ZooDataset("HMDB-51", "zero_shot", {"dataset": "hmdb51"}, "prompts/hmdb51.json"),
    "ucf101": ZooDataset("UCF-101", "zero_shot", {"dataset": "ucf101"}, "prompts/ucf101.json"),
    "k600": ZooDataset("K600", "zero_shot", {"dataset": "k600"}, "prompts/k600_zs.json"),
    "apclip_bench": ZooDataset("apclip_bench", "bench_zero_shot", {}, "prompts/apclip_bench.json"),
}


def zoo_dataset(name: str) -> ZooDataset:
    from apclip_core.data.protocols import canonical_dataset

    key = canonical_dataset(name)
    if key not in DATASETS:
        raise BadValue(f"the zoo has no zero-shot splits for dataset {name!r}; valid: {', '.join(DATASETS)}")
    return DATASETS[key]


def protocol_args(ds: ZooDataset, name: str, video_roots: Optional[dict] = None) -> dict:
    """The dataset's protocol arguments, with its videos under video_roots[name] when given (e.g. Kinetics-600
    re-encoded to short side 256 by `python -m apclip_core data reencode`, a folder under the data dir)."""
    root = (video_roots or {}).get(name)
    return {**ds.args, **({"video_root": root} if root else {})}


def eval_splits(ds: ZooDataset, name: str, video_roots: Optional[dict] = None) -> list:
    """The dataset's zero-shot evaluation splits (its protocol's lists; an error says how to get them), as the
    zoo evaluates them, its plan counts them and its preflight checks them."""
    from apclip_core.data.protocols import load_protocol

    return load_protocol(ds.protocol, protocol_args(ds, name, video_roots)).eval


def published() -> pd.DataFrame:
    """The peers' published zero-shot numbers (and AP-CLIP's "+ Action prompts"), with source and protocol."""
    return pd.read_csv(tables.PAPER_TABLES_DIR / "zoo_published.csv")


def backbone_of(model_name: Optional[str]) -> str:
    """'ViT-B-16' -> 'ViT-B/16' (the papers' spelling); other architectures by their own name."""
    if not model_name:
        return "?"
    parts = model_name.split("-")
    if len(parts) == 3 and parts[0] == "ViT":
        return f"ViT-{parts[1]}/{parts[2]}"
    if model_name.startswith("apclip-import-"):  # an architecture read from a file's shapes: without its hash
        return "ViT-" + "-".join(model_name[len("apclip-import-"):].split("-")[:-1])
    return model_name


# ---- the models ------------------------------------------------------------------------------------------
@dataclass
class ZooModel:
    name: str
    checkpoint: Optional[Path]           # None or a missing file: "not provided"
    given_as: str = ""                   # what the parameters said (the README's path)
    stand_in: bool = False               # the smoke profile's file, rewritten on each machine

    @property
    def provided(self) -> bool:
        return self.checkpoint is not None and self.checkpoint.is_file()


def standin_key(weights_id: str) -> str:
    """The smoke stand-ins' cache key: the tiny CLIP's weights (`weights_id`) and the bytes of the code that
    writes the peers' files, converts them and saves the result (embedded/peer_files.py, model/convert.py,
    model/video_clip.py), so a change to any converts again instead of reusing files older code wrote."""
    import hashlib

    from apclip_core.embedded import peer_files
    from apclip_core.model import convert, video_clip

    h = hashlib.sha256(f"{weights_id}:v2".encode())
    for module in (peer_files, convert, video_clip):
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()[:12]


def tiny_clip_convention() -> dict:
    """What conversion must be told about the tiny CLIP, which tensor shapes cannot say: its attention heads
    (image tower, text tower) and activation, from its open_clip config (4 heads of 32, GELU; OpenAI's CLIP,
    and so every peer's file, has heads of 64 and QuickGELU). convert()'s keyword arguments."""
    import open_clip

    from apclip_core.embedded.pretrain import MODEL_NAME
    from apclip_core.model.video_clip import register_model_configs

    register_model_configs()
    cfg = open_clip.get_model_config(MODEL_NAME)
    vision, text = cfg["vision_cfg"], cfg["text_cfg"]
    return {"heads": (vision["width"] // vision.get("head_width", 64), text.get("heads", text["width"] // 64)),
            "quick_gelu": bool(cfg.get("quick_gelu", False))}


def bench_models(folder: Optional[str | Path] = None) -> dict[str, Path]:
    """The smoke profile's models: the pretrained tiny CLIP written in each peer's layout (and OpenAI's),
    converted by the importer as a user would (`--base` the OpenAI-layout file for ViFi-CLIP's token
    embedding and Open-VCLIP/OST's interpolation), told the tiny CLIP's heads and activation
    (`--heads 4 --no-quick-gelu`, tiny_clip_convention), so each converted file computes the tiny CLIP's
    own features. Reused while the tiny CLIP and this code are unchanged."""
    import shutil

    import torch

    from apclip_core import atomic
    from apclip_core.embedded import peer_files
    from apclip_core.embedded.pretrain import pretrained_tiny_clip
    from apclip_core.model import convert

    weights = pretrained_tiny_clip()
    key = standin_key(weights.parent.name)
    # a folder of its own per checkpoint format: the .pt stand-ins of an older apclip stay theirs
    final = Path(folder) if folder is not None else paths.cache_dir() / "zoo_bench" / f"{key}-safetensors"
    out = {name: final / "converted" / f"{fmt}.safetensors" for name, fmt in SOURCE_FORMATS.items()}
    if all(p.is_file() for p in out.values()):
        return out
    final.parent.mkdir(parents=True, exist_ok=True)
    atomic.remove_stale_temporaries(final.parent)
    tmp = atomic.temporary_sibling(final)
    tmp.mkdir()
    try:
        sd = torch.load(weights, map_location="cpu", weights_only=True)
        convention = tiny_clip_convention()
        released = peer_files.write_standins(sd, tmp / "released", ("openai", *SOURCE_FORMATS.values()),
                                             heads=convention["heads"][0])
        base = str(released["openai"])
        for fmt in SOURCE_FORMATS.values():
            convert.convert(released[fmt], tmp / "converted" / f"{fmt}.safetensors", fmt,
                            base=base if fmt in ("vificlip", "ost", "openvclip", "mote", "tcclip") else None,
                            **convention)
        shutil.rmtree(tmp / "released")  # 25 MB each, rewritten from the tiny CLIP whenever needed
        atomic.publish(tmp, final, replace=False,
                       is_complete=lambda path: all((path / "converted" / f"{f}.safetensors").is_file()
                                                    for f in SOURCE_FORMATS.values()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def resolve_models(models: Optional[dict]) -> list[ZooModel]:
    """{name: checkpoint path} (relative paths under the project root) -> ZooModels; None or {}: the
    embedded benchmark's stand-ins."""
    if not models:
        return [ZooModel(name, path, given_as=f"embedded stand-in ({SOURCE_FORMATS[name]})", stand_in=True)
                for name, path in bench_models().items()]
    out = []
    for name, given in models.items():
        path = None
        if given:
            path = Path(str(given)).expanduser()
            if not path.is_absolute() and not path.exists():
                path = paths.PROJECT_ROOT / path
        out.append(ZooModel(str(name), path, given_as=str(given or "")))
    return out


def model_record(model: ZooModel, loaded) -> dict:
    """What a model's rows were computed with: the file, its sha256, the image tower's fingerprint and,
    for a converted file, the conversion record (source file and sha256, interpolation, pooling...)."""
    from apclip_core.engine.evaluate import sha256_file
    from apclip_core.engine.feature_cache import visual_fingerprint

    sidecar = model.checkpoint.with_name(model.checkpoint.name + ".json")
    converted = json.loads(sidecar.read_text()).get("converted_from") if sidecar.is_file() else None
    if converted:  # the files' names (where they were is the user's machine), and their hashes
        converted = {**converted, "source": Path(str(converted.get("source", ""))).name}
        if converted.get("base") and not str(converted["base"]).startswith("openai"):
            converted["base"] = Path(str(converted["base"])).name
        if model.stand_in:  # torch.save stamps each file with a fresh id: only the tensors' fingerprint repeats
            converted = {k: v for k, v in converted.items() if not k.endswith("sha256")}
    cfg = loaded.config
    return {"checkpoint": f"<embedded stand-in>/{model.checkpoint.name}" if model.stand_in
            else paths.portable(model.checkpoint),
            "sha256": None if model.stand_in else sha256_file(model.checkpoint),
            "visual_fingerprint": visual_fingerprint(loaded),
            "model_name": cfg.get("model_name"), "backbone": backbone_of(cfg.get("model_name")),
            "source_format": cfg.get("source_format"), "expand_temporal_view": cfg.get("expand_temporal_view", 0),
            "video_pooling": cfg.get("video_pooling"), "interpolation": cfg.get("interpolation"),
            "mean": cfg.get("mean"), "std": cfg.get("std"), "converted_from": converted}


# ---- evaluation ------------------------------------------------------------------------------------------
@dataclass
class ZooRun:
    """Everything the zoo measured: one row per (model, split, prompts, similarity), plus the records."""
    rows: list[dict] = field(default_factory=list)
    models: dict = field(default_factory=dict)
    datasets: dict = field(default_factory=dict)
    not_provided: dict = field(default_factory=dict)
    splits: list = field(default_factory=list)        # per (model, split): videos listed, evaluated, failed, skipped
    encoded: dict = field(default_factory=dict)       # model -> videos encoded (0 when all came from the cache)
    seconds: dict = field(default_factory=dict)       # model -> seconds of evaluation (shown, never stored)


def evaluate_zoo(models: list[ZooModel], datasets: Sequence[str], *, view, strategies: Sequence[str] = STRATEGIES,
                 similarities: Sequence[str] = SIMILARITIES, prompt_files: Optional[dict] = None,
                 video_roots: Optional[dict] = None,
                 feature_cache: Optional[str | Path] = None, batch_size: int = 8, num_workers: int = 0,
                 device: str = "auto", max_videos: int = 0, missing_videos: str = "stop") -> ZooRun:
    """Every provided model on every split of `datasets`, each split's videos encoded once per model
    (through a FrameFeatureCache: on disk under `feature_cache` when given) and scored with every
    (strategy, similarity). missing_videos="skip" (partial data): the listed videos not on disk, empty or
    not a video container are left out before decoding and counted per split, as the training tables do."""
    import torch

    from apclip_core.engine.evaluate import (evaluate_variants, evaluate_zero_shot_variants, prepare_split,
                                             sha256_file)
    from apclip_core.engine.feature_cache import FrameFeatureCache
    from apclip_core.model.similarity import pooled_similarity
    from apclip_core.model.video_clip import load_checkpoint
    from apclip_core.prompts.bank import resolve_prompt_file
    from apclip_core.prompts.strategies import build_prompt_bank, needs_prompt_file

    device = pick_device(device)
    autocast = torch.bfloat16 if device.type == "cuda" else None
    run = ZooRun()
    splits = {}
    for name in datasets:
        ds = zoo_dataset(name)
        prompt_file = resolve_prompt_file((prompt_files or {}).get(name, ds.prompt_file))
        full = eval_splits(ds, name, video_roots)
        chosen = [prepare_split(s, missing_videos=missing_videos, max_videos=max_videos) for s in full]
        splits[name] = (ds, prompt_file, chosen)
        run.datasets[ds.label] = {
            "protocol": ds.protocol, "args": protocol_args(ds, name, video_roots), "missing_videos": missing_videos,
            "prompt_file": paths.portable(prompt_file) if any(needs_prompt_file(s) for s in strategies) else None,
            "prompt_file_sha256": sha256_file(prompt_file) if any(needs_prompt_file(s) for s in strategies) else None,
            "splits": {p.split.name: {"listed": p.listed, "videos": len(p.split.records), "classes": p.split.num_classes,
                                      "skipped": len(p.skipped),
                                      **({"subset_of": p.subset_of} if p.subset_of is not None else {})}
                       for p in chosen}}
    for model in models:
        if not model.provided:
            run.not_provided[model.name] = model.given_as or "no file given"
            continue
        began = time.perf_counter()
        loaded = load_checkpoint(model.checkpoint, device=device)
        run.models[model.name] = model_record(model, loaded)
        run.encoded[model.name] = 0
        peer = loaded.config.get("peer_model")
        if peer == "tcclip" and loaded.config["tcclip"]["num_frames"] != view.frames:
            # its clip length is fixed when its model is built (weights do not depend on it): built for the zoo's
            run.models[model.name]["built_for_frames"] = {"zoo": view.frames,
                                                          "its own": loaded.config["tcclip"]["num_frames"]}
            loaded.config["tcclip"]["num_frames"] = view.frames
        # the "mean" variant is the model's own pooling (recorded beside the model); MoTE and TC-CLIP: their own
        # scoring (their features depend on the label set: nothing to cache), own class text or action prompts
        scored_by = ({"own": "zero_shot_logits"} if peer else
                     {sim: pooled_similarity(loaded.config) if sim == "mean" else sim for sim in similarities})
        run.models[model.name]["similarities"] = scored_by
        for name, (ds, prompt_file, chosen) in splits.items():
            # one cache per (model, dataset): a split's features are reused by its other variants and by the
            # dataset's other splits (HMDB-51's and UCF-101's val lists share videos); freed before the next
            cache = FrameFeatureCache(feature_cache)
            for prepared in chosen:
                split = prepared.split
                if peer:  # its own class text, and the action prompts through the same scoring (mean of their features)
                    keys = [OWN_VARIANT[peer]] + ([(ACTION, "mean")] if ACTION in strategies else [])
                    texts = [None] + [build_prompt_bank(ACTION, split.classnames, prompt_file)
                                      for s in keys[1:]]
                    results = evaluate_zero_shot_variants(loaded, split, texts, view=view, batch_size=batch_size,
                                                          num_workers=num_workers, device=device,
                                                          autocast_dtype=autocast, prepared=prepared)
                    run.encoded[model.name] += results[0].n_videos
                else:
                    keys = [(s, m) for s in strategies for m in similarities]
                    banks = {s: build_prompt_bank(s, split.classnames, prompt_file if needs_prompt_file(s) else None)
                             for s in strategies}
                    results = evaluate_variants(loaded, split, [(banks[s], scored_by[m]) for s, m in keys], view=view,
                                                batch_size=batch_size, num_workers=num_workers, device=device,
                                                autocast_dtype=autocast, feature_cache=cache, prepared=prepared,
                                                cache_prompts=True)  # a dataset's splits share their classes: one encoding per prompt set
                    run.encoded[model.name] += results[0].protocol["videos_encoded"]
                for (strategy, sim), r in zip(keys, results):
                    run.rows.append({"model": model.name, "dataset": ds.label, "split": split.name, "prompts": strategy,
                                     "similarity": sim, "top1": r.top1, "top5": r.top5, "n_videos": r.n_videos,
                                     "n_evaluated": r.n_evaluated, "n_failed": r.n_failed, "n_classes": r.n_classes,
                                     "n_prompts": r.protocol.get("n_prompts"), "n_listed": r.n_listed,
                                     "n_skipped": r.n_skipped})
                first = results[0]  # every variant scored the same videos: one record of what the split ran on
                run.splits.append({"model": model.name, "dataset": ds.label, "role": "eval", "split": split.name,
                                   "list_file": paths.portable(split.list_file) if split.list_file else None,
                                   "listed": first.n_listed, "evaluated": first.n_evaluated, "failed": first.n_failed,
                                   "skipped": first.n_skipped, "subset_of": prepared.subset_of,
                                   "first_skipped": first.skipped[:SHOWN],
                                   "first_failed": [f["path"] for f in first.failed[:SHOWN]]})
        run.seconds[model.name] = time.perf_counter() - began
        del loaded
    return run


# ---- what it ran on, against the paper's protocol ---------------------------------------------------------
PAPER_PRESET = "k400_zero_shot"  # the paper's zero-shot protocol (Table 1's paper preset): its frames and views
# What the paper profile says when nothing deviates: our numbers are on AP-CLIP's protocol, while each published
# number beside them is on its own paper's (frames and views of their own), as the notes list.
ZOO_SAME = ("Our numbers are on AP-CLIP's zero-shot protocol (every listed video, its frames and views); each "
            "published number beside them is on its own paper's protocol (see the notes).")


def _over_models(records: list[dict], key: str) -> str:
    """A count every model agrees on, else its range over the models (a file that one decoder fails on)."""
    return deviations.counts_text([int(r[key] or 0) for r in records], over="models")


def ran_on_lines(run: ZooRun) -> list[str]:
    """One line per dataset split: the videos listed, evaluated, failed to decode, skipped (partial data)
    and the subset drawn, as every model's evaluation recorded them."""
    per_split: dict[tuple, list[dict]] = {}
    for record in run.splits:
        per_split.setdefault((record["dataset"], record["split"]), []).append(record)
    lines = []
    for (dataset, split), records in per_split.items():
        parts = [f"{_over_models(records, 'listed')} listed", f"{_over_models(records, 'evaluated')} evaluated"]
        if any(r["failed"] for r in records):
            parts.append(f"{_over_models(records, 'failed')} failed to decode (left out of the accuracy)")
        if any(r["skipped"] for r in records):
            parts.append(f"{_over_models(records, 'skipped')} skipped (not on disk, or not a video file)")
        if any(r["subset_of"] for r in records):
            parts.append(f"an evenly spaced subset of the {_over_models(records, 'subset_of')} present (max_videos)")
        lines.append(f"{dataset} {split}: {', '.join(parts)}")
    return lines


def model_runs(run: ZooRun, view) -> list[dict]:
    """Each model's evaluations as the records paper.deviations reads (a training table's runs): its splits
    with their counts, its frames and views, and for run_dir its checkpoint (no training config: the zoo's
    prompts and similarities are its variants, each a row)."""
    return [{"run_dir": record.get("checkpoint"), "splits": [r for r in run.splits if r["model"] == model],
             "frames": view.frames, "temporal_views": view.temporal_views, "spatial_crops": view.spatial_crops}
            for model, record in run.models.items()]


def deviation_lines(run: ZooRun, view) -> list[str]:
    """Every way the zoo's evaluations differ from the paper's zero-shot protocol, with counts ([] when none):
    videos skipped or failed, subsets, other frames or views (deviations.deviations, the training tables' wording)."""
    from apclip_core.engine.config import load_config

    reference = deviations.view_of(load_config(PAPER_PRESET))
    # each model is a released checkpoint beside its own published number (looked up by its backbone), not the
    # training tables' "ViT-B/16 with OpenAI's weights": their model line does not apply to the zoo
    return deviations.deviations(model_runs(run, view), reference=reference, model=False)


@dataclass
class ZooResult(TableResult):
    run: Optional[ZooRun] = None   # the records and timings behind the table (summary_line prints them)


# ---- the table ---------------------------------------------------------------------------------------------
def _published_lookup(pub: pd.DataFrame, model: str, backbone: str, dataset: str) -> Optional[pd.Series]:
    sel = pub[(pub.model == model) & (pub.backbone == backbone) & (pub.dataset == dataset)]
    return sel.iloc[0] if len(sel) else None


def _none(value):
    return None if value is None or value != value else float(value)


def build_table(run: ZooRun, *, paper_dataset: Optional[str] = None,
                paper_backbone: Optional[str] = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the display table, the gains). `paper_dataset`, `paper_backbone`: look the published numbers up
    on that dataset and backbone instead of ours (smoke: ours are the benchmark's with a tiny CLIP, the
    papers' HMDB-51's with ViT-B/16, so only gains compare)."""
    pub = published()
    rows = pd.DataFrame(run.rows)
    table, gains = [], []
    if len(rows):
        agg = rows.groupby(["model", "dataset", "prompts", "similarity"], sort=False)["top1"]
        summary = agg.mean().to_frame("mean").join(agg.std().rename("std")).join(agg.size().rename("splits"))
        for (model, dataset, strategy, sim), r in summary.iterrows():
            record = run.models[model]
            backbone, source = record["backbone"], record.get("source_format")
            own = OWN_VARIANT.get(source or "")
            looked_up, looked_backbone = paper_dataset or dataset, paper_backbone or backbone
            entry = {"model": model, "backbone": backbone, "dataset": dataset, "prompts": strategy,
                     "similarity": sim, "top-1 (ours)": float(r["mean"]), "± std (ours)": _none(r["std"]),
                     "splits": int(r["splits"]), "published": None, "± std (published)": None,
                     "published by": "", "gain of action prompts (ours)": None, "gain (paper)": None, "note": ""}
            if own == (strategy, sim):
                p = _published_lookup(pub, model, looked_backbone, looked_up)
                if p is not None:
                    entry.update({"published": float(p["value"]), "± std (published)": _none(p["std"]),
                                  "published by": f"{p['source']} on {looked_up}: {p['protocol']}",
                                  "note": "the model's own prompts"})
            if strategy == ACTION:
                p = _published_lookup(pub, f"{model} + Action prompts", looked_backbone, looked_up)
                base = _published_lookup(pub, model, looked_backbone, looked_up)
                if own is not None and (model, dataset, *own) in summary.index:
                    own_mean = summary.loc[(model, dataset, *own), "mean"]
                    entry["gain of action prompts (ours)"] = float(r["mean"]) - float(own_mean)
                if p is not None:
                    entry.update({"published": float(p["value"]), "± std (published)": _none(p["std"]),
                                  "published by": f"{p['source']} on {looked_up}: {p['protocol']}",
                                  "note": "the AP-CLIP paper's + Action prompts"})
                    if base is not None:
                        entry["gain (paper)"] = float(p["value"]) - float(base["value"])
                else:
                    entry["note"] = NEW
                if sim == GAIN_SIMILARITY and entry["gain of action prompts (ours)"] is not None:
                    gains.append({"comparison": f"{model} + action prompts", "dataset": dataset,
                                  "ours": entry["gain of action prompts (ours)"], "paper": entry["gain (paper)"]})
            table.append(entry)
    for model, given in run.not_provided.items():
        table.append({"model": model, "backbone": "?", "dataset": "", "prompts": "", "similarity": "",
                      "top-1 (ours)": None, "± std (ours)": None, "splits": None, "published": None,
                      "± std (published)": None, "published by": "", "gain of action prompts (ours)": None,
                      "gain (paper)": None, "note": f"not provided: {given} (python -m apclip_core convert "
                                                     f"--from {ALL_FORMATS.get(model, '...')} SRC DST)"})
    # a cell without a number is blank ("" prints as nothing in the markdown and the CSV; None would print "nan")
    table = pd.DataFrame(table).astype(object)
    table = table.map(lambda v: "" if v is None or (isinstance(v, float) and v != v) else v)
    return table, pd.DataFrame(gains)


def _chart(run: ZooRun, table: pd.DataFrame, gains: pd.DataFrame, *, title: str, profile: str,
           protocol_lines: Sequence[str] = (), ran_on: Sequence[str] = ()):
    """The headline rows (the table files hold all of them): per dataset and model, our mean +- std with the
    model's own prompts and with the action prompts (mean, MAKA); beside it the action prompts' gain over the
    own prompts, ours and the paper's where it has one; paper profile: the published numbers as ticks."""
    def number(column):
        return pd.to_numeric(done[column].replace("", None), errors="coerce")

    def variant(row) -> Optional[str]:
        own = OWN_VARIANT.get(run.models[row["model"]].get("source_format") or "", ("single", "mean"))
        if (row["prompts"], row["similarity"]) == own:
            return "own"
        return f"AP, {row['similarity'].replace('maka', 'MAKA')}" if row["prompts"] == ACTION else None

    done = table[table["top-1 (ours)"] != ""]
    done = done.assign(variant=[variant(r) for _, r in done.iterrows()]).dropna(subset=["variant"])
    ours = pd.DataFrame({"method": done["model"], "dataset": done["dataset"], "metric": done["variant"],
                         "value": number("top-1 (ours)"), "std": number("± std (ours)")})
    paper = pd.DataFrame({"method": done["model"], "dataset": done["dataset"], "metric": done["variant"],
                          "value": number("published")}).dropna(subset=["value"])
    shown_gains = gains.assign(metric="top1", paper=gains["paper"].astype(float)) if len(gains) else gains
    return tables.table_figure(ours, shown_gains, title=title, x="metric", profile=profile, paper=paper,
                               our_label="top-1 (mean ± std over the splits); own: the model's own prompts, "
                                         "AP: action prompts",
                               gain_labels={"ours": "ours", "paper": "paper (AP-CLIP's + Action prompts)"},
                               protocol_lines=protocol_lines, ran_on=ran_on)


def table1_zoo(*, models: Optional[dict] = None, datasets: Sequence[str] = ("apclip_bench",), frames: int = 8,
               temporal_views: int = 2, spatial_crops: int = 2, strategies: Sequence[str] = STRATEGIES,
               similarities: Sequence[str] = SIMILARITIES, prompt_files: Optional[dict] = None,
               video_roots: Optional[dict] = None, paper_dataset: Optional[str] = "HMDB-51", profile: str = "smoke",
               feature_cache: Optional[str] = None, batch_size: int = 8, num_workers: int = 0, device: str = "auto",
               max_videos: int = 0, backend: str = "auto", partial_data: bool = False,
               figures: Optional[str | Path] = None) -> ZooResult:
    """The zoo table: evaluate, put the published numbers and gains beside ours, write
    figures/table1_zoo.{csv,md,png,json} (table1_zoo_paper.* in the paper profile). `models`: {name: converted checkpoint}; empty: the smoke stand-ins.
    `paper_dataset`: in the smoke profile, whose published numbers stand beside ours (only gains compare).
    `partial_data` (`make reproduce-table1-zoo PARTIAL=1`): evaluate on the videos present, the missing ones
    skipped before decoding and counted per split (`missing_videos: skip`, as the training tables)."""
    from apclip_core.data.views import ViewSpec

    view = ViewSpec(frames, temporal_views, spatial_crops, backend)
    zoo_models = resolve_models(models)
    if not any(m.provided for m in zoo_models):
        raise NoModelError("no model of the zoo is provided: " + "; ".join(
            f"{m.name}: {m.given_as} not found" for m in zoo_models) + ". Convert the released files first "
            "(README, 'Importing the peers' checkpoints').")
    if feature_cache:
        feature_cache = str(paths.PROJECT_ROOT / feature_cache) if not Path(feature_cache).is_absolute() else feature_cache
    run = evaluate_zoo(zoo_models, datasets, view=view, strategies=strategies, similarities=similarities,
                       prompt_files=prompt_files, video_roots=video_roots, feature_cache=feature_cache, batch_size=batch_size,
                       num_workers=num_workers, device=device, max_videos=max_videos,
                       missing_videos="skip" if partial_data else "stop")
    in_paper = profile == "paper"
    table, gains = build_table(run, paper_dataset=None if in_paper else paper_dataset,
                               paper_backbone=None if in_paper else "ViT-B/16")
    names = ", ".join(dict.fromkeys(DATASETS[d].label if d in DATASETS else d for d in datasets))
    title = f"Table 1 zoo: released models, no retraining ({names})"
    protocol = {**view.record(), "strategies": list(strategies),
                "similarities": list(similarities), "max_videos": max_videos,
                "missing_videos": "skip" if partial_data else "stop", "device": str(pick_device(device))}
    ran_on = "; ".join(f"{name}: {rec['checkpoint']} ("
                       + (f"sha256 {rec['sha256'][:12]}" if rec["sha256"] else f"image tower {rec['visual_fingerprint'][:12]}")
                       + f", {rec['backbone']}, {rec['source_format'] or 'apclip'})" for name, rec in run.models.items())
    classes = "; ".join(f"{label}: " + ", ".join(f"{s} {c['classes']}" for s, c in d["splits"].items())
                        for label, d in run.datasets.items())
    # what every split ran on (videos listed, evaluated, failed, skipped, subset), and in the paper profile
    # "same protocol" only when nothing of it (nor frames and views) deviates from the paper's
    deviating = deviation_lines(run, view) if in_paper else []
    statement = deviations.statement(deviating, same=ZOO_SAME) if in_paper else ""
    per_split = ran_on_lines(run)
    what_ran = ["What it ran on (videos per split):", *(f"- {line}" for line in per_split)]
    check = {"profile": profile, "same_as_paper": in_paper and not deviating, "deviations": deviating,
             "statement": statement, "ran_on": per_split, "splits": deviations.public_totals(model_runs(run, view))}
    notes = (f"Profile: {profile}. " + (f"{statement}\n\n" if in_paper else "") + f"Ran on: {ran_on}.\n\n"
             + "\n".join(what_ran) + "\n\n"
             f"Frames {frames}, {temporal_views} temporal x {spatial_crops} spatial views, every video encoded once "
             f"per model and scored with every prompt strategy x similarity. Classes per split: {classes}.\n\n"
             + (f"Not provided (no numbers): {', '.join(f'{k} ({v})' for k, v in run.not_provided.items())}.\n\n"
                if run.not_provided else "")
             + "Published: the number each model's own paper reports, on the row of its own prompts, with that "
               "paper's protocol (frames, views, prompts), which is not ours; on the action-prompt rows the AP-CLIP "
               f"paper's + Action prompts (Open-VCLIP only). '{NEW}': action prompts plugged into a model no paper "
               "has evaluated them with. Gain of action prompts, ours: the row minus the model's own-prompt row; "
               "the paper's: AP-CLIP's + Action prompts minus Open-VCLIP's published number."
             + ("" if in_paper else f"\n\nSmoke profile: ours are the embedded benchmark's novel classes with the "
                f"tiny CLIP written in each peer's file layout and converted (the same weights in every file); the "
                f"published numbers are {paper_dataset}'s. Compare the gains, not the absolute numbers."))
    files = tables.save_table(
        table, tables.profiled_name(NAME, profile), title=title, notes=notes, figures=figures,
        chart=lambda _: _chart(run, table, gains, title=title, profile=profile,
                               protocol_lines=statement.splitlines(), ran_on=what_ran),
        results={"profile": profile, "protocol": protocol, "protocol_check": check, "models": run.models,
                 "not_provided": run.not_provided, "splits": run.splits,
                 "datasets": run.datasets, "published_from": "apclip_core/paper/paper_tables/zoo_published.csv",
                 "gains": gains.to_dict(orient="records"), "raw": run.rows})
    claims = {}
    for model in run.models:
        mine = gains[gains.comparison == f"{model} + action prompts"] if len(gains) else gains
        if len(mine):
            claims[f"action prompts (MAKA) beat {model}'s own prompts"] = bool((mine["ours"] > 0).all())
    shown = table.copy()
    for column in shown.columns:
        if shown[column].map(lambda v: isinstance(v, float)).any():
            shown[column] = shown[column].map(lambda v: round(v, 1) if isinstance(v, float) else v)
    return ZooResult(name=NAME, title=title, table=shown, gains=gains.round(1) if len(gains) else gains,
                     rows=pd.DataFrame(run.rows), files=files, claims=claims, profile=profile,
                     protocol_check=check, run=run)


def summary_line(result: ZooResult) -> str:
    """One line on what was computed: models, videos encoded per model, seconds (not stored in any file)."""
    run = result.run
    parts = [f"{m}: {run.encoded[m]} videos encoded in {run.seconds[m]:.1f} s" for m in run.models]
    missing = f"; not provided: {', '.join(run.not_provided)}" if run.not_provided else ""
    return f"{NAME}: {len(run.rows)} scores from {len(run.models)} models ({'; '.join(parts)}){missing}"


def run_zoo(**params) -> ZooResult:
    """The notebook's call: warnings-only logs (a split's INFO lines would fill the notebook), then the zoo."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = table1_zoo(**params)
    print(summary_line(result))
    return result
