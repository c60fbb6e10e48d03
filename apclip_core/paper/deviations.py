"""What a paper-profile table ran on, against the paper's protocol: "Ours and the paper's numbers are on
the same protocol" is said only when nothing deviates; otherwise every deviation is listed with its counts.

The evidence is what the runs recorded (experiments.run_record: their config, metrics.json and per-split
results), never the disk as it is now. A deviation is any of: a video skipped (missing or not a video file), failed to
decode, replaced in training or decoded in part; a subset of a list; fewer seeds (or shots) than the
paper's; other frames or views than the paper's preset; another model than ViT-B/16 with OpenAI's
weights identified by content (model.known_weights); any other setting that changes what is trained or how it is scored (schedule, prompts, similarity,
augmentation: every config key but NOT_PROTOCOL's); a run whose record cannot be read (then nothing about it can
be vouched for).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Sequence

from apclip_core.model import known_weights
from apclip_core.paths import portable

SAME = "Ours and the paper's numbers are on the same protocol."
DEVIATES = "Deviates from the paper's protocol:"

# The paper's model: CLIP ViT-B/16 with OpenAI's weights (QuickGELU). open_clip names it either way.
PAPER_MODEL_NAMES = ("ViT-B-16", "ViT-B-16-quickgelu")
PAPER_MODEL = "ViT-B/16 with OpenAI's weights (QuickGELU)"
# The three 16-shot base samples the paper averages over (base-to-novel, Tables 2 and 5).
PAPER_SEEDS = (1, 2, 3)

# Config keys that are not compared with the paper's preset by `settings_lines`: they do not change what is
# trained or scored (where files are, how many workers or processes, the decoder: bit-identical frames; batch_size
# is per forward, the optimizer step stays effective_batch_size; precision follows the device), or another line
# states them with their counts (the model, frames and views, missing and subset videos, short videos, the seeds
# and datasets in protocol_args).
NOT_PROTOCOL = frozenset({
    "name", "output_dir", "num_workers", "device", "allow_cpu", "eval_batch_size", "video_backend", "batch_size",
    "precision", "save_every_steps", "eval_every_epochs", "tracker", "save_every_minutes",
    "model_name", "pretrained", "quick_gelu", "frames", "temporal_views", "spatial_crops",
    "missing_videos", "max_videos_per_split", "eval_max_videos", "short_videos", "protocol_args"})


def model_is_papers(model: dict, known: Optional[Path] = None) -> bool:
    """ViT-B/16 with QuickGELU whose weights are identified as OpenAI's by content (the run's recorded
    pretrained_fingerprint is OpenAI's ViT-B/16 in known_weights: a name, a path or an activation proves nothing);
    open_clip's `openai` tag passes while no fingerprint is recorded for ViT-B-16, and must match once one is.
    known: the registry to read (known_weights.REGISTRY, which ships empty: see known_weights)."""
    name, pretrained, quick_gelu = model.get("model_name"), model.get("pretrained"), model.get("quick_gelu")
    if name not in PAPER_MODEL_NAMES or quick_gelu is False:
        return False
    found = known_weights.identify(model.get("pretrained_fingerprint"), known)
    if found is not None:
        activation_known = quick_gelu is True or pretrained == "openai"  # the tag builds QuickGELU itself
        return (found.get("label") == known_weights.OPENAI["ViT-B-16"] and activation_known
                and known_weights.architecture(found.get("model_name")) == "ViT-B-16")
    return pretrained == "openai" and not known_weights.recorded_for("ViT-B-16", known)


def _model_text(model: dict, known: Optional[Path] = None) -> str:
    activation = {True: ", QuickGELU", False: ", GELU"}.get(model.get("quick_gelu"), "")
    weights = model.get("pretrained")
    if weights in (None, ""):
        return f"{model.get('model_name')} with no pretrained weights (random init){activation}"
    found = known_weights.identify(model.get("pretrained_fingerprint"), known)
    if found is not None:
        said = f"identified as {found.get('label')}"
    elif model.get("model_name") in PAPER_MODEL_NAMES:
        said = "not identified as OpenAI's"
    else:
        said = ""
    return f"{model.get('model_name')} with weights {weights}{activation}" + (f": {said}" if said else "")


def counts_text(values: Sequence[int], over: str = "runs") -> str:
    """One number when every run (or model: `over`) agrees, else the range over them."""
    lo, hi = min(values), max(values)
    return f"{lo}" if lo == hi else f"{lo}-{hi} (over {over})"


VIEW = ("frames", "temporal_views", "spatial_crops")  # what a run samples and tests on, as the paper states it


def view_of(cfg) -> dict:
    """The frames and views of a config (a preset's: the `reference` deviations() compares runs with)."""
    return {k: getattr(cfg, k) for k in VIEW}


def split_totals(runs: Sequence[dict]) -> list[dict]:
    """Per list (role, split), the counts every run recorded, in first-seen order: listed, used/evaluated,
    skipped, failed, replaced, padded, subset_of, and the runs that used it."""
    merged: dict[tuple, dict] = {}
    for run in runs:
        for s in run.get("splits", []):
            key = (s.get("role"), s.get("split"))
            entry = merged.setdefault(key, {"role": key[0], "split": key[1], "list_file": s.get("list_file"),
                                            "runs": 0, "values": {}})
            entry["runs"] += 1
            for field in ("listed", "used", "evaluated", "skipped", "failed", "replaced", "padded", "subset_of",
                          "epochs"):
                if s.get(field) is not None:
                    entry["values"].setdefault(field, []).append(int(s[field]))
            for field in ("first_skipped", "first_failed"):
                if s.get(field) and field not in entry:
                    entry[field] = list(s[field])
    out = []
    for entry in merged.values():
        values = entry.pop("values")
        entry.update({k: (v[0] if min(v) == max(v) else [min(v), max(v)]) for k, v in values.items()})
        entry["_values"] = values
        out.append(entry)
    return out


def _data_lines(totals: list[dict]) -> list[str]:
    kinds = [  # (role, field, what it says)
        ("train", "skipped", "training videos skipped (not on disk, or not a video file)"),
        ("eval", "skipped", "evaluation videos skipped (not on disk, or not a video file)"),
        ("eval", "failed", "evaluation videos that failed to decode (left out of the accuracy)"),
        ("train", "replaced", "training samples replaced by another video (failed to decode)"),
        ("train", "padded", "training samples decoded in part (short_videos: pad)"),
        ("eval", "padded", "evaluation videos decoded in part (short_videos: pad)"),
    ]
    lines = []
    for role, field, what in kinds:
        parts = []
        for t in totals:
            counts = t["_values"].get(field, [])
            if t["role"] != role or not any(counts):
                continue
            listed = t["_values"].get("listed")
            if field in ("replaced", "padded") and role == "train":
                epochs = t["_values"].get("epochs")
                parts.append(f"{t['split']} {counts_text(counts)}"
                             + (f" over {counts_text(epochs)} epoch(s)" if epochs else ""))
            else:
                parts.append(f"{t['split']} {counts_text(counts)}" + (f" of {counts_text(listed)}" if listed else ""))
        if parts:
            lines.append(f"{what}: {'; '.join(parts)}")
    subsets = []
    for t in totals:
        drawn = t["_values"].get("subset_of")
        if not drawn:
            continue
        used = t["_values"].get("used" if t["role"] == "train" else "evaluated", [])
        tried = [e + f for e, f in zip(used, t["_values"].get("failed", [0] * len(used)))] if t["role"] == "eval" else used
        parts_of = f"{counts_text(tried)} of {counts_text(drawn)}" if tried else f"of {counts_text(drawn)}"
        subsets.append(f"{t['split']} {parts_of} {'trained on' if t['role'] == 'train' else 'evaluated'}")
    if subsets:
        lines.append("a subset of the lists (max_videos_per_split / eval_max_videos): " + "; ".join(subsets))
    return lines


def _comparable(key: str, value):
    """A config value as compared: JSON's form (a tuple read back is a list), and for extra evaluation lists
    only what they evaluate (protocol and arguments), not where their files are (*root, *dir, *list_file)."""
    def same_file(path):  # the shipped prompts/<dataset>.json however it was named (absolute, ./prompts/...)
        return (portable(path) if os.path.isabs(path) else os.path.normpath(path)) if isinstance(path, str) else path

    if key == "prompt_file":
        value = same_file(value)
    if key == "eval_prompt_files" and isinstance(value, dict):
        value = {k: same_file(v) for k, v in value.items()}
    if key == "extra_eval":
        value = [{"protocol": e.get("protocol"),
                  "args": {k: v for k, v in (e.get("args") or {}).items() if not k.endswith(("root", "dir", "list_file"))}}
                 for e in value or []]
    return json.loads(json.dumps(value, default=str))


PROMPT_KEYS = ("prompt_file", "eval_prompt_files")


def shipped_sha256(path) -> Optional[str]:
    """sha256 of a prompt file as a preset names it (prompts/x.json, under the project), None if not there."""
    from apclip_core.engine.evaluate import sha256_file
    from apclip_core.prompts.bank import resolve_prompt_file

    found = resolve_prompt_file(path) if isinstance(path, str) else None
    return sha256_file(found) if found and os.path.isfile(found) else None


def _by_content(value, sha_of):
    """A prompt_file (a path) or eval_prompt_files ({dataset: path}) as the sha256 of each file's content, or
    None where one file's content is unknown (the paths are compared then). No file at all reads "no file"."""
    if isinstance(value, dict):
        shas = {k: sha_of(v) for k, v in value.items()}
        return shas if all(shas.values()) else None
    return sha_of(value) if isinstance(value, str) else "no file"


def settings_lines(runs: Sequence[dict], expected: dict) -> list[str]:
    """One line per config key (outside NOT_PROTOCOL) on which any run differs from the paper's settings for
    it: `expected` maps a run's run_dir to the config the paper's preset gives its method and dataset; each
    run's own is run["config"] (experiments.run_record: as it ran). A key the record lacks (a run trained by an
    apclip without it, other than the fields run_record fills in) cannot be compared and is left out. Prompt
    files are compared by content where the run recorded their sha256 (run["prompt_sha256"]), by path before."""
    differing: dict[str, dict] = {}
    for run in runs:
        paper, ours = expected.get(run["run_dir"]), run.get("config")
        if paper is None or ours is None:
            continue
        for key in sorted(set(paper) - NOT_PROTOCOL):
            if key not in ours:
                continue
            values = {"ours": _comparable(key, ours[key]), "paper": _comparable(key, paper[key])}
            if key in PROMPT_KEYS and run.get("prompt_sha256"):
                content = {"ours": _by_content(ours[key], run["prompt_sha256"].get),
                           "paper": _by_content(paper[key], shipped_sha256)}
                if None not in content.values():  # both known: the content decides, whatever the files are named
                    if content["ours"] == content["paper"]:
                        continue
                    values = {side: f"{values[side]} (content sha256 {content[side]})" for side in values}
            if values["ours"] != values["paper"]:
                said = differing.setdefault(key, {"ours": [], "paper": [], "runs": 0})
                said["runs"] += 1
                for side, value in values.items():
                    if value not in said[side]:
                        said[side].append(value)
    checked = sum(run["run_dir"] in expected and run.get("config") is not None for run in runs)
    lines = []
    for key, said in differing.items():
        ours, paper = (" or ".join(map(str, said[side])) for side in ("ours", "paper"))
        where = "" if said["runs"] == checked else f" in {said['runs']} of {checked} runs"
        lines.append(f"setting {key} = {ours} (the paper: {paper}){where}")
    return lines


def deviations(runs: Sequence[dict], *, reference: Optional[dict] = None, seeds: Optional[tuple] = None,
               unreadable: Sequence[str] = (), expected: Optional[dict] = None, model: bool = True) -> list[str]:
    """Every way these runs differ from the paper's protocol, one line each with its counts ([] when none).

    runs: experiments.run_record of each run the table used; reference: the paper's frames and views
    ({frames, temporal_views, spatial_crops}: the table's paper preset); seeds: (label, run, paper's), e.g.
    ("seeds", [1], [1, 2, 3]); unreadable: run folders whose record could not be read; expected: per run_dir,
    the paper's config for that run (see settings_lines); model: whether runs not on the paper's model deviate
    (False for released models each compared with its own published number: the zoo)."""
    lines = _data_lines(split_totals(runs))
    if seeds is not None:
        label, ran, papers = seeds
        if set(papers) - set(ran):
            lines.append(f"{label}: {sorted(ran)} of the paper's {sorted(papers)}")
    if reference:
        views = {tuple(r.get(k) for k in VIEW) for r in runs}
        paper_view = tuple(reference.get(k) for k in VIEW)
        other = sorted(v for v in views if v != paper_view and None not in v)
        if other:
            said = ", ".join(f"{f} frames, {t} x {s} views at test" for f, t, s in other)
            lines.append(f"frames and views: {said} (the paper: {paper_view[0]} frames, "
                         f"{paper_view[1]} x {paper_view[2]} views)")
    models = []
    for r in runs if model else ():
        text = _model_text(r.get("model") or {})
        if not model_is_papers(r.get("model") or {}) and text not in models:
            models.append(text)
    if models:
        lines.append(f"model: {'; '.join(models)} (the paper: {PAPER_MODEL})")
    lines += settings_lines(runs, expected or {})
    if unreadable:
        lines.append(f"no record of what {len(unreadable)} run(s) ran on (metrics.json not readable): "
                     f"{', '.join(unreadable[:3])}")
    return lines


def statement(lines: Sequence[str], same: str = SAME) -> str:
    """The sentence a paper-profile table prints: the same protocol (`same`), or what deviates (one `- ` line each)."""
    if not lines:
        return same
    return "\n".join([DEVIATES, *(f"- {line}" for line in lines)])


# What stays true of every paper-profile table however its runs went (not a run's deviation, so never counted in
# same_as_paper): worded here once, each said where the table's methods make it apply (standing_caveats).
CAVEATS_TITLE = "Standing caveats (true of this project's runs whatever the data; not counted as deviations):"
VIFI_CAVEAT = ("the paper's ViFi-CLIP rows are ViFi-CLIP's own published numbers (trained on 32 frames); our "
               "ViFi-CLIP runs use the preset's frames and views, as every method here")
PROMPTS_CAVEAT = ("the shipped prompt sets (prompts/*.json) are our own generations; the paper's GPT-4 prompt sets "
                  "are not public")
SCHEDULE_CAVEAT = ("prompts_per_class_per_step and AP-CLIP's schedule are our reconstructions (the paper's "
                   "appendix, which would state them, is not public)")


def standing_caveats(methods: Sequence[str]) -> list[str]:
    """The caveats a table with these methods carries: ViFi-CLIP's where a ViFi-CLIP row is compared; the prompt
    sets' and the reconstruction's wherever action-conditioned prompts are (every paper table has them)."""
    methods = [str(m) for m in methods]
    vifi = any("ViFi-CLIP" in m for m in methods)
    return [*([VIFI_CAVEAT] if vifi else []), PROMPTS_CAVEAT, SCHEDULE_CAVEAT]


def table_statement(lines: Sequence[str], methods: Sequence[str], same: str = SAME) -> str:
    """statement() followed by the standing caveats for these methods (one `- ` line each)."""
    caveats = standing_caveats(methods)
    return "\n".join([statement(lines, same), CAVEATS_TITLE, *(f"- {c}" for c in caveats)])


def public_totals(runs: Sequence[dict]) -> list[dict]:
    """split_totals without its working lists: what a table's JSON records per list."""
    return [{k: v for k, v in t.items() if not k.startswith("_")} for t in split_totals(runs)]
