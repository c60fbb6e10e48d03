"""Partial data said out loud: missing videos skipped before the model sees them and counted per list, a
split with nothing evaluated is an error, and a paper-profile table says "same protocol" only when nothing
deviates, listing every deviation (with its counts) otherwise."""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest
import torch

from apclip_core.data.annotations import VideoRecord
from apclip_core.data.protocols import Split, bench_base_to_novel
from apclip_core.data.views import ViewSpec
from apclip_core.engine.evaluate import EvalResult, evaluate, prepare_split
from apclip_core.errors import UserError
from apclip_core.paper import deviations, experiments, reproduce, tables
from apclip_core.prompts.strategies import build_prompt_bank

REPO = Path(__file__).resolve().parent.parent


# ---- evaluation: skipped before decoding, counted; nothing evaluated is an error -------------------------
@pytest.fixture()
def partly_missing(tmp_path, bench_root):
    """6 real benchmark videos (3 classes), 3 listed files that are not on disk and an empty one (a download
    that never started), list file recorded."""
    source = bench_base_to_novel(bench_root).eval[1]
    records = []
    for label in range(3):
        rec = [r for r in source.records if r.label == label][:2]
        for r in rec:
            (tmp_path / r.path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source.root / r.path, tmp_path / r.path)
            records.append(VideoRecord(r.path, label))
        records.append(VideoRecord(f"videos/gone_{label}.mp4", label))
    (tmp_path / "videos" / "gone_3.mp4").write_bytes(b"")
    records.append(VideoRecord("videos/gone_3.mp4", 0))
    (tmp_path / "val.txt").write_text("".join(f"{r.path} {r.label}\n" for r in records))
    return Split("tiny_val", records, source.classnames[:3], tmp_path, list_file=tmp_path / "val.txt")


class CountingEncoder:
    """The model's image tower, recording every clip it is given (to see what reached the model)."""

    def __init__(self, model):
        self.model, self.clips = model, []
        self._encode = model.encode_video

    def __enter__(self):
        def encode(video, *args, **kwargs):
            self.clips.extend(video.detach().flatten(1))
            return self._encode(video, *args, **kwargs)
        self.model.encode_video = encode
        return self

    def __exit__(self, *exc):
        del self.model.encode_video  # back to the class's method


@pytest.fixture(scope="module")
def tiny_model():
    from apclip_core.model.video_clip import create_model

    torch.manual_seed(0)
    return create_model("apclip-tiny", None)


def test_skip_leaves_missing_videos_out_before_the_model_and_counts_them(tiny_model, partly_missing):
    bank = build_prompt_bank("single", partly_missing.classnames)
    kw = dict(similarity="mean", view=ViewSpec(2), batch_size=4)
    with CountingEncoder(tiny_model) as seen:
        prepared = prepare_split(partly_missing, missing_videos="skip")
        result = evaluate(tiny_model, prepared.split, bank, prepared=prepared, **kw)
    assert len(seen.clips) == 6 and all(bool(c.abs().sum() > 0) for c in seen.clips)  # no zero clip
    assert (result.n_listed, result.n_skipped, result.n_videos, result.n_evaluated, result.n_failed) == (10, 4, 6, 6, 0)
    assert result.skipped == [f"videos/gone_{i}.mp4" for i in range(4)]
    assert result.protocol["missing_videos"] == "skip" and result.protocol["list_file"].endswith("val.txt")
    json.dumps(result.to_json())

    with CountingEncoder(tiny_model) as seen:  # the default: each missing file is a failed video, at full cost
        stop = evaluate(tiny_model, partly_missing, bank, **kw)
    assert len(seen.clips) == 10 and sum(bool(c.abs().sum() == 0) for c in seen.clips) == 4
    assert (stop.n_videos, stop.n_evaluated, stop.n_failed, stop.n_skipped) == (10, 6, 4, 0)
    assert stop.top1 == result.top1  # the same six videos entered the accuracy


