"""Notebook 21 (classify your own video) as papermill runs it with a video path: the video given, not the
default, is classified, and the notebook says where each name's prompts came from and draws the frames.
(`make test` runs the notebook itself under nbval with its defaults.)"""
from __future__ import annotations

import json

import pytest

from apclip_core.paths import PROJECT_ROOT

NOTEBOOK = PROJECT_ROOT / "notebooks" / "21_classify_your_video.ipynb"


@pytest.mark.slow
def test_the_classify_notebook_takes_a_video_path_under_papermill(tmp_path, bench_root):
    import papermill

    from apclip_core.data.annotations import read_labels, read_video_list

    names = read_labels(bench_root / "labels.csv")
    records = read_video_list(bench_root / "splits" / "val.txt")
    # not the default: another class, and an .mp4 if the default is not one
    record = next(r for r in records if r.label != records[0].label and r.path.endswith(".mp4"))
    video, name, other = bench_root / record.path, names[record.label], names[records[0].label]
    misspelt = other[:5] + other[6:]
    out = tmp_path / "21.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(out), kernel_name="python3", cwd=str(NOTEBOOK.parent),
                               progress_bar=False, parameters={"video": str(video), "prompt_sets": ["apclip_bench"],
                                                               "actions": [name, misspelt, "making sushi"]})
    cells = [c for c in json.loads(out.read_text())["cells"] if c["cell_type"] == "code"]
    text = [" ".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/markdown", ""))
                     + "".join(o.get("data", {}).get("text/plain", "")) for o in c["outputs"]) for c in cells]
    assert any(video.name in t for t in text)                                   # the video given
    said = next(t for t in text if "prompts:" in t)
    assert f"did you mean {other} (apclip_bench.json)" in said and "k400" not in said  # only the set chosen
    assert "shipped: apclip_bench.json" in next(line for line in said.splitlines() if line.strip().startswith(name))
    ranking = next(t for t in text if "prompts from" in t and "action" in t)
    assert all(n in ranking for n in (name, misspelt, "making sushi"))
    assert any("image/png" in o.get("data", {}) for o in cells[-1]["outputs"])  # the per-frame chart


def test_papermill_reads_every_parameter_of_every_notebook():
    """A comment papermill's parser trips on ('x = None  # None = ...') hides that parameter from
    `papermill --help-notebook` and warns "unknown parameter" for every -p of it."""
    import ast

    import nbformat
    from papermill.translators import PythonTranslator

    for path in sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        cell = next((c for c in nb.cells if "parameters" in c.metadata.get("tags", [])), None)
        if cell is None:
            continue
        assigned = [t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)]
        assert [p.name for p in PythonTranslator.inspect(cell)] == assigned, path.name
