"""Export a fine-tuned run or a checkpoint as a folder ready to publish on a model hub.

    python -m apclip_core export RUN_OR_CHECKPOINT DIR

RUN_OR_CHECKPOINT: a run folder (runs/<name>/, its checkpoint.safetensors or the checkpoint.pt of an older
run), or a checkpoint file (written by `train` or `convert`). DIR receives:

    model.safetensors   the weights (loaded without unpickling; the config is in its metadata too)
    config.json         the checkpoint's JSON config: model (architecture, pixel normalisation, pooling),
                        training config, metrics, conversion record, and the prompt files' sha256
    README.md           the model card: YAML metadata in the Hugging Face format (license, tags, base model,
                        `model-index` with the run's results; a converted peer's published numbers, each
                        with its source) and the training config, the protocol and its deviations, the
                        source and licence of converted weights, the pixel normalisation, frames and pooling

The card says only what the files recorded: numbers come from the run's metrics.json and eval_<split>.json,
a converted peer's from apclip_core/paper/paper_tables/zoo_published.csv.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

import yaml

from apclip_core import atomic, paths

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "README.md"
HEADLINE_NAMES = {"hm": "harmonic mean of base and novel top-1"}  # engine.evaluate.summarize's keys, said
TAGS = ["video-classification", "action-recognition", "open-vocabulary", "zero-shot", "clip", "apclip"]


class ExportError(Exception):
    """What cannot be exported, with the file and what to do."""


def _source(path: Path) -> tuple[Path, Optional[Path]]:
    """(checkpoint file, its run folder or None) of a run folder or a checkpoint file."""
    from apclip_core.model.video_clip import run_checkpoint

    if path.is_dir():
        checkpoint = run_checkpoint(path)
        if not checkpoint.is_file():
            raise ExportError(f"{path} holds no checkpoint ({checkpoint.name}): give a finished run folder "
                              "(runs/<name>/) or a checkpoint file")
        return checkpoint, path
    run_dir = path.parent if (path.parent / "metrics.json").is_file() else None
    return path, run_dir


def _final_results(run_dir: Optional[Path], saved: dict) -> tuple[dict, list[dict]]:
    """(summary of the final evaluation, per-split records) of a run: metrics.json's last evaluated epoch
    and its eval_<split>.json files; a lone checkpoint: the metrics its JSON recorded."""
    if run_dir is None:
        return dict((saved.get("metrics") or {}).get("eval") or {}), []
    from apclip_core.paper.experiments import _split_results

    metrics = json.loads((run_dir / "metrics.json").read_text())
    evaluated = [e["eval"] for e in metrics.get("epochs", []) if e.get("eval")]
    return (dict(evaluated[-1]) if evaluated else {}), _split_results(run_dir)


def _prompt_sha256(run_dir: Optional[Path], train_config: Optional[dict]) -> dict:
    """{prompt file: sha256} as the run recorded it; for a run from before, the files as they are now, said so."""
    if run_dir is not None:
        recorded = json.loads((run_dir / "metrics.json").read_text()).get("prompt_sha256")
        if recorded is not None:
            return {"recorded_by_the_run": True, "files": recorded}
    if not train_config:
        return {}
    from apclip_core.engine.config import TrainConfig
    from apclip_core.engine.train import prompt_sha256

    return {"recorded_by_the_run": False, "files": prompt_sha256(TrainConfig(**train_config))}


def published_numbers(converted: dict) -> list[dict]:
    """The converted peer's published numbers (zoo_published.csv: every backbone, each row says its own)."""
    from apclip_core.paper import zoo

    peer = {fmt: name for name, fmt in zoo.SOURCE_FORMATS.items()}.get(converted.get("source_format"))
    pub = zoo.published()
    return [{k: (None if v != v else v) for k, v in row.items()} for row in pub[pub.model == peer].to_dict("records")]


def _licence(model_cfg: dict, converted: Optional[dict], train_config: Optional[dict]) -> tuple[str, str]:
    """(hub licence id, the sentence the card says about it)."""
    from apclip_core.model.convert import FORMATS

    if converted:
        fmt = FORMATS[converted["source_format"]]
        return fmt.licence, f"{fmt.title}'s released weights: {fmt.licence_note}."
    pretrained = (train_config or {}).get("pretrained", model_cfg.get("pretrained"))
    if pretrained in (None, "", "openai", "tiny"):
        start = {"openai": "OpenAI's CLIP weights (MIT, openai/CLIP)", "tiny": "apclip's tiny CLIP pretrained on "
                 "its embedded benchmark (MIT)"}.get(pretrained, "a random initialisation")
        return "mit", f"apclip is MIT; this model was fine-tuned from {start}. Check the training data's terms."
    return "other", (f"fine-tuned from {pretrained}: the licence is that of those weights and of the training "
                     "data; state it before publishing.")


