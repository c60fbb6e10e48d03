"""Get the real datasets ready: protocol lists, archives, layout, checks, optional re-encoding.

``python -m apclip_core data <command>``:

  download-splits        the ViFi-CLIP protocol lists + label CSVs, raw GitHub at a pinned commit,
                         each file checked against the sha256 shipped in apclip_core/data/.
  build-kinetics-lists   the two Kinetics-400 lists absent from that snapshot (full train list and
                         base-to-novel base_train) from the Kinetics annotation CSV.
  prepare hmdb51|ucf101  download the official RAR archive (or take --archive), extract it with
                         `rarfile` (needs a RAR backend: `unar`, `unrar` or `bsdtar`), lay the videos
                         out flat as the lists expect, then check every list.
  check DATASET          verify a video root against every list of the dataset; writes a JSON and a
                         text report of missing, zero-byte and undecodable videos (never stops early).
  reencode               optional copy with short side 256 (parallel, resumable, verified).

Everything writes through a temporary file and a rename, so an interrupted run never leaves a
half-written file that a later run would trust.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from importlib import resources
from pathlib import Path

from apclip_core import atomic, paths
from apclip_core.arguments import bounded, positive_int
from apclip_core.data.annotations import VideoRecord, read_labels, read_video_list, write_video_list
from apclip_core.data.video_io import BACKENDS
from apclip_core.progress import progress
from apclip_core.data.protocols import DATASETS, default_splits_root, default_video_root, labels_file_for, list_files_for

__all__ = ["ChecksumError", "split_manifest", "download_splits", "verify_splits", "build_kinetics_lists",
           "prepare_dataset", "layout_flat", "extract_rar", "check_dataset", "reencode_videos", "main",
           "ARCHIVES", "VIDEO_EXTENSIONS"]

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".avi", ".mp4", ".webm", ".mkv", ".mov")

# Official archives. HMDB-51: one RAR holding 51 RARs (one per class). UCF-101: one RAR with a folder
# per class. The md5 of hmdb51_org.rar is the value published with public preparation scripts; it is
# compared and a mismatch is reported, but the authoritative check is the list verification after
# extraction (every listed video present and decodable).
ARCHIVES = {
    "hmdb51": {"url": "http://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/hmdb51_org.rar",
               "md5": "517d6f1f19f215c45cdd4d25356be1fb", "nested": True, "videos": 6766},
    "ucf101": {"url": "https://www.crcv.ucf.edu/data/UCF101/UCF101.rar", "md5": None, "nested": False,
               "videos": 13320},
}


class ChecksumError(RuntimeError):
    """Downloaded content does not match the pinned sha256."""


# ---- protocol lists ------------------------------------------------------------------------------

def split_manifest() -> dict:
    """The shipped table: repository, pinned commit, base URL, {relative path: {sha256, bytes}}."""
    text = resources.files("apclip_core").joinpath("data/vifi_clip_splits.json").read_text(encoding="utf-8")
    return json.loads(text)


def _sha256(path: Path, chunk: int = 1 << 20, *, algorithms: tuple[str, ...] = ("sha256",)):
    """Hex digest(s) of a file read in chunks (a tuple when several algorithms are asked for)."""
    hs = [hashlib.new(a) for a in algorithms]
    with open(path, "rb") as f:
        while block := f.read(chunk):
            for h in hs:
                h.update(block)
    return hs[0].hexdigest() if len(hs) == 1 else tuple(h.hexdigest() for h in hs)


def _fetch(url: str, dest: Path, *, timeout: float = 60.0, resume: bool = False) -> None:
    """Stream ``url`` into ``dest`` with urllib (HTTP Range resume of ``dest`` when asked)."""
    headers = {"User-Agent": "apclip-data-prep"}
    start = dest.stat().st_size if resume and dest.exists() else 0
    if start:
        headers["Range"] = f"bytes={start}-"
    req = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        append = start and resp.status == 206
        total = resp.headers.get("Content-Length")
        total = int(total) + (start if append else 0) if total else None
        with open(dest, "ab" if append else "wb") as out, \
                progress(desc=dest.name, total=total, unit="B", unit_scale=True) as bar:
            bar.update(start if append else 0)
            while block := resp.read(1 << 20):
                out.write(block)
                bar.update(len(block))


def download_splits(dest=None, *, base_url: str | None = None, force: bool = False, timeout: float = 60.0,
                    files: list[str] | None = None) -> Path:
    """Download every pinned list/label file into ``dest`` (default: default_splits_root()).

    Files already present with the right sha256 are kept. Each download goes to a temporary file,
    is hashed, and is renamed into place only if the hash matches. All files are attempted; then
    a ChecksumError (or RuntimeError for network failures) lists every file that failed.
    """
    manifest = split_manifest()
    dest = Path(dest) if dest is not None else default_splits_root()
    base_url = (base_url or manifest["base_url"]).rstrip("/") + "/"
    wanted = files or list(manifest["files"])
    unknown = [f for f in wanted if f not in manifest["files"]]
    if unknown:
        raise ValueError(f"not in the pinned table: {unknown}; valid files: {', '.join(manifest['files'])}")
    bad, failed = [], []
    for rel in progress(wanted, desc="protocol lists"):
        expected = manifest["files"][rel]["sha256"]
        target = dest / rel
        if target.is_file() and not force and _sha256(target) == expected:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part-{os.getpid()}")
        url = base_url + rel
        try:
            _fetch(url, tmp, timeout=timeout)
            got = _sha256(tmp)
            if got != expected:
                bad.append(f"{rel}: sha256 {got} != pinned {expected} (from {url})")
                continue
            os.replace(tmp, target)
        except (urllib.error.URLError, OSError) as exc:
            failed.append(f"{rel}: {exc} (from {url})")
        finally:
            tmp.unlink(missing_ok=True)
    if bad:
        raise ChecksumError(f"{len(bad)} downloaded file(s) do not match the pinned sha256 (nothing was kept):\n  "
                            + "\n  ".join(bad + failed))
    if failed:
        raise RuntimeError(f"{len(failed)} file(s) could not be downloaded:\n  " + "\n  ".join(failed))
    (dest / "SOURCE.json").write_text(json.dumps(
        {"repository": manifest["repository"], "commit": manifest["commit"], "base_url": base_url,
         "files": len(manifest["files"])}, indent=1) + "\n", encoding="utf-8")
    log.info("protocol lists ready in %s (%d files verified)", dest, len(wanted))
    return dest


def verify_splits(root=None) -> list[str]:
    """Problems with a local copy of the lists (missing file, wrong sha256); empty list if all fine."""
    root = Path(root) if root is not None else default_splits_root()
    problems = []
    for rel, meta in split_manifest()["files"].items():
        p = root / rel
        if not p.is_file():
            problems.append(f"{rel}: missing")
        elif _sha256(p) != meta["sha256"]:
            problems.append(f"{rel}: sha256 differs from the pinned value")
    return problems


# ---- Kinetics-400 lists absent upstream -----------------------------------------------------------

def _norm(name: str) -> str:
    return " ".join(name.strip().strip('"').replace("_", " ").split()).casefold()


def build_kinetics_lists(csv_paths, splits_root=None, *, split: str = "train", video_root=None,
                         ext: str = ".mp4") -> dict:
    """Write ``k400_splits/train.txt`` and ``base2novel_splits/k400_splits/base_train.txt``.

    ``csv_paths``: Kinetics-400 annotation CSV(s) with columns label, youtube_id, time_start,
    time_end, split (extra columns such as is_cc are ignored). Rows whose ``split`` column equals
    ``split`` become ``<split>/<youtube_id>_<start:06d>_<end:06d>.mp4 <label id>``, the naming of
    the val list in the same snapshot. Class ids follow ``labels/kinetics_400_labels.csv`` (and the
    base labels for base_train). With ``video_root``, entries whose file is absent are left out of
    the lists and counted and listed in the returned summary (Kinetics videos vanish from YouTube).
    """
    s = Path(splits_root) if splits_root is not None else default_splits_root()
    d = DATASETS["k400"]
    names = read_labels(s / d["labels"])
    base = read_labels(s / d["base"])
    by_norm = {_norm(n): i for i, n in enumerate(names)}
    base_of = {names.index(n): i for i, n in enumerate(base)}
    records, unknown, absent, rows = [], {}, [], 0
    for csv_path in ([csv_paths] if isinstance(csv_paths, (str, os.PathLike)) else csv_paths):
        with open(csv_path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            need = {"label", "youtube_id", "time_start", "time_end", "split"}
            missing_cols = need - set(reader.fieldnames or [])
            if missing_cols:
                raise ValueError(f"{csv_path}: missing column(s) {sorted(missing_cols)}; expected "
                                 f"label,youtube_id,time_start,time_end,split (got {reader.fieldnames})")
            for lineno, row in enumerate(reader, start=2):
                rows += 1
                if row["split"].strip() != split:
                    continue
                label = by_norm.get(_norm(row["label"]))
                if label is None:
                    unknown.setdefault(row["label"], f"{csv_path}:{lineno}")
                    continue
                rel = (f"{split}/{row['youtube_id'].strip()}_{int(float(row['time_start'])):06d}_"
                       f"{int(float(row['time_end'])):06d}{ext}")
                if video_root is not None and not (Path(video_root) / rel).is_file():
                    absent.append(rel)
                    continue
                records.append(VideoRecord(rel, label))
    if unknown:
        from apclip_core.data.annotations import UnknownClassError, class_index
        hints = []
        for name, where in list(unknown.items())[:10]:
            try:
                class_index(names, name)
            except UnknownClassError as exc:
                hints.append(f"{where}: {exc}")
        raise ValueError(f"{len(unknown)} label name(s) of the CSV are not Kinetics-400 classes:\n  " + "\n  ".join(hints))
    if not records:
        raise ValueError(f"no rows with split == {split!r} in {csv_paths} ({rows} rows read)")
    train_path = s / d["lists"] / "train.txt"
    base_path = s / d["b2n"] / "base_train.txt"
    write_video_list(train_path, records)
    base_records = [VideoRecord(r.path, base_of[r.label]) for r in records if r.label in base_of]
    write_video_list(base_path, base_records)
    summary = {"train_list": str(train_path), "train_videos": len(records), "train_classes": len({r.label for r in records}),
               "base_train_list": str(base_path), "base_train_videos": len(base_records),
               "rows_read": rows, "left_out_absent": len(absent), "absent_examples": absent[:20],
               "sources": [str(p) for p in ([csv_paths] if isinstance(csv_paths, (str, os.PathLike)) else csv_paths)]}
    (s / d["lists"] / "train.build.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    if absent:
        log.warning("%d listed videos are absent from %s and were left out (see %s)", len(absent), video_root,
                    s / d["lists"] / "train.build.json")
    return summary


# ---- archives and layout --------------------------------------------------------------------------

def extract_rar(archive, dest) -> list[Path]:
    """Extract a RAR archive with `rarfile` (compressed members need unar, unrar or bsdtar)."""
    import rarfile

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with rarfile.RarFile(str(archive)) as rf:
            members = rf.namelist()
            rf.extractall(str(dest))
    except rarfile.RarCannotExec as exc:
        raise RuntimeError(f"cannot extract {archive}: no RAR backend found ({exc}). Install one: "
                           "`apt-get install unar` (Debian/Ubuntu), `brew install unar` (macOS), or unrar/bsdtar") from None
    except (rarfile.Error, OSError) as exc:
        raise RuntimeError(f"cannot extract {archive}: {exc}") from None
    return [dest / m for m in members]


def _require_rar_backend() -> None:
    import rarfile

    try:
        rarfile.tool_setup()
    except rarfile.RarCannotExec:
        raise RuntimeError("no RAR backend for `rarfile`: install `unar` (apt-get install unar / brew install unar), "
                           "or unrar, or bsdtar (libarchive-tools)") from None


def layout_flat(extracted, root, *, extensions=VIDEO_EXTENSIONS) -> dict:
    """Move every video file found under ``extracted`` directly into ``root`` (the lists' layout).

    HMDB-51 and UCF-101 lists name videos without a class folder. Two different files with one
    name would be ambiguous, so that is an error rather than a silent overwrite.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    moved, same = 0, 0
    seen: dict[str, Path] = {}
    for src in sorted(Path(extracted).rglob("*")):
        if not src.is_file() or src.suffix.lower() not in extensions:
            continue
        if src.name in seen:
            raise RuntimeError(f"two videos named {src.name}: {seen[src.name]} and {src}")
        seen[src.name] = src
        target = root / src.name
        if target.exists() and target.stat().st_size == src.stat().st_size:
            same += 1
            src.unlink()
            continue
        os.replace(src, target)
        moved += 1
    return {"moved": moved, "already_there": same, "videos": len(seen)}


def prepare_dataset(dataset: str, root=None, *, archive=None, splits_root=None, download_dir=None,
                    keep_archive: bool = True, decode: bool = True, jobs: int | None = None, url: str | None = None) -> dict:
    """HMDB-51 / UCF-101: archive (downloaded unless given) -> extract -> flat layout -> check every list."""
    if dataset not in ARCHIVES:
        raise ValueError(f"`prepare` handles {', '.join(ARCHIVES)}; for {dataset!r} download it by hand "
                         f"(see the README) and run `python -m apclip_core data check {dataset} --root ...`")
    spec = ARCHIVES[dataset]
    root = Path(root) if root is not None else default_video_root(dataset)
    splits_root = Path(splits_root) if splits_root is not None else default_splits_root()
    if not (splits_root / "labels").is_dir():
        download_splits(splits_root)
    _require_rar_backend()
    if archive is None:
        download_dir = Path(download_dir) if download_dir is not None else paths.data_dir() / "downloads"
        download_dir.mkdir(parents=True, exist_ok=True)
        archive = download_dir / Path(spec["url"]).name
        if not archive.is_file():
            part = archive.with_suffix(archive.suffix + ".part")
            log.info("downloading %s -> %s", url or spec["url"], archive)
            _fetch(url or spec["url"], part, timeout=120, resume=True)
            os.replace(part, archive)
    archive = Path(archive)
    sha, md5 = _sha256(archive, algorithms=("sha256", "md5"))
    info = {"dataset": dataset, "archive": str(archive), "archive_sha256": sha, "archive_md5": md5}
    if spec["md5"]:
        if md5 != spec["md5"]:
            log.warning("%s: md5 %s differs from the published %s; continuing, the list check decides",
                        archive, md5, spec["md5"])
    work = root / ".extract"
    shutil.rmtree(work, ignore_errors=True)
    members = extract_rar(archive, work)
    if spec["nested"]:  # HMDB-51: one RAR per class inside
        for inner in [m for m in members if m.suffix.lower() == ".rar"]:
            extract_rar(inner, inner.with_suffix(""))
            inner.unlink()
    info["layout"] = layout_flat(work, root)
    shutil.rmtree(work, ignore_errors=True)
    if not keep_archive:
        archive.unlink()
    report = check_dataset(dataset, root, splits_root=splits_root, decode=decode, jobs=jobs)
    info["check"] = report["summary"]
    return info


# ---- checking a video root against the lists ------------------------------------------------------

def _probe(args) -> dict:
    path, decode, backend = args
    from apclip_core.data.video_io import probe_video

    p = Path(path)
    if p.is_dir():
        return {"status": "missing", "error": "is a directory, not a video file"}
    if not p.is_file():
        return {"status": "missing", "error": "file not found"}
    if p.stat().st_size == 0:
        return {"status": "empty", "error": "zero-byte file"}
    if not decode:
        return {"status": "ok", "error": None}
    r = probe_video(p, backend)
    return {"status": "ok" if r["ok"] else "undecodable", "error": r["error"], "num_frames": r["num_frames"]}


def check_dataset(dataset: str, root=None, *, splits_root=None, decode: bool = True, jobs: int | None = None,
                  backend: str = "auto", report_dir=None) -> dict:
    """Check every video of every list of ``dataset`` under ``root``; write report.json + report.txt.

    Each distinct video is checked once (exists, non-empty, and with ``decode`` opens and decodes
    its first, middle and last frame). Lists absent from the splits root are named in the report.
    Returns the report dict; ``report["summary"]["problems"] == 0`` means ready.
    """
    key = dataset.lower()
    root = Path(root) if root is not None else default_video_root(key)
    splits_root = Path(splits_root) if splits_root is not None else default_splits_root()
    lists, absent_lists, where = {}, [], {}
    for rel in list_files_for(key):
        path = splits_root / rel
        if not path.is_file():
            absent_lists.append(rel)
            continue
        n_classes = len(read_labels(splits_root / labels_file_for(key, rel)))
        recs = read_video_list(path, num_classes=n_classes)
        lists[rel] = recs
        for r in recs:
            where.setdefault(r.path, []).append(rel)
    if not lists:
        raise FileNotFoundError(f"no list of {dataset} found under {splits_root}; run "
                                f"`python -m apclip_core data download-splits --dest {splits_root}`")
    videos = sorted(where)
    jobs = jobs or max(1, min(8, os.cpu_count() or 1))
    args = [(str(root / v), decode, backend) for v in videos]
    t0 = time.time()
    if jobs == 1 or len(args) < 4 * jobs:  # a pool is not worth starting for a handful of files
        results = [_probe(a) for a in progress(args, desc=f"check {dataset}")]
    else:
        with ProcessPoolExecutor(jobs) as pool:
            results = list(progress(pool.map(_probe, args, chunksize=16), total=len(args), desc=f"check {dataset}"))
    status = dict(zip(videos, results))
    problems = [{"path": v, "status": r["status"], "error": r["error"], "lists": where[v]}
                for v, r in status.items() if r["status"] != "ok"]
    per_list = {}
    for rel, recs in lists.items():
        counts = {"videos": len(recs), "ok": 0, "missing": 0, "empty": 0, "undecodable": 0}
        for r in recs:
            counts[status[r.path]["status"]] += 1
        per_list[rel] = counts
    by_status = {s: sum(1 for p in problems if p["status"] == s) for s in ("missing", "empty", "undecodable")}
    report = {"dataset": dataset, "root": str(root), "splits_root": str(splits_root), "decoded": decode,
              "backend": backend, "seconds": round(time.time() - t0, 1), "lists": per_list,
              "lists_not_found": absent_lists,
              "summary": {"videos": len(videos), "ok": len(videos) - len(problems), "problems": len(problems),
                          **by_status},
              "problems": problems}
    out = Path(report_dir) if report_dir is not None else root
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_json(out / f"check_{key}.json", report, indent=1)
    atomic.write_text(out / f"check_{key}.txt", _report_text(report))
    report["report_files"] = [str(out / f"check_{key}.json"), str(out / f"check_{key}.txt")]
    return report


def _report_text(report: dict) -> str:
    s = report["summary"]
    lines = [f"{report['dataset']} under {report['root']}: {s['ok']}/{s['videos']} videos OK "
             f"({s['missing']} missing, {s['empty']} zero-byte, {s['undecodable']} undecodable"
             f"{'' if report['decoded'] else ', decoding not checked'})", ""]
    for rel, c in report["lists"].items():
        lines.append(f"  {rel}: {c['ok']}/{c['videos']} ok, {c['missing']} missing, {c['empty']} zero-byte, "
                     f"{c['undecodable']} undecodable")
    for rel in report["lists_not_found"]:
        lines.append(f"  {rel}: list not present in the splits root (not checked)")
    if report["problems"]:
        lines += ["", "problems (first 50; all are in the JSON report):"]
        lines += [f"  {p['status']:<11} {p['path']}  {p['error'] or ''}" for p in report["problems"][:50]]
    return "\n".join(lines) + "\n"




# ---- optional re-encoding -------------------------------------------------------------------------

_CODECS = {".mp4": ("libx264", {"crf": "23", "preset": "veryfast"}), ".mkv": ("libx264", {"crf": "23", "preset": "veryfast"}),
           ".mov": ("libx264", {"crf": "23", "preset": "veryfast"}), ".avi": ("mpeg4", {"qscale": "3"}),
           ".webm": ("libvpx-vp9", {"crf": "32", "b": "0", "deadline": "good", "cpu-used": "4"})}


def _count_frames(path: Path) -> int:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_count = 1
        return sum(1 for _ in c.decode(s))


def _reencode_one(args) -> dict:
    """Re-encode one file (short side -> ``short``, same container), verify, rename into place."""
    src, dst, short = Path(args[0]), Path(args[1]), int(args[2])
    import av

    ext = dst.suffix.lower()
    if ext not in _CODECS:
        return {"src": str(src), "status": "failed", "error": f"unsupported extension {ext}; valid: {sorted(_CODECS)}"}
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.tmp-{os.getpid()}{dst.suffix}")
    try:
        with av.open(str(src)) as inp:
            ins = inp.streams.video[0]
            ins.thread_count = 1
            w, h = ins.codec_context.width, ins.codec_context.height
            if min(w, h) <= short:  # never upscale: a copy is already "short side <= target"
                shutil.copyfile(src, tmp)
                n_out = n_in = _count_frames(tmp)
                action = "copied"
            else:
                scale = short / min(w, h)  # keep the aspect ratio; even sizes for yuv420p
                ow, oh = (short, round(h * scale / 2) * 2) if w < h else (round(w * scale / 2) * 2, short)
                rate = ins.average_rate or ins.guessed_rate or Fraction(30)
                codec, options = _CODECS[ext]
                n_in = 0
                with av.open(str(tmp), "w", format={".mkv": "matroska", ".mov": "mov"}.get(ext, ext[1:])) as out:
                    os_ = out.add_stream(codec, rate=rate, options=options)
                    os_.width, os_.height, os_.pix_fmt = ow, oh, "yuv420p"
                    for frame in inp.decode(ins):
                        # one converter thread: a swscale pool freed in a forked worker hangs it (see video_io)
                        frame = frame.reformat(width=ow, height=oh, format="yuv420p", threads=1)
                        frame.pts, frame.time_base = n_in, Fraction(1) / rate
                        n_in += 1
                        for packet in os_.encode(frame):
                            out.mux(packet)
                    for packet in os_.encode():
                        out.mux(packet)
                n_out = _count_frames(tmp)
                action = "encoded"
        if n_in == 0 or n_out != n_in:
            raise RuntimeError(f"output has {n_out} frames, source decoded {n_in}")
        os.replace(tmp, dst)
        st = src.stat()
        return {"src": str(src), "dst": str(dst), "status": action, "frames": n_out,
                "src_size": st.st_size, "src_mtime": st.st_mtime, "dst_size": dst.stat().st_size}
    except Exception as exc:  # one bad source must not stop the batch; it is reported
        tmp.unlink(missing_ok=True)
        return {"src": str(src), "status": "failed", "error": f"{type(exc).__name__}: {exc}"}


def reencode_videos(src_root, dst_root, videos: list[str] | None = None, *, short_side: int = 256,
                    jobs: int | None = None) -> dict:
    """Copy ``videos`` (relative paths; default: every video under src_root) with short side ``short_side``.

    Resumable: ``<dst_root>/reencode_manifest.jsonl`` records every verified output (source size and
    mtime, output size, frames); those are skipped on the next run. Each output is written to a
    temporary name, fully decoded to check its frame count equals the source's, then renamed.
    """
    from apclip_core.errors import BadValue

    src_root, dst_root = Path(src_root), Path(dst_root)
    if not src_root.is_dir():
        raise BadValue(f"--src {src_root}: " + ("a file, not a folder of videos" if src_root.exists() else
                                                "no such folder") + "; give the folder that holds the videos")
    if videos is None:
        videos = sorted(str(p.relative_to(src_root)) for p in src_root.rglob("*")
                        if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        if not videos:  # nothing to do is not success: the path is most likely wrong
            raise BadValue(f"--src {src_root}: no video under it (looked for {', '.join(sorted(VIDEO_EXTENSIONS))}, "
                           f"in every subfolder); check the path")
    dst_root.mkdir(parents=True, exist_ok=True)
    manifest_path = dst_root / "reencode_manifest.jsonl"
    done = {}
    if manifest_path.is_file():
        for line in manifest_path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                done[rec["rel"]] = rec
    todo, skipped = [], 0
    for rel in videos:
        src, dst = src_root / rel, dst_root / rel
        rec = done.get(rel)
        if rec and dst.is_file() and src.is_file() and dst.stat().st_size == rec["dst_size"] \
                and src.stat().st_size == rec["src_size"] and src.stat().st_mtime == rec["src_mtime"]:
            skipped += 1
            continue
        todo.append((str(src), str(dst), short_side, rel))
    results = []
    jobs = jobs or max(1, min(8, os.cpu_count() or 1))
    with open(manifest_path, "a", encoding="utf-8") as manifest:
        if jobs == 1:
            it = (_reencode_one(t[:3]) for t in todo)
        else:
            pool = ProcessPoolExecutor(jobs)
            it = pool.map(_reencode_one, [t[:3] for t in todo], chunksize=4)
        for t, r in zip(todo, progress(it, total=len(todo), desc="re-encode")):
            r["rel"] = t[3]
            results.append(r)
            if r["status"] != "failed":
                manifest.write(json.dumps(r) + "\n")
                manifest.flush()
        if jobs != 1:
            pool.shutdown()
    failed = [r for r in results if r["status"] == "failed"]
    for r in failed:
        log.warning("re-encode failed: %s: %s", r["rel"], r["error"])
    return {"videos": len(videos), "skipped_verified": skipped, "encoded": sum(r["status"] == "encoded" for r in results),
            "copied": sum(r["status"] == "copied" for r in results), "failed": len(failed),
            "failures": [{"path": r["rel"], "error": r["error"]} for r in failed], "manifest": str(manifest_path)}


# ---- command line ---------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m apclip_core data", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("download-splits", help="fetch the pinned ViFi-CLIP lists (sha256-checked)")
    p.add_argument("--dest", type=Path, default=None, help="default: $APCLIP_SPLITS or <data>/vifi_clip_splits")
    p.add_argument("--base-url", default=None, help="mirror serving the same paths (default: raw GitHub, pinned commit)")
    p.add_argument("--force", action="store_true")
    p = sub.add_parser("verify-splits", help="check a local copy of the lists against the pinned sha256")
    p.add_argument("--dest", type=Path, default=None)
    p = sub.add_parser("build-kinetics-lists", help="Kinetics-400 train.txt + base_train.txt from annotation CSVs")
    p.add_argument("--csv", type=Path, nargs="+", required=True, help="Kinetics-400 train.csv (label,youtube_id,...)")
    p.add_argument("--splits-root", type=Path, default=None)
    p.add_argument("--split", default="train")
    p.add_argument("--video-root", type=Path, default=None, help="leave out (and count) videos absent here")
    p = sub.add_parser("prepare", help="download + extract + lay out + check HMDB-51 or UCF-101")
    p.add_argument("dataset", choices=sorted(ARCHIVES))
    p.add_argument("--root", type=Path, default=None, help="video root (default <data>/<dataset>)")
    p.add_argument("--archive", type=Path, default=None, help="an already downloaded official RAR archive")
    p.add_argument("--url", default=None, help="alternative archive URL (mirror)")
    p.add_argument("--splits-root", type=Path, default=None)
    p.add_argument("--no-decode", action="store_true", help="check presence/size only")
    p.add_argument("--jobs", type=positive_int, default=None)
    p.add_argument("--delete-archive", action="store_true")
    p = sub.add_parser("check", help="verify a video root against every list; JSON + text report")
    p.add_argument("dataset", choices=sorted(DATASETS))
    p.add_argument("--root", type=Path, default=None)
    p.add_argument("--splits-root", type=Path, default=None)
    p.add_argument("--no-decode", action="store_true")
    p.add_argument("--backend", default="auto", choices=list(BACKENDS),
                   help="decoder: auto (the faster one per container, as `make bench` measured), decord or pyav")
    p.add_argument("--jobs", type=positive_int, default=None)
    p.add_argument("--report-dir", type=Path, default=None, help="default: the video root")
    p = sub.add_parser("reencode", help="copy videos with short side 256 (parallel, resumable, verified)")
    p.add_argument("--src", type=Path, required=True)
    p.add_argument("--dst", type=Path, required=True)
    p.add_argument("--short-side", type=bounded(int, 16, 4096, "pixels"), default=256)
    p.add_argument("--jobs", type=positive_int, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.cmd == "download-splits":
            print(f"protocol lists ready in {download_splits(args.dest, base_url=args.base_url, force=args.force)}")
        elif args.cmd == "verify-splits":
            problems = verify_splits(args.dest)
            print("\n".join(problems) if problems else "all pinned files present with the right sha256")
            return 1 if problems else 0
        elif args.cmd == "build-kinetics-lists":
            print(json.dumps(build_kinetics_lists(args.csv, args.splits_root, split=args.split,
                                                  video_root=args.video_root), indent=1))
        elif args.cmd == "prepare":
            info = prepare_dataset(args.dataset, args.root, archive=args.archive, splits_root=args.splits_root,
                                   keep_archive=not args.delete_archive, decode=not args.no_decode, jobs=args.jobs,
                                   url=args.url)
            print(json.dumps(info, indent=1))
            return 0 if info["check"]["problems"] == 0 else 1
        elif args.cmd == "check":
            report = check_dataset(args.dataset, args.root, splits_root=args.splits_root, decode=not args.no_decode,
                                   jobs=args.jobs, backend=args.backend, report_dir=args.report_dir)
            print(_report_text(report), end="")
            print(f"reports: {', '.join(report['report_files'])}")
            return 0 if report["summary"]["problems"] == 0 else 1
        elif args.cmd == "reencode":
            summary = reencode_videos(args.src, args.dst, short_side=args.short_side, jobs=args.jobs)
            print(json.dumps(summary, indent=1))
            return 0 if summary["failed"] == 0 else 1
    except (ChecksumError, ValueError, RuntimeError) as exc:  # an OSError: errors.run_command says what to do
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
