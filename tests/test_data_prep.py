"""Data preparation against real servers on 127.0.0.1, real RAR archives, real videos."""
from __future__ import annotations

import functools
import hashlib
import json
import struct
import subprocess
import sys
import threading
import zlib
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from apclip_core.data import prepare as D
from apclip_core.data.annotations import read_video_list, write_labels
from apclip_core.data.video_io import open_video
from test_video_io import make_broken, make_video

REPO = Path(__file__).resolve().parent.parent


class _Handler(SimpleHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):
        type(self).requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture()
def serve():
    """serve(folder) -> base URL of a real HTTP server on 127.0.0.1 serving that folder."""
    servers = []

    def start(folder):
        _Handler.requests = []
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(folder)))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}/"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


# ---- pinned protocol lists ----------------------------------------------------------------------

@pytest.mark.needs_splits
def test_pinned_table_covers_the_shared_copies_exactly(splits_root):
    files = D.split_manifest()["files"]
    local = {str(p.relative_to(splits_root)) for p in splits_root.rglob("*") if p.suffix in (".txt", ".csv")}
    assert set(files) == local and len(files) == 63
    assert D.split_manifest()["commit"] == "e2d1948307f582052078eb8a4afbeb50247166f1"
    assert D.verify_splits(splits_root) == []


@pytest.mark.needs_splits
def test_download_splits_from_a_local_mirror(splits_root, serve, tmp_path):
    url = serve(splits_root)
    dest = D.download_splits(tmp_path / "lists", base_url=url)
    assert D.verify_splits(dest) == []
    assert len(_Handler.requests) == 63
    D.download_splits(dest, base_url=url)             # verified files are not fetched again
    assert len(_Handler.requests) == 63
    assert json.loads((dest / "SOURCE.json").read_text())["commit"].startswith("e2d19483")


def test_tampered_or_missing_download_fails_loudly(serve, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "labels").mkdir(parents=True)
    good, bad = b"id,name\n0,a\n", b"id,name\n0,b\n"
    (mirror / "labels/good.csv").write_bytes(good)
    (mirror / "labels/bad.csv").write_bytes(bad + b"tampered\n")
    manifest = {"repository": "x/y", "commit": "0" * 40, "base_url": "unused",
                "files": {"labels/good.csv": {"sha256": hashlib.sha256(good).hexdigest()},
                          "labels/bad.csv": {"sha256": hashlib.sha256(bad).hexdigest()}}}
    monkeypatch.setattr(D, "split_manifest", lambda: manifest)
    url = serve(mirror)
    with pytest.raises(D.ChecksumError, match="labels/bad.csv: sha256"):
        D.download_splits(tmp_path / "out", base_url=url)
    assert (tmp_path / "out/labels/good.csv").read_bytes() == good
    assert not (tmp_path / "out/labels/bad.csv").exists()
    assert list((tmp_path / "out/labels").iterdir()) == [tmp_path / "out/labels/good.csv"]  # no temp left
    (mirror / "labels/bad.csv").unlink()
    with pytest.raises(RuntimeError, match="404"):
        D.download_splits(tmp_path / "out", base_url=url)


# ---- Kinetics-400 lists built from the annotation CSV -------------------------------------------

def _fake_k400(root: Path) -> Path:
    names = ["abseiling", "passing American football (in game)", "zumba", "air drumming"]
    write_labels(root / "labels/kinetics_400_labels.csv", names)
    write_labels(root / "labels/kinetics_400_base_labels.csv", ["zumba", "abseiling"])
    write_labels(root / "labels/kinetics_400_novel_labels.csv", ["air drumming", "passing American football (in game)"])
    return root