def test_a_split_with_no_evaluated_video_is_an_error_naming_split_and_list(tiny_model, partly_missing):
    only_missing = Split("tiny_val", [r for r in partly_missing.records if "gone" in r.path],
                         partly_missing.classnames, partly_missing.root, list_file=partly_missing.list_file)
    bank = build_prompt_bank("single", only_missing.classnames)
    kw = dict(similarity="mean", view=ViewSpec(2))
    with pytest.raises(UserError, match=r"split tiny_val: none of the 4 videos listed in .*val\.txt.*4 failed"):
        evaluate(tiny_model, only_missing, bank, **kw)  # decoded as failures: never an accuracy of nan
    prepared = prepare_split(only_missing, missing_videos="skip")
    with pytest.raises(UserError, match=r"split tiny_val: none of the 4 videos .*4 skipped, not on disk or not a video"):
        evaluate(tiny_model, prepared.split, bank, prepared=prepared, **kw)


def test_training_skips_missing_videos_and_records_them(partly_missing):
    from apclip_core.engine.config import load_config
    from apclip_core.engine.train import training_videos

    cfg = load_config("bench_base2novel", missing_videos="skip", max_videos_per_split=4)
    used, record = training_videos(partly_missing, cfg)
    assert all("gone" not in r.path for r in used.records) and len(used.records) == 4
    assert {k: record[k] for k in ("listed", "skipped", "subset_of", "used")} == \
        {"listed": 10, "skipped": 4, "subset_of": 6, "used": 4}
    assert record["first_skipped"] == ["videos/gone_0.mp4", "videos/gone_1.mp4", "videos/gone_2.mp4"]
    same, record = training_videos(partly_missing, load_config("bench_base2novel"))  # stop: the list as it is
    assert same is partly_missing and record["skipped"] == 0
    nothing = Split("x_train", [r for r in partly_missing.records if "gone" in r.path], partly_missing.classnames,
                    partly_missing.root, list_file=partly_missing.list_file)
    with pytest.raises(UserError, match=r"training split x_train: none of the 4 videos listed in .*val\.txt"):
        training_videos(nothing, cfg)


def test_a_resumed_run_trains_on_the_list_decided_when_it_started(partly_missing, tmp_path, caplog):
    """missing_videos=skip decides the training list once (rank 0, broadcast) and keeps it in the run folder:
    a video arriving between the start and the resume is not trained on by the resumed run (it says so)."""
    from apclip_core.engine.config import load_config
    from apclip_core.engine.distributed import Dist
    from apclip_core.engine.train import TRAINING_LIST, decided_training_videos

    cfg, run_dir = load_config("bench_base2novel", missing_videos="skip"), tmp_path / "run"
    run_dir.mkdir()
    started, record = decided_training_videos(partly_missing, cfg, run_dir, Dist(), resume=False)
    assert len(started.records) == 6 and record["skipped"] == 4
    assert json.loads((run_dir / TRAINING_LIST).read_text())["videos"] == [r.path for r in started.records]
    arrived = partly_missing.root / "videos" / "gone_1.mp4"  # its download finished meanwhile
    shutil.copy(partly_missing.root / started.records[0].path, arrived)
    with caplog.at_level("WARNING", logger="apclip_core.engine.train"):
        resumed, again = decided_training_videos(partly_missing, cfg, run_dir, Dist(), resume=True)
    assert resumed.records == started.records and again == record
    assert "the disk now differs: 1 more would be used today (first: videos/gone_1.mp4)" in caplog.text
    fresh, _ = decided_training_videos(partly_missing, cfg, run_dir, Dist(), resume=False)  # a new run: today's disk
    assert len(fresh.records) == 7


def _decide_on_two_ranks(rank: int, split, cfg, run_dir: Path, port: int, out: Path) -> None:
    """One of two gloo processes: rank 1's own view of the disk must never be asked (it would see another list),
    and rank 0 failing for any reason must stop rank 1 with rank 0's message, not leave it waiting."""
    import datetime
    import os

    import torch.distributed as dist

    from apclip_core.engine import train
    from apclip_core.engine.distributed import Dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=60))  # no hang
    d, said = Dist(rank, 2), {}
    if rank == 1:
        train.training_videos = lambda *a, **k: (_ for _ in ()).throw(AssertionError("rank 1 decided on its own"))
    decided, _ = train.decided_training_videos(split, cfg, run_dir, d, resume=False)
    said["videos"] = [r.path for r in decided.records]
    if rank == 0:
        train.training_videos = lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device"))
    try:
        train.decided_training_videos(split, cfg, run_dir / "again", d, resume=False)
    except UserError as err:
        said["error"] = str(err)
    out.joinpath(f"rank{rank}.json").write_text(json.dumps(said))
    dist.destroy_process_group()


