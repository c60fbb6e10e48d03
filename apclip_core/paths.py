"""Where apclip reads and writes. Every location can be moved with an environment variable,
so notebooks, tests and CI never write into each other's folders."""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env_dir(var: str, default: Path) -> Path:
    path = Path(os.environ.get(var, default)).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Derived artefacts reused across runs: pretrained tiny CLIP, prompt-bank features."""
    return _env_dir("APCLIP_CACHE", PROJECT_ROOT / ".cache" / "apclip")


def data_dir() -> Path:
    """Datasets: the embedded benchmark and the real datasets a user prepares."""
    return _env_dir("APCLIP_DATA", PROJECT_ROOT / "data")


def figures_dir() -> Path:
    """Tables and figures the notebooks produce (CSV, markdown, PNG, PDF)."""
    return _env_dir("APCLIP_FIGURES", PROJECT_ROOT / "figures")


def runs_dir() -> Path:
    """Training runs: checkpoints, config, metrics."""
    return _env_dir("APCLIP_RUNS", PROJECT_ROOT / "runs")


def portable(path: str | Path) -> str:
    """`path` as a tracked file may record it: relative to the project root (or `<runs>/...` for a
    run under a moved APCLIP_RUNS), so results written on two machines or checkouts are identical."""
    path = Path(path)
    for root, prefix in ((PROJECT_ROOT, ""), (Path(os.environ.get("APCLIP_RUNS", PROJECT_ROOT / "runs")), "<runs>/")):
        try:
            return prefix + path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            continue
    return str(path)


def prompts_dir() -> Path:
    """Shipped prompt sets and the attribute graph (read-only data of the project)."""
    return PROJECT_ROOT / "prompts"


def user_prompts_dir() -> Path:
    """Prompt sets a user generates (`make prompts`): apart from the shipped ones, which they never
    shadow unless a file is named explicitly."""
    return _env_dir("APCLIP_PROMPTS", PROJECT_ROOT / "outputs" / "prompts")
