"""`python -m apclip_core preflight NOTEBOOK [--profile paper]`: before a long run, check everything
it needs (split lists, videos, weights, GPU, prompt files) and stop at once, listing every missing
piece with how to get it, instead of failing an hour in.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from apclip_core import paths

NOTEBOOKS = paths.PROJECT_ROOT / "notebooks"


def notebook_parameters(notebook: Path, profile: str) -> dict:
    """The notebook's `parameters` cell defaults, overlaid by notebooks/params/<stem>.<profile>.yaml."""
    nb = json.loads(Path(notebook).read_text())
    values: dict = {}
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            exec("".join(cell["source"]), {}, values)  # the cell holds plain literals only
    overlay = NOTEBOOKS / "params" / f"{Path(notebook).stem}.{profile}.yaml"
    if profile != "smoke":
        if not overlay.exists():
            raise FileNotFoundError(f"no {profile} profile for {Path(notebook).name}: {overlay} is missing")
        values.update(yaml.safe_load(overlay.read_text()) or {})
    return values


def _weights_problem(model_name: str, pretrained: str | None) -> str | None:
    if pretrained in (None, "", "tiny") or Path(str(pretrained)).is_file():
        return None
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    if not cfg:
        return (f"unknown pretrained tag {pretrained!r} for {model_name}; valid tags: "
                f"{', '.join(open_clip.list_pretrained_tags_by_model(model_name)) or 'none'}")
    from apclip_core.model.weights import problem

    return problem(model_name, pretrained)  # the wording train, evaluate and classify show too


def check(notebook: Path, profile: str = "smoke") -> list[str]:
    """Every problem that would stop the notebook's runs; [] when it can start."""
    import torch

    from apclip_core.paper import experiments
    from apclip_core.engine.config import load_protocols
    from apclip_core.engine.cost import count_train_videos, estimate_cpu_days
    from apclip_core.prompts.bank import resolve_prompt_file

    params = notebook_parameters(notebook, profile)
    if "config" not in params:
        return []
    methods = params.get("methods") or list(experiments.METHODS)[:2]
    problems: list[str] = []
    seen: set[str] = set()
    for method in methods:
        cfg = experiments.make_config(params["config"], method, **(params.get("overrides") or {}))
        for prompt_file in filter(None, [cfg.prompt_file, *cfg.eval_prompt_files.values()]):
            if not Path(resolve_prompt_file(prompt_file)).is_file() and prompt_file not in seen:
                seen.add(prompt_file)
                problems.append(f"prompt file {prompt_file} is missing: `make prompts DATASET=...` "
                                "(needs OPENAI_API_KEY or BASE_URL of an OpenAI-compatible server)")
        if cfg.protocol.startswith("bench_") or "data" in seen:
            continue
        try:
            protocol = load_protocols(cfg)
            for split in protocol.train + protocol.eval:
                missing = [r.path for r in split.records[:50] if not (Path(split.root) / r.path).exists()]
                if missing:
                    problems.append(f"videos of {split.name} not found under {split.root} (e.g. {missing[0]}): "
                                    "see README 'Getting the datasets ready' (`make data-hmdb51`, ...)")
                    seen.add("data")
                    break
        except Exception as err:  # lists missing: the protocol's own message says how to get them
            problems.append(f"protocol {cfg.protocol} {cfg.protocol_args}: {err}")
            seen.add("data")
        weights = _weights_problem(cfg.model_name, cfg.pretrained)
        if weights and weights not in problems:
            problems.append(weights)
        if not torch.cuda.is_available() and cfg.model_name != "apclip-tiny" and "gpu" not in seen:
            seen.add("gpu")
            days = estimate_cpu_days(cfg, count_train_videos(cfg))
            problems.append(f"no GPU visible: training {cfg.model_name} here would take ~{days:,.1f} days per run "
                            "on this CPU; run on GPUs (torchrun) or use PROFILE=smoke. Evaluating a given checkpoint "
                            "works on CPU: python -m apclip_core evaluate --checkpoint ...")
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="apclip preflight", description=__doc__)
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--profile", default="smoke", choices=["smoke", "paper"])
    args = parser.parse_args(argv)
    problems = check(args.notebook, args.profile)
    if problems:
        print(f"{args.notebook.name} ({args.profile} profile) cannot start:")
        for p in problems:
            print(f"  - {p}")
        return 1
    print(f"{args.notebook.name} ({args.profile} profile): everything it needs is here")
    return 0