def test_rank_0_decides_the_training_list_for_every_rank(partly_missing, tmp_path):
    """Two real processes (gloo): rank 1 receives rank 0's list without looking at the disk itself, and an
    OSError of rank 0's stops both ranks with the same message naming the run's list file."""
    import socket

    import torch.multiprocessing as mp

    from apclip_core.engine.config import load_config

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg, run_dir = load_config("bench_base2novel", missing_videos="skip"), tmp_path / "run"
    (run_dir / "again").mkdir(parents=True)
    mp.spawn(_decide_on_two_ranks, args=(partly_missing, cfg, run_dir, port, tmp_path), nprocs=2, join=True)
    said = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert said[0]["videos"] == said[1]["videos"] and len(said[0]["videos"]) == 6
    assert said[0]["error"] == said[1]["error"]
    assert "rank 0 could not decide the training list" in said[1]["error"] and "No space left" in said[1]["error"]


def test_the_options_keep_existing_run_names_at_their_defaults():
    """Runs named before the options existed (the committed figures' runs) keep their names."""
    committed = json.loads((REPO / "figures" / "table2_base_to_novel.json").read_text())
    names = {Path(r["run_dir"]).name for r in committed["raw"]}
    for method in ("ViFi-CLIP", "AP-CLIP"):
        default = experiments.make_config("bench_base2novel", method, seed=1)   # the smoke tables' seed-1 run
        assert default.name in names
        assert experiments.make_config("bench_base2novel", method, missing_videos="stop", seed=1,
                                       max_videos_per_split=0).name == default.name
        assert experiments.make_config("bench_base2novel", method, missing_videos="skip", seed=1).name != default.name
    with pytest.raises(ValueError, match="missing_videos='maybe' is not valid; choose one of: stop, skip"):
        experiments.make_config("bench_base2novel", "AP-CLIP", missing_videos="maybe")


# ---- deviations: each kind listed with its counts; "same protocol" only without any ---------------------
PAPERS = {"model_name": "ViT-B-16", "pretrained": "openai", "quick_gelu": None}
PAPER_VIEW = {"frames": 8, "temporal_views": 2, "spatial_crops": 2}


def record(**changes) -> dict:
    """A run record as experiments.run_record reads it, on the paper's protocol unless changed."""
    train = {"split": "hmdb51_fs_base_s1_train", "role": "train", "listed": 416, "used": 416, "skipped": 0,
             "replaced": 0, "padded": 0, "subset_of": None, "epochs": 11}
    base = {"split": "hmdb51_base_val", "role": "eval", "listed": 780, "evaluated": 780, "failed": 0, "skipped": 0,
            "padded": 0, "subset_of": None}
    train.update(changes.pop("train", {}))
    base.update(changes.pop("eval", {}))
    return {"run_dir": "runs/x", "model": {**PAPERS, **changes.pop("model", {})}, **PAPER_VIEW, **changes,
            "splits": [train, base]}


@pytest.mark.parametrize("run, expected", [
    (record(train={"skipped": 400, "used": 16}),
     "training videos skipped (not on disk, or not a video file): hmdb51_fs_base_s1_train 400 of 416"),
    (record(eval={"skipped": 775, "evaluated": 5}),
     "evaluation videos skipped (not on disk, or not a video file): hmdb51_base_val 775 of 780"),
    (record(eval={"failed": 9, "evaluated": 771}),
     "evaluation videos that failed to decode (left out of the accuracy): hmdb51_base_val 9 of 780"),
    (record(train={"replaced": 22}),
     "training samples replaced by another video (failed to decode): hmdb51_fs_base_s1_train 22 over 11 epoch(s)"),
    (record(eval={"padded": 2}), "evaluation videos decoded in part (short_videos: pad): hmdb51_base_val 2 of 780"),
    (record(eval={"subset_of": 780, "evaluated": 50}),
     "a subset of the lists (max_videos_per_split / eval_max_videos): hmdb51_base_val 50 of 780 evaluated"),
    (record(frames=4, temporal_views=1, spatial_crops=1),
     "frames and views: 4 frames, 1 x 1 views at test (the paper: 8 frames, 2 x 2 views)"),
    (record(model={"model_name": "ViT-B-32"}),
     "model: ViT-B-32 with weights openai (the paper: ViT-B/16 with OpenAI's weights (QuickGELU))"),
    (record(model={"pretrained": "/w/vitb16.pt", "quick_gelu": False}),
     "model: ViT-B-16 with weights /w/vitb16.pt, GELU: not identified as OpenAI's (the paper: ViT-B/16 with "
     "OpenAI's weights (QuickGELU))"),
    (record(model={"pretrained": "/w/vitb16_openai.pt", "quick_gelu": True}),  # a name proves nothing (known_weights)
     "model: ViT-B-16 with weights /w/vitb16_openai.pt, QuickGELU: not identified as OpenAI's (the paper: ViT-B/16 "
     "with OpenAI's weights (QuickGELU))"),
])
def test_each_deviation_is_listed_with_its_counts(run, expected):
    lines = deviations.deviations([run], reference=PAPER_VIEW, seeds=("seeds", [1, 2, 3], [1, 2, 3]))
    assert lines == [expected]
    assert deviations.statement(lines) == f"{deviations.DEVIATES}\n- {expected}"


