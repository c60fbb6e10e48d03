"""The paper's tables as data (transcription checked against the paper's own arithmetic) and the
files a results table becomes."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from apclip_core.paper import tables


def test_every_paper_table_loads_and_unknown_names_list_the_valid_ones():
    names = tables.paper_table_names()
    assert len(names) == 8  # the paper's seven tables and the peers' published numbers beside Table 1's zoo
    assert "zoo_published" in names
    for name in names:
        assert len(tables.paper_table(name)) > 0
    with pytest.raises(KeyError, match="table2_base_to_novel"):
        tables.paper_table("table9")


def test_table2_hm_column_is_the_harmonic_mean_of_base_and_novel():
    # Catches a mistyped cell: the paper's HM must follow from its own base and novel columns.
    t2 = tables.paper_table("table2_base_to_novel")
    wide = t2.pivot_table(index=["method", "dataset", "init"], columns="metric", values="value").dropna()
    assert len(wide) >= 20
    hm = 2 * wide["base"] * wide["novel"] / (wide["base"] + wide["novel"])
    off = (hm - wide["hm"]).abs() > 0.1
    # The one cell where the paper itself disagrees with its arithmetic: HM(94.8, 77.0) = 85.0, printed 84.8.
    assert off[off].index.tolist() == [("AP-CLIP", "UCF-101", "clip")]


def test_paper_gains_rows_match_the_printed_gains():
    # Table 1 prints AP-CLIP's gain over ViFi-CLIP: +4.1, +5.6, +2.2.
    g = tables.gains(tables.paper_table("table1_zero_shot").query("backbone == 'ViT-B/16'"),
                     method="AP-CLIP", baseline="ViFi-CLIP")
    assert g.set_index("dataset")["gain"].round(1).to_dict() == {"HMDB-51": 4.1, "K600": 2.2, "UCF-101": 5.6}
    # Table 7: MAKA adds +1.2 / +1.7 / +1.0 to AP.
    g7 = tables.gains(tables.paper_table("table7_maka_ablation"), method="AP + MAKA", baseline="AP")
    assert g7["gain"].round(1).tolist() == [1.2, 1.0, 1.7]


def test_save_table_writes_csv_markdown_png_and_results_json(tmp_path):
    df = pd.DataFrame({"method": ["Single", "AP + MAKA"], "split": ["novel", "novel"], "value": [10.0, 55.5]})
    files = tables.save_table(df, "demo_table", title="Demo", results={"protocol": {"name": "x"}},
                              chart=lambda d: tables.bar_chart(d, x="split", y="value", hue="method", title="t"),
                              figures=tmp_path)
    assert pd.read_csv(files.csv)["value"].tolist() == [10.0, 55.5]
    assert "| AP + MAKA" in files.md.read_text()
    assert files.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    payload = json.loads(files.json.read_text())
    assert payload["protocol"] == {"name": "x"} and "commit" in payload["provenance"]


def test_beside_paper_reports_the_difference():
    ours = pd.DataFrame({"method": ["A"], "metric": ["top1"], "value": [50.0]})
    paper = pd.DataFrame({"method": ["A"], "metric": ["top1"], "value": [55.4]})
    row = tables.beside_paper(ours, paper, on=["method", "metric"]).iloc[0]
    assert (row["ours"], row["paper"]) == (50.0, 55.4) and row["diff"] == pytest.approx(-5.4)
