"""One function per table of the paper: run (or reuse) the trainings it needs, put our numbers beside
the paper's, and write figures/<table>.{csv,md,png,json}. The notebooks call these and nothing else.

Smoke profile (the defaults): the embedded benchmark with the tiny CLIP. Zero-shot tables (1, 6, 7)
use the base-to-novel runs and score the novel classes, which no model trained on, so the seven
tables share trainings. Our absolute numbers are
not comparable with the paper's (another dataset, another model), but the *gains* of one method over
another are the paper's claims, so every table reports ours and the paper's gain side by side.
Paper profile: the paper's dataset and ViT-B/16; ours and the paper's numbers are directly comparable
when nothing deviates from the paper's protocol. Every table records, per list, the videos listed, used,
skipped, failed, replaced and padded, the seeds run against the paper's, the model and its weights
(paper.deviations); a paper-profile table says "same protocol" only when none of that deviates, and
otherwise lists each deviation, in the notebook, the markdown, the JSON and the PNG. `partial_data=True`
(`make reproduce-tableN PROFILE=paper PARTIAL=1`) runs on the videos present: missing files are skipped
before the model sees them (config `missing_videos: skip`) and the table says so.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import logging

import pandas as pd

from apclip_core import paths
from apclip_core.errors import BadValue
from apclip_core.paper import deviations, experiments, stats, tables

log = logging.getLogger(__name__)

DATASET_NAMES = {"hmdb": "HMDB-51", "ucf": "UCF-101", "k600": "K600", "k400": "K-400", "ssv2": "SSv2"}


@dataclass
class TableResult:
    name: str
    title: str
    table: pd.DataFrame          # what the notebook shows: ours beside the paper
    gains: pd.DataFrame          # the claimed gains, ours beside the paper's
    rows: pd.DataFrame           # every number we computed, long format (with run folders)
    files: tables.TableFiles
    claims: dict[str, str] = field(default_factory=dict)      # claim -> verdict (stats.VERDICTS, or "not measured")
    profile: str = "smoke"
    protocol_check: dict = field(default_factory=dict)   # what the runs ran on, and what deviates from the paper

    @property
    def protocol_statement(self) -> str:
        """Paper profile: "Profile: paper." and the same-protocol sentence, or every deviation (one line each)."""
        return f"Profile: {self.profile}. {self.protocol_check.get('statement', '')}".strip()

    def summary(self) -> str:
        """Stable text for notebook checks: the shape of the result and its claims, not raw numbers."""
        lines = [f"{self.name}: {len(self.table)} rows; methods: {', '.join(dict.fromkeys(self.rows['method']))}"]
        lines += [f"claim: {k}: {v}" for k, v in self.claims.items()]
        return "\n".join(lines)


# The dataset each table's files are named for without a suffix: its paper profile's (notebooks/params)
# and the embedded benchmark's. Any other dataset's table is written as <table>_<dataset>.*, so Table 2
# on UCF-101 never replaces Table 2 on HMDB-51; assemble() puts such per-dataset tables together.
DEFAULT_DATASETS = {"table1_zero_shot": "k400", "table2_base_to_novel": "hmdb51", "table3_few_shot": "hmdb51",
                    "table4_fully_supervised": "k400", "table5_temporal": "ssv2",
                    "table6_prompt_strategies": "k400", "table7_maka_ablation": "k400"}
SMOKE_DATASET = "apclip_bench"


def run_dataset(overrides: Optional[dict], dataset: str) -> str:
    """The dataset a table's runs are about: overrides.protocol_args.dataset when the notebook changes it
    (Table 2 on UCF-101 is the HMDB-51 profile with that one override), else the `dataset` parameter."""
    from apclip_core.data.protocols import canonical_dataset

    return canonical_dataset(str(((overrides or {}).get("protocol_args") or {}).get("dataset") or dataset))


def table_file_name(name: str, dataset: str, profile: str = "smoke") -> str:
    """`name` for the table's default dataset (or the benchmark), else `name_<dataset>`; then the profile
    (tables.profiled_name: `_paper` after it outside the smoke profile, whose names figures/ tracks)."""
    from apclip_core.data.protocols import canonical_dataset

    stem = name if canonical_dataset(dataset) in (SMOKE_DATASET, DEFAULT_DATASETS.get(name)) else \
        f"{name}_{canonical_dataset(dataset)}"
    return tables.profiled_name(stem, profile)


def dataset_of(split_key: str, default: str) -> str:
    for key, name in DATASET_NAMES.items():
        if key in split_key.lower():
            return name
    return default


def _long(rows: pd.DataFrame, default_dataset: str) -> pd.DataFrame:
    """Split-level rows -> (method, dataset, metric) with metric in top1/top5/base/novel/hm."""
    out = rows.copy()
    out["dataset"] = [dataset_of(m, d) for m, d in zip(out["metric"], out["dataset"].fillna(default_dataset))]
    def metric(key: str) -> str:
        if key in ("base", "novel", "hm"):
            return key
        if key.endswith("_top5"):
            return "top5"
        if key.endswith("_std"):
            return "std"
        return "top1"
    out["metric"] = out["metric"].map(metric)
    return out


def _zero_shot_rows(rows: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Top-1 on classes never trained on: the paper's cross-dataset splits (HMDB-51/UCF-101/K600, averaged
    over their val splits), or on the benchmark the novel split of the base-to-novel protocol."""
    # A re-evaluated run names its splits (bench_base_val, bench_novel_val): the base split's classes were
    # trained on, so it is not zero-shot and must not enter the mean.
    ours = _long(rows[~rows["metric"].str.contains("base")], dataset)
    ours = ours[ours.metric.isin(["top1", "novel"])].assign(metric="top1")
    return _mean_std(ours, ["method", "dataset", "metric"])


