"""Which listed videos are on disk, and a split cut down to them or to a subset: the partial data a run
may be asked to use (`missing_videos: skip`, `max_videos_per_split`), said by count, never silently.

A run on partial data leaves the missing files (and the present ones that are empty or not a video
container) out *before* the model sees them: no all-zero clip goes through the image tower, no training
sample is replaced by another. What was left out is returned,
so evaluation results and training metrics can record it per list.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

SHOWN = 3  # names shown per list in messages and records


def missing_videos(split, listing: Optional[dict] = None) -> list[str]:
    """The split's videos that are not on disk. One directory listing per folder (cached in `listing`,
    shared by every list under the same root), not one stat per video: seconds for Kinetics' 240k."""
    listing = {} if listing is None else listing
    missing = []
    for record in split.records:
        folder = os.path.join(str(split.root), os.path.dirname(record.path))
        if folder not in listing:
            try:
                listing[folder] = set(os.listdir(folder))
            except OSError:
                listing[folder] = set()
        if os.path.basename(record.path) not in listing[folder]:
            missing.append(record.path)
    return missing


def present_only(split, listing: Optional[dict] = None):
    """(the split without the videos a run cannot use, their paths in list order): files not on disk, and
    present files that are empty or do not start like a video container (data.container_check's signature
    check: the first 377 bytes read per file, cached by path, size and mtime, as the preflight reports them)."""
    from apclip_core.data.container_check import unreadable

    gone = set(missing_videos(split, listing))
    present = {os.path.join(str(split.root), r.path): r.path for r in split.records if r.path not in gone}
    gone |= {present[f] for f in unreadable(present, level="signature")}
    if not gone:
        return split, []
    return (dataclasses.replace(split, records=[r for r in split.records if r.path not in gone]),
            [r.path for r in split.records if r.path in gone])


def subset(split, max_videos: int):
    """max_videos > 0: an evenly spaced subset of the split's videos (every class keeps its share, as the
    lists are ordered by class); else the split itself. Returns (split, the count it was drawn from or None)."""
    if not max_videos or len(split.records) <= max_videos:
        return split, None
    stride = len(split.records) / max_videos
    records = [split.records[int(i * stride)] for i in range(max_videos)]
    return dataclasses.replace(split, records=records), len(split.records)


def list_name(split) -> str:
    """How a message names the split's list: its file when known, else its folder."""
    return str(split.list_file) if getattr(split, "list_file", None) else f"the list of {split.name} (under {split.root})"