def test_on_the_papers_protocol_nothing_deviates_and_fewer_seeds_do():
    runs = [record(), record(run_dir="runs/y")]
    assert deviations.deviations(runs, reference=PAPER_VIEW, seeds=("seeds", [1, 2, 3], [1, 2, 3])) == []
    assert deviations.statement([]) == "Ours and the paper's numbers are on the same protocol."
    assert deviations.deviations(runs, reference=PAPER_VIEW, seeds=("seeds", [1], [1, 2, 3])) == \
        ["seeds: [1] of the paper's [1, 2, 3]"]
    assert deviations.deviations(runs, unreadable=["runs/y"]) == \
        ["no record of what 1 run(s) ran on (metrics.json not readable): runs/y"]


def write_run(folder: Path, *, failed: int = 0, method: str = "AP-CLIP", **changes) -> Path:
    """A finished run's folder as training leaves it: metrics.json (config, epochs, train_data) and one
    eval_<split>.json per split (EvalResult.to_json). Its config is the paper's for `method` on HMDB-51 seed 1,
    with `changes`."""
    folder.mkdir(parents=True)
    config = {**asdict(experiments.make_config("base2novel", method)), **changes}
    train = {"split": "hmdb51_fs_base_s1_train", "listed": 416, "skipped": 0, "first_skipped": [], "subset_of": None,
             "used": 416}
    epochs = [{"epoch": 1, "replaced_videos": 0, "padded_videos": 0, "eval": {}}]
    (folder / "metrics.json").write_text(json.dumps({"config": config, "epochs": epochs, "train_data": train,
                                                     "complete": True}))
    for split, n in (("hmdb51_base_val", 780), ("hmdb51_novel_val", 750)):
        result = EvalResult(split, 50.0, 90.0, n, n - failed, failed, [{"path": f"v{i}.avi", "error": "bad"}
                                                                         for i in range(failed)], 26, {}, n_listed=n)
        (folder / f"eval_{split}.json").write_text(json.dumps(result.to_json()))
    return folder


def table2_from(monkeypatch, run_dirs: dict, seeds=(1, 2, 3)):
    """Table 2 in the paper profile over the given run folders (method -> folder), no training."""
    def grid(config, methods, *, seeds=(None,), dataset, overrides=None, **_):
        values = {"ViFi-CLIP": (70.0, 50.0), "AP-CLIP": (72.0, 55.0)}
        return pd.DataFrame([{"method": m, "dataset": dataset, "seed": s, "metric": metric, "value": values[m][i],
                              "run_dir": str(run_dirs[m])}
                             for m in methods for s in seeds for i, metric in enumerate(("base", "novel"))])
    monkeypatch.setattr(experiments, "grid", grid)
    return reproduce.table2_base_to_novel(profile="paper", config="base2novel", dataset="hmdb51",
                                          paper_dataset="HMDB-51", seeds=seeds)


