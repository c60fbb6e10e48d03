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
from typing import Callable, Optional, Sequence

import pandas as pd

from apclip_core import atomic, paths
from apclip_core.errors import UnknownName

PAPER_TABLES_DIR = Path(__file__).resolve().parent / "paper_tables"


def paper_table_names() -> list[str]:
    return sorted(p.stem for p in PAPER_TABLES_DIR.glob("*.csv"))


def paper_table(name: str) -> pd.DataFrame:
    """The paper's table `name` (e.g. 'table2_base_to_novel') in long format, as transcribed."""
    path = PAPER_TABLES_DIR / f"{name}.csv"
    if not path.exists():
        raise UnknownName(f"no paper table {name!r}; valid names: {', '.join(paper_table_names())}")
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


def profiled_name(stem: str, profile: str) -> str:
    """The files' name for a profile: the smoke profile's as tracked in figures/ (`stem`), any other profile's
    with it appended (`stem_paper`), so a paper run never replaces the tracked smoke results."""
    return stem if profile == "smoke" else f"{stem}_{profile}"


def save_table(df: pd.DataFrame, name: str, *, title: str, results: dict,
               chart: Optional[Callable[[pd.DataFrame], "object"]] = None,
               notes: str = "", figures: Optional[Path] = None) -> TableFiles:
    """Write `df` as CSV + markdown (+ PNG from `chart`, a function returning a matplotlib Figure)
    and `results` (protocol, raw metrics) with provenance as `<name>.json`."""
    out = Path(figures) if figures is not None else paths.figures_dir()
    out.mkdir(parents=True, exist_ok=True)
    files = TableFiles(csv=out / f"{name}.csv", md=out / f"{name}.md", png=None, json=out / f"{name}.json")
    atomic.write_text(files.csv, df.to_csv(index=False, float_format="%.2f"))
    md = f"## {title}\n\n{df.to_markdown(index=False, floatfmt='.1f')}\n"
    if notes:
        md += f"\n{notes.strip()}\n"
    atomic.write_text(files.md, md)
    fig = chart(df) if chart is not None else None  # a chart may have nothing to plot (None): no PNG then
    if fig is not None:
        import io

        import matplotlib.pyplot as plt

        files.png = out / f"{name}.png"
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=150, bbox_inches="tight")
        plt.close(fig)
        atomic.write_bytes(files.png, png.getvalue())
    payload = {"table": name, "title": title, "rows": json.loads(df.to_json(orient="records")), **results}
    payload = atomic.strict_json(json.loads(json.dumps(payload, default=str)))
    if _recorded_results(files.json) != payload:
        # provenance (commit, date) changes on every run: rewritten only with the numbers, so re-running
        # an unchanged result leaves a tracked figures/ folder clean and says when the numbers were made
        atomic.write_json(files.json, {**payload, "provenance": provenance()}, default=str)
    return files


def _recorded_results(path: Path) -> Optional[dict]:
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    recorded.pop("provenance", None)
    return recorded


METRIC_LABELS = {"top1": "top-1", "top5": "top-5", "base": "base", "novel": "novel", "hm": "HM"}
AXIS_LABELS = {"metric": "", "shots": "K (shots)"}


def _legend_below(ax, ncol: int) -> None:
    """The legend under the axes' tick labels and x label, measured after layout: inside the plot a
    legend covers bars or their value labels, and at a fixed offset it covers two-line tick labels."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    below = ax.get_tightbbox(renderer).transformed(fig.transFigure.inverted())
    centre = ax.get_position().x0 + ax.get_position().width / 2
    ax.legend(loc="upper center", bbox_to_anchor=(centre, below.y0 - 0.01), bbox_transform=fig.transFigure,
              ncol=max(1, ncol), frameon=False, fontsize=8)


def bar_chart(df: pd.DataFrame, *, x: str, y: str, hue: str, title: str, ylabel: str = "accuracy (%)"):
    """A grouped bar chart (seaborn) with the values written on the bars and the legend below."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * df[x].nunique() * max(1, df[hue].nunique()) / 2), 3.6))
    sns.barplot(data=df, x=x, y=y, hue=hue, ax=ax, palette="deep")
    for container in ax.containers:
        ax.bar_label(container, fmt="%.1f", fontsize=8, padding=2)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(AXIS_LABELS.get(x, x))
    ax.set_ylim(0, min(105, float(df[y].max()) * 1.18 + 1))
    sns.despine(fig)
    fig.tight_layout()
    _legend_below(ax, min(3, df[hue].nunique()))
    return fig


