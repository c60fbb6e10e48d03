"""`python -m apclip_core convert`: the command line of model.convert, kept apart from it so that parsing
it (and `--help`) imports neither torch nor open_clip; model.convert.run_command_line does the work."""
from __future__ import annotations

import argparse
import sys
from typing import Optional

# model.convert's FORMATS names and DEFAULT_FRAMES, restated so that --help imports no torch
# (tests/test_cli_first_contact.py keeps them equal)
FORMAT_NAMES = ("openai", "vificlip", "ost", "openvclip", "froster", "mote", "tcclip")
DEFAULT_FRAMES = 8
TCCLIP_WISE_FT_EVAL = 0.7


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m apclip_core convert",
        description="Convert a peer's released checkpoint into an apclip checkpoint.",
        epilog="ViFi-CLIP and TC-CLIP need --base (their token embedding), MoTE too (its whole text tower); "
               "Open-VCLIP, OST and MoTE need it for the interpolation their evaluation applies, unless "
               "--no-interpolate. Example: python -m apclip_core "
               "convert --from vificlip vifi_clip_k400.pth runs/vificlip/checkpoint.pt --base openai")
    parser.add_argument("--from", dest="source_format", required=True, choices=FORMAT_NAMES,
                        help="the checkpoint's origin: OpenAI CLIP, ViFi-CLIP, OST, Open-VCLIP, FROSTER, MoTE or TC-CLIP")
    parser.add_argument("src", help="the released checkpoint file")
    parser.add_argument("dst", help="the apclip checkpoint to write: DST.safetensors (a .pt/.pth suffix is "
                                    "replaced) plus its .json")
    parser.add_argument("--base", default=None,
                        help="the original CLIP of the same architecture: OpenAI's TorchScript .pt, an OpenAI-layout "
                             "state dict, or 'openai' (downloads through open_clip)")
    parser.add_argument("--no-interpolate", action="store_true",
                        help="keep the weights as saved (default: Open-VCLIP 0.5 / OST 0.2 / MoTE 0.01 of the original "
                             "CLIP)")
    parser.add_argument("--wise-ft", type=float, default=None, metavar="ALPHA",
                        help=f"TC-CLIP: evaluate with (1 - ALPHA) original + ALPHA checkpoint (needs --base); default "
                             f"0 = off, as its zero-shot config; its evaluation script uses {TCCLIP_WISE_FT_EVAL}")
    parser.add_argument("--frames", type=int, default=None,
                        help=f"Open-VCLIP/FROSTER: frames per clip of the neighbour-frame attention (default "
                             f"{DEFAULT_FRAMES}, as released); TC-CLIP: its clip length (default: its config's, 16)")
    parser.add_argument("--heads", default=None, metavar="N[,M]",
                        help="attention heads of the image tower (and M of the text tower; default: both N) for a "
                             "CLIP that is not OpenAI's (default: width // 64, as every peer's file)")
    parser.add_argument("--quick-gelu", action=argparse.BooleanOptionalAction, default=True,
                        help="the activation: QuickGELU (OpenAI's CLIP and every peer's file; the default) or GELU "
                             "(--no-quick-gelu, a CLIP trained with it)")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from apclip_core.model.convert import run_command_line

    return run_command_line(args, parser)


if __name__ == "__main__":
    sys.exit(main())