def test_the_table_says_same_protocol_only_when_nothing_deviates(tmp_path, monkeypatch):
    monkeypatch.setenv("APCLIP_FIGURES", str(tmp_path / "figures"))
    runs = {m: write_run(tmp_path / m, method=m) for m in ("ViFi-CLIP", "AP-CLIP")}
    clean = table2_from(monkeypatch, runs)
    same = "Profile: paper. Ours and the paper's numbers are on the same protocol."
    assert same in clean.files.md.read_text() and same in reproduce.checked_text(clean)
    check = json.loads(clean.files.json.read_text())["protocol_check"]
    assert check["same_as_paper"] is True and check["deviations"] == []
    assert check["seeds"] == {"label": "seeds", "run": [1, 2, 3], "paper": [1, 2, 3]}
    assert check["models"] == [{"model_name": "ViT-B-16", "pretrained": "openai", "quick_gelu": None,
                                "pretrained_fingerprint": None}]  # written before training recorded one
    counts = {(s["role"], s["split"]): (s["listed"], s.get("evaluated", s.get("used")), s["skipped"]) for s in
              check["splits"]}
    assert counts == {("train", "hmdb51_fs_base_s1_train"): (416, 416, 0), ("eval", "hmdb51_base_val"): (780, 780, 0),
                      ("eval", "hmdb51_novel_val"): (750, 750, 0)}
    # only the dataset this table ran: no NaN rows for the paper's other datasets
    assert set(clean.table["dataset"]) == {"HMDB-51"} and clean.table["ours"].notna().all()

    runs["AP-CLIP"] = write_run(tmp_path / "failing", failed=9)
    partial = table2_from(monkeypatch, runs, seeds=(1,))
    md = partial.files.md.read_text()
    assert "same protocol" not in md and "same protocol" not in reproduce.checked_text(partial)
    expected = ["evaluation videos that failed to decode (left out of the accuracy): hmdb51_base_val 0-9 (over runs) "
                "of 780; hmdb51_novel_val 0-9 (over runs) of 750", "seeds: [1] of the paper's [1, 2, 3]"]
    said = "Profile: paper. Deviates from the paper's protocol:\n" + "\n".join(f"- {line}" for line in expected)
    assert said in md and said in reproduce.checked_text(partial)
    assert json.loads(partial.files.json.read_text())["protocol_check"]["deviations"] == expected


def test_a_shorter_schedule_or_other_prompts_are_not_the_papers_protocol(tmp_path, monkeypatch):
    """Counts, seeds, frames and model alike, a run trained 1 epoch of 2 steps with another similarity is
    not the paper's: every setting that changes what is trained or scored is compared with the preset's for
    that run's method, and where they are is not (workers, decoder, per-GPU batch)."""
    monkeypatch.setenv("APCLIP_FIGURES", str(tmp_path / "figures"))
    harmless = dict(num_workers=0, video_backend="pyav", batch_size=2, eval_batch_size=1, precision="fp32")
    runs = {"ViFi-CLIP": write_run(tmp_path / "vifi", method="ViFi-CLIP", **harmless),
            "AP-CLIP": write_run(tmp_path / "ap", epochs=1, max_steps_per_epoch=2, similarity="mean", **harmless)}
    check = json.loads(table2_from(monkeypatch, runs).files.json.read_text())["protocol_check"]
    assert check["deviations"] == ["setting epochs = 1 (the paper: 11) in 1 of 2 runs",
                                   "setting max_steps_per_epoch = 2 (the paper: 0) in 1 of 2 runs",
                                   "setting similarity = mean (the paper: maka) in 1 of 2 runs"]
    assert "config" not in check["runs"][0]  # the JSON records what it ran on, not the whole config twice
    # the paper's settings follow the run's dataset: UCF-101's own prompts are the paper's, HMDB-51's are not
    ucf = {"dataset": "ucf101", "seed": 1}
    assert experiments.paper_settings("base2novel", "AP-CLIP", ucf)["prompt_file"] == "prompts/ucf101.json"
    assert experiments.paper_settings("base2novel", "AP-CLIP", {"dataset": "ssv2", "seed": 2})["flip"] is False
    mixed = {"run_dir": "r", "config": {**experiments.paper_settings("base2novel", "AP-CLIP", ucf),
                                        "prompt_file": "prompts/hmdb51.json"}}
    assert deviations.settings_lines([mixed], {"r": experiments.paper_settings("base2novel", "AP-CLIP", ucf)}) == \
        ["setting prompt_file = prompts/hmdb51.json (the paper: prompts/ucf101.json)"]
    dotted = {"run_dir": "r", "config": {**mixed["config"], "prompt_file": "./prompts/ucf101.json"}}
    assert deviations.settings_lines([dotted], {"r": experiments.paper_settings("base2novel", "AP-CLIP", ucf)}) == []


