"""Which present video files will not open: the preflight's check over tens of thousands of files.

Three levels, none decoding a frame, each including the ones before:
  signature  zero-byte files and files that do not start like a video container (AVI, MP4/MOV,
             Matroska/WebM, MPEG-TS/PS, FLV, ASF, Ogg): garbage, an HTML error page saved as .mp4.
             Reads 377 bytes (MPEG-TS: the sync byte of 3 packets): tens of microseconds per
             file (the preflight's default).
  header     the container header opens with PyAV and holds a video stream: also finds an MP4 cut
             before its index (moov at the end). About half a millisecond per file.
  deep       demuxes every packet (data.video_io.stream_counts) against the frames the header
             declares: finds files cut short whose header still opens (an AVI's header is at its
             start, so a half-downloaded HMDB-51 file passes the header check). Reads whole files.
Files are checked in parallel processes and the answers cached by (path, size, mtime) in
<cache>/container_check.json, so a second preflight re-checks only files that changed.
"""
from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterable, Optional

from apclip_core import atomic, paths

CACHE_NAME = "container_check.json"
RULES_KEY = "_rules"          # not a path: the version of the rules the cached answers were made with
LEVELS = ("signature", "header", "deep")
IN_PROCESS_BELOW = 64         # fewer files to open than this: no process pool (its start-up costs more)
TS_PACKET = 188              # MPEG-TS: fixed 188-byte packets, each starting with the sync byte 0x47
TS_SYNC = 0x47
HEAD_BYTES = 2 * TS_PACKET + 1  # enough for the sync bytes of three packets (one read either way)
RULES_VERSION = 2             # the signature rules cached answers were made with (2: MPEG-TS needs 2-3 packets)


def _looks_like_mpeg_ts(head: bytes) -> bool:
    """A sync byte at the start of the first two packets, and of the third when the file is that long: one
    0x47 byte at offset 0 is any file's chance (1 in 256), and a file shorter than two packets holds no video."""
    offsets = range(0, min(len(head), HEAD_BYTES), TS_PACKET)
    return len(head) > TS_PACKET and all(head[i] == TS_SYNC for i in offsets)


def _signature_problem(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if (head[:4] == b"RIFF" and head[8:12] == b"AVI ") or head[4:8] in (b"ftyp", b"moov", b"mdat", b"free",
                                                                         b"wide", b"skip", b"pnot") \
            or head.startswith((b"\x1a\x45\xdf\xa3", b"FLV", b"OggS", b"\x00\x00\x01\xba",
                                b"\x30\x26\xb2\x75")) or _looks_like_mpeg_ts(head):
        return None
    if head[:1] == bytes([TS_SYNC]):
        why = ("the file is shorter than two 188-byte packets" if len(head) <= TS_PACKET
               else "the next 188-byte packets do not start with it")
        return f"does not start like a video container: its first byte is MPEG-TS's sync byte 0x47, but {why}"
    return f"does not start like a video container (first bytes {head[:8]!r})"


def _problem(path: str, level: str) -> Optional[str]:
    """Why the file will not be read, or None. Never raises: any failure to open is the answer."""
    why = _signature_problem(path)
    if why or level == "signature":
        return why
    import av

    from apclip_core.data.video_io import MISSING_FRAMES_TOLERATED, stream_counts

    try:
        with av.open(path) as container:
            if not container.streams.video:
                return "no video stream in the file"
    except Exception as exc:  # noqa: BLE001 - whatever the demuxer raises, the file does not open
        return f"header does not open ({type(exc).__name__}: {str(exc).split(':')[0][:80]})"
    if level == "deep":
        packets, declared = stream_counts(path)
        if packets == 0:
            return "no video packet can be read"
        if declared and declared - packets > max(1, MISSING_FRAMES_TOLERATED * declared):
            return f"cut short: {packets} of the {declared} frames its header declares are in the file"
    return None


def _problems(batch: list[tuple[str, str]]) -> list[Optional[str]]:
    return [_problem(path, level) for path, level in batch]


def cache_path() -> Path:
    return paths.cache_dir() / CACHE_NAME


def _load_cache(path: Path) -> dict:
    try:
        cache = json.loads(path.read_text())
        return cache if isinstance(cache, dict) else {}
    except (OSError, ValueError):
        return {}


def unreadable(files: Iterable[str | Path], *, level: str = "signature", jobs: Optional[int] = None) -> dict[str, str]:
    """{path: why} for every file that is empty or fails the check of `level` (LEVELS); absent files are
    the caller's to report (data.presence.missing_videos). Cached by (path, size, mtime, level)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    rank = LEVELS.index(level)
    cache_file = cache_path()
    cache = _load_cache(cache_file)
    if cache.get(RULES_KEY) != RULES_VERSION:  # answers made under other rules: check again
        cache = {RULES_KEY: RULES_VERSION}
    found: dict[str, str] = {}
    todo: list[tuple[str, int, int]] = []
    for f in dict.fromkeys(str(f) for f in files):
        try:
            st = os.stat(f)
        except OSError:
            continue
        if st.st_size == 0:
            found[f] = "empty file (0 bytes)"
            continue
        entry = cache.get(f)
        if entry and entry[0] == st.st_size and entry[1] == st.st_mtime_ns and (entry[3] or entry[2] >= rank):
            if entry[3]:
                found[f] = entry[3]
            continue
        todo.append((f, st.st_size, st.st_mtime_ns))
    if todo:
        args = [(f, level) for f, _, _ in todo]
        jobs = jobs or os.cpu_count() or 1
        if len(todo) < IN_PROCESS_BELOW or jobs == 1 or level == "signature":  # a few hundred bytes: a process costs more
            answers = _problems(args)
        else:  # chunks of files per task: one pickled call per file would cost more than the check
            chunk = max(16, len(args) // (jobs * 8))
            batches = [args[i:i + chunk] for i in range(0, len(args), chunk)]
            context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
            with ProcessPoolExecutor(jobs, mp_context=context) as pool:
                answers = [a for batch in pool.map(_problems, batches) for a in batch]
        for (f, size, mtime), why in zip(todo, answers):
            cache[f] = [size, mtime, rank, why]  # a failure at a lower level stands for every level
            if why:
                found[f] = why
        atomic.write_text(cache_file, json.dumps(cache, separators=(",", ":")))
    return found