def _mean_std(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean per group, and the std over what was averaged (seeds, splits) where there was more than one."""
    grouped = df.groupby(by, as_index=False, sort=False)["value"]
    return grouped.mean().merge(grouped.std().rename(columns={"value": "std"}), on=by, how="left")


def _with_seed_std(ours: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """`ours` (means over seeds) with the std over seeds per method and metric (HM: of each seed's HM)."""
    std = rows.groupby(["method", "metric"], as_index=False, sort=False)["value"].std().rename(columns={"value": "std"})
    return ours.merge(std, on=["method", "metric"], how="left")


def _gain_table(ours: pd.DataFrame, paper: pd.DataFrame, pairs: Sequence[tuple],
                index: tuple[str, ...] = ("dataset", "metric")) -> pd.DataFrame:
    """Our gain and the paper's per dataset/metric for each comparison. A pair is (method, baseline),
    or (method, baseline, paper's method, paper's baseline) when the paper compared other models
    (Table 1's plug-in: Open-VCLIP there, our trained baseline here)."""
    frames = []
    for pair in pairs:
        method, baseline = pair[:2]
        paper_method, paper_baseline = pair[2:] if len(pair) == 4 else pair
        for who, df, (m, b) in (("ours", ours, (method, baseline)), ("paper", paper, (paper_method, paper_baseline))):
            if {m, b} <= set(df["method"]):
                g = tables.gains(df, method=m, baseline=b, index=index)
                g["who"], g["comparison"] = who, f"{method} - {baseline}"
                frames.append(g)
    if not frames:
        return pd.DataFrame()
    both = pd.concat(frames, ignore_index=True)
    table = both.pivot_table(index=["comparison", *index], columns="who", values="gain", sort=False).reset_index()
    table.columns.name = None  # the pivot's "who" would print as a stray header above the columns
    # gains the paper reports for settings this run did not cover (e.g. K=8, 16 in the smoke profile)
    return table.dropna(subset=["ours"]) if "ours" in table else table


VERDICT_NOTE = ("Ours: mean over seeds ± std. 95% CI: a two-level bootstrap over seeds and classes (a drawn "
                "class brings all its videos), paired (both methods on the same videos); verdict: holds (the "
                "interval is above 0), contradicts (below 0), inconclusive (it contains 0).")

SMOKE_DEVIATION = "smoke profile: the embedded benchmark and a tiny CLIP, not the paper's data or model"


def protocol_check(rows: pd.DataFrame, *, profile: str, preset: Optional[str] = None,
                   seeds: Optional[tuple] = None) -> dict:
    """What the table's runs ran on (experiments.run_record of each run folder in `rows`), per list and per
    run, and the deviations from the paper's protocol: `preset` gives the paper's frames and views (the
    table's paper-profile preset), `seeds` is (label, seeds run, the paper's seeds)."""
    from pathlib import Path

    from apclip_core.engine.config import load_config

    runs, unreadable, expected = [], [], {}
    # a run's method: a row naming one of METHODS (methods sharing a run share its overrides: ViFi-CLIP / Single;
    # Table 1's "+ Action prompts" reuses its base's run and is not one of them)
    methods = {} if "run_dir" not in rows else \
        {d: m for d, m in zip(rows["run_dir"], rows["method"]) if m in experiments.METHODS and pd.notna(d)}
    for run_dir in dict.fromkeys(rows["run_dir"].dropna()) if "run_dir" in rows else ():
        try:
            runs.append(experiments.run_record(Path(run_dir)))
        except (OSError, ValueError, KeyError):
            unreadable.append(paths.portable(run_dir))
            continue
        if profile == "paper" and preset and run_dir in methods:
            expected[runs[-1]["run_dir"]] = experiments.paper_settings(preset, methods[run_dir],
                                                                       runs[-1]["config"].get("protocol_args") or {})
    reference = None
    if profile == "paper" and preset:
        reference = deviations.view_of(load_config(preset))
    lines = deviations.deviations(runs, reference=reference, seeds=seeds, unreadable=unreadable, expected=expected)
    runs = [{k: v for k, v in r.items() if k != "config"} for r in runs]  # the JSON keeps what it always recorded
    if profile != "paper":
        lines = [SMOKE_DEVIATION, *lines]
    models = list({json_key(r["model"]): r["model"] for r in runs}.values())
    return {"profile": profile, "same_as_paper": not lines, "deviations": lines,
            "statement": deviations.table_statement(lines, rows["method"].unique()) if profile == "paper" else "",
            "seeds": {"label": seeds[0], "run": list(seeds[1]), "paper": list(seeds[2])} if seeds else None,
            "models": models, "splits": deviations.public_totals(runs), "runs": runs}


def json_key(value) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)


def _save(name: str, title: str, rows: pd.DataFrame, ours: pd.DataFrame, paper: pd.DataFrame,
          pairs: Sequence[tuple], *, profile: str, claims: dict[str, str], chart_x: str = "metric",
          index: tuple[str, ...] = ("dataset", "metric"), protocol: Optional[dict] = None,
          file_dataset: str = SMOKE_DATASET, seeds: Optional[tuple] = None,
          intervals: Optional[pd.DataFrame] = None, by: Sequence[str] = ()) -> TableResult:
    check = protocol_check(rows, profile=profile, preset=(protocol or {}).get("config"), seeds=seeds)
    found = intervals if intervals is not None else pd.DataFrame()
    gains = _with_intervals(_gain_table(ours, paper, pairs, index=index), found, by)
    our_data = rows["dataset"].iloc[0] if len(rows) else "?"
    if profile != "paper" and not gains.empty:
        # smoke: ours were aligned to the paper's dataset only to pair the gains; say what each side is
        gains["dataset"] = [f"ours: {our_data} / paper: {d}" for d in gains["dataset"]]
    if profile == "paper":
        # only the datasets this table ran: the others are other per-dataset tables (see assemble), not NaN rows
        table = tables.beside_paper(ours, paper[paper["dataset"].isin(ours["dataset"])], on=["method", *index])
    else:
        # mean ± std over seeds where there were several (a string cell: the files keep every digit in `raw`)
        shown = ours.assign(value=[f"{v:.1f} ± {sd:.1f}" if pd.notna(sd) else f"{v:.1f}"
                                   for v, sd in zip(ours["value"], ours["std"])]) if "std" in ours else ours
        table = shown.pivot_table(index="method", columns=list(index[1:]) or None, values="value", sort=False,
                                  aggfunc="first")
        table = table.reset_index() if isinstance(table, pd.DataFrame) else table.to_frame().reset_index()
        table.columns = [c if isinstance(c, str) else " ".join(map(str, c)).strip() for c in table.columns]
    notes = (f"Profile: {profile}. " + (check["statement"]
             if profile == "paper" else "Ours: the embedded benchmark with the tiny CLIP; compare the gains, "
             "not the absolute numbers.") + "\n\n" +
             (f"Gains (method - baseline), ours beside the paper's:\n\n{gains.to_markdown(index=False, floatfmt='+.1f')}"
              if not gains.empty else "") +
             ("\n\nHM: the harmonic mean of base and novel accuracy, 2 x base x novel / (base + novel)."
              if "hm" in set(ours["metric"]) else "") +
             (f"\n\n{VERDICT_NOTE}" if not found.empty else "") +
             ("\n\nClaims: " + "; ".join(f"{c}: {v}" for c, v in claims.items()) if claims else ""))
    # the chart shows our long rows (method x metric) beside the gains; the table files hold the display table
    our_label = "ours beside the paper's" if profile == "paper" else f"ours ({our_data})"
    paper_data = ", ".join(dict.fromkeys(paper["dataset"])) if "dataset" in paper and len(paper) else "?"
    gain_labels = {"ours": "ours", "paper": "paper"} if profile == "paper" else \
        {"ours": f"ours ({our_data})", "paper": f"paper ({paper_data})"}
    chart = lambda _: tables.table_figure(ours, gains, title=title, x=chart_x, profile=profile, paper=paper,  # noqa: E731
                                          our_label=our_label, gain_labels=gain_labels,
                                          protocol_lines=check["statement"].splitlines())
    files = tables.save_table(table, table_file_name(name, file_dataset, profile), title=title, notes=notes, chart=chart,
                              results={"profile": profile, "dataset": file_dataset, "protocol": protocol or {},
                                       "protocol_check": check,
                                       "gains": gains.to_dict(orient="records"), "claims": claims,
                                       "intervals": found.to_dict(orient="records"),
                                       "raw": _portable_runs(rows).to_dict(orient="records")})
    # shown rounded (41.666666 reads as noise); the files and `rows` keep every digit
    return TableResult(name=name, title=title, table=table.round(1), gains=gains.round(1), rows=rows, files=files,
                       claims=claims, profile=profile, protocol_check=check)


def _portable_runs(rows: pd.DataFrame) -> pd.DataFrame:
    """Run folders relative to the project (an absolute path would differ per checkout and machine)."""
    if "run_dir" not in rows:
        return rows
    return rows.assign(run_dir=[paths.portable(p) if isinstance(p, str) else p for p in rows["run_dir"]])


def _value(df: pd.DataFrame, method: str, metric: str, dataset: Optional[str] = None) -> float:
    sel = df[(df.method == method) & (df.metric == metric)]
    if dataset is not None:
        sel = sel[sel.dataset == dataset]
    return float(sel["value"].mean())


# ---- seeds, intervals and verdicts ------------------------------------------------------------------------
SMOKE_SEEDS = (1, 2, 3)


def table_seeds(seeds: Optional[Iterable[int]], profile: str, paper_seeds: Sequence = (None,)) -> tuple:
    """The seeds a table runs: as given, else three in the smoke profile (each a training seed, and the protocol's
    sample where it has one) and the paper's own in the paper profile (Tables 2 and 5: the three 16-shot samples;
    the others train once)."""
    if seeds is not None:
        return tuple(seeds)
    return SMOKE_SEEDS if profile != "paper" else tuple(paper_seeds)


def _grid(config: str, methods: Sequence[str], *, seeds: tuple, profile: str, dataset: str,
          overrides: Optional[dict], **protocol_args) -> pd.DataFrame:
    """experiments.grid with the seed where the preset's protocol takes one, and (smoke) as the training seed."""
    return experiments.grid(config, methods, seeds=seeds, dataset=dataset, overrides=overrides,
                            seed_arg=experiments.seed_argument(config, overrides), train_seed=profile != "paper",
                            **protocol_args)


def _metric_splits(names: Sequence[str], zero_shot: bool, default_dataset: str) -> list[tuple[str, str, object, list]]:
    """(dataset, metric, statistic, splits) of the top-1 gains a comparison's per-video results support."""
    kinds = {n: experiments.metric_name(n) for n in names}
    base = [n for n in names if kinds[n] == "base"]
    novel = [n for n in names if kinds[n] == "novel"]
    if len(base) == 1 and len(novel) == 1 and not zero_shot:
        ds = dataset_of(novel[0], default_dataset)
        return [(ds, "base", stats.top1(base[0]), base), (ds, "novel", stats.top1(novel[0]), novel),
                (ds, "hm", stats.harmonic(base[0], novel[0]), [base[0], novel[0]])]
    chosen = [n for n in names if not (zero_shot and kinds[n] == "base")]
    by_dataset: dict[str, list] = {}
    for n in chosen:
        by_dataset.setdefault(dataset_of(n, default_dataset), []).append(n)
    return [(ds, "top1", stats.mean_of(sp), sp) for ds, sp in by_dataset.items()]


def intervals(rows: pd.DataFrame, pairs: Sequence[tuple], *, zero_shot: bool = False,
              by: Sequence[str] = ()) -> pd.DataFrame:
    """Each claimed gain (method - baseline) with its 95% interval and verdict (paper.stats): per video, paired on
    the same videos, over the seeds both methods ran; one row per (comparison, *by, dataset, metric)."""
    if "run_dir" not in rows or rows.empty:
        return pd.DataFrame()
    loaded: dict = {}

    def results(method: str, group: pd.DataFrame) -> dict:
        out = {}
        for seed, sel in group[group.method == method].groupby(group["seed"].fillna(-1), sort=True):
            run_dir = sel["run_dir"].iloc[0]
            as_ = sel["evaluated_as"].iloc[0] if "evaluated_as" in sel and pd.notna(sel["evaluated_as"].iloc[0]) else None
            key = (run_dir, as_)
            if key not in loaded:
                loaded[key] = experiments.per_video(run_dir, as_)
            out[seed] = loaded[key]
        return out

    default_dataset = str(rows["dataset"].iloc[0])
    records = []
    groups = rows.groupby(list(by), sort=False) if by else [((), rows)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        for pair in pairs:
            method, baseline = pair[:2]
            if not {method, baseline} <= set(group["method"]):
                continue
            try:
                mine, theirs = results(method, group), results(baseline, group)
            except ValueError as e:   # runs evaluated before per-video predictions were recorded: no interval
                log.warning("no interval for %s - %s: %s", method, baseline, e)
                continue
            names = list(next(iter(mine.values())))
            classes = experiments.video_labels(group[group.method == baseline]["run_dir"].iloc[0])
            for dataset, metric, statistic, splits in _metric_splits(names, zero_shot, default_dataset):
                g = stats.paired_gain(mine, theirs, statistic, splits=splits, clusters=classes)
                records.append({"comparison": f"{method} - {baseline}", **dict(zip(by, key)), "dataset": dataset,
                                "metric": metric, **g.to_json()})
    return pd.DataFrame(records)


def _with_intervals(gains: pd.DataFrame, found: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """The gain table with our 95% interval and the verdict beside our gain."""
    if gains.empty or found.empty:
        return gains
    keys = ["comparison", *by, "metric"] + (["dataset"] if found["dataset"].nunique() > 1 else [])
    found = found.assign(**{"ours 95% CI": [f"[{lo:+.1f}, {hi:+.1f}]" for lo, hi in zip(found["low"], found["high"])]})
    merged = gains.merge(found[[*keys, "ours 95% CI", "verdict"]], on=keys, how="left")
    order = [c for c in merged.columns if c not in ("paper",)] + (["paper"] if "paper" in merged else [])
    return merged[order]


def claim_verdicts(found: pd.DataFrame, claims: dict) -> dict[str, str]:
    """claim text -> verdict, each claim naming the gains it rests on as [(comparison, metric, {by: value})]: holds
    when each of them holds, contradicts when one contradicts, else inconclusive ("not measured" without per-video results)."""
    out = {}
    for claim, parts in claims.items():
        verdicts = []
        for comparison, metric, *extra in parts:
            sel = found[(found["comparison"] == comparison) & (found["metric"] == metric)] if len(found) else found
            for col, value in (extra[0] if extra else {}).items():
                sel = sel[sel[col] == value]
            verdicts += list(sel["verdict"]) if len(sel) else ["not run"]
        out[claim] = ("not measured" if "not run" in verdicts else "contradicts" if "contradicts" in verdicts
                      else "holds" if all(v == "holds" for v in verdicts) else "inconclusive")
    return out


# ---- Table 2: base-to-novel ---------------------------------------------------------------------------
def table2_base_to_novel(*, config: str = "bench_base2novel", dataset: str = "apclip_bench",
                         paper_dataset: str = "K-400", init: str = "clip", seeds: Optional[Iterable[int]] = None,
                         methods: Sequence[str] = ("ViFi-CLIP", "AP-CLIP"), profile: str = "smoke",
                         overrides: Optional[dict] = None) -> TableResult:
    seeds = table_seeds(seeds, profile, deviations.PAPER_SEEDS)
    rows = _grid(config, methods, seeds=seeds, profile=profile, dataset=dataset, overrides=overrides)
    ours = _with_seed_std(experiments.mean_over_seeds(rows[rows.metric.isin(["base", "novel"])]),
                          rows[rows.metric.isin(["base", "novel", "hm"])])
    if profile == "paper":
        ours["dataset"] = paper_dataset
    paper = tables.paper_table("table2_base_to_novel").query("init == @init and method in @methods")
    paper = paper if profile == "paper" else paper[paper.dataset == paper_dataset]
    pairs = [("AP-CLIP", "ViFi-CLIP")]
    found = intervals(rows, pairs)
    claims = claim_verdicts(found, {"AP-CLIP ahead of ViFi-CLIP on novel classes": [("AP-CLIP - ViFi-CLIP", "novel")],
                                    "AP-CLIP ahead of ViFi-CLIP in harmonic mean": [("AP-CLIP - ViFi-CLIP", "hm")]})
    return _save("table2_base_to_novel", f"Table 2: base-to-novel ({dataset}, seeds {list(seeds)})", rows,
                 ours.drop(columns="dataset").assign(dataset=paper_dataset) if profile != "paper" else ours,
                 paper.drop(columns="init"), pairs, profile=profile, claims=claims, intervals=found,
                 protocol={"config": config, "seeds": list(seeds), "overrides": overrides or {}},
                 file_dataset=run_dataset(overrides, dataset), seeds=("seeds", list(seeds), deviations.PAPER_SEEDS))


# ---- Table 1: zero-shot (+ the action prompts plugged into another trained model) ---------------------
def table1_zero_shot(*, config: str = "bench_base2novel", dataset: str = "apclip_bench",
                     methods: Sequence[str] = ("ViFi-CLIP", "AP-CLIP"), plug_into: str = "ViFi-CLIP",
                     paper_dataset: str = "HMDB-51", profile: str = "smoke", seeds: Optional[Iterable[int]] = None,
                     overrides: Optional[dict] = None) -> TableResult:
    seeds = table_seeds(seeds, profile)
    rows = _grid(config, methods, seeds=seeds, profile=profile, dataset=dataset, overrides=overrides)
    # the paper's "+ Action prompts": a trained model (Open-VCLIP there; our baseline here) evaluated
    # with action-conditioned prompts and MAKA, without retraining
    plug_name = f"{plug_into} + Action prompts"
    extra = []
    for method, seed, run_overrides in experiments.grid_runs(
            config, [plug_into], seeds=seeds, overrides=overrides,
            seed_arg=experiments.seed_argument(config, overrides), train_seed=profile != "paper"):
        base_run = experiments.run(config, plug_into, **run_overrides)
        plugged = experiments.reevaluate(base_run, "AP-CLIP", config=config, **run_overrides)
        extra += [{"method": plug_name, "dataset": dataset, "seed": seed, "metric": k, "value": float(v),
                   "run_dir": plugged["run_dir"], "evaluated_as": "AP-CLIP"}
                  for k, v in plugged.items() if isinstance(v, (int, float))]
    rows = pd.concat([rows, pd.DataFrame(extra)], ignore_index=True)
    ours = _zero_shot_rows(rows, dataset)
    paper = tables.paper_table("table1_zero_shot").query("backbone == 'ViT-B/16'")
    paper = paper[paper.method.isin([*methods, "Open-VCLIP", "Open-VCLIP + Action prompts"])]
    if profile != "paper":
        ours = ours.assign(dataset=paper_dataset)
        paper = paper[paper.dataset == paper_dataset]
    pairs = [("AP-CLIP", "ViFi-CLIP"), (plug_name, plug_into, "Open-VCLIP + Action prompts", "Open-VCLIP")]
    found = intervals(rows, pairs, zero_shot=True)
    claims = claim_verdicts(found, {
        "AP-CLIP ahead of ViFi-CLIP on unseen classes": [("AP-CLIP - ViFi-CLIP", "top1")],
        "action prompts improve the trained baseline without retraining": [(f"{plug_name} - {plug_into}", "top1")]})
    return _save("table1_zero_shot", f"Table 1: zero-shot ({dataset}, seeds {list(seeds)})", rows, ours,
                 paper[["method", "dataset", "metric", "value"]], pairs, profile=profile, claims=claims,
                 intervals=found, protocol={"config": config, "plugged_into": plug_into, "seeds": list(seeds),
                                            "overrides": overrides or {}},
                 file_dataset=run_dataset(overrides, dataset))


# ---- Table 3: few-shot -------------------------------------------------------------------------------
def table3_few_shot(*, config: str = "bench_few_shot", dataset: str = "apclip_bench", shots: Iterable[int] = (2,),
                    methods: Sequence[str] = ("ViFi-CLIP", "AP-CLIP"), paper_dataset: str = "HMDB-51",
                    init: str = "clip", profile: str = "smoke", seeds: Optional[Iterable[int]] = None,
                    overrides: Optional[dict] = None) -> TableResult:
    seeds, shots = table_seeds(seeds, profile), list(shots)
    rows = pd.concat([_grid(config, methods, seeds=seeds, profile=profile, dataset=dataset, overrides=overrides,
                            k=k).assign(shots=k) for k in shots], ignore_index=True)
    ours = _long(rows, dataset)
    ours = ours[ours.metric == "top1"].assign(dataset=paper_dataset)
    ours = _mean_std(ours, ["method", "dataset", "shots", "metric"])
    paper = tables.paper_table("table3_few_shot").query("init == @init and dataset == @paper_dataset and method in @methods")
    paper_shots = sorted(int(k) for k in paper["shots"].unique())
    pairs = [("AP-CLIP", "ViFi-CLIP")]
    found = intervals(rows, pairs, by=("shots",))
    claims = claim_verdicts(found, {f"AP-CLIP ahead of ViFi-CLIP at K={k}": [("AP-CLIP - ViFi-CLIP", "top1", {"shots": k})]
                                    for k in shots})
    return _save("table3_few_shot", f"Table 3: few-shot ({dataset}, K = {shots}, seeds {list(seeds)})", rows, ours,
                 paper.drop(columns="init"), pairs, profile=profile, claims=claims, intervals=found, by=("shots",),
                 chart_x="shots", index=("dataset", "shots", "metric"),
                 protocol={"config": config, "shots": shots, "seeds": list(seeds), "overrides": overrides or {}},
                 file_dataset=run_dataset(overrides, dataset), seeds=("shots (K)", shots, paper_shots))


# ---- Table 4: fully supervised -----------------------------------------------------------------------
def table4_fully_supervised(*, config: str = "bench_fully_supervised", dataset: str = "apclip_bench",
                            methods: Sequence[str] = ("ViFi-CLIP", "AP-CLIP"), profile: str = "smoke",
                            seeds: Optional[Iterable[int]] = None, overrides: Optional[dict] = None) -> TableResult:
    seeds = table_seeds(seeds, profile)
    rows = _grid(config, methods, seeds=seeds, profile=profile, dataset=dataset, overrides=overrides)
    ours = _long(rows, dataset)
    ours = _mean_std(ours[ours.metric.isin(["top1", "top5"])].assign(dataset="K-400"), ["method", "dataset", "metric"])
    p = tables.paper_table("table4_fully_supervised")
    paper = p[p.method.isin(methods)].melt(id_vars=["method"], value_vars=["top1", "top5"], var_name="metric")
    paper["dataset"] = "K-400"
    pairs = [("AP-CLIP", "ViFi-CLIP")]
    found = intervals(rows, pairs)
    claims = claim_verdicts(found, {"AP-CLIP ahead of ViFi-CLIP in top-1 (the paper: +1.2)":
                                    [("AP-CLIP - ViFi-CLIP", "top1")]})
    return _save("table4_fully_supervised", f"Table 4: fully supervised ({dataset}, seeds {list(seeds)})", rows,
                 ours, paper, pairs, profile=profile, claims=claims, intervals=found,
                 protocol={"config": config, "seeds": list(seeds)}, file_dataset=run_dataset(overrides, dataset))


# ---- Table 5: temporal module on the temporally hard case ---------------------------------------------
def table5_temporal(*, config: str = "bench_base2novel", dataset: str = "apclip_bench",
                    seeds: Optional[Iterable[int]] = None,
                    methods: Sequence[str] = ("Base(ViFi-CLIP)", "Base+TM", "Ours", "Ours+TM", "Ours+TM w/o Body"),
                    profile: str = "smoke", overrides: Optional[dict] = None) -> TableResult:
    seeds = table_seeds(seeds, profile, deviations.PAPER_SEEDS)
    rows = _grid(config, methods, seeds=seeds, profile=profile, dataset=dataset, overrides=overrides)
    ours = _with_seed_std(experiments.mean_over_seeds(rows[rows.metric.isin(["base", "novel"])]),
                          rows[rows.metric.isin(["base", "novel", "hm"])]).assign(dataset="SSv2")
    paper = tables.paper_table("table5_temporal_ssv2")
    pairs = [("Ours+TM", "Ours"), ("Base+TM", "Base(ViFi-CLIP)"), ("Ours+TM", "Ours+TM w/o Body")]
    found = intervals(rows, pairs)
    claims = claim_verdicts(found, {"the temporal module helps our prompts (Ours+TM > Ours, HM)":
                                    [("Ours+TM - Ours", "hm")],
                                    "the Body attributes matter with TM (Ours+TM > Ours+TM w/o Body, HM)":
                                    [("Ours+TM - Ours+TM w/o Body", "hm")]})
    return _save("table5_temporal", f"Table 5: temporal module ({dataset}, seeds {list(seeds)})", rows, ours, paper,
                 pairs, profile=profile, claims=claims, intervals=found,
                 protocol={"config": config, "seeds": list(seeds)},
                 file_dataset=run_dataset(overrides, dataset), seeds=("seeds", list(seeds), deviations.PAPER_SEEDS))


# ---- Tables 6 and 7: prompting strategies and the MAKA ablation (zero-shot protocol) --------------------
def _strategies(name: str, title: str, methods: Sequence[str], pairs, claims: dict, *, config: str, dataset: str,
                paper_dataset: str, profile: str, seeds: Optional[Iterable[int]],
                overrides: Optional[dict]) -> TableResult:
    seeds = table_seeds(seeds, profile)
    rows = _grid(config, methods, seeds=seeds, profile=profile, dataset=dataset, overrides=overrides)
    ours = _zero_shot_rows(rows, dataset)
    paper = tables.paper_table(name)
    if profile != "paper":
        ours = ours.assign(dataset=paper_dataset)
        paper = paper[paper.dataset == paper_dataset]
    found = intervals(rows, pairs, zero_shot=True)
    return _save(name, f"{title} ({dataset}, seeds {list(seeds)})", rows, ours, paper, pairs, profile=profile,
                 claims=claim_verdicts(found, claims), intervals=found,
                 protocol={"config": config, "seeds": list(seeds), "overrides": overrides or {}},
                 file_dataset=run_dataset(overrides, dataset))


def table6_prompt_strategies(*, config: str = "bench_base2novel", dataset: str = "apclip_bench",
                             methods: Sequence[str] = ("Single", "Set", "Customized", "LLMs-Direct", "AP"),
                             paper_dataset: str = "HMDB-51", profile: str = "smoke",
                             seeds: Optional[Iterable[int]] = None, overrides: Optional[dict] = None) -> TableResult:
    others = [m for m in methods if m != "AP"]
    claims = {"AP ahead of Single": [("AP - Single", "top1")],
              "AP ahead of every other strategy": [(f"AP - {m}", "top1") for m in others]}
    return _strategies("table6_prompt_strategies", "Table 6: prompting strategies", methods,
                       [("AP", m) for m in others], claims, config=config, dataset=dataset,
                       paper_dataset=paper_dataset, profile=profile, seeds=seeds, overrides=overrides)


def table7_maka_ablation(*, config: str = "bench_base2novel", dataset: str = "apclip_bench",
                         methods: Sequence[str] = ("Customized", "Customized + MAKA", "AP", "AP + MAKA"),
                         paper_dataset: str = "HMDB-51", profile: str = "smoke",
                         seeds: Optional[Iterable[int]] = None, overrides: Optional[dict] = None) -> TableResult:
    claims = {"MAKA helps action-conditioned prompts": [("AP + MAKA - AP", "top1")],
              "MAKA helps customized prompts": [("Customized + MAKA - Customized", "top1")]}
    return _strategies("table7_maka_ablation", "Table 7: MAKA ablation", methods,
                       [("AP + MAKA", "AP"), ("Customized + MAKA", "Customized")], claims, config=config,
                       dataset=dataset, paper_dataset=paper_dataset, profile=profile, seeds=seeds, overrides=overrides)


# ---- what every table notebook does: one function each, so the seven notebooks hold no copied logic --
TABLES = {"table1_zero_shot": table1_zero_shot, "table2_base_to_novel": table2_base_to_novel,
          "table3_few_shot": table3_few_shot, "table4_fully_supervised": table4_fully_supervised,
          "table5_temporal": table5_temporal, "table6_prompt_strategies": table6_prompt_strategies,
          "table7_maka_ablation": table7_maka_ablation}


def with_partial_data(params: dict) -> dict:
    """The notebook's parameters with `partial_data` (`make ... PARTIAL=1`) turned into the config option it
    means, `missing_videos: skip`, in the runs' overrides: the table, the plan and the preflight then name the
    same runs, and a run on partial data never shares a name (or a cached result) with a run on every video."""
    params = dict(params)
    if params.pop("partial_data", False):
        params["overrides"] = {**(params.get("overrides") or {}), "missing_videos": "skip"}
    return params


def table_runs(name: str, **params) -> list[tuple[str, tuple[str, Optional[int]], str, dict]]:
    """(method, (varied protocol argument, its value), preset, overrides of experiments.run) for every training table
    `name` needs with the notebook's `params`, read from the table function's own defaults: what `plan` prints and
    launches is what the table function will look for (and reuse)."""
    import inspect

    if name not in TABLES:
        raise BadValue(f"unknown table {name!r}; valid: {', '.join(TABLES)}")
    params = with_partial_data(params)
    defaults = {k: p.default for k, p in inspect.signature(TABLES[name]).parameters.items()}
    values = {**defaults, **{k: v for k, v in params.items() if k in defaults}}
    config, methods, profile = values["config"], list(values["methods"]), values["profile"]
    if "plug_into" in values and values["plug_into"] not in methods:  # Table 1's plugged-in baseline
        methods.append(values["plug_into"])
    paper_seeds = deviations.PAPER_SEEDS if name in ("table2_base_to_novel", "table5_temporal") else (None,)
    seeds = table_seeds(values.get("seeds"), profile, paper_seeds)
    seed_arg = experiments.seed_argument(config, values["overrides"])
    out = []
    for k in values.get("shots") or (None,):
        extra = {"k": k} if k is not None else {}
        for method, seed, overrides in experiments.grid_runs(config, methods, seeds=seeds, overrides=values["overrides"],
                                                             seed_arg=seed_arg, train_seed=profile != "paper", **extra):
            varied = ("k", k) if k is not None and (seed is None or not seed_arg) else (seed_arg or "seed", seed)
            out.append((method, varied, config, overrides))
    return out


def run_table(name: str, **params) -> TableResult:
    """A table notebook's run: warnings-only logs in the notebook (a run's INFO goes to its train.log),
    then the table function `name` with the notebook's parameters (`partial_data=True`: on the videos
    present, see with_partial_data)."""
    import logging

    if name not in TABLES:
        raise BadValue(f"unknown table {name!r}; valid: {', '.join(TABLES)}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    since = len(experiments.RUN_LOG)
    result = TABLES[name](**with_partial_data(params))
    print(f"{name}: {experiments.run_log_summary(since)}")  # the one line a notebook shows of the runs
    return result


def assemble(name: str, datasets: Sequence[str], *, profile: str = "paper", figures=None) -> tables.TableFiles:
    """One table across datasets (Table 2's HMDB-51 and UCF-101 rows) from the per-dataset files the
    table function wrote in `profile`, never by re-running anything: `<name>_<ds1>+<ds2>_<profile>.{csv,md,png,json}`
    (tables.profiled_name), whose JSON keeps each part's protocol, provenance and protocol_check."""
    import json
    from pathlib import Path

    from apclip_core import paths

    folder = Path(figures) if figures is not None else paths.figures_dir()
    parts, frames, checks, gains = {}, [], {}, []
    for dataset in datasets:
        stem = table_file_name(name, dataset, profile)
        csv, js = folder / f"{stem}.csv", folder / f"{stem}.json"
        if not (csv.exists() and js.exists()):
            raise FileNotFoundError(f"no {name} for dataset {dataset!r}: {csv} (and .json) not found; run the table "
                                    f"for it first (its notebook with overrides.protocol_args.dataset={dataset})")
        payload = json.loads(js.read_text())
        parts[dataset] = {"file": str(js), "title": payload.get("title"), "profile": payload.get("profile"),
                          "protocol": payload.get("protocol"), "provenance": payload.get("provenance")}
        frames.append(pd.read_csv(csv).assign(**{"table dataset": dataset}))
        checks[dataset] = payload.get("protocol_check") or {}
        gains += payload.get("gains") or []
    table = pd.concat(frames, ignore_index=True)
    table = table[["table dataset", *[c for c in table.columns if c != "table dataset"]]]
    from apclip_core.data.protocols import canonical_dataset

    joined = "+".join(canonical_dataset(d) for d in datasets)
    return tables.save_table(table, tables.profiled_name(f"{name}_{joined}", profile), title=f"{name} across {', '.join(datasets)}",
                             notes=_assembled_notes(parts, checks), chart=_assembled_chart(name, parts, checks, gains),
                             results={"assembled_from": parts, "protocol_check": checks}, figures=folder)


def _assembled_notes(parts: dict, checks: dict) -> str:
    """Where each part came from and, per dataset, what its runs ran on (its own statement, deviations and all)."""
    said = [f"{dataset}: Profile: {part.get('profile')}. {checks[dataset].get('statement') or ''}".strip()
            for dataset, part in parts.items()]
    return f"Assembled from {', '.join(p['file'] for p in parts.values())}.\n\n" + "\n\n".join(said)


def _assembled_chart(name: str, parts: dict, checks: dict, gains: list):
    """The assembled table's PNG: every dataset's bars with the paper's marks, each dataset's statement below."""
    profiles = {p.get("profile") for p in parts.values()}
    profile = profiles.pop() if len(profiles) == 1 else "mixed"
    lines = [line for dataset, check in checks.items()
             for line in (f"{dataset}: {check.get('statement') or ''}".strip()).splitlines()]
    return lambda display: tables.figure_of_display_table(
        display.drop(columns="table dataset"), pd.DataFrame(gains), title=f"{name} across {', '.join(parts)}",
        profile=profile, protocol_lines=lines)


def checked_text(result: TableResult, *, claims: Sequence[str] = ()) -> str:
    """The text a notebook's checked cell prints: the whole table (nbval masks the decimals), the
    files written, and the claims named."""
    files = sorted(p.suffix for p in (result.files.csv, result.files.md, result.files.png, result.files.json))
    lines = [result.table.to_markdown(index=False, floatfmt=".1f"), "files: " + " ".join(files)]
    lines += [f"claim: {claim}" for claim in claims if claim in result.claims]
    if result.profile == "paper":  # the smoke profile never claims the paper's protocol (and its text stays put)
        lines.append(result.protocol_statement)
    return "\n".join(lines)


def claims_text(result: TableResult) -> str:
    return "\n".join(f"{verdict:<12}  {claim}" for claim, verdict in result.claims.items())
