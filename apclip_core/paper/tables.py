"""Tables of results: the paper's numbers as data, ours beside them, and the files a table becomes.

Every table a notebook produces is written the same way: `figures/<name>.csv`, `.md`, `.png` and a
results JSON recording the protocol and the code version that computed it.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

import pandas as pd

from apclip_core import atomic, paths

PAPER_TABLES_DIR = Path(__file__).resolve().parent / "paper_tables"


def paper_table_names() -> list[str]:
    return sorted(p.stem for p in PAPER_TABLES_DIR.glob("*.csv"))


def paper_table(name: str) -> pd.DataFrame:
    """The paper's table `name` (e.g. 'table2_base_to_novel') in long format, as transcribed."""
    path = PAPER_TABLES_DIR / f"{name}.csv"
    if not path.exists():
        raise KeyError(f"no paper table {name!r}; valid names: {', '.join(paper_table_names())}")
    return pd.read_csv(path)


def provenance() -> dict:
    """Which code, machine and time produced a result (recorded in every results JSON)."""
    def git(*args: str) -> Optional[str]:
        try:
            out = subprocess.run(["git", *args], cwd=paths.PROJECT_ROOT, capture_output=True,
                                 text=True, timeout=10, check=True)
            return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    import torch

    return {
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def gains(df: pd.DataFrame, *, method: str, baseline: str, value: str = "value",
          index: tuple[str, ...] = ("dataset", "metric")) -> pd.DataFrame:
    """`method` minus `baseline` per (dataset, metric): the quantity comparable across datasets."""
    wide = df.pivot_table(index=list(index), columns="method", values=value, aggfunc="mean")
    missing = [m for m in (method, baseline) if m not in wide.columns]
    if missing:
        raise KeyError(f"methods {missing} not in table; present: {list(wide.columns)}")
    return (wide[method] - wide[baseline]).rename("gain").reset_index()


def beside_paper(ours: pd.DataFrame, paper: pd.DataFrame, *, on: list[str]) -> pd.DataFrame:
    """Join our numbers and the paper's on `on`, with the difference (ours - paper)."""
    merged = ours.merge(paper, on=on, how="outer", suffixes=("_ours", "_paper"))
    merged = merged.rename(columns={"value_ours": "ours", "value_paper": "paper"})
    merged["diff"] = merged["ours"] - merged["paper"]
    return merged


@dataclass
class TableFiles:
    csv: Path
    md: Path
    png: Optional[Path]
    json: Path

    def __str__(self) -> str:
        return "\n".join(f"  {p}" for p in (self.csv, self.md, self.png, self.json) if p)


def save_table(df: pd.DataFrame, name: str, *, title: str, results: dict,
               chart: Optional[Callable[[pd.DataFrame], "object"]] = None,
               notes: str = "", figures: Optional[Path] = None) -> TableFiles:
    """Write `df` as CSV + markdown (+ PNG from `chart`, a function returning a matplotlib Figure)
    and `results` (protocol, raw metrics) with provenance as `<name>.json`."""
    out = Path(figures) if figures is not None else paths.figures_dir()
    out.mkdir(parents=True, exist_ok=True)
    files = TableFiles(csv=out / f"{name}.csv", md=out / f"{name}.md", png=None, json=out / f"{name}.json")
    df.to_csv(files.csv, index=False, float_format="%.2f")
    md = f"## {title}\n\n{df.to_markdown(index=False, floatfmt='.1f')}\n"
    if notes:
        md += f"\n{notes.strip()}\n"
    files.md.write_text(md)
    if chart is not None:
        import matplotlib.pyplot as plt

        fig = chart(df)
        files.png = out / f"{name}.png"
        fig.savefig(files.png, dpi=150, bbox_inches="tight")
        plt.close(fig)
    payload = {"table": name, "title": title, "rows": json.loads(df.to_json(orient="records")),
               **results, "provenance": provenance()}
    atomic.write_json(files.json, payload, default=str)
    return files


def bar_chart(df: pd.DataFrame, *, x: str, y: str, hue: str, title: str, ylabel: str = "accuracy (%)"):
    """A grouped bar chart (seaborn) with the values written on the bars."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * df[x].nunique() * max(1, df[hue].nunique()) / 2), 3.6))
    sns.barplot(data=df, x=x, y=y, hue=hue, ax=ax, palette="deep")
    for container in ax.containers:
        ax.bar_label(container, fmt="%.1f", fontsize=8, padding=2)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("")
    ax.set_ylim(0, min(105, float(df[y].max()) * 1.18 + 1))
    ax.legend(frameon=False, fontsize=8)
    sns.despine(fig)
    fig.tight_layout()
    return fig
