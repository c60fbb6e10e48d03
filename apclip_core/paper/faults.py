"""Known faults injected into a correct pipeline: does the smoke profile see each one as a significant drop?

An instrument is worth what it detects. Each fault below breaks one thing the paper's method relies on, at
evaluation time, in the models the smoke tables trained (the same runs, every seed), and the drop is measured
like a table's gain: paired on the same videos, a two-level bootstrap over seeds and classes (paper.stats).
A fault is *detected* when the whole 95% interval of (correct - faulty) lies above 0.

    maka_to_mean            AP-CLIP scored with mean pooling instead of MAKA (its action-conditioned prompts kept)
    swapped_prompts         a quarter of the novel classes get another class's prompt list (a cyclic swap)
    no_body_prompts         the Body attribute prompts (move direction, speed, part, pattern) dropped
    shuffled_motion_frames  Ours+TM on the motion-only novel classes (same look, different motion) with each
                            clip's frames shuffled in time before the temporal module

`measure_faults()` returns one row per fault; `python -m apclip_core faults` prints them (and writes
figures/faults.{md,json}); tests/test_faults.py asserts that each is detected.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from apclip_core.paper import stats

FAULTS = {
    "maka_to_mean": "MAKA replaced by mean pooling on action-conditioned prompts",
    "swapped_prompts": "a quarter of the novel classes' prompts swapped with another class's",
    "no_body_prompts": "the Body attribute prompts dropped",
    "shuffled_motion_frames": "the motion-only classes' frames shuffled in time before the temporal module",
}
NOVEL_SPLIT = "bench_novel_val"


def swapped(bank, fraction: float = 0.25, seed: int = 0):
    """`bank` with the prompt lists of `fraction` of its classes rotated among them (class i gets class j's)."""
    from apclip_core.prompts.bank import PromptBank

    rng = np.random.default_rng(seed)
    n = max(2, round(fraction * len(bank.classnames)))
    chosen = sorted(rng.choice(len(bank.classnames), n, replace=False).tolist())
    prompts, attributes = list(bank.prompts), list(bank.attributes) if bank.attributes else None
    for i, j in zip(chosen, chosen[1:] + chosen[:1]):
        prompts[i] = bank.prompts[j]
        if attributes is not None:
            attributes[i] = bank.attributes[j]
    return PromptBank(list(bank.classnames), prompts, bank.strategy, attributes)


def motion_only_split(split):
    """The records of `split` whose class shares its static look with another class of the split (the motion-only
    groups of the benchmark), with the split's full class list (they are still told apart from every class)."""
    from apclip_core.data.protocols import Split
    from apclip_core.embedded.benchmark import STATIC_KEYS, class_codes

    codes = class_codes()
    look = {n: tuple(codes[n][k] for k in STATIC_KEYS) for n in split.classnames}
    shared = {n for n in split.classnames if sum(look[m] == look[n] for m in split.classnames) > 1}
    keep = [r for r in split.records if split.classnames[r.label] in shared]
    return Split(f"{split.name}_motion_only", keep, list(split.classnames), split.root, dataset=split.dataset,
                 role=split.role, list_file=split.list_file)


def _correct(result) -> np.ndarray:
    return stats.correct(result.predicted, result.labels)


def _shuffled_correct(model, split, bank, cfg, seed: int) -> np.ndarray:
    """Per-video top-1 of `model` on `split` (MAKA, `bank`) with each clip's frames in a random order."""
    import torch

    from apclip_core.data.datasets import VideoDataset, build_eval_loader
    from apclip_core.engine.evaluate import class_logits, eval_transform_for

    view = cfg.view()
    dataset = VideoDataset(split.records, split.root, view=view, train=False,
                           transform=eval_transform_for(model, view.spatial_crops))
    generator = torch.Generator().manual_seed(seed)
    feats, labels = [], []
    model.eval()
    with torch.no_grad():
        for batch in build_eval_loader(dataset, batch_size=32, num_workers=0):
            video = batch["video"]                                   # [B, views, T, 3, H, W]
            order = torch.stack([torch.randperm(video.shape[2], generator=generator) for _ in range(len(video))])
            video = torch.stack([v[:, o] for v, o in zip(video, order)])
            feats.append(model.encode_video(video, normalize=False))
            labels.append(torch.as_tensor(batch["label"]))
        encoded = bank.encode(model)
    logits = class_logits(torch.cat(feats), encoded.feats.float(), encoded.mask, cfg.similarity)
    return (logits.argmax(1) == torch.cat(labels)).numpy()


def measure_faults(seeds: Sequence[int] = (1, 2, 3), *, config: str = "bench_base2novel",
                   overrides: Optional[dict] = None) -> pd.DataFrame:
    """Train (or reuse) the smoke runs the faults need, inject each fault, and measure its drop per fault."""
    from apclip_core.engine.config import TrainConfig, load_protocols
    from apclip_core.engine.evaluate import evaluate_variants
    from apclip_core.model.video_clip import load_checkpoint
    from apclip_core.paper import experiments
    from apclip_core.prompts.strategies import build_prompt_bank

    correct: dict[str, dict] = {name: {} for name in ("ok", *FAULTS, "ok_motion")}
    classes: dict[str, np.ndarray] = {}

    def trained(method: str, seed: int):
        (_, _, run_overrides), = experiments.grid_runs(config, [method], seeds=[seed], overrides=overrides,
                                                       seed_arg=experiments.seed_argument(config, overrides),
                                                       train_seed=True)
        run_dir = Path(experiments.run(config, method, **run_overrides)["run_dir"])
        cfg = TrainConfig(**__import__("json").loads((run_dir / "config.json").read_text()))
        split = next(s for s in load_protocols(cfg).eval if s.name == NOVEL_SPLIT)
        return load_checkpoint(run_dir), cfg, split

    for seed in seeds:
        model, cfg, split = trained("AP-CLIP", seed)
        bank = build_prompt_bank(cfg.prompt_strategy, split.classnames, cfg.prompt_file)
        no_body = build_prompt_bank(cfg.prompt_strategy, split.classnames, cfg.prompt_file, drop_groups=["body"])
        ok, mean, swap, body = evaluate_variants(model, split, [(bank, "maka"), (bank, "mean"),
                                                                (swapped(bank, seed=seed), "maka"), (no_body, "maka")],
                                                 view=cfg.view(), batch_size=32)
        classes["novel"] = np.asarray(ok.labels)
        for name, result in (("ok", ok), ("maka_to_mean", mean), ("swapped_prompts", swap),
                             ("no_body_prompts", body)):
            correct[name][seed] = {NOVEL_SPLIT: _correct(result)}
        model, cfg, split = trained("Ours+TM", seed)
        motion = motion_only_split(split)
        bank = build_prompt_bank(cfg.prompt_strategy, motion.classnames, cfg.prompt_file)
        (kept,) = evaluate_variants(model, motion, [(bank, cfg.similarity)], view=cfg.view(), batch_size=32)
        correct["ok_motion"][seed] = {NOVEL_SPLIT: _correct(kept)}
        classes["motion"] = np.asarray(kept.labels)
        correct["shuffled_motion_frames"][seed] = {NOVEL_SPLIT: _shuffled_correct(model, motion, bank, cfg, seed)}
    rows = []
    for name, description in FAULTS.items():
        reference = correct["ok_motion" if name == "shuffled_motion_frames" else "ok"]
        group = classes["motion" if name == "shuffled_motion_frames" else "novel"]
        g = stats.paired_gain(reference, correct[name], stats.top1(NOVEL_SPLIT), splits=[NOVEL_SPLIT],
                              clusters={NOVEL_SPLIT: group})
        rows.append({"fault": name, "description": description, "drop": g.gain, "low": g.low, "high": g.high,
                     "detected": g.verdict == "holds", "seeds": g.seeds, "videos": g.videos,
                     "correct_top1": float(np.mean([100 * r[NOVEL_SPLIT].mean() for r in reference.values()]))})
    return pd.DataFrame(rows)


def faults_markdown(df: pd.DataFrame) -> str:
    table = df.assign(**{"drop (points)": [f"{d:.1f} [{lo:.1f}, {hi:.1f}]" for d, lo, hi in
                                           zip(df["drop"], df["low"], df["high"])],
                         "detected": ["yes" if d else "NO" for d in df["detected"]],
                         "top-1 without it": [f"{v:.1f}" for v in df["correct_top1"]]})
    return table[["fault", "description", "top-1 without it", "drop (points)", "detected", "seeds",
                  "videos"]].to_markdown(index=False)


def main(argv: Optional[list[str]] = None) -> int:
    import argparse
    import json

    from apclip_core import atomic, paths

    parser = argparse.ArgumentParser(prog="python -m apclip_core faults", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="smoke seeds (default: 1 2 3)")
    args = parser.parse_args(argv)
    df = measure_faults(args.seeds)
    text = faults_markdown(df)
    print(text)
    atomic.write_text(paths.figures_dir() / "faults.md", f"# Injected faults (smoke profile)\n\n{text}\n")
    atomic.write_json(paths.figures_dir() / "faults.json", df.to_dict(orient="records"))
    return 0
