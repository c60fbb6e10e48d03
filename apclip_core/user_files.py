"""Reading a file the user gave (a PARAMS or config YAML, a JSON slice, a notebook): a file that does not
parse, or parses to the wrong shape, is one BadFile naming the file and the line; keys nobody reads are
refused with the valid ones listed and the closest named, since a typo must not silently run the default."""
from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Iterable

from apclip_core.errors import BadFile, BadValue

SHAPES = {dict: "a mapping (keys with their values)", list: "a list", str: "text"}


def _text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadFile(f"{path}: not a text file (byte {exc.start} is not UTF-8); give the {what}") from None


def _shape(value, expect: type | None, path: Path, what: str):
    if expect is not None and not isinstance(value, expect):
        found = type(value).__name__ if value is not None else "nothing (an empty file)"
        raise BadFile(f"{path}: the {what} must hold {SHAPES.get(expect, expect.__name__)}, but it holds "
                      f"{SHAPES.get(type(value), found)}")
    return value


def read_yaml(path: str | Path, what: str = "YAML file", *, expect: type | None = dict, empty=None):
    """The YAML document of `path`; `empty` for an empty file; BadFile naming the line of a syntax error."""
    import yaml

    path = Path(path)
    try:
        value = yaml.safe_load(_text(path, what))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise BadFile(f"{path}{where}: not valid YAML ({problem}); fix the {what}") from None
    return empty if value is None and empty is not None else _shape(value, expect, path, what)


def read_json(path: str | Path, what: str = "JSON file", *, expect: type | None = dict):
    """The JSON document of `path`; BadFile naming the line and column of a syntax error."""
    path = Path(path)
    text = _text(path, what)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        truncated = " (the file ends early: cut short?)" if exc.pos >= len(text.rstrip()) else ""
        raise BadFile(f"{path}, line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg}){truncated}; "
                      f"fix the {what}") from None
    return _shape(value, expect, path, what)


def read_notebook(path: str | Path) -> dict:
    """A Jupyter notebook's JSON, refused unless it is one (a dict with a list of cells)."""
    nb = read_json(path, "notebook (.ipynb)")
    if not isinstance(nb.get("cells"), list):
        raise BadFile(f"{path}: JSON, but not a Jupyter notebook (no list of 'cells'); give a notebook "
                      f"of notebooks/")
    return nb


def closest(key: str, valid: Iterable[str]) -> str | None:
    found = difflib.get_close_matches(str(key), list(valid), n=1, cutoff=0.6)
    return found[0] if found else None


def refuse_unknown_keys(keys: Iterable[str], valid: Iterable[str], where: str) -> None:
    """BadValue for keys not in `valid`: each with its closest valid key, then every valid key."""
    valid = list(valid)
    unknown = [k for k in keys if k not in valid]
    if not unknown:
        return
    said = ", ".join(f"{k!r}" + (f" (did you mean {c!r}?)" if (c := closest(k, valid)) else "") for k in unknown)
    raise BadValue(f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {said}; valid keys: {', '.join(valid)}")
