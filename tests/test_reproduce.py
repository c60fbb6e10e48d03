"""How a table's gains are paired: ours beside the paper's, never mixing two methods into one."""
from __future__ import annotations

import json

import pandas as pd
import pytest

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


def fake_grid(values: dict):
    """experiments.grid without training: per-method base/novel rows as the real grid returns them."""
    def grid(config, methods, *, seeds=(None,), dataset, overrides=None, **_):
        return pd.DataFrame([{"method": m, "dataset": dataset, "seed": s, "metric": metric, "value": values[m][i],
                              "run_dir": f"runs/{m}-{s}"}
                             for m in methods for s in seeds for i, metric in enumerate(("base", "novel"))])
    return grid


def test_a_table_on_another_dataset_never_replaces_the_default_one_and_they_assemble(tmp_path, monkeypatch):
    from apclip_core.paper import experiments

    monkeypatch.setenv("APCLIP_FIGURES", str(tmp_path))
    paper = dict(profile="paper", config="base2novel", dataset="hmdb51", seeds=(1,))
    monkeypatch.setattr(experiments, "grid", fake_grid({"ViFi-CLIP": (70.0, 50.0), "AP-CLIP": (72.0, 55.0)}))
    hmdb = reproduce.table2_base_to_novel(**paper, paper_dataset="HMDB-51")
    monkeypatch.setattr(experiments, "grid", fake_grid({"ViFi-CLIP": (90.0, 70.0), "AP-CLIP": (92.0, 75.0)}))
    # the paper profile's UCF-101 variant: only the protocol's dataset changes (notebooks/params comment)
    ucf = reproduce.table2_base_to_novel(**paper, paper_dataset="UCF-101",
                                         overrides={"protocol_args": {"dataset": "UCF-101"}})
    # the paper profile's files: never the tracked smoke names (figures/table2_base_to_novel.*)
    assert hmdb.files.csv.name == "table2_base_to_novel_paper.csv"
    assert ucf.files.csv.name == "table2_base_to_novel_ucf101_paper.csv"
    assert {p.name for p in tmp_path.glob("*.json")} == {"table2_base_to_novel_paper.json",
                                                         "table2_base_to_novel_ucf101_paper.json"}
    assert pd.read_csv(hmdb.files.csv).query("method == 'AP-CLIP' and metric == 'novel'")["ours"].tolist() == [55.0]

    both = reproduce.assemble("table2_base_to_novel", ["hmdb51", "ucf101"])
    assert both.csv.name == "table2_base_to_novel_hmdb51+ucf101_paper.csv"
    table = pd.read_csv(both.csv)
    novel = table.query("method == 'AP-CLIP' and metric == 'novel'").set_index("table dataset")["ours"].to_dict()
    assert novel == {"hmdb51": 55.0, "ucf101": 75.0}
    assembled = json.loads(both.json.read_text())
    assert set(assembled["assembled_from"]) == {"hmdb51", "ucf101"}
    # what each part ran on travels with it: its protocol_check in the JSON, its statement in the notes and PNG
    for dataset, part in (("hmdb51", hmdb), ("ucf101", ucf)):
        assert assembled["protocol_check"][dataset] == json.loads(part.files.json.read_text())["protocol_check"]
        assert f"{dataset}: {part.protocol_statement}" in both.md.read_text()
    assert "no record of what 2 run(s) ran on" in assembled["protocol_check"]["ucf101"]["statement"]
    assert both.png is not None and both.png.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(FileNotFoundError, match="k400"):
        reproduce.assemble("table2_base_to_novel", ["hmdb51", "k400"])


def test_smoke_and_default_datasets_keep_the_plain_table_name():
    assert reproduce.table_file_name("table2_base_to_novel", "apclip_bench") == "table2_base_to_novel"
    assert reproduce.table_file_name("table1_zero_shot", "kinetics400") == "table1_zero_shot"
    assert reproduce.table_file_name("table1_zero_shot", "ucf101") == "table1_zero_shot_ucf101"
    assert reproduce.table_file_name("table2_base_to_novel", "hmdb51", "paper") == "table2_base_to_novel_paper"
    assert reproduce.table_file_name("table1_zero_shot", "ucf101", "paper") == "table1_zero_shot_ucf101_paper"


def test_a_paper_run_never_touches_the_smoke_files_and_the_report_finds_each(tmp_path, monkeypatch, capsys):
    from apclip_core.paper import experiments, report

    monkeypatch.setenv("APCLIP_FIGURES", str(tmp_path))
    monkeypatch.setattr(experiments, "grid", fake_grid({"ViFi-CLIP": (70.0, 50.0), "AP-CLIP": (72.0, 55.0)}))
    smoke = reproduce.table2_base_to_novel(seeds=(1,))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == [f"table2_base_to_novel.{e}" for e in ("csv", "json", "md", "png")]
    paper = reproduce.table2_base_to_novel(profile="paper", config="base2novel", dataset="hmdb51", seeds=(1,),
                                           paper_dataset="HMDB-51")
    assert all((tmp_path / name).read_bytes() == data for name, data in before.items())  # untouched
    assert paper.files.md.name == "table2_base_to_novel_paper.md"
    for profile, files in (("smoke", smoke.files), ("paper", paper.files)):
        executed = tmp_path / f"{profile}.ipynb"  # what papermill records of the notebook's parameters
        executed.write_text(json.dumps({"cells": [], "metadata": {"papermill": {"parameters": {"profile": profile,
                                                                                  "dataset": "hmdb51"}}}}))
        assert report.main(["--table", "table2_base_to_novel", "--notebook", str(executed)]) == 0
        shown = capsys.readouterr().out
        assert str(files.md) in shown and files.md.read_text().strip() in shown
        other = (paper if profile == "smoke" else smoke).files.md
        assert str(other) not in shown  # each report lists its own profile's files only


def test_every_paper_profile_statement_carries_the_standing_caveats_worded_once(tmp_path, monkeypatch):
    from apclip_core.paper import deviations, experiments

    monkeypatch.setenv("APCLIP_FIGURES", str(tmp_path))
    monkeypatch.setattr(experiments, "grid", fake_grid({"ViFi-CLIP": (70.0, 50.0), "AP-CLIP": (72.0, 55.0)}))
    table = reproduce.table2_base_to_novel(profile="paper", config="base2novel", dataset="hmdb51", seeds=(1,),
                                           paper_dataset="HMDB-51")
    caveats = [deviations.VIFI_CAVEAT, deviations.PROMPTS_CAVEAT, deviations.SCHEDULE_CAVEAT]
    said = "\n".join([deviations.CAVEATS_TITLE, *(f"- {c}" for c in caveats)])
    assert table.protocol_statement.endswith(said) and said in table.files.md.read_text()
    assert not table.protocol_check["same_as_paper"]  # the runs' records are unreadable here: a deviation, ...
    assert not any(c in table.protocol_check["deviations"] for c in caveats)  # ... the caveats are not
    # a table without a ViFi-CLIP row (Tables 6 and 7) is not told about ViFi-CLIP's published numbers
    assert deviations.standing_caveats(["Single", "AP"]) == caveats[1:]
    smoke = reproduce.table2_base_to_novel(seeds=(1,))
    assert deviations.CAVEATS_TITLE not in smoke.files.md.read_text()  # the smoke profile claims no protocol

