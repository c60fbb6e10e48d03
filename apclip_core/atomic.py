"""Folders built beside their destination and renamed into place: a reader never sees half of one,
and a run killed midway leaves only a temporary that the next run removes."""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Callable


def temporary_sibling(final: Path) -> Path:
    """`.<name>.tmp-<pid>-<random>` next to `final` (same filesystem, so the rename is atomic)."""
    return final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def remove_stale_temporaries(folder: Path) -> None:
    """Delete `.<name>.tmp-<pid>-*` folders left by runs that were killed (their pid is gone)."""
    for path in folder.glob(".*.tmp-*-*"):
        try:
            pid = int(path.name.rsplit(".tmp-", 1)[1].split("-")[0])
        except ValueError:
            continue
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            pass  # alive, another user's


def publish(tmp: Path, final: Path, *, replace: bool, is_complete: Callable[[Path], bool]) -> None:
    """Rename the finished folder `tmp` to `final`. If `final` already holds a complete result (a
    concurrent identical run finished first) it is kept unless `replace`; otherwise it is swapped out."""
    if final.exists():
        if not replace and is_complete(final):
            return
        old = final.parent / f".{final.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
        return
    try:
        os.rename(tmp, final)
    except OSError:
        if not is_complete(final):  # lost a race against a different result
            raise
