"""`python -m apclip_core preflight NOTEBOOK [--profile paper] [--probe [header|deep]]`: before a long run,
check everything it needs (split lists, videos, weights, GPU, prompt files) and stop at once, listing
every missing piece with how to get it, instead of failing an hour in.

Every listed video is checked for existence, and every present one for being a video container at all
(zero bytes, or not starting like one: data.container_check, seconds for 50k files). --probe opens
each container header too (about 0.5-1 ms per file per core: ~30 s for Table 1's 50k videos on 2
cores), --probe deep demuxes whole files (finds files cut short; reads every byte). Answers are cached
by (path, size, mtime): a second preflight re-checks only changed files.

`--partial` (`make reproduce-tableN PARTIAL=1`): missing and damaged videos are notices, with their counts
per list, and do not stop the run, which leaves them out before the model sees them (config
`missing_videos: skip`) and lists them in its table as deviations from the paper's protocol; a list with
no video at all, missing weights or prompt files still stop it.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from apclip_core import paths
# the listed videos not on disk: the same check a run on partial data uses to skip them (SHOWN: names per list)
from apclip_core.data.presence import SHOWN, missing_videos

NOTEBOOKS = paths.PROJECT_ROOT / "notebooks"


def notebook_parameters(notebook: Path, profile: str, extra: Sequence[Path] = (), *,
                        partial: bool = False) -> dict:
    """The notebook's `parameters` cell defaults, overlaid by notebooks/params/<stem>.<profile>.yaml and then
    the `extra` YAML files (`make ... PARAMS=file`): what papermill gives the notebook (notebook.read_parameters).
    partial (`--partial`, make's PARTIAL=1): the parameter `partial_data: true`, as `notebook --partial` passes it,
    so the runs named here are the ones the notebook will look for."""
    from apclip_core.notebook import notebook_defaults, read_parameters

    values = notebook_defaults(notebook)
    overlay = NOTEBOOKS / "params" / f"{Path(notebook).stem}.{profile}.yaml"
    if profile != "smoke" and not overlay.exists():
        raise FileNotFoundError(f"no {profile} profile for {Path(notebook).name}: {overlay} is missing")
    values.update(read_parameters(([overlay] if profile != "smoke" else []) + list(extra), dict(values)))
    if partial:
        values["partial_data"] = True
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


FIX_DATA = {"hmdb51": "make data-hmdb51", "ucf101": "make data-ucf101", "k400": "make data-check-k400",
            "k600": "make data-check-k600", "ssv2": "make data-check-ssv2"}
FIX_DAMAGED = ("delete them and download or extract them again ({fix}), or leave them out of the run (PARTIAL=1: "
               "empty files and non-videos are skipped before the model sees them, files that fail to decode are "
               "counted; the table says so)")


LEAVE_RUN_OUT = "leave its run out (a training list: fewer seeds or shots in the notebook's parameters)"


def video_problems(splits, probe: str = "signature", *, partial: bool = False,
                   notices: Optional[list[str]] = None, leave_out: str = LEAVE_RUN_OUT) -> list[str]:
    """Per split, the videos missing on disk (how many, the first names, the command that fixes it), then the
    present ones that are not video containers (damaged_videos, checked as far as `probe` says). partial: what
    a run on the videos present skips goes to `notices` instead; a list with none present is still a problem,
    whose other way out `leave_out` says (a training table: leave its run out; the zoo: the dataset)."""
    notices = [] if notices is None else notices
    problems, listing, checked = [], {}, []
    for split in splits:
        missing = missing_videos(split, listing)
        checked.append((split, set(missing)))
        if not missing:
            continue
        fix = FIX_DATA.get(split.dataset, "see README 'Getting the datasets ready'")
        said = (f"videos of {split.name}: {len(missing)} of {len(split.records)} missing under {split.root} "
                f"(first: {', '.join(missing[:SHOWN])})")
        if not partial:
            some = len(missing) < len(split.records)  # then running on those present is an option
            problems.append(f"{said}: {fix}" + (" (or PARTIAL=1: run on the videos present, the table says what "
                                                "deviates)" if some else ""))
        elif len(missing) == len(split.records):
            problems.append(f"{said}: none is present, so even PARTIAL=1 has nothing to run on: {fix}, or {leave_out}")
        else:
            notices.append(f"{said}: skipped (PARTIAL=1); all of them: {fix}")
    (notices if partial else problems).extend(damaged_videos(checked, probe))
    return problems


def zoo_problems(params: dict, probe: str = "signature", *, notices: Optional[list[str]] = None) -> list[str]:
    """Table 1's zoo trains nothing: it needs its model files (at least one; a missing one is listed in the
    table as not provided), each dataset's lists, videos and prompt file, and for the paper profile a GPU.
    `partial_data` (PARTIAL=1): missing and damaged videos are `notices`, skipped by the zoo and counted."""
    import torch

    from apclip_core.paper import zoo
    from apclip_core.prompts.bank import resolve_prompt_file

    problems: list[str] = []
    models = zoo.resolve_models(params["models"]) if params.get("models") else []  # none: the smoke stand-ins
    if models and not any(m.provided for m in models):
        problems.append("no model file of the zoo is here (" + ", ".join(f"{m.name}: {m.given_as}" for m in models) +
                        "): convert the released checkpoints first, `python -m apclip_core convert --from FORMAT SRC DST` "
                        "(README, 'Importing the peers' checkpoints')")
    splits = []
    for name in params.get("datasets") or []:
        try:
            ds = zoo.zoo_dataset(name)
        except ValueError as err:
            problems.append(str(err))
            continue
        prompt_file = (params.get("prompt_files") or {}).get(name, ds.prompt_file)
        if not Path(resolve_prompt_file(prompt_file)).is_file():
            problems.append(f"prompt file {prompt_file} is missing: `make prompts DATASET=...` "
                            "(needs OPENAI_API_KEY or BASE_URL of an OpenAI-compatible server)")
        if ds.protocol.startswith("bench_"):
            continue
        try:
            splits += zoo.eval_splits(ds, name, params.get("video_roots"))
        except Exception as err:  # lists missing: the protocol's own message says how to get them
            problems.append(f"protocol {ds.protocol} {ds.args}: {err}")
    problems += video_problems(splits, probe, partial=bool(params.get("partial_data")), notices=notices,
                               leave_out="leave the dataset out of the zoo's `datasets` parameter (PARAMS=file.yaml)")
    if params.get("profile") == "paper" and not torch.cuda.is_available() and not params.get("max_videos"):
        problems.append("no GPU visible: the paper-profile zoo encodes about 35k videos x 32 frames per ViT-B/16 "
                        "model, days on a CPU; run it on a GPU (README, 'Importing the peers' checkpoints', for the "
                        "estimated time), or set max_videos in the parameters for a first look on a subset")
    return problems


def table_runs(notebook: Path, params: dict) -> list[tuple]:
    """Every training the notebook needs: for a table notebook all its methods x seeds (reproduce.table_runs),
    else the notebook's method(s) on its config."""
    from apclip_core.paper import experiments, reproduce

    table = Path(notebook).stem.split("_", 1)[-1]
    if table in reproduce.TABLES:
        return reproduce.table_runs(table, **params)
    params = reproduce.with_partial_data(params)
    methods = params.get("methods") or ([params["method"]] if "method" in params else list(experiments.METHODS)[:2])
    return [(m, (None, None), params["config"], dict(params.get("overrides") or {})) for m in methods]


