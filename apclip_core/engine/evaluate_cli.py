"""`python -m apclip_core evaluate`: the command line of engine.evaluate, kept apart from it so that
parsing it (and `--help`) imports no torch; engine.evaluate.run_command_line runs what was asked.

    python -m apclip_core evaluate --checkpoint runs/x/checkpoint.safetensors --protocol bench_base_to_novel \\
        --prompts prompts/apclip_bench.json --similarity maka
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional

from apclip_core.arguments import bounded, count_or_zero, positive_int
from apclip_core.data.video_io import BACKENDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m apclip_core evaluate",
        description="Deterministic multi-view evaluation of a VideoCLIP on one or more protocol splits.",
        epilog="Example: python -m apclip_core evaluate --checkpoint runs/x/checkpoint.safetensors --protocol "
               "bench_base_to_novel --prompts prompts/apclip_bench.json --similarity maka")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", help="a fine-tuned checkpoint.safetensors (or an older run's checkpoint.pt) written by `python -m apclip_core train` "
                                            "(or `convert`)")
    which.add_argument("--model", help="an open_clip model name (e.g. ViT-B-16), evaluated with --pretrained weights "
                                       "as they are (zero-shot)")
    parser.add_argument("--pretrained", default=None, help="with --model: an open_clip pretrained tag (default: openai) "
                                                            "or a local weights file (then say --quick-gelu or --no-quick-gelu)")
    parser.add_argument("--quick-gelu", action=argparse.BooleanOptionalAction, default=None,
                        help="with --model: the weights' activation (OpenAI's CLIP: --quick-gelu); default: "
                             "open_clip's registry, refused for a local file")
    parser.add_argument("--protocol", required=True, help="a function of apclip_core.data.protocols, e.g. bench_base_to_novel")
    parser.add_argument("--protocol-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="argument of the protocol function (repeatable), e.g. seed=2")
    parser.add_argument("--prompts", default="single",
                        help="'single', 'set', or a prompt file (JSON) used with --prompt-strategy (default: single)")
    parser.add_argument("--prompt-strategy", default="action_conditioned",
                        choices=["action_conditioned", "customized", "llm_direct"],
                        help="which prompts of a prompt file to use (default: action_conditioned)")
    parser.add_argument("--similarity", default=None,
                        help="maka | mean | mean_raw, or any registered similarity (default: the one matching the "
                             "video pooling a converted checkpoint records, ViFi-CLIP: mean_raw, else maka); the "
                             "result records which and why")
    parser.add_argument("--frames", type=bounded(int, 1, 1024, "frames per view"), default=8, help="frames per clip (default: 8)")
    parser.add_argument("--temporal-views", type=bounded(int, 1, 64), default=2, help="temporal views per video (default: 2)")
    parser.add_argument("--spatial-crops", type=int, default=2, help="spatial crops per view (default: 2)")
    parser.add_argument("--short-videos", choices=["fail", "pad"], default="fail",
                        help="a file whose frames stop decoding early: count it as failed (default), or evaluate "
                             "it from the frames that decode (counted as padded in the result)")
    parser.add_argument("--video-backend", choices=list(BACKENDS), default="auto",
                        help="decoder: auto (the faster one per container, as `make bench` measured; default), "
                             "decord or pyav (identical frames)")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="videos per forward pass (default: 8)")
    parser.add_argument("--num-workers", type=count_or_zero, default=0,
                        help="DataLoader processes decoding videos (default: 0, in the main process)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    parser.add_argument("--max-videos", type=count_or_zero, default=0,
                        help="evaluate an evenly spaced subset of N videos per split (recorded as subset_of; smoke "
                             "runs; default: 0, every video)")
    parser.add_argument("--missing-videos", choices=["stop", "skip"], default="stop",
                        help="listed videos not on disk: counted as failed (stop, the default), or left out before "
                             "decoding and counted as skipped (skip: a run on partial data, recorded per split)")
    parser.add_argument("--out", default=None, help="result JSON (default: next to the checkpoint)")
    parser.add_argument("--feature-cache", default=None, metavar="DIR",
                        help="keep per-frame video features here: a later run with other prompts or another "
                             "similarity (same checkpoint, frames and views) encodes no video again")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.checkpoint and (args.quick_gelu is not None or args.pretrained is not None):
        parser.error("--pretrained and --quick-gelu go with --model; a checkpoint carries its own weights and activation")
    from apclip_core.engine.evaluate import run_command_line

    return run_command_line(args, parser)


if __name__ == "__main__":
    sys.exit(main())
