"""How a table's gains are paired: ours beside the paper's, never mixing two methods into one."""
from __future__ import annotations

import pandas as pd

from apclip_core.paper import reproduce, tables


def rows(**values):
    return pd.DataFrame([{"method": m, "dataset": "D", "metric": "top1", "value": v} for m, v in values.items()])


def test_plug_in_gain_compares_each_side_with_its_own_baseline():
    ours = rows(**{"ViFi-CLIP": 10.0, "AP-CLIP": 40.0, "ViFi-CLIP + Action prompts": 30.0})
    paper = tables.paper_table("table1_zero_shot").query("backbone == 'ViT-B/16' and dataset == 'HMDB-51'")
    paper = paper.assign(dataset="D")
    gains = reproduce._gain_table(ours, paper, [
        ("AP-CLIP", "ViFi-CLIP"),
        ("ViFi-CLIP + Action prompts", "ViFi-CLIP", "Open-VCLIP + Action prompts", "Open-VCLIP")])
    got = gains.set_index("comparison")[["ours", "paper"]].round(1).to_dict(orient="index")
    # the paper's own printed gains: AP-CLIP +4.1 over ViFi-CLIP, action prompts +3.1 on Open-VCLIP
    assert got == {"AP-CLIP - ViFi-CLIP": {"ours": 30.0, "paper": 4.1},
                   "ViFi-CLIP + Action prompts - ViFi-CLIP": {"ours": 20.0, "paper": 3.1}}


def test_gains_for_settings_this_run_did_not_cover_are_left_out():
    ours = pd.DataFrame([{"method": m, "dataset": "D", "shots": 2, "metric": "top1", "value": v}
                         for m, v in (("ViFi-CLIP", 10.0), ("AP-CLIP", 14.0))])
    paper = pd.DataFrame([{"method": m, "dataset": "D", "shots": k, "metric": "top1", "value": v}
                          for k in (2, 8) for m, v in (("ViFi-CLIP", 50.0), ("AP-CLIP", 52.0))])
    gains = reproduce._gain_table(ours, paper, [("AP-CLIP", "ViFi-CLIP")], index=("dataset", "shots", "metric"))
    assert gains["shots"].tolist() == [2] and gains["ours"].tolist() == [4.0] and gains["paper"].tolist() == [2.0]
