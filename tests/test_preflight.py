"""The preflight checks every video of every list of every run a table needs (all seeds, all datasets)
and lists every missing piece at once, with counts, the first names and the command that fixes it."""
from __future__ import annotations

import re
import time
from pathlib import Path

from apclip_core.data.annotations import read_video_list
from apclip_core.paper.preflight import check

REPO = Path(__file__).resolve().parent.parent


def test_table2_paper_preflight_counts_every_missing_video_of_every_seed(splits_root, tmp_path, monkeypatch):
    monkeypatch.setenv("APCLIP_SPLITS", str(splits_root))
    monkeypatch.setenv("APCLIP_DATA", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the weights are reported without asking the network
    b2n = splits_root / "datasets_splits" / "base2novel_splits" / "hmdb_splits"
    present = {"base_val.txt": 5, "fs_base_s2_train.txt": 3}
    for name, n in present.items():  # a partial download: a few videos under their real names
        for record in read_video_list(b2n / name)[:n]:
            (tmp_path / "hmdb51" / record.path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "hmdb51" / record.path).write_bytes(b"")
    start = time.monotonic()
    problems = check(REPO / "notebooks" / "12_table2_base_to_novel.ipynb", "paper")
    seconds = time.monotonic() - start
    counts = {m.group(1): (int(m.group(2)), int(m.group(3)))
              for p in problems if (m := re.match(r"videos of (\S+): (\d+) of (\d+) missing", p))}
    sizes = {name: len(read_video_list(b2n / f"{name}.txt")) for name in
             ("fs_base_s1_train", "fs_base_s2_train", "fs_base_s3_train", "base_val", "novel_val")}
    assert counts == {f"hmdb51_{name}": (size - present.get(f"{name}.txt", 0), size) for name, size in sizes.items()}
    assert all("make data-hmdb51" in p for p in problems if p.startswith("videos of"))
    assert any("HF_HUB_OFFLINE is set" in p for p in problems)
    assert seconds < 20, f"preflight took {seconds:.1f} s"


def test_present_but_unreadable_videos_are_reported_per_list_cached_and_deep_probe_finds_cut_files(
        splits_root, bench_root, tmp_path, monkeypatch):
    """Real rendered videos under real HMDB-51 names, among them a zero-byte file, garbage bytes and an AVI
    cut in half (its header still opens): the default check finds the first two in milliseconds, --probe
    deep the third too; a second preflight answers from the cache without opening a file."""
    from apclip_core.data import container_check
    from apclip_core.paper import preflight

    monkeypatch.setenv("APCLIP_SPLITS", str(splits_root))
    monkeypatch.setenv("APCLIP_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("APCLIP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    avi = next(iter(sorted(bench_root.rglob("*.avi"))))
    b2n = splits_root / "datasets_splits" / "base2novel_splits" / "hmdb_splits"
    records = read_video_list(b2n / "base_val.txt")[:7]
    files = [tmp_path / "data" / "hmdb51" / r.path for r in records]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(avi.read_bytes())
    files[1].write_bytes(b"")                                                   # an extraction that failed
    files[3].write_bytes(b"<html><body>404 Not Found</body></html>" * 20)      # an error page saved as .avi
    files[5].write_bytes(avi.read_bytes()[: avi.stat().st_size // 2])          # a download cut in half
    notebook = REPO / "notebooks" / "12_table2_base_to_novel.ipynb"

    def unreadable(problems):
        found = [p for p in problems if "present but unreadable" in p]
        assert len(found) <= 1 and all(p.startswith("videos of hmdb51_base_val: ") for p in found)
        return found[0] if found else ""

    default = unreadable(check(notebook, "paper"))
    assert default.startswith("videos of hmdb51_base_val: 2 of 780 present but unreadable")
    assert f"{records[1].path} (empty file (0 bytes))" in default and records[3].path in default
    assert records[5].path not in default and "make data-hmdb51" in default and "PARTIAL" in default

    deep = unreadable(check(notebook, "paper", probe="deep"))
    assert deep.startswith("videos of hmdb51_base_val: 3 of 780 present but unreadable")
    assert f"{records[5].path} (cut short: " in deep

    def no_opening(batch):
        raise AssertionError(f"{len(batch)} file(s) opened again although unchanged")

    with monkeypatch.context() as patched:
        patched.setattr(container_check, "_problems", no_opening)
        assert unreadable(check(notebook, "paper", probe="deep")) == deep  # the cache answers
    files[5].write_bytes(avi.read_bytes())                                 # fixed: changed, so checked again
    assert unreadable(preflight.check(notebook, "paper", probe="deep")).startswith(
        "videos of hmdb51_base_val: 2 of 780 present but unreadable")


def test_a_params_file_adds_to_the_profiles_overrides_as_the_notebook_gets_them(tmp_path):
    """make ... PARAMS=file: its keys on top of the profile's, dicts merged key by key (a local weights file
    added to the UCF-101 variant keeps its protocol_args); preflight and plan read what papermill passes."""
    from apclip_core.notebook import read_parameters
    from apclip_core.paper.preflight import notebook_parameters

    profile, mine = tmp_path / "profile.yaml", tmp_path / "mine.yaml"
    profile.write_text("seeds: [1, 2, 3]\noverrides: {protocol_args: {dataset: ucf101}, prompt_file: prompts/ucf101.json}\n")
    mine.write_text("seeds: [1]\noverrides: {pretrained: /w.pt, quick_gelu: true, protocol_args: {seed: 2}}\n")
    assert read_parameters([profile, mine]) == {
        "seeds": [1], "overrides": {"protocol_args": {"dataset": "ucf101", "seed": 2},
                                    "prompt_file": "prompts/ucf101.json", "pretrained": "/w.pt", "quick_gelu": True}}
    table2 = REPO / "notebooks" / "12_table2_base_to_novel.ipynb"
    params = notebook_parameters(table2, "paper", [mine])
    assert params["config"] == "base2novel" and params["seeds"] == [1] and params["overrides"]["pretrained"] == "/w.pt"


def test_allow_cpu_lets_a_big_model_through_the_preflight_as_train_does(splits_root, tmp_path, monkeypatch):
    """A ViT-B/16 CPU rehearsal (allow_cpu: true, which train honours) is not stopped for want of a GPU: the
    preflight says the CPU cost as a notice instead (issue 23, item 12)."""
    import torch

    monkeypatch.setenv("APCLIP_SPLITS", str(splits_root))
    monkeypatch.setenv("APCLIP_DATA", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    table2 = REPO / "notebooks" / "12_table2_base_to_novel.ipynb"
    mine = tmp_path / "cpu.yaml"
    mine.write_text("seeds: [1]\noverrides: {allow_cpu: true}\n")
    refused = check(table2, "paper")
    assert any(p.startswith("no GPU visible") for p in refused)
    notices: list[str] = []
    allowed = check(table2, "paper", [mine], notices=notices)
    assert not any(p.startswith("no GPU visible") for p in allowed)
    assert any(n.startswith("no GPU visible: training ViT-B-16 on this CPU (allow_cpu: true)") for n in notices)