def test_build_kinetics_lists_from_csv(tmp_path):
    s = _fake_k400(tmp_path / "splits")
    csv_path = tmp_path / "train.csv"
    csv_path.write_text(
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        "abseiling,-3B32lodo2M,59,69,train,0\n"
        '"passing American football (in game)",ab_cd,7,17,train,0\n'
        "zumba,zz1,1234,1244,train,0\n"
        "zumba,zzval,0,10,val,0\n"
        "air drumming,ad,3,13,train,0\n")
    out = D.build_kinetics_lists(csv_path, s)
    train = read_video_list(s / "datasets_splits/k400_splits/train.txt")
    assert [(r.path, r.label) for r in train] == [
        ("train/-3B32lodo2M_000059_000069.mp4", 0), ("train/ab_cd_000007_000017.mp4", 1),
        ("train/zz1_001234_001244.mp4", 2), ("train/ad_000003_000013.mp4", 3)]
    base = read_video_list(s / "datasets_splits/base2novel_splits/k400_splits/base_train.txt")
    assert [(r.path[6:9], r.label) for r in base] == [("-3B", 1), ("zz1", 0)]
    assert out["train_videos"] == 4 and out["base_train_videos"] == 2

    videos = tmp_path / "videos/train"
    videos.mkdir(parents=True)
    (videos / "zz1_001234_001244.mp4").write_bytes(b"x")
    out = D.build_kinetics_lists(csv_path, s, video_root=tmp_path / "videos")
    assert out["train_videos"] == 1 and out["left_out_absent"] == 3

    (tmp_path / "bad.csv").write_text("label,youtube_id,time_start,time_end,split\nzumbaa,q,0,10,train\n")
    with pytest.raises(ValueError, match="zumba"):
        D.build_kinetics_lists(tmp_path / "bad.csv", s)


# ---- HMDB-51-style RAR archive -> flat layout -> checked ------------------------------------------

def write_stored_rar(path: Path, files: dict[str, bytes]) -> Path:
    """A RAR 4 archive with uncompressed members (there is no free RAR writer; the format is public)."""
    def block(htype, flags, body):
        head = struct.pack("<BHH", htype, flags, 7 + len(body)) + body
        return struct.pack("<H", zlib.crc32(head) & 0xFFFF) + head

    parts = [b"Rar!\x1a\x07\x00", block(0x73, 0, b"\x00" * 6)]
    dos_time = (2024 - 1980) << 25 | 1 << 21 | 1 << 16
    for name, data in files.items():
        raw = name.encode()
        body = struct.pack("<IIBIIBBHI", len(data), len(data), 3, zlib.crc32(data), dos_time, 20, 0x30,
                           len(raw), 0o100644 << 16) + raw
        parts += [block(0x74, 0x8000, body), data]
    parts.append(block(0x7B, 0x4000, b""))
    path.write_bytes(b"".join(parts))
    return path


def _hmdb_fixture(tmp_path: Path):
    rarfile = pytest.importorskip("rarfile")
    try:
        rarfile.tool_setup()
    except rarfile.RarCannotExec:
        pytest.skip("no RAR backend installed (apt-get install unar)")
    classes = {"brush_hair": ["A_brush_hair_u_0.avi", "B_brush_hair_u_1.avi"], "clap": ["C_clap_f_0.avi"]}
    inner = {}
    for cls, vids in classes.items():
        payload = {f"{cls}/{v}": make_video(tmp_path / "src" / v, frames=10).read_bytes() for v in vids}
        inner[f"{cls}.rar"] = write_stored_rar(tmp_path / f"{cls}.rar", payload).read_bytes()
    (tmp_path / "www").mkdir()
    write_stored_rar(tmp_path / "www/hmdb51_org.rar", inner)
    splits = tmp_path / "splits"
    write_labels(splits / "labels/hmdb_51_labels.csv", ["brush hair", "clap"])
    lines = [f"{v} {i}" for i, vids in enumerate(classes.values()) for v in vids]
    (splits / "datasets_splits/hmdb_splits").mkdir(parents=True)
    (splits / "datasets_splits/hmdb_splits/val1.txt").write_text("\n".join(lines) + "\n")
    return splits, classes


def test_prepare_hmdb51_downloads_extracts_nested_rars_lays_out_and_checks(tmp_path, serve):
    splits, classes = _hmdb_fixture(tmp_path)
    url = serve(tmp_path / "www") + "hmdb51_org.rar"
    root = tmp_path / "hmdb51"
    info = D.prepare_dataset("hmdb51", root, splits_root=splits, url=url, download_dir=tmp_path / "dl", jobs=1)
    assert info["check"] == {"videos": 3, "ok": 3, "problems": 0, "missing": 0, "empty": 0, "undecodable": 0}
    assert sorted(p.name for p in root.glob("*.avi")) == sorted(v for vs in classes.values() for v in vs)
    assert not (root / ".extract").exists()
    assert info["archive_sha256"] == hashlib.sha256((tmp_path / "www/hmdb51_org.rar").read_bytes()).hexdigest()
    with open_video(root / "C_clap_f_0.avi") as r:
        assert r.num_frames == 10
    # a second run from the kept archive is idempotent
    info2 = D.prepare_dataset("hmdb51", root, splits_root=splits, archive=tmp_path / "dl/hmdb51_org.rar", jobs=1)
    assert info2["check"]["ok"] == 3


