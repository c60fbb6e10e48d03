"""How the shipped notebooks (notebooks/*.ipynb) are stored, and the JupyterLab save hook that keeps
them so: opening, running and saving them in `make lab` leaves `git status` clean.

The stored form:
- outputs and execution counts only in the cells marked NBVAL_CHECK_OUTPUT: they are nbval's reference
  (`make test` runs the notebooks with --nbval-lax, which compares exactly those cells, and only when the
  reference has an execution count: nbval calls a cell without one unrun, and refuses one with outputs),
  so they stay as committed; every other cell is stored unrun, no count and no output (`make demo` and
  papermill write executed copies to outputs/notebooks/);
- notebook metadata: the kernelspec and the language's name (Jupyter's autosave would add the
  running kernel's language_info, version numbers and all); cell metadata: tags only ("parameters").

`make lab` passes `pre_save_hook` to the Jupyter server (ContentsManager.pre_save_hook): every save of a
shipped notebook is put in the stored form, and a checked cell keeps the outputs of the file on disk
unless its source was edited (then its new outputs are its new reference). Other notebooks (a user's
own, the executed copies under outputs/) are saved as Jupyter writes them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from apclip_core import paths

CHECK_MARK = "NBVAL_CHECK_OUTPUT"
CELL_METADATA_KEPT = ("tags",)


def _source(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def stored_form(nb: dict, on_disk: Optional[dict] = None) -> dict:
    """`nb` (a notebook as JSON, changed in place and returned) in the stored form; `on_disk`: the stored
    version, whose checked cells' outputs are kept for the cells whose source is unchanged."""
    reference = {_source(c): (c.get("execution_count"), c.get("outputs", [])) for c in (on_disk or {}).get("cells", [])
                 if c.get("cell_type") == "code" and CHECK_MARK in _source(c)}
    meta = nb.get("metadata", {})
    language = (meta.get("language_info") or {}).get("name") or (meta.get("kernelspec") or {}).get("language")
    nb["metadata"] = {**({"kernelspec": meta["kernelspec"]} if "kernelspec" in meta else {}),
                      **({"language_info": {"name": language}} if language else {})}
    for cell in nb.get("cells", []):
        cell["metadata"] = {k: v for k, v in cell.get("metadata", {}).items() if k in CELL_METADATA_KEPT}
        if cell.get("cell_type") != "code":
            continue
        source = _source(cell)
        if CHECK_MARK not in source:
            cell["execution_count"], cell["outputs"] = None, []
        elif source in reference:
            cell["execution_count"], cell["outputs"] = reference[source]
    return nb


def is_shipped(path: Path) -> bool:
    """A notebook of the project's notebooks/ folder (not a user's elsewhere, not an executed copy)."""
    path = Path(path).resolve()
    return path.suffix == ".ipynb" and path.parent == (paths.PROJECT_ROOT / "notebooks").resolve()


def pre_save_hook(model: dict, path: str, contents_manager, **kwargs) -> None:
    """Jupyter's ContentsManager.pre_save_hook: a shipped notebook is saved in the stored form."""
    if model.get("type") != "notebook" or not model.get("content"):
        return
    file = Path(contents_manager.root_dir) / path.lstrip("/")
    if not is_shipped(file):
        return
    try:
        on_disk = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # a new or unreadable file: nothing to keep
        on_disk = None
    stored_form(model["content"], on_disk)