def _splits_of(cfg, problems: list[str]) -> list:
    """The config's training and evaluation lists, each protocol part loaded on its own so one missing
    list (K-400's training list) does not hide the others (HMDB-51, UCF-101, K-600); problems appended."""
    from apclip_core.data.protocols import load_protocol

    parts = [(cfg.protocol, dict(cfg.protocol_args))] + [(e["protocol"], dict(e.get("args") or {}))
                                                          for e in cfg.extra_eval]
    splits = []
    for name, args in parts:
        try:
            protocol = load_protocol(name, args)
            splits += protocol.train + protocol.eval
        except Exception as err:  # lists missing: the protocol's own message says how to get them
            message = f"protocol {name} {args}: {err}"
            if message not in problems:
                problems.append(message)
            if "train_root" in args:  # its evaluation lists are checked all the same
                try:
                    splits += load_protocol(name, {k: v for k, v in args.items() if k != "train_root"}).eval
                except Exception:
                    pass
    return splits


def damaged_videos(checked: list[tuple], level: str) -> list[str]:
    """One problem per list whose present files are empty or do not open as a video container, with
    counts, the first names and the fix; each file checked once whatever number of lists hold it."""
    import os

    from apclip_core.data.container_check import unreadable

    present = [(split, [os.path.join(str(split.root), r.path) for r in split.records if r.path not in missing])
               for split, missing in checked]  # (split, its missing paths) -> (split, its present files)
    bad = unreadable([f for _, files in present for f in files], level=level)
    problems = []
    for split, files in present:
        broken = [(f, bad[f]) for f in files if f in bad]
        if broken:
            root = str(split.root).rstrip("/") + "/"
            first = "; ".join(f"{f.removeprefix(root)} ({why})" for f, why in broken[:SHOWN])
            problems.append(f"videos of {split.name}: {len(broken)} of {len(split.records)} present but unreadable "
                            f"under {split.root} (first: {first}): "
                            + FIX_DAMAGED.format(fix=FIX_DATA.get(split.dataset, "README 'Getting the datasets ready'")))
    return problems


