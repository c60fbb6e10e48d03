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

    video = sorted((bench_root / "videos" / "blorping").glob("*.mp4"))[0]  # not the default's class nor container
    out = tmp_path / "21.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(out), kernel_name="python3", cwd=str(NOTEBOOK.parent),
                               progress_bar=False, parameters={"video": str(video), "prompt_sets": ["apclip_bench"],
                                                               "actions": ["blorping", "chorving", "greebng"]})
    cells = [c for c in json.loads(out.read_text())["cells"] if c["cell_type"] == "code"]
    text = [" ".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/markdown", ""))
                     + "".join(o.get("data", {}).get("text/plain", "")) for o in c["outputs"]) for c in cells]
    assert any(video.name in t for t in text)                                   # the video given
    said = next(t for t in text if "prompts:" in t)
    assert "blorping  shipped: apclip_bench.json" in said and "did you mean greebing" in said
    assert "k400" not in said                                                   # only the set chosen
    ranking = next(t for t in text if "prompts from" in t)
    assert all(name in ranking for name in ("blorping", "chorving", "greebng"))
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
