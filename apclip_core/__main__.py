"""Command line: `python -m apclip_core <command> [options]` (also installed as `apclip`).

Each command lives in the module that owns the concept and exposes `main(argv) -> int`;
this file only dispatches, so `--help` of a command is answered by its own module.
"""
from __future__ import annotations

import importlib
import sys

from apclip_core.errors import run_command

COMMANDS = {
    "benchmark": ("apclip_core.embedded.benchmark", "render the embedded procedural video benchmark"),
    "pretrain": ("apclip_core.embedded.pretrain", "contrastively pretrain the tiny CLIP on the benchmark (cached)"),
    "train": ("apclip_core.engine.train_cli", "fine-tune a video CLIP (ViFi-CLIP protocol; torchrun for DDP)"),
    "evaluate": ("apclip_core.engine.evaluate_cli", "multi-view evaluation of a checkpoint on a protocol"),
    "classify": ("apclip_core.classify", "rank any list of action names for one video"),
    "convert": ("apclip_core.model.convert_cli", "import a peer's checkpoint (OpenAI, ViFi-CLIP, Open-VCLIP, FROSTER, OST)"),
    "export": ("apclip_core.paper.export", "a run or checkpoint as a folder for a model hub: safetensors, config, model card"),
    "prompts": ("apclip_core.prompts.cli", "generate action-conditioned prompts with an LLM"),
    "validate-prompts": ("apclip_core.prompts.validate", "check a prompt file against a label list"),
    "data": ("apclip_core.data.prepare", "download / prepare / check the real datasets"),
    "notebook": ("apclip_core.notebook", "run a notebook with papermill on the apclip kernel, saying each stage"),
    "report": ("apclip_core.paper.report", "print a rendered table and where its files are"),
    "plan": ("apclip_core.paper.plan", "every run a table needs: torchrun commands, GPU-hours, wall time, disk, SLURM scripts"),
    "preflight": ("apclip_core.paper.preflight", "check a notebook's data, weights, GPU and prompt files before a run"),
    "faults": ("apclip_core.paper.faults", "inject known faults into the smoke runs and measure each drop"),
    "fingerprint": ("apclip_core.model.known_weights", "identify pretrained weights by content; record OpenAI's (maintainers)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m apclip_core <command> [options] [--debug]   (or: apclip <command>; --version)\n\ncommands:")
        for name, (_, help_text) in COMMANDS.items():
            print(f"  {name:<18} {help_text}")
        return 0
    if argv[0] == "--version":
        from apclip_core import __version__

        print(f"apclip {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"unknown command {name!r}; valid commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return run_command(module.main, rest)


if __name__ == "__main__":
    sys.exit(main())