def check(notebook: Path, profile: str = "smoke", extra: Sequence[Path] = (), *,
          probe: str = "signature", partial: bool = False, notices: Optional[list] = None) -> list[str]:
    """Every problem that would stop the notebook's runs, all of them at once; [] when it can start.
    probe: how far present videos are checked (data.container_check.LEVELS). partial: missing and damaged
    videos go to `notices` (the run leaves them out or counts them) instead of stopping it, unless a list has
    none of its videos at all."""
    import torch

    from apclip_core.paper import experiments
    from apclip_core.engine.cost import count_train_videos, cpu_estimate
    from apclip_core.prompts.bank import resolve_prompt_file

    notices = [] if notices is None else notices
    params = notebook_parameters(notebook, profile, extra, partial=partial)
    if Path(notebook).stem.split("_", 1)[-1] == "table1_zoo":
        return zoo_problems(params, probe, notices=notices)
    if "config" not in params:
        return []
    problems: list[str] = []
    splits: dict = {}
    configs = []
    for method, _, preset, overrides in table_runs(notebook, params):
        cfg = experiments.make_config(preset, method, **overrides)
        configs.append(cfg)
        for prompt_file in filter(None, [cfg.prompt_file, *cfg.eval_prompt_files.values()]):
            message = (f"prompt file {prompt_file} is missing: `make prompts DATASET=...` "
                       "(needs OPENAI_API_KEY or BASE_URL of an OpenAI-compatible server)")
            if not Path(resolve_prompt_file(prompt_file)).is_file() and message not in problems:
                problems.append(message)
        if cfg.protocol.startswith("bench_"):
            continue
        for split in _splits_of(cfg, problems):  # every list of every seed, each once
            splits.setdefault((split.name, str(split.root), len(split.records)), split)
    problems += video_problems(splits.values(), probe, partial=partial, notices=notices)
    for cfg in configs:
        weights = _weights_problem(cfg.model_name, cfg.pretrained)
        if weights and weights not in problems:
            problems.append(weights)
    big = [c for c in configs if c.model_name != "apclip-tiny"]
    insisted = [c for c in big if c.allow_cpu]  # allow_cpu: true (a CPU rehearsal): train honours it, so do we
    if insisted and not torch.cuda.is_available():
        days, source = cpu_estimate(insisted[0], count_train_videos(insisted[0]))
        notices.append(f"no GPU visible: training {insisted[0].model_name} on this CPU (allow_cpu: true), "
                       f"~{days:,.1f} days per run (throughput {source})")
    big = [c for c in big if not c.allow_cpu]
    if big and not torch.cuda.is_available():
        days, source = cpu_estimate(big[0], count_train_videos(big[0]))
        problems.append(f"no GPU visible: training {big[0].model_name} here would take ~{days:,.1f} days per run "
                        f"({len(configs)} runs) on this CPU (throughput {source}); run on GPUs (`make plan-tableN PROFILE=paper GPUS=8` "
                        "prints the torchrun commands) or use PROFILE=smoke. Evaluating a given checkpoint "
                        "works on CPU: python -m apclip_core evaluate --checkpoint ...")
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m apclip_core preflight", description=__doc__)
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--profile", default="smoke", choices=["smoke", "paper"])
    parser.add_argument("--probe", nargs="?", const="header", default="signature", choices=["header", "deep"],
                        help="also open every present video's container header (header, ~1 ms per file per core), "
                             "or demux whole files (deep: finds files cut short; reads every byte); cached")
    parser.add_argument("--params", type=Path, action="append", default=[],
                        help="YAML of parameters on top of the profile (make PARAMS=file), as the notebook gets them")
    parser.add_argument("--partial", action="store_true",
                        help="run on the videos present: missing or damaged videos are a notice (with counts), not "
                             "a stop; the run leaves them out (or counts them) and its table says so")
    args = parser.parse_args(argv)
    notices: list[str] = []
    problems = check(args.notebook, args.profile, args.params, probe=args.probe, partial=args.partial, notices=notices)
    if notices:
        print(f"{args.notebook.name} ({args.profile} profile, partial data): running without these videos; the table "
              "will list them as deviations from the paper's protocol:" if args.partial else
              f"{args.notebook.name} ({args.profile} profile), to know before it starts:")
        for n in notices:
            print(f"  - {n}")
    if problems:
        print(f"{args.notebook.name} ({args.profile} profile) cannot start:")
        for p in problems:
            print(f"  - {p}")
        return 1
    print(f"{args.notebook.name} ({args.profile} profile): everything it needs is here")
    return 0