def test_layout_refuses_two_videos_with_one_name(tmp_path):
    for d in ("a", "b"):
        (tmp_path / "x" / d).mkdir(parents=True)
        (tmp_path / "x" / d / "same.avi").write_bytes(d.encode())
    with pytest.raises(RuntimeError, match="two videos named same.avi"):
        D.layout_flat(tmp_path / "x", tmp_path / "root")


# ---- check report ---------------------------------------------------------------------------------

def test_check_reports_every_problem_without_stopping(tmp_path):
    splits = tmp_path / "splits"
    write_labels(splits / "labels/ucf_101_labels.csv", ["A", "B"])
    root = tmp_path / "ucf"
    good = [make_video(root / f"v_A_g0{i}.avi", frames=8).name for i in range(3)]
    broken = make_broken(root)
    names = good + [p.name for p in broken.values()]
    (splits / "datasets_splits/ucf_splits").mkdir(parents=True)
    (splits / "datasets_splits/ucf_splits/val1.txt").write_text("".join(f"{n} {i % 2}\n" for i, n in enumerate(names)))
    (splits / "datasets_splits/ucf_splits/val2.txt").write_text(f"{good[0]} 0\n{names[-1]} 1\n")
    report = D.check_dataset("ucf101", root, splits_root=splits, jobs=2, report_dir=tmp_path / "rep")
    assert report["summary"] == {"videos": 8, "ok": 3, "problems": 5, "missing": 1, "empty": 1, "undecodable": 3}
    assert report["lists"]["datasets_splits/ucf_splits/val2.txt"] == {"videos": 2, "ok": 1, "missing": 1,
                                                                      "empty": 0, "undecodable": 0}
    assert "datasets_splits/ucf_splits/val3.txt" in report["lists_not_found"]
    saved = json.loads((tmp_path / "rep/check_ucf101.json").read_text())
    assert {p["path"] for p in saved["problems"]} == {p.name for p in broken.values()}
    assert "3/8 videos OK (1 missing, 1 zero-byte, 3 undecodable)" in (tmp_path / "rep/check_ucf101.txt").read_text()

    cli = subprocess.run([sys.executable, "-m", "apclip_core", "data", "check", "ucf101", "--root", str(root),
                          "--splits-root", str(splits), "--no-decode", "--report-dir", str(tmp_path / "rep2")],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert cli.returncode == 1, cli.stderr
    assert "6/8 videos OK (1 missing, 1 zero-byte, 0 undecodable, decoding not checked)" in cli.stdout


# ---- re-encoding ----------------------------------------------------------------------------------

def test_reencode_is_verified_resumable_and_reports_failures(tmp_path):
    src = tmp_path / "src"
    make_video(src / "a/x.mp4", frames=12, width=80, height=64)
    make_video(src / "b/y.avi", frames=9, width=64, height=96)
    make_video(src / "small.avi", frames=5, width=40, height=32)          # already small: copied
    (src / "broken.avi").write_bytes(b"not a video at all" * 20)
    s1 = D.reencode_videos(src, tmp_path / "dst", short_side=32, jobs=2)
    assert (s1["encoded"], s1["copied"], s1["failed"], s1["skipped_verified"]) == (2, 1, 1, 0)
    assert s1["failures"][0]["path"] == "broken.avi"
    for rel, frames, shape in (("a/x.mp4", 12, (32, 40)), ("b/y.avi", 9, (48, 32)), ("small.avi", 5, (32, 40))):
        with open_video(tmp_path / "dst" / rel) as r:
            assert r.num_frames == frames and r.get_frames([0]).shape[1:3] == shape
    assert not list((tmp_path / "dst").rglob(".*tmp*")) and not (tmp_path / "dst/broken.avi").exists()
    s2 = D.reencode_videos(src, tmp_path / "dst", short_side=32, jobs=1)
    assert (s2["skipped_verified"], s2["encoded"], s2["failed"]) == (3, 0, 1)
    (tmp_path / "dst/a/x.mp4").write_bytes(b"")                         # damaged output is redone
    s3 = D.reencode_videos(src, tmp_path / "dst", short_side=32, jobs=1)
    assert (s3["skipped_verified"], s3["encoded"]) == (2, 1)