def test_prompt_files_are_compared_by_content_where_the_run_recorded_it(tmp_path):
    from apclip_core.engine.evaluate import sha256_file

    ucf = {"dataset": "ucf101", "seed": 1}
    paper = {"r": experiments.paper_settings("base2novel", "AP-CLIP", ucf)}
    renamed = tmp_path / "my_ucf_prompts.json"          # the shipped file under another name: the same protocol
    renamed.write_bytes((REPO / "prompts/ucf101.json").read_bytes())
    copy = {"run_dir": "r", "config": {**paper["r"], "prompt_file": str(renamed)},
            "prompt_sha256": {str(renamed): sha256_file(renamed)}}
    assert deviations.settings_lines([copy], paper) == []
    assert deviations.settings_lines([{**copy, "prompt_sha256": {}}], paper) == [  # no sha recorded: by path
        f"setting prompt_file = {renamed} (the paper: prompts/ucf101.json)"]
    edited = {"run_dir": "r", "config": paper["r"], "prompt_sha256": {"prompts/ucf101.json": "0" * 64}}
    shipped = sha256_file(REPO / "prompts/ucf101.json")  # the same path, other content: not the same protocol
    assert deviations.settings_lines([edited], paper) == [
        f"setting prompt_file = prompts/ucf101.json (content sha256 {'0' * 64}) "
        f"(the paper: prompts/ucf101.json (content sha256 {shipped}))"]


def test_the_effective_batch_is_compared_as_it_ran(tmp_path):
    """batch 8 on 16 GPUs steps with 128 videos whatever effective_batch_size said: the run's realised batch
    (metrics.json) is what is compared; a run from before it was recorded (and old runs' missing fields) as asked."""
    folder = write_run(tmp_path / "run", method="AP-CLIP")
    metrics = json.loads((folder / "metrics.json").read_text())
    del metrics["config"]["missing_videos"]  # trained before the option existed: its default then
    (folder / "metrics.json").write_text(json.dumps({**metrics, "effective_batch": 128}))
    record = experiments.run_record(folder)
    paper = {record["run_dir"]: experiments.paper_settings("base2novel", "AP-CLIP", {"dataset": "hmdb51", "seed": 1})}
    assert deviations.settings_lines([record], paper) == ["setting effective_batch_size = 128 (the paper: 64)"]
    (folder / "metrics.json").write_text(json.dumps(metrics))
    assert deviations.settings_lines([experiments.run_record(folder)], paper) == []


@pytest.mark.parametrize("preset, method, overrides", [
    ("base2novel", "AP-CLIP", {"protocol_args": {"dataset": "ssv2", "seed": 3}, "prompt_file": "prompts/ssv2.json",
                               "flip": False}),                       # Table 5's shipped paper parameters
    ("base2novel", "ViFi-CLIP", {"protocol_args": {"dataset": "UCF-101", "seed": 2},   # an alias of ucf101
                                 "prompt_file": "prompts/ucf101.json"}),
    ("k400_zero_shot", "AP-CLIP", {}),                                # Table 1: extra_eval, eval_prompt_files
    ("few_shot", "ViFi-CLIP", {"protocol_args": {"dataset": "hmdb51", "k": 16}}),
])
def test_a_run_launched_as_the_paper_profile_launches_it_is_the_papers(preset, method, overrides):
    """The config a run gets through the plan's torchrun command (--set key=JSON, read back as YAML) is
    the paper's for its method and dataset: no spurious deviation; and SSv2 with flips is one."""
    from apclip_core.engine.config import load_config, parse_overrides

    cfg = experiments.make_config(preset, method, **overrides)
    command = experiments.train_command(preset, cfg, {**experiments.method_overrides(method), **overrides},
                                        gpus_per_node=8)
    launched = asdict(load_config(preset, **parse_overrides(command[command.index("--set") + 1:])))
    run = {"run_dir": "r", "config": launched}
    paper = {"r": experiments.paper_settings(preset, method, launched["protocol_args"])}
    assert deviations.settings_lines([run], paper) == []
    if launched["protocol_args"].get("dataset") == "ssv2":
        assert deviations.settings_lines([{**run, "config": {**launched, "flip": True}}], paper) == \
            ["setting flip = True (the paper: False)"]