def _category(row: pd.Series, keys: list[str], sep: str = "\n") -> str:
    import textwrap

    parts = []
    for key in keys:
        v = row[key]
        text = METRIC_LABELS.get(v, str(v)) if key == "metric" else f"K={v}" if key == "shots" else str(v)
        # long method names would run into the next tick label
        parts.append(textwrap.fill(text, 18, break_on_hyphens=False) if sep == "\n" else text)
    return sep.join(parts)


def _metric_order(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in the paper's column order (base, novel, HM), not alphabetical (base, hm, novel)."""
    if "metric" not in df:
        return df
    order = {m: i for i, m in enumerate(METRIC_LABELS)}
    return df.sort_values("metric", key=lambda s: s.map(lambda m: order.get(m, len(order))), kind="stable")


def _varying(df: pd.DataFrame, keys: list[str]) -> list[str]:
    """The columns among `keys` with more than one value (the rest say nothing on the axis)."""
    return [k for k in keys if k in df and df[k].nunique() > 1] or [k for k in keys if k in df][-1:]


def _grouped_bars(ax, df: pd.DataFrame, *, categories: list[str], cat_col: str, hue: str, hues: list[str],
                  colors, err: Optional[str] = None, fmt: str = "%.1f", labels: Optional[dict] = None,
                  marks: Optional[dict] = None):
    """Bars of `df` per category (x) and hue, value labels above the bar, its error bar and any mark
    ((category, hue) -> value, e.g. the paper's number drawn as a tick), so no label sits on a line;
    returns the bar x positions per (category, hue) and the bar width."""
    import numpy as np

    width = 0.8 / max(1, len(hues))
    positions = {}
    for i, h in enumerate(hues):
        sub = df[df[hue] == h].set_index(cat_col)
        xs = np.arange(len(categories)) + (i - (len(hues) - 1) / 2) * width
        vals = [float(sub["value"].get(c, float("nan"))) for c in categories]
        yerr = None
        if err is not None and err in sub:
            yerr = [float(sub[err].get(c, float("nan"))) for c in categories]
            yerr = [0.0 if e != e else e for e in yerr]  # NaN: a single run, no spread
            yerr = yerr if any(yerr) else None
        bars = ax.bar(xs, vals, width * 0.95, label=(labels or {}).get(h, h), color=colors[i % len(colors)],
                      yerr=yerr, capsize=3 if yerr else 0, error_kw={"elinewidth": 1, "ecolor": "0.2"})
        for c, x, v, e in zip(categories, xs, vals, yerr or [0.0] * len(vals)):
            positions[(c, h)] = x
            if v == v and v < 0:  # below a negative bar, clear of the zero line
                ax.annotate(fmt % v, (x, v - e), xytext=(0, -2), textcoords="offset points",
                            ha="center", va="top", fontsize=7)
            elif v == v:
                top = max(v + e, (marks or {}).get((c, h), float("-inf")))
                ax.annotate(fmt % v, (x, top), xytext=(0, 2), textcoords="offset points",
                            ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(categories)), categories)
    return positions, width


def _paper_marks(ours: pd.DataFrame, paper: pd.DataFrame, keys: list[str]) -> dict:
    """(category, method) of each of our bars -> the paper's number for it, matched on every key both tables
    have (the dataset too where the category does not show it: a one-dataset table must not take another
    dataset's number for the same metric and method)."""
    on = [k for k in keys if k in paper] + ["method"]
    bars = ours[on + ["_cat"]].drop_duplicates()
    matched = bars.merge(paper[on + ["value"]].dropna(subset=["value"]), on=on, how="inner")
    return {(c, m): float(v) for c, m, v in zip(matched["_cat"], matched["method"], matched["value"])}


