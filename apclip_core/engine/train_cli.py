"""`python -m apclip_core train`: the command line of engine.train, kept apart from the training loop so
that parsing it (and `--help`) imports no torch: the loop is imported once the arguments are known.

Run:  python -m apclip_core train --config bench_base2novel [--set key=value ...] [--resume]
DDP:  torchrun --nproc_per_node 8 -m apclip_core train --config base2novel
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional

from apclip_core.engine.config import config_names, load_config, parse_overrides


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m apclip_core train",
        description="Fine-tune a video CLIP the ViFi-CLIP way, with AP-CLIP's prompts and MAKA similarity.",
        epilog=f"presets: {', '.join(config_names())}. A run writes <output_dir>/<name>/checkpoint.pt, last.pt "
               f"(the training state --resume continues from), metrics.json and train.log. DDP: torchrun "
               f"--nproc_per_node 8 -m apclip_core train --config base2novel")
    parser.add_argument("--config", default="bench_base2novel", help="preset name or YAML path (default: %(default)s)")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override config fields (YAML values), e.g. --set epochs=2 similarity=maka")
    parser.add_argument("--resume", action="store_true", help="continue from <run>/last.pt if present")
    parser.add_argument("--allow-cpu", action="store_true", help="train a large model on CPU anyway")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and what it needs")
    return parser


def parse_command_line(argv: Optional[list[str]] = None):
    """(args, TrainConfig) of a `train` command line, or an exit code after printing why it is wrong.
    The plan's printed commands are checked against this very function."""
    args = build_parser().parse_args(argv)
    try:
        overrides = parse_overrides(args.set)
        if args.allow_cpu:
            overrides["allow_cpu"] = True
        cfg = load_config(args.config, **overrides)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return args, cfg


def main(argv: Optional[list[str]] = None) -> int:
    parsed = parse_command_line(argv)
    if isinstance(parsed, int):
        return parsed
    args, cfg = parsed
    from apclip_core.engine.cost import requirements
    from apclip_core.engine.train import train

    if args.print_config:
        print(cfg.to_json())
        print("\n".join(f"needs: {n}" for n in requirements(cfg)))
        return 0
    train(cfg, resume=args.resume)  # unavailable weights, bad files: one message from errors.run_command
    return 0


if __name__ == "__main__":
    sys.exit(main())
