"""What a paper reader sees in a table figure: legends clear of bars and labels, ours beside the
paper's gains, the smoke caveat, HM defined, error bars where seeds were averaged."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from apclip_core.paper import reproduce, tables  # noqa: E402


def _table2_like(std: bool):
    ours = pd.DataFrame([{"method": m, "dataset": "K-400", "metric": k, "value": v}
                         for m, vals in (("ViFi-CLIP", (41.7, 1.0, 2.0)), ("AP-CLIP", (62.5, 64.6, 63.5)))
                         for k, v in zip(("base", "novel", "hm"), vals)])
    if std:
        ours["std"] = [1.5, 0.5, 0.8, 2.0, 1.0, 1.2]
    paper = tables.paper_table("table2_base_to_novel").query("init == 'clip' and dataset == 'K-400'")
    gains = reproduce._gain_table(ours, paper, [("AP-CLIP", "ViFi-CLIP")])
    return ours, paper, gains


def _texts(fig) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))


@pytest.fixture(scope="module")
def smoke_figure():
    ours, paper, gains = _table2_like(std=True)
    fig = tables.table_figure(ours, gains, title="Table 2", profile="smoke", paper=paper)
    fig.canvas.draw()
    yield fig
    plt.close(fig)


def test_legends_intersect_no_bar_and_no_tick_label(smoke_figure):
    renderer = smoke_figure.canvas.get_renderer()
    legends = [ax.get_legend() for ax in smoke_figure.axes if ax.get_legend()]
    assert len(legends) == 2  # methods under the numbers, ours/paper under the gains
    bars = [p for ax in smoke_figure.axes for p in ax.patches if isinstance(p, Rectangle) and p.get_height() == p.get_height()]
    labels = [t for ax in smoke_figure.axes for t in ax.get_xticklabels() + ax.texts if t.get_text()]
    assert len(bars) == 12 and labels
    for legend in legends:
        box = legend.get_window_extent(renderer)
        for bar in bars:
            assert not box.overlaps(bar.get_window_extent(renderer)), "legend covers a bar"
        for label in labels:
            assert not box.overlaps(label.get_window_extent(renderer)), f"legend covers {label.get_text()!r}"


def test_smoke_figure_shows_the_gains_beside_the_papers_with_the_caveat_and_hm_defined(smoke_figure):
    text = _texts(smoke_figure)
    assert "compare gains, not absolute numbers" in text
    assert "HM: harmonic mean of base and novel" in text
    gain_axes = smoke_figure.axes[1]
    assert [t.get_text() for t in gain_axes.get_legend().get_texts()] == ["ours", "paper"]
    # the paper's printed gains on K-400 (AP-CLIP - ViFi-CLIP): base +0.8, novel +3.0, HM +2.1, in the paper's order
    assert [t.get_text() for t in gain_axes.get_xticklabels()] == ["base", "novel", "HM"]
    assert {"+0.8", "+3.0", "+2.1"} <= {t.get_text() for t in gain_axes.texts}
    assert "Error bars" in text  # seeds averaged -> error bars, and said so
    assert any(c.__class__.__name__ == "ErrorbarContainer" for c in smoke_figure.axes[0].containers)


def test_paper_profile_marks_the_papers_numbers_and_drops_the_caveat():
    ours, paper, gains = _table2_like(std=False)
    fig = tables.table_figure(ours, gains, title="Table 2", profile="paper", paper=paper)
    try:
        text = _texts(fig)
        assert "compare gains" not in text and "Error bars" not in text and "the paper's numbers" in text
        ticks = fig.axes[0].collections
        assert len(ticks) == 1 and len(ticks[0].get_segments()) == 6  # one tick per (method, metric)
    finally:
        plt.close(fig)


def _tick_heights(fig) -> list[float]:
    return sorted(round(float(segment[0][1]), 1) for segment in fig.axes[0].collections[0].get_segments())


@pytest.mark.parametrize("datasets", [("HMDB-51",), ("HMDB-51", "UCF-101")])
def test_the_papers_marks_are_those_of_each_bars_own_dataset(datasets):
    """The paper's table holds every dataset; each bar is marked with its own dataset's number, never
    another dataset's number for the same metric and method (issue 23: HMDB-51's base drawn at SSv2's)."""
    paper = tables.paper_table("table2_base_to_novel").query("init == 'clip'")
    ours = pd.DataFrame([{"method": m, "dataset": d, "metric": k, "value": 10.0}
                         for d in datasets for m in ("ViFi-CLIP", "AP-CLIP") for k in ("base", "novel", "hm")])
    fig = tables.table_figure(ours, pd.DataFrame(), title="Table 2", profile="paper", paper=paper)
    try:
        expected = paper[paper["dataset"].isin(datasets) & paper["method"].isin(["ViFi-CLIP", "AP-CLIP"])]
        assert len(expected) == 6 * len(datasets)
        assert _tick_heights(fig) == sorted(expected["value"].round(1))
        assert fig.axes[0].get_ylim()[1] > expected["value"].max()  # the axis shows the paper's numbers
    finally:
        plt.close(fig)


def test_few_shot_axis_reads_k_shots():
    ours = pd.DataFrame([{"method": m, "dataset": "HMDB-51", "shots": k, "metric": "top1", "value": v}
                         for k in (2, 4) for m, v in (("ViFi-CLIP", 20.0), ("AP-CLIP", 25.0 + k))])
    fig = tables.table_figure(ours, pd.DataFrame(), title="Table 3", x="shots")
    try:
        assert fig.axes[0].get_xlabel() == "K (shots)"
        assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["K=2", "K=4"]
    finally:
        plt.close(fig)


def test_zero_shot_score_leaves_out_the_base_split_of_a_reevaluated_run():
    # a re-evaluated run names its splits; base classes were trained on, so only the novel split counts
    rows = pd.DataFrame([{"method": "plugged", "dataset": "bench", "metric": k, "value": v}
                         for k, v in (("bench_base_val", 35.0), ("bench_novel_val", 25.0), ("hm", 29.3))])
    assert reproduce._zero_shot_rows(rows, "bench")["value"].tolist() == [25.0]


def test_gains_table_has_no_stray_pivot_header():
    ours, paper, gains = _table2_like(std=False)
    assert gains.columns.name is None
