"""Prompting strategies, by name (paper Table 6): the registry that builds a class's prompts.

  single              "a video of {action}."                       (ViFi-CLIP-style, one per class)
  set                 Open-VCLIP's 28 templates (4 prefixes x 7 forms)
  customized          CuPL-style answers from a prompt file, used as written
  llm_direct          free LLM descriptions (no attribute graph) from a prompt file
  action_conditioned  AP-CLIP: 3 LLM-prompts x 12 attributes per class from a prompt file

A strategy is a function (classnames, prompt_file, drop_groups) -> PromptBank, registered with
whether it reads a prompt file. Add one with `register_strategy`; every config, the evaluate CLI and
the notebooks then accept its name.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from apclip_core.errors import BadValue
from apclip_core.prompts.bank import PromptBank


@dataclass(frozen=True)
class Strategy:
    build: Callable          # (classnames, prompt_file, drop_groups) -> PromptBank
    needs_prompt_file: bool


_STRATEGIES: dict[str, Strategy] = {
    "single": Strategy(lambda names, _file, _drop: PromptBank.single(names), False),
    "set": Strategy(lambda names, _file, _drop: PromptBank.prompt_set(names), False),
}
for _name in ("action_conditioned", "customized", "llm_direct"):
    _STRATEGIES[_name] = Strategy(
        lambda names, file, drop, _s=_name: PromptBank.from_prompt_file(file, names, _s, drop_groups=drop), True)
FILE_STRATEGIES = ("action_conditioned", "customized", "llm_direct")


def register_strategy(name: str, build: Callable, *, needs_prompt_file: bool = False, replace: bool = False) -> None:
    if name in _STRATEGIES and not replace:
        raise ValueError(f"prompt strategy {name!r} is already registered; pass replace=True to override it")
    _STRATEGIES[name] = Strategy(build, needs_prompt_file)


def strategy_names() -> tuple[str, ...]:
    return tuple(_STRATEGIES)


def needs_prompt_file(name: str) -> bool:
    return _get(name).needs_prompt_file


def _get(name: str) -> Strategy:
    if name not in _STRATEGIES:
        raise BadValue(f"unknown prompt strategy {name!r}; valid: {', '.join(_STRATEGIES)}")
    return _STRATEGIES[name]


def build_prompt_bank(strategy: str, classnames: Sequence[str], prompt_file: Optional[str | Path] = None, *,
                      drop_groups: Sequence[str] = ()) -> PromptBank:
    """The PromptBank of `strategy` for `classnames` (names exactly as in the labels file)."""
    spec = _get(strategy)
    if spec.needs_prompt_file and not prompt_file:
        raise BadValue(f"prompt strategy {strategy!r} needs a prompt file (e.g. prompts/apclip_bench.json)")
    return spec.build(list(classnames), prompt_file, tuple(drop_groups))
