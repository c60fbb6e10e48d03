"""Atomic writes, the one way apclip writes a file or a folder: built beside its destination,
flushed to disk, then renamed into place. A reader never sees half of one, and a run killed midway
leaves only a temporary, which the next run removes (folders) or which is never read (files)."""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` atomically (temporary file in the same folder, fsync, os.replace)."""
    _write(path, lambda f: f.write(data))


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def strict_json(obj: Any) -> Any:
    """`obj` with every NaN or infinite float replaced by None, so strict JSON parsers read it."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


def write_json(path: str | Path, obj: Any, *, indent: int = 2, default=None) -> None:
    """Strict JSON (a NaN is written as null: the field's reason is said beside it), atomically."""
    import json

    write_text(path, json.dumps(strict_json(obj), indent=indent, allow_nan=False, default=default) + "\n")


def torch_save(obj: Any, path: str | Path) -> None:
    """torch.save, atomically: a crash leaves the old file or the new one, never a truncated one."""
    import torch

    _write(path, lambda f: torch.save(obj, f))


def writable_folder(folder: str | Path) -> Path:
    """`folder`, made if missing, once a file could be created in it: checked before a long job, so that a
    read-only folder or a file in its place stops the job at once (an OSError naming it), not at its end."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    probe = temporary_sibling(folder / "write-check")
    try:
        probe.touch(exist_ok=False)
    except OSError as exc:
        exc.filename, exc.filename2 = str(folder), None
        raise
    probe.unlink()
    return folder


def _write(path: str | Path, fill: Callable) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        with open(tmp, "xb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        failure = os_error_in(exc)
        if failure is None:
            raise
        if failure.filename is None or ".tmp-" in str(failure.filename):
            failure.filename, failure.filename2 = str(path), None  # the file the user knows, not our temporary
        raise failure from None
    remove_stale_temporaries(path.parent, path.name)  # what a killed writer of this file left behind


def os_error_in(exc: BaseException) -> OSError | None:
    """The OSError behind `exc`: itself, or the one it was raised from or during (torch.save's RuntimeError
    'unexpected pos ...' hides a full disk's)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def temporary_sibling(final: Path) -> Path:
    """`.<name>.tmp-<pid>-<random>` next to `final` (same filesystem, so the rename is atomic)."""
    return final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def remove_stale_temporaries(folder: Path, name: str = "*") -> None:
    """Delete `.<name>.tmp-<pid>-*` files and folders left by writers that were killed (their pid is gone)."""
    for path in Path(folder).glob(f".{name}.tmp-*-*"):
        try:
            pid = int(path.name.rsplit(".tmp-", 1)[1].split("-")[0])
        except ValueError:
            continue
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
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
