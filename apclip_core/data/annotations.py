"""Read and write the community annotation format (MMAction2 / ViFi-CLIP lists).

Two file kinds, both plain text so they diff well and match the public protocol lists:

* video list: one ``relative/path label`` per line. The label is the LAST whitespace-separated
  token, so paths may contain spaces. Blank lines are ignored.
* labels CSV: header ``id,name``; ids are 0..C-1, each exactly once (rows may be in any order);
  names may be quoted (SSv2 quotes them).

Every reader error is an :class:`AnnotationError` whose message names the file and the line, so
a broken download or a hand-edited list is fixed in one look instead of failing deep inside a
DataLoader worker.
"""
from __future__ import annotations

import csv
import difflib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

__all__ = [
    "AnnotationError", "VideoRecord", "read_video_list", "write_video_list",
    "read_labels", "write_labels", "UnknownClassError", "class_index",
]


class AnnotationError(ValueError):
    """A malformed video list or labels CSV; the message names the file and line number."""

    def __init__(self, path: str | os.PathLike, line: int | None, problem: str):
        self.path, self.line, self.problem = str(path), line, problem
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class VideoRecord:
    """One annotated video: path relative to the dataset root, integer class id."""

    path: str
    label: int


def _non_negative_int(text: str, what: str, path, lineno: int, context: str = "") -> int:
    try:
        value = int(text)
    except ValueError:
        raise AnnotationError(path, lineno, f"{what} {text!r} is not an integer{context}") from None
    if value < 0:
        raise AnnotationError(path, lineno, f"{what} {value} is negative")
    return value


def read_video_list(path, *, num_classes: int | None = None) -> list[VideoRecord]:
    """Parse a ``relative/path label`` list. With ``num_classes`` also check every label < C."""
    path = Path(path)
    text = _read_text(path)
    records: list[VideoRecord] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            raise AnnotationError(path, lineno, f"expected '<relative/path> <label>', got {line!r} (no label)")
        video, label_text = parts
        label = _non_negative_int(label_text, "label", path, lineno, f" (line: {line!r})")
        if num_classes is not None and label >= num_classes:
            raise AnnotationError(
                path, lineno, f"label {label} out of range: this dataset has {num_classes} classes (0..{num_classes - 1})")
        records.append(VideoRecord(video, label))
    return records


def write_video_list(path, records: Iterable[VideoRecord]) -> None:
    """Write records as ``path label`` lines (refuses paths that would not read back)."""
    lines = []
    for rec in records:
        if not rec.path or rec.path != rec.path.strip() or "\n" in rec.path:
            raise ValueError(f"video path {rec.path!r} cannot be written to a list (empty, newline or edge spaces)")
        if int(rec.label) < 0:
            raise ValueError(f"label {rec.label} of {rec.path!r} is negative")
        lines.append(f"{rec.path} {int(rec.label)}\n")
    _write_text(Path(path), "".join(lines))


def read_labels(path) -> list[str]:
    """Parse an ``id,name`` CSV; returns names indexed by id (ids must be exactly 0..C-1)."""
    path = Path(path)
    rows = list(csv.reader(io.StringIO(_read_text(path))))
    if not rows or [c.strip() for c in rows[0]] != ["id", "name"]:
        got = rows[0] if rows else "an empty file"
        raise AnnotationError(path, 1, f"expected header 'id,name', got {got!r}")
    by_id: dict[int, tuple[str, int]] = {}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2:
            raise AnnotationError(path, lineno, f"expected 2 columns 'id,name', got {len(row)}: {row!r}")
        id_text, name = row[0].strip(), row[1].strip()
        idx = _non_negative_int(id_text, "id", path, lineno)
        if not name:
            raise AnnotationError(path, lineno, f"class {idx} has an empty name")
        if idx in by_id:
            raise AnnotationError(path, lineno, f"duplicate id {idx} (first on line {by_id[idx][1]})")
        by_id[idx] = (name, lineno)
    if not by_id:
        raise AnnotationError(path, None, "no classes listed")
    missing = sorted(set(range(len(by_id))) - set(by_id))
    if missing:
        extra = sorted(i for i in by_id if i >= len(by_id))
        raise AnnotationError(
            path, by_id[extra[0]][1],
            f"ids must be contiguous 0..{len(by_id) - 1}; missing {missing[:10]}, out of range {extra[:10]}")
    names = [by_id[i][0] for i in range(len(by_id))]
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            raise AnnotationError(path, by_id[i][1], f"duplicate class name {name!r} (ids {seen[name]} and {i})")
        seen[name] = i
    return names


def read_label_files(paths) -> list[str]:
    """The class names of several labels CSVs, in order, each once (Kinetics-600's three zero-shot
    splits share classes: their prompt set covers the union)."""
    return list(dict.fromkeys(name for path in paths for name in read_labels(path)))


def write_labels(path, names: Iterable[str]) -> None:
    """Write ``id,name`` rows for ids 0..C-1 (csv-quoted where a name needs it)."""
    names = list(names)
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"duplicate class names: {dup}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "name"])
    for i, name in enumerate(names):
        if not str(name).strip():
            raise ValueError(f"class {i} has an empty name")
        writer.writerow([i, name])
    _write_text(Path(path), buf.getvalue())


class UnknownClassError(KeyError):
    """A class name that is not in the label list; carries the closest valid names."""

    def __init__(self, name: str, suggestions: list[str], num_classes: int):
        self.name, self.suggestions = name, suggestions
        hint = f"; closest valid names: {', '.join(repr(s) for s in suggestions)}" if suggestions else ""
        super().__init__(f"unknown class {name!r} (not among the {num_classes} classes){hint}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


def class_index(names: list[str], name: str) -> int:
    """Index of ``name`` in ``names``; unknown names raise UnknownClassError with suggestions."""
    try:
        return names.index(name)
    except ValueError:
        pass
    folded = [n.casefold() for n in names]
    suggestions = difflib.get_close_matches(name.casefold(), folded, n=5, cutoff=0.5)
    raise UnknownClassError(name, [names[folded.index(s)] for s in suggestions], len(names))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AnnotationError(path, None, "file not found") from None
    except UnicodeDecodeError as exc:
        raise AnnotationError(path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _write_text(path: Path, text: str) -> None:
    """Readers never see half a list."""
    from apclip_core import atomic

    atomic.write_text(path, text)