def test_the_figure_draws_the_protocol_statement():
    ours = pd.DataFrame([{"method": m, "dataset": "HMDB-51", "metric": "novel", "value": v}
                         for m, v in (("ViFi-CLIP", 50.0), ("AP-CLIP", 55.0))])
    lines = deviations.statement(["seeds: [1] of the paper's [1, 2, 3]"]).splitlines()
    fig = tables.table_figure(ours, pd.DataFrame(), title="t", profile="paper", protocol_lines=lines)
    text = "\n".join(t.get_text() for t in fig.texts)
    assert "Deviates from the paper's protocol:\n- seeds: [1] of the paper's [1, 2, 3]" in text
    smoke = tables.table_figure(ours, pd.DataFrame(), title="t", profile="smoke", protocol_lines=lines)
    assert "Deviates" not in "\n".join(t.get_text() for t in smoke.texts)


# ---- end to end: a paper-profile table on a benchmark with videos missing --------------------------------
def partial_copy(bench_root: Path, dest: Path, drop: dict[str, int]) -> set[str]:
    """The benchmark under `dest` (files linked), without the first `n` videos of each named list."""
    gone: set[str] = set()
    for name, n in drop.items():
        lines = (bench_root / "splits" / "base2novel" / name).read_text().split("\n")
        gone |= set([line.split()[0] for line in lines if line.strip()][:n])
    for path in bench_root.rglob("*"):
        rel = path.relative_to(bench_root)
        if path.is_file() and rel.as_posix() not in gone:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(path, dest / rel)
    return gone


