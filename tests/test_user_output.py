"""What a user finds in notebooks and tracked outputs: the project's kernel recorded, INFO in the
run's log file rather than the notebook, one summary line of the runs, and results files that a
re-run leaves byte-identical (no absolute paths, no rewritten dates)."""
from __future__ import annotations

import json
import logging
import os
import sys
import types

import pandas as pd
import pytest

from apclip_core import paths
from apclip_core.paper import experiments, tables


def test_every_notebook_records_the_apclip_kernel():
    notebooks = sorted((paths.PROJECT_ROOT / "notebooks").glob("*.ipynb"))
    assert len(notebooks) >= 10
    for nb in notebooks:
        spec = json.loads(nb.read_text())["metadata"]["kernelspec"]
        assert spec["name"] == "apclip", f"{nb.name} records kernel {spec['name']!r}"


def test_papermill_reads_every_parameter_of_every_notebook(caplog):
    """papermill infers a notebook's parameters from its tagged cell, giving up on a line with two '=' (a comment
    saying PARTIAL=1): a parameter it cannot read is passed with "Passed unknown parameter" warnings."""
    import ast

    import papermill

    for nb in sorted((paths.PROJECT_ROOT / "notebooks").glob("*.ipynb")):
        cells = [c for c in json.loads(nb.read_text())["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        if not cells:
            continue
        assigned = [t.id for node in ast.parse("".join(cells[0]["source"])).body if isinstance(node, ast.Assign)
                    for t in node.targets]
        with caplog.at_level(logging.WARNING, logger="papermill"):
            inferred = list(papermill.inspect_notebook(str(nb)))
        assert inferred == assigned, f"{nb.name}: papermill reads {inferred}, the cell sets {assigned}"


@pytest.fixture
def restore_apclip_logger():
    logger = logging.getLogger("apclip_core")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield logger
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    for h in saved[0]:
        logger.addHandler(h)
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


@pytest.mark.parametrize("in_kernel", [True, False])
def test_training_info_goes_to_the_log_file_and_to_the_console_only_in_a_terminal(
        tmp_path, capsys, monkeypatch, restore_apclip_logger, in_kernel):
    from apclip_core.engine.distributed import Dist
    from apclip_core.engine.train import close_logging, setup_logging

    if in_kernel:
        monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    else:
        monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    level_before = logging.getLogger("apclip_core").level
    setup_logging(tmp_path, Dist())
    log = logging.getLogger("apclip_core.engine.train")
    log.info("config: {...}")
    log.warning("loss is nan")
    for h in restore_apclip_logger.handlers:
        h.flush()
    err = capsys.readouterr().err
    assert "config: {...}" in (tmp_path / "train.log").read_text()
    assert ("config: {...}" in err) is not in_kernel
    assert "loss is nan" in err
    close_logging()  # the run is over: what the process logs next is not this run's
    logging.getLogger("apclip_core.paper.experiments").warning("reused another run")
    assert "reused another run" not in (tmp_path / "train.log").read_text()
    # nor at the run's level: an INFO line of a later notebook cell stays out of its output
    assert logging.getLogger("apclip_core").level == level_before


def test_run_log_summary_says_what_was_trained_and_what_was_reused(monkeypatch):
    runs = paths.PROJECT_ROOT / "runs"
    monkeypatch.setattr(experiments, "RUN_LOG", [("ViFi-CLIP", str(runs / "a"), "trained", 61.2),
                                                  ("AP-CLIP", str(runs / "b"), "reused", 0.1),
                                                  ("AP-CLIP", str(runs / "c"), "reused", 0.1)])
    line = experiments.run_log_summary()
    assert line == "3 run(s): 1 trained, 2 reused in 61 s; logs: <run folder>/train.log under runs"
    assert experiments.run_log_summary(since=3) == "no training runs"


def test_portable_paths_are_relative_to_the_project(tmp_path):
    assert paths.portable(paths.PROJECT_ROOT / "runs" / "x-1") == "runs/x-1"
    assert paths.portable(tmp_path / "elsewhere") == str(tmp_path / "elsewhere")


def test_rerunning_an_unchanged_result_leaves_its_json_byte_identical(tmp_path, monkeypatch):
    df = pd.DataFrame({"method": ["A"], "value": [41.666666]})
    dates = iter(["2026-01-01", "2026-01-02"])  # provenance is only taken when the file is rewritten
    monkeypatch.setattr(tables, "provenance", lambda: {"commit": "abc", "date": next(dates)})
    files = tables.save_table(df, "t", title="T", results={"raw": [{"run_dir": "runs/x"}]}, figures=tmp_path)
    first = files.json.read_bytes()
    tables.save_table(df, "t", title="T", results={"raw": [{"run_dir": "runs/x"}]}, figures=tmp_path)
    assert files.json.read_bytes() == first  # same numbers: the first provenance stands
    tables.save_table(df.assign(value=50.0), "t", title="T", results={"raw": []}, figures=tmp_path)
    payload = json.loads(files.json.read_text())
    assert payload["rows"] == [{"method": "A", "value": 50.0}] and payload["provenance"]["date"] == "2026-01-02"


def test_notebook_runner_talks_on_the_terminal_and_keeps_the_stored_notebook_clean(tmp_path):
    # a real papermill run on the apclip kernel (installed by `make install`), as `make demo` does it
    import subprocess

    import nbformat

    params = nbformat.v4.new_code_cell("n = 3")
    params.metadata["tags"] = ["parameters"]
    body = nbformat.v4.new_code_cell("from apclip_core.progress import progress, say\n"
                                     "say('benchmark: reused')\n"
                                     "for _ in progress(range(n), desc='epoch 1/1'): pass\nprint('n =', n)")
    nb = nbformat.v4.new_notebook(cells=[params, body])
    nbformat.write(nb, tmp_path / "t.ipynb")
    (tmp_path / "p.yaml").write_text("n: 5\n")
    terminal = tmp_path / "terminal"
    terminal.touch()
    env = {**os.environ, "APCLIP_TERMINAL": str(terminal), "APCLIP_PROGRESS": "0",
           "PYTHONPATH": str(paths.PROJECT_ROOT)}
    done = subprocess.run([sys.executable, "-m", "apclip_core", "notebook", str(tmp_path / "t.ipynb"),
                           str(tmp_path / "out" / "t.ipynb"), "-f", str(tmp_path / "p.yaml"), "--stage", "2/3"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(">> [2/3] t: ") and ">> t: done in" in done.stdout
    assert "without encryption" not in done.stderr
    out = json.loads((tmp_path / "out" / "t.ipynb").read_text())
    assert out["metadata"]["kernelspec"]["name"] == "apclip"
    outputs = [o for c in out["cells"] for o in c.get("outputs", [])]
    assert ["".join(o.get("text", "")) for o in outputs] == ["n = 5\n"]  # no bar, no say line in the stored notebook
    said = terminal.read_text()
    assert ">> benchmark: reused" in said and "epoch 1/1" in said and "/5 [" in said


def test_the_report_after_a_table_shows_the_files_of_the_dataset_the_notebook_ran(tmp_path, capsys):
    """make reproduce-table2 with the UCF-101 override: the notebook writes table2_base_to_novel_ucf101.*, and the
    report make prints afterwards shows those, not HMDB-51's table2_base_to_novel.* (nor 'no rendered table')."""
    from apclip_core.paper import report

    (tmp_path / "table2_base_to_novel_paper.md").write_text("HMDB-51's table\n")  # the paper profile's names
    (tmp_path / "table2_base_to_novel_ucf101_paper.md").write_text("UCF-101's table\n")
    executed = tmp_path / "12_table2_base_to_novel.ipynb"
    parameters = {"profile": "paper", "dataset": "hmdb51", "overrides": {"protocol_args": {"dataset": "ucf101"}}}
    executed.write_text(json.dumps({"cells": [], "metadata": {"papermill": {"parameters": parameters}}}))
    argv = ["--table", "table2_base_to_novel", "--figures", str(tmp_path)]
    assert report.main([*argv, "--notebook", str(executed)]) == 0
    assert "UCF-101's table" in capsys.readouterr().out
    parameters["overrides"] = {}
    executed.write_text(json.dumps({"cells": [], "metadata": {"papermill": {"parameters": parameters}}}))
    assert report.main([*argv, "--notebook", str(executed)]) == 0 and "HMDB-51's table" in capsys.readouterr().out


def test_the_report_says_unchanged_since_for_numbers_an_earlier_run_recorded(tmp_path, capsys):
    """make demo reproduces the tracked table: its results file keeps the commit and date of the run that
    first computed those numbers, and the report says so instead of passing them off as this run's."""
    from apclip_core.paper import report

    (tmp_path / "table2_base_to_novel.md").write_text("the table\n")
    (tmp_path / "table2_base_to_novel.json").write_text(json.dumps(
        {"provenance": {"commit": "f8936b77e45da49b", "dirty": False, "machine": "m", "date": "2026-12-01T02:34:21+00:00"}}))
    executed = tmp_path / "12_table2_base_to_novel.ipynb"
    argv = ["--table", "table2_base_to_novel", "--figures", str(tmp_path), "--notebook", str(executed)]
    for started, said in (("2026-12-08T00:30:00.5+00:00", "this run's numbers are unchanged since commit f8936b77e45d"),
                          ("2026-12-01T02:30:00+00:00", "numbers computed at commit f8936b77e45d")):
        executed.write_text(json.dumps({"cells": [], "metadata": {"papermill": {"start_time": started,
                                                                                 "parameters": {}}}}))
        assert report.main(argv) == 0
        assert said in capsys.readouterr().out