def table_figure(ours: pd.DataFrame, gains: pd.DataFrame, *, title: str, x: str = "metric",
                 profile: str = "smoke", paper: Optional[pd.DataFrame] = None,
                 our_label: str = "ours", paper_label: str = "paper", gain_labels: Optional[dict] = None,
                 protocol_lines: Sequence[str] = (), ran_on: Sequence[str] = ()):
    """A paper table as a reader of the paper expects it: our numbers per method (mean +- std where seeds
    or splits were averaged: column `std`), and beside them each claimed gain, ours next to the paper's.
    `gain_labels` names the two sides of the gains in the legend (e.g. {"paper": "paper (K-400)"}).
    `paper` (long, like `ours`) adds the paper's numbers as black ticks on our bars; it is drawn only in
    the paper profile. `protocol_lines` (paper profile): the same-protocol sentence, or what deviates from the
    paper's protocol, drawn first among the notes. `ran_on` (any profile): what the numbers were computed on
    (e.g. the zoo's videos per split), drawn next. Legends sit below the axes, notes below them."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    keys = [k for k in ("dataset", x) if k in ours] if x != "metric" else [k for k in ("dataset", "metric") if k in ours]
    keys = list(dict.fromkeys(keys + (["metric"] if x != "metric" and ours["metric"].nunique() > 1 else [])))
    shown = _varying(ours, keys)
    ours = ours.assign(_cat=[_category(r, shown) for _, r in ours.iterrows()])
    categories = list(dict.fromkeys(ours["_cat"]))
    methods = list(dict.fromkeys(ours["method"]))
    has_gains = gains is not None and not gains.empty and "ours" in gains

    n_abs = len(categories) * len(methods)
    n_gain = len(gains) * 2 if has_gains else 0
    fig, axes = plt.subplots(1, 2 if has_gains else 1, squeeze=False,
                             figsize=(min(16.0, 2.6 + 0.45 * (n_abs + n_gain) + (2.0 if has_gains else 0)), 4.0),
                             gridspec_kw={"width_ratios": [max(2, n_abs), max(2, n_gain)] if has_gains else [1]})
    ax = axes[0][0]
    colors = sns.color_palette("deep")
    marks = {}
    if paper is not None and profile == "paper" and not paper.empty:
        marks = _paper_marks(ours, paper, keys)
    positions, width = _grouped_bars(ax, ours, categories=categories, cat_col="_cat", hue="method", hues=methods,
                                     colors=colors, err="std" if "std" in ours else None, marks=marks)
    notes = []
    if marks:
        ticks = [(positions[key], v) for key, v in marks.items()]
        if ticks:
            ax.hlines([v for _, v in ticks], [p - width * 0.45 for p, _ in ticks],
                      [p + width * 0.45 for p, _ in ticks], colors="black", linewidth=2, label=paper_label)
    top = max([float(v) for v in ours["value"] if v == v] + list(marks.values()) + [1.0])
    if "std" in ours:
        top += float(ours["std"].fillna(0).max())
    ax.set_ylim(0, min(110, top * 1.15 + 2))
    ax.set_ylabel("accuracy (%)")
    ax.set_xlabel(AXIS_LABELS.get(x, x))
    ax.set_title(our_label, fontsize=10)

    if has_gains:
        gx = axes[0][1]
        gkeys = [k for k in ("comparison", "dataset", "shots", "metric") if k in gains]
        gains = _metric_order(gains)
        if "dataset" in gains:  # datasets in the left panel's order
            first = {d: i for i, d in enumerate(dict.fromkeys(ours["dataset"]))}
            gains = gains.sort_values("dataset", key=lambda s: s.map(lambda d: first.get(d, len(first))),
                                      kind="stable")
        if "comparison" in gains:  # each comparison's bars together, in the order they were asked for
            asked = {c: i for i, c in enumerate(dict.fromkeys(gains["comparison"]))}
            gains = gains.sort_values("comparison", key=lambda s: s.map(asked), kind="stable")
        gshown = _varying(gains, gkeys)
        long = pd.concat([gains.assign(who=who, value=gains[who]) for who in ("ours", "paper") if who in gains],
                         ignore_index=True)
        many = len(gains) > 4  # then one slanted line per category reads better than stacked lines
        long["_cat"] = [_category(r, gshown, sep=": " if many else "\n") for _, r in long.iterrows()]
        gcats = list(dict.fromkeys(long["_cat"]))
        _grouped_bars(gx, long, categories=gcats, cat_col="_cat", hue="who",
                      hues=[w for w in ("ours", "paper") if w in gains], colors=[colors[0], "0.6"], fmt="%+.1f",
                      labels=gain_labels)
        gx.axhline(0, color="0.3", linewidth=0.8)
        if many:
            gx.tick_params(axis="x", labelrotation=30, labelsize=8)
            for label in gx.get_xticklabels():
                label.set_horizontalalignment("right")
                label.set_rotation_mode("anchor")
        lo, hi = float(long["value"].min(skipna=True)), float(long["value"].max(skipna=True))
        span = max(hi - min(lo, 0), 1.0)
        gx.set_ylim(min(0.0, lo - 0.15 * span) if lo < 0 else 0, max(0, hi) + 0.15 * span)
        gx.set_ylabel("gain (points)")
        gx.set_xlabel(AXIS_LABELS.get(x, "") if "shots" in gshown else "")
        comparisons = list(dict.fromkeys(gains["comparison"])) if "comparison" in gains else []
        gx.set_title("gain: " + comparisons[0] if len(comparisons) == 1 else "gains, ours beside the paper's",
                     fontsize=10)
    fig.suptitle(title, fontsize=11)
    sns.despine(fig)
    fig.tight_layout()
    _legend_below(ax, min(3, len(methods) + (paper is not None and profile == "paper")))
    if has_gains:
        _legend_below(gx, 2)

    stated = [*(protocol_lines if profile == "paper" else ()), *ran_on]
    if stated:
        import textwrap

        # long deviation lines (every list with its counts) wrapped to the figure's width, indented under "- "
        width = max(60, int(fig.get_figwidth() * 15))
        notes += [textwrap.fill(line, width, subsequent_indent="   ") for line in stated]
    if profile != "paper":
        notes.append("Smoke profile: compare gains, not absolute numbers (ours: the embedded benchmark and a tiny "
                     "CLIP; the paper: its dataset and ViT-B/16).")
    if "hm" in set(ours["metric"]):
        notes.append("HM: harmonic mean of base and novel accuracy, 2 x base x novel / (base + novel).")
    if "std" in ours and ours["std"].notna().any():
        notes.append("Error bars: +-1 std over the seeds or splits averaged.")
    if paper is not None and profile == "paper":
        notes.append("Black ticks: the paper's numbers.")
    if notes:
        # below the lowest legend, measured after layout, so the notes never cover a legend or a label
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        lowest = min(a.get_legend().get_window_extent(renderer).y0 for a in fig.axes if a.get_legend())
        y = fig.transFigure.inverted().transform((0, lowest))[1] - 0.02
        fig.text(0.01, y, "\n".join(notes), ha="left", va="top", fontsize=7.5, color="0.25", wrap=False)
    return fig


def figure_of_display_table(display: pd.DataFrame, gains: pd.DataFrame, *, title: str, profile: str,
                            protocol_lines: Sequence[str] = ()):
    """table_figure from a paper-profile table as written (beside_paper's columns: method, dataset, [shots,]
    metric, ours, paper), e.g. one assembled from per-dataset files; None for any other shape (nothing to plot)."""
    if not {"method", "dataset", "metric", "ours"} <= set(display.columns):
        return None
    keys = [k for k in ("method", "dataset", "shots", "metric") if k in display]
    ours = display[keys + ["ours"] + (["std"] if "std" in display else [])].rename(columns={"ours": "value"})
    ours = ours.dropna(subset=["value"])
    paper = display[keys + ["paper"]].rename(columns={"paper": "value"}) if "paper" in display else None
    return table_figure(ours, gains, title=title, x="shots" if "shots" in display else "metric", profile=profile,
                        paper=paper, our_label="ours beside the paper's" if profile == "paper" else "ours",
                        protocol_lines=protocol_lines)