def model_index(name: str, summary: dict, splits: list[dict], published: list[dict], protocol: str,
                backbone: str) -> list:
    """The `model-index` block: one result per evaluated split (top-1, top-5), the protocol's headline
    numbers (harmonic mean, means over splits), and a converted peer's published numbers for this backbone
    (those of another backbone are not this model's), each with its source."""
    results = []

    def task():  # a fresh dict each time: one shared object would be written as a YAML anchor and aliases
        return {"type": "video-classification", "name": "Open-vocabulary action recognition"}
    for record in splits:
        metrics = [{"type": "accuracy", "name": "top-1 accuracy", "value": round(float(record["top1"]), 2)},
                   {"type": "accuracy", "name": "top-5 accuracy", "value": round(float(record["top5"]), 2)}]
        results.append({"task": task(), "dataset": {"name": record["split"], "type": protocol, "split": record["split"]},
                        "metrics": metrics})
    listed = {r["split"] for r in splits}
    headline = [{"type": "accuracy", "name": HEADLINE_NAMES.get(key, f"{key} (top-1)"), "value": round(float(value), 2)}
                for key, value in summary.items() if key not in listed and isinstance(value, (int, float))]
    if headline:
        results.append({"task": task(), "dataset": {"name": protocol, "type": protocol}, "metrics": headline})
    for row in (r for r in published if r["backbone"] == backbone):
        metric = {"type": "accuracy", "name": "top-1 accuracy (published)", "value": float(row["value"])}
        results.append({"task": task(), "dataset": {"name": row["dataset"], "type": row["dataset"]},
                        "metrics": [metric], "source": {"name": f"{row['source']}: {row['protocol']}"}})
    return [{"name": name, "results": results}]


def _card(name: str, meta: dict, config: dict, summary: dict, splits: list[dict], published: list[dict],
          deviation_lines: list[str], licence_text: str, prompts: dict) -> str:
    model_cfg, train_cfg, converted = config["model"], config.get("train_config"), config.get("converted_from")
    lines = ["---", yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip(), "---", "", f"# {name}", ""]
    if converted:
        lines += [f"{converted['source_title']}'s released checkpoint, converted to apclip's format by `python -m "
                  f"apclip_core convert --from {converted['source_format']}` (no retraining).", ""]
    else:
        lines += ["A video CLIP fine-tuned with apclip, the reproducible companion to AP-CLIP (ACM MM 2024).", ""]
    lines += ["## Results", ""]
    if splits or summary:
        lines += ["| split | top-1 | top-5 | videos evaluated |", "|---|---|---|---|"]
        lines += [f"| {r['split']} | {r['top1']:.2f} | {r['top5']:.2f} | {r['n_evaluated']} of {r['n_videos']} |"
                  for r in splits]
        shown = {r["split"] for r in splits}
        lines += [f"| {k} | {v:.2f} | | |" for k, v in summary.items() if k not in shown and isinstance(v, (int, float))]
    else:
        lines += ["No evaluation of ours was recorded with this checkpoint."]
    if published:
        lines += ["", f"Published by {converted['source_title']} (on its own paper's protocol, not ours; this "
                      f"model's backbone: {meta.get('backbone')}):", "",
                  "| backbone | dataset | top-1 | ± std | source | protocol |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['backbone']} | {r['dataset']} | {r['value']} | {r['std'] if r['std'] is not None else ''} | "
                  f"{r['source']} | {r['protocol']} |" for r in published]
    lines += ["", "## Input: pixels, frames and pooling", "",
              f"- image size {model_cfg.get('image_size')}, pixels scaled to 0-1 then normalised with mean "
              f"{model_cfg.get('mean')} and std {model_cfg.get('std')}",
              f"- video pooling: {model_cfg.get('video_pooling') or 'none recorded (apclip: per-frame features)'}; "
              f"similarity: {model_cfg.get('trained_similarity') or (train_cfg or {}).get('similarity') or 'mean'}",
              f"- neighbour-frame attention over {model_cfg['expand_temporal_view']} frames"
              if model_cfg.get("expand_temporal_view") else "- frames encoded one by one",
              f"- activation: {'QuickGELU' if model_cfg.get('quick_gelu') else 'GELU'}"]
    if train_cfg:
        lines += [f"- trained on {train_cfg.get('frames')} frames; tested on {train_cfg.get('frames')} frames x "
                  f"{train_cfg.get('temporal_views')} temporal x {train_cfg.get('spatial_crops')} spatial views"]
    lines += ["", "## Protocol and deviations", ""]
    if train_cfg:
        lines += [f"Protocol {train_cfg.get('protocol')} {json.dumps(train_cfg.get('protocol_args') or {})}; "
                  f"prompts: {train_cfg.get('prompt_strategy')}."]
    if prompts.get("files"):
        how = "as the run recorded them" if prompts["recorded_by_the_run"] else \
            "computed at export (this run did not record them: the files may have changed since)"
        lines += ["", f"Prompt files (sha256, {how}):", ""]
        lines += [f"- `{path}`: `{sha}`" for path, sha in prompts["files"].items()]
    from apclip_core.paper.deviations import statement

    if train_cfg:
        lines += ["", statement(deviation_lines, same="Nothing in the run's record deviates (data, model).")]
    else:  # nothing was trained here: there is no run to hold against the paper's protocol
        lines += ["Not fine-tuned by apclip: no training run to compare with the paper's protocol."
                  + (" The published numbers above are on their own paper's protocol." if published else "")]
    lines += ["", "## Source and licence", "", licence_text]
    if converted:
        lines += ["", f"- source file: `{Path(str(converted.get('source'))).name}` (sha256 "
                      f"`{converted.get('source_sha256')}`)",
                  f"- base CLIP: {Path(str(converted['base'])).name if converted.get('base') else 'none'}",
                  f"- interpolation: {json.dumps(converted.get('interpolation'))}",
                  f"- dropped keys (training only): {', '.join(converted.get('dropped_keys') or []) or 'none'}"]
    if train_cfg:
        lines += ["", "## Training config", "", "```json", json.dumps(train_cfg, indent=2, sort_keys=True), "```"]
    lines += ["", "## Use", "", "```python", "from apclip_core.model.video_clip import load_checkpoint",
              f"model = load_checkpoint('{WEIGHTS_FILE}')  # safetensors: nothing is unpickled", "```", ""]
    return "\n".join(lines)


