"""Command-line value types that refuse a count or size out of its range where it is read (argparse
then says `argument --batch-size: must be >= 1, got 0` and exits 2), instead of a run that fails later
with an error about something else, or silently computes nonsense (`--steps -5`: a loss of nan, exit 0)."""
from __future__ import annotations

import argparse
from typing import Callable, Optional


def bounded(kind: Callable = int, low: Optional[float] = None, high: Optional[float] = None,
            what: str = "") -> Callable[[str], float]:
    """An argparse `type=` reading `kind` and refusing values outside [low, high] (`what` says why the bound)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = (f"between {low:g} and {high:g}" if low is not None and high is not None
                      else f">= {low:g}" if low is not None else f"<= {high:g}")
            raise argparse.ArgumentTypeError(f"must be {bounds}{f' ({what})' if what else ''}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its own messages
    return parse


# beyond these a plan is a typo (GPUS=1000000000 would plan a billion-process torchrun), not a cluster
MAX_GPUS_PER_NODE, MAX_NODES = 64, 4096

positive_int = bounded(int, 1)
count_or_zero = bounded(int, 0)
positive_float = bounded(float, 1e-300)