def test_a_paper_profile_table_on_partial_data_lists_what_it_skipped(tmp_path, monkeypatch, bench_root):
    monkeypatch.setenv("APCLIP_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("APCLIP_FIGURES", str(tmp_path / "figures"))
    root = tmp_path / "bench"
    gone = partial_copy(bench_root, root, {"fs_base_s1_train.txt": 10, "base_val.txt": 4, "novel_val.txt": 6})
    protocol = bench_base_to_novel(root)
    expected = {s.name: (len(s.records), sum(r.path in gone for r in s.records)) for s in protocol.train + protocol.eval}
    tiny = dict(pretrained=None, epochs=1, max_steps_per_epoch=1, batch_size=2, effective_batch_size=2, frames=2,
                temporal_views=1, spatial_crops=1, num_workers=0, warmup_epochs=1, max_videos_per_split=8,
                protocol_args={"seed": 1, "root": str(root)})
    result = reproduce.run_table("table2_base_to_novel", profile="paper", config="bench_base2novel",
                                 methods=["AP-CLIP"], overrides=tiny, seeds=[1], partial_data=True)  # one run: CI time
    check = result.protocol_check
    recorded = {s["split"]: (s["listed"], s["skipped"]) for s in check["splits"]}
    assert recorded == expected and all(n for _, n in expected.values())
    assert {r["missing_videos"] for r in check["runs"]} == {"skip"}
    assert all(s.get("replaced", 0) == 0 and s.get("failed", 0) == 0 for s in check["splits"])
    assert check["same_as_paper"] is False
    text = reproduce.checked_text(result)
    assert "Profile: paper. Deviates from the paper's protocol:" in text and "same protocol" not in text
    train, base, novel = protocol.train[0], *protocol.eval
    for line in (f"- training videos skipped (not on disk, or not a video file): {train.name} {expected[train.name][1]} of "
                 f"{expected[train.name][0]}",
                 f"- evaluation videos skipped (not on disk, or not a video file): {base.name} {expected[base.name][1]} of "
                 f"{expected[base.name][0]}; {novel.name} {expected[novel.name][1]} of {expected[novel.name][0]}",
                 f"- a subset of the lists (max_videos_per_split / eval_max_videos): {train.name} 8 of "
                 f"{expected[train.name][0] - expected[train.name][1]} trained on",
                 "- seeds: [1] of the paper's [1, 2, 3]",
                 "- model: apclip-tiny with no pretrained weights (random init) (the paper: ViT-B/16 with OpenAI's "
                 "weights (QuickGELU))"):
        assert line in text and line in result.files.md.read_text()


# ---- the entry points: preflight --partial, the notebook parameter ----------------------------------------
def test_preflight_partial_reports_missing_videos_as_notices_and_stops_on_empty_lists(splits_root, tmp_path,
                                                                                     monkeypatch):
    from apclip_core.data.annotations import read_video_list
    from apclip_core.paper.preflight import check

    monkeypatch.setenv("APCLIP_SPLITS", str(splits_root))
    monkeypatch.setenv("APCLIP_DATA", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    b2n = splits_root / "datasets_splits" / "base2novel_splits" / "hmdb_splits"
    present = {"base_val.txt": 5, "novel_val.txt": 2, "fs_base_s1_train.txt": 3, "fs_base_s2_train.txt": 3,
               "fs_base_s3_train.txt": 4}
    written = set()
    for name, n in present.items():
        for rec in read_video_list(b2n / name)[:n]:
            (tmp_path / "hmdb51" / rec.path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "hmdb51" / rec.path).write_bytes(b"RIFF\0\0\0\0AVI LIST")  # starts like an AVI
            written.add(rec.path)
    empty = read_video_list(b2n / "novel_val.txt")[2].path  # a download that never started: present, 0 bytes
    (tmp_path / "hmdb51" / empty).write_bytes(b"")
    written.add(empty)
    notebook = REPO / "notebooks" / "12_table2_base_to_novel.ipynb"
    stopped = check(notebook, "paper")
    assert sum(" missing under " in p for p in stopped) == 5 and sum("present but unreadable" in p for p in stopped) == 1
    assert all("(or PARTIAL=1: run on the videos present" in p for p in stopped if " missing under " in p)
    notices: list[str] = []
    problems = check(notebook, "paper", partial=True, notices=notices)
    assert not any(p.startswith("videos of") for p in problems)
    assert any("HF_HUB_OFFLINE is set" in p for p in problems)  # missing weights still stop the run
    lists = {name[:-4]: read_video_list(b2n / name) for name in present}  # the training lists share videos
    said = {m.group(1): (int(m.group(2)), int(m.group(3)))
            for n in notices if (m := re.match(r"videos of hmdb51_(\S+): (\d+) of (\d+) missing", n))}
    assert said == {name: (sum(r.path not in written for r in recs), len(recs)) for name, recs in lists.items()}
    assert all("skipped (PARTIAL=1)" in n for n in notices if " missing under " in n)
    assert [n for n in notices if "present but unreadable" in n][0].startswith("videos of hmdb51_novel_val: 1 of 750")

    (tmp_path / "hmdb51").rename(tmp_path / "elsewhere")  # nothing at all: even PARTIAL has nothing to run on
    problems = check(notebook, "paper", partial=True, notices=[])
    assert sum("none is present, so even PARTIAL=1 has nothing to run on" in p for p in problems) == 5


def test_partial_data_reaches_the_notebook_plan_and_runs_under_one_name(monkeypatch, tmp_path):
    import papermill

    from apclip_core import notebook
    from apclip_core.paper.preflight import notebook_parameters

    table2 = REPO / "notebooks" / "12_table2_base_to_novel.ipynb"
    params = notebook_parameters(table2, "smoke")
    assert params["partial_data"] is False  # a parameter of the notebook, off by default
    assert notebook_parameters(table2, "smoke", partial=True)["partial_data"] is True  # plan --partial
    runs = reproduce.table_runs("table2_base_to_novel", **notebook_parameters(table2, "smoke", partial=True))
    assert {overrides["missing_videos"] for *_, overrides in runs} == {"skip"}
    named = {experiments.make_config(preset, method, **o).name for method, _, preset, o in runs}
    plain = {experiments.make_config(preset, method, **o).name for method, _, preset, o in
             reproduce.table_runs("table2_base_to_novel", **params)}
    assert named.isdisjoint(plain)  # a run on partial data is never reused as one on every video

    seen = {}
    monkeypatch.setattr(papermill, "execute_notebook", lambda nb, out, parameters, **_: seen.update(parameters))
    notebook.run(table2, tmp_path / "out.ipynb", partial=True)
    assert seen == {"partial_data": True}