def export(source: str | Path, out_dir: str | Path) -> Path:
    """Write out_dir (weights, config, model card) for a run folder or checkpoint; returns out_dir."""
    from apclip_core.model.video_clip import load_checkpoint, read_checkpoint, save_checkpoint

    source, out_dir = Path(source), Path(out_dir)
    if not source.exists():
        raise ExportError(f"{source} not found: give a run folder (runs/<name>/) or a checkpoint file")
    checkpoint, run_dir = _source(source)
    model = load_checkpoint(checkpoint)  # every unreadable file: one CheckpointError naming it
    saved = json.loads(read_checkpoint(checkpoint)["config"])
    train_config, converted = saved.get("train_config"), saved.get("converted_from")
    summary, splits = _final_results(run_dir, saved)
    prompts = _prompt_sha256(run_dir, train_config)
    published = published_numbers(converted) if converted else []
    from apclip_core.paper.zoo import backbone_of

    backbone = backbone_of(model.config["model_name"])
    deviation_lines = []
    if run_dir is not None:
        from apclip_core.paper import deviations, experiments

        deviation_lines = deviations.deviations([experiments.run_record(run_dir)])
    name = run_dir.name if run_dir is not None else checkpoint.stem
    licence, licence_text = _licence(model.config, converted, train_config)
    protocol = (train_config or {}).get("protocol") or "zero_shot"
    meta = {"license": licence, "library_name": "apclip", "pipeline_tag": "video-classification", "tags": TAGS,
            "base_model": (f"{converted['source_title']} ({model.config['model_name']})" if converted
                           else (train_config or {}).get("pretrained") or model.config.get("pretrained")),
            "backbone": backbone, "model-index": model_index(name, summary, splits, published, protocol, backbone)}
    if meta["base_model"] is None:
        del meta["base_model"]

    out_dir.mkdir(parents=True, exist_ok=True)
    extra = {k: v for k, v in saved.items() if k != "model"}
    extra["prompt_sha256"] = prompts.get("files", {})
    written = save_checkpoint(model, out_dir / WEIGHTS_FILE, **extra)
    config = json.loads(written.with_name(written.name + ".json").read_text())
    written.with_name(written.name + ".json").replace(out_dir / CONFIG_FILE)  # the hub's name for it
    atomic.write_text(out_dir / CARD_FILE, _card(name, meta, config, summary, splits, published, deviation_lines,
                                                 licence_text, prompts))
    return out_dir


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apclip_core export", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", metavar="RUN_OR_CHECKPOINT", help="a run folder or a checkpoint file")
    parser.add_argument("out_dir", metavar="DIR", help="the folder to write (weights, config.json, README.md)")
    args = parser.parse_args(argv)
    try:
        out = export(args.source, args.out_dir)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {paths.portable(out)}: {WEIGHTS_FILE}, {CONFIG_FILE}, {CARD_FILE} (model card)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
