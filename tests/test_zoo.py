"""Table 1's zoo (apclip_core.paper.zoo) on the embedded benchmark: the tiny CLIP written in each peer's
file layout, converted by the real importer, evaluated with every prompt strategy x similarity."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from apclip_core.engine.evaluate import sha256_file
from apclip_core.paper import tables, zoo

N_VIDEOS = 24  # an evenly spaced subset of the benchmark's 768 novel-class videos: every class, a fast test
VARIANTS = {(s, m) for s in zoo.STRATEGIES for m in zoo.SIMILARITIES}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, bench_root):
    """One smoke zoo (5 models x 6 variants), counting the videos each model's image tower encoded."""
    from apclip_core.engine.feature_cache import visual_fingerprint
    from apclip_core.model.video_clip import VideoCLIP

    encoded = Counter()  # image tower (its fingerprint) -> videos it encoded
    original = VideoCLIP.encode_video

    def counting(self, video, **kwargs):
        encoded[visual_fingerprint(self)] += video.shape[0]
        return original(self, video, **kwargs)

    folder = tmp_path_factory.mktemp("zoo")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(VideoCLIP, "encode_video", counting)
        result = zoo.table1_zoo(temporal_views=1, spatial_crops=1, max_videos=N_VIDEOS, figures=folder / "figures",
                                feature_cache=str(folder / "frames"))
    return {"result": result, "encoded": encoded, "folder": folder}


def test_every_model_gets_every_variant(smoke):
    table = smoke["result"].table
    assert list(dict.fromkeys(table["model"])) == list(zoo.SOURCE_FORMATS)
    for model in zoo.SOURCE_FORMATS:
        rows = table[table["model"] == model]
        assert {(p, s) for p, s in zip(rows["prompts"], rows["similarity"])} == VARIANTS
        assert all(isinstance(v, float) and 0 <= v <= 100 for v in rows["top-1 (ours)"])
    raw = smoke["result"].rows
    assert len(raw) == len(zoo.SOURCE_FORMATS) * len(VARIANTS)
    assert (raw["n_videos"] == N_VIDEOS).all() and (raw["n_failed"] == 0).all()


def test_each_image_tower_encodes_each_video_once(smoke):
    """Six variants, one encoding: every image tower sees every video of the split exactly once. The stand-ins
    hold the same tiny CLIP: two that end up with the same image tower (Open-VCLIP's and FROSTER's, where
    0.5 x w + 0.5 x w is exactly w) share the features in the cache, as their fingerprint says they may."""
    towers = {m: r["visual_fingerprint"] for m, r in smoke["result"].run.models.items()}
    assert towers["Open-VCLIP"] == towers["FROSTER"] and len(set(towers.values())) < len(towers)
    assert smoke["encoded"] == {fingerprint: N_VIDEOS for fingerprint in towers.values()}
    first = {}
    for model, fingerprint in towers.items():
        first.setdefault(fingerprint, model)
    assert smoke["result"].run.encoded == {m: N_VIDEOS if first[f] == m else 0 for m, f in towers.items()}


def test_the_files_say_what_was_run(smoke):
    files = smoke["result"].files
    payload = json.loads(files.json.read_text())
    models = payload["models"]
    assert set(models) == set(zoo.SOURCE_FORMATS)
    assert models["ViFi-CLIP"]["converted_from"]["token_embedding_from_base"] is True
    assert models["Open-VCLIP"]["expand_temporal_view"] == 8 and models["OST"]["source_format"] == "ost"
    # the stand-ins are rewritten on each machine (torch.save stamps a fresh id): the tensors' fingerprint says
    # what ran, a file hash would not repeat; a user's checkpoint is recorded by its sha256 (next test)
    assert all(m["sha256"] is None and len(m["visual_fingerprint"]) == 64 for m in models.values())
    assert payload["protocol"]["frames"] == 8 and payload["protocol"]["views"] == 1
    assert payload["datasets"]["apclip_bench"]["splits"]["bench_novel_val"] == {
        "listed": 768, "videos": N_VIDEOS, "classes": 24, "skipped": 0, "subset_of": 768}
    # what it ran on, per split, in the markdown (and the PNG's notes: test_partial_data_...)
    assert f"- apclip_bench bench_novel_val: 768 listed, {N_VIDEOS} evaluated, an evenly spaced subset of the 768 " \
           "present (max_videos)" in files.md.read_text()
    assert payload["protocol_check"]["ran_on"] == [f"apclip_bench bench_novel_val: 768 listed, {N_VIDEOS} evaluated, "
                                                   "an evenly spaced subset of the 768 present (max_videos)"]
    assert files.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "nan" not in files.md.read_text()
    assert pd.read_csv(files.csv)["model"].nunique() == len(zoo.SOURCE_FORMATS)


def test_a_missing_model_is_listed_not_dropped_and_features_are_reused(smoke, tmp_path):
    """A second zoo with the same feature cache encodes nothing again; a model without a file is a row."""
    checkpoints = zoo.bench_models()
    result = zoo.table1_zoo(models={"Open-VCLIP": str(checkpoints["Open-VCLIP"]), "OST": str(tmp_path / "ost.pt")},
                            temporal_views=1, spatial_crops=1, max_videos=N_VIDEOS, figures=tmp_path,
                            feature_cache=str(smoke["folder"] / "frames"))
    assert result.run.encoded == {"Open-VCLIP": 0}
    same = smoke["result"].table.query("model == 'Open-VCLIP'")["top-1 (ours)"].tolist()
    assert result.table.query("model == 'Open-VCLIP'")["top-1 (ours)"].tolist() == same
    ost = result.table[result.table["model"] == "OST"]
    assert len(ost) == 1 and ost["top-1 (ours)"].iloc[0] == ""
    assert ost["note"].iloc[0].startswith(f"not provided: {tmp_path / 'ost.pt'}") and "--from ost" in ost["note"].iloc[0]
    payload = json.loads(result.files.json.read_text())
    assert payload["not_provided"] == {"OST": str(tmp_path / "ost.pt")}
    assert payload["models"]["Open-VCLIP"]["sha256"] == sha256_file(checkpoints["Open-VCLIP"])
    with pytest.raises(FileNotFoundError, match="no model of the zoo is provided: OST"):
        zoo.table1_zoo(models={"OST": str(tmp_path / "ost.pt")}, figures=tmp_path)


def _run(records: dict, values: dict) -> zoo.ZooRun:
    """A ZooRun without evaluating: {model: (source_format, backbone)}, {(model, prompts, similarity): [top1 per split]}."""
    run = zoo.ZooRun(models={m: {"source_format": f, "backbone": b} for m, (f, b) in records.items()})
    for (model, prompts, sim), per_split in values.items():
        for i, v in enumerate(per_split, 1):
            run.rows.append({"model": model, "dataset": "HMDB-51", "split": f"hmdb51_val{i}", "prompts": prompts,
                             "similarity": sim, "top1": v})
    return run


def test_published_numbers_gains_and_new_marks():
    run = _run({"Open-VCLIP": ("openvclip", "ViT-B/16"), "FROSTER": ("froster", "ViT-B/16"),
                "OST": ("ost", "ViT-B/16"), "Big Open-VCLIP": ("openvclip", "ViT-L/14")},
               {("Open-VCLIP", "set", "mean"): [50.0, 52.0, 54.0], ("Open-VCLIP", "action_conditioned", "maka"): [55, 56, 57],
                ("FROSTER", "set", "mean"): [54.0, 54.0, 54.0], ("FROSTER", "action_conditioned", "maka"): [56, 56, 56],
                ("OST", "single", "mean"): [55.0, 56.0, 57.0], ("OST", "action_conditioned", "mean"): [50, 50, 50],
                ("Big Open-VCLIP", "set", "mean"): [60.0, 60.0, 60.0]})
    table, gains = zoo.build_table(run)
    row = {(r["model"], r["prompts"], r["similarity"]): r for _, r in table.iterrows()}
    own = row["Open-VCLIP", "set", "mean"]
    assert (own["top-1 (ours)"], own["± std (ours)"], own["splits"]) == (52.0, 2.0, 3)
    assert (own["published"], own["± std (published)"]) == (53.9, 1.2) and "Open-VCLIP (ICML'23)" in own["published by"]
    plugged = row["Open-VCLIP", "action_conditioned", "maka"]
    assert plugged["published"] == 57.0 and plugged["gain (paper)"] == pytest.approx(3.1)
    assert plugged["gain of action prompts (ours)"] == pytest.approx(4.0) and plugged["note"] != zoo.NEW
    assert row["FROSTER", "set", "mean"]["published"] == 54.8
    frost = row["FROSTER", "action_conditioned", "maka"]
    assert frost["note"] == zoo.NEW and frost["published"] == "" and frost["gain (paper)"] == ""
    assert frost["gain of action prompts (ours)"] == pytest.approx(2.0)
    ost_own = row["OST", "single", "mean"]
    assert ost_own["published"] == 55.9 and ost_own["± std (published)"] == ""  # OST reports no std
    assert row["OST", "action_conditioned", "mean"]["note"] == zoo.NEW
    assert row["Big Open-VCLIP", "set", "mean"]["published"] == ""  # not a name any paper reports
    assert gains.set_index("comparison")["ours"].round(1).to_dict() == {"Open-VCLIP + action prompts": 4.0,
                                                                        "FROSTER + action prompts": 2.0}
    # the smoke profile puts the papers' HMDB-51 ViT-B/16 numbers beside rows of another dataset and backbone
    small = _run({"Open-VCLIP": ("openvclip", "ViT-w128-l4-p8-i64")}, {("Open-VCLIP", "set", "mean"): [10.0]})
    small.rows[0]["dataset"] = "apclip_bench"
    table, _ = zoo.build_table(small, paper_dataset="HMDB-51", paper_backbone="ViT-B/16")
    assert table["published"].tolist() == [53.9] and "on HMDB-51" in table["published by"].iloc[0]


def test_published_numbers_agree_with_table1_where_both_have_them():
    zoo_numbers = zoo.published().rename(columns={"model": "method"})
    t1 = tables.paper_table("table1_zero_shot")
    both = zoo_numbers.merge(t1, on=["method", "backbone", "dataset"], suffixes=("", "_t1"))
    assert len(both) == 18  # vanilla CLIP, ViFi-CLIP, Open-VCLIP (B/16, L/14) and its + Action prompts, 3 datasets
    assert (both["value"] == both["value_t1"]).all() and (both["std"] == both["std_t1"]).all()
    assert {"FROSTER", "OST"} <= set(zoo_numbers["method"])
    assert zoo_numbers["protocol"].str.len().min() > 10  # every number says which protocol it was measured with


def test_preflight_of_the_paper_profile_says_what_is_missing(tmp_path):
    from apclip_core.paper.preflight import zoo_problems

    problems = zoo_problems({"profile": "paper", "models": {"OST": str(tmp_path / "ost.pt")},
                             "datasets": ["hmdb51", "imagenet"], "max_videos": 5,
                             "prompt_files": {"hmdb51": str(tmp_path / "none.json")}})
    text = "\n".join(problems)
    assert "no model file of the zoo is here (OST:" in text and "convert --from" in text
    assert "no zero-shot splits for dataset 'imagenet'" in text and "none.json is missing" in text
    assert "no GPU" not in text  # max_videos: a first look on a subset is fine on a CPU


def test_each_model_is_pooled_as_its_authors_pool(smoke):
    """ViFi-CLIP's "mean" rows average its raw frame features (the pooling its converted checkpoint records);
    the others L2-normalise each frame first. Recorded beside each model."""
    used = {m: r["similarities"] for m, r in smoke["result"].run.models.items()}
    assert used["ViFi-CLIP"] == {"mean": "mean_raw", "maka": "maka"}
    assert all(u == {"mean": "mean", "maka": "maka"} for m, u in used.items() if m != "ViFi-CLIP")


def test_converted_standins_compute_the_tiny_clips_own_features():
    """The stand-ins are converted with the tiny CLIP's own heads and activation (shapes cannot tell them):
    the converted files' image and text towers give exactly the features of the tiny CLIP as it was trained.
    Read with OpenAI's convention (heads of 64, QuickGELU), they did not (the degenerate smoke rows)."""
    import open_clip
    import torch

    from apclip_core.embedded.pretrain import MODEL_NAME, pretrained_tiny_clip
    from apclip_core.model.video_clip import load_checkpoint, register_model_configs

    register_model_configs()
    original = open_clip.create_model(MODEL_NAME, pretrained=None)
    original.load_state_dict(torch.load(pretrained_tiny_clip(), map_location="cpu", weights_only=True))
    original.eval()
    frames = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    tokens = open_clip.tokenize(["a video of blorping", "an actor dressed in red next to a ball"])
    with torch.no_grad():
        want_image, want_text = original.encode_image(frames), original.encode_text(tokens)
    for name in ("Vanilla CLIP", "ViFi-CLIP", "OST"):  # frame-wise towers (Open-VCLIP's attends across frames)
        path = zoo.bench_models()[name]
        converted = load_checkpoint(path)
        record = json.loads(path.with_name(path.name + ".json").read_text())["converted_from"]
        assert record["heads"] == [4, 4] and record["quick_gelu"] is False and record["heads_and_activation_stated"]
        with torch.no_grad():
            torch.testing.assert_close(converted.clip.encode_image(frames), want_image, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(converted.clip.encode_text(tokens), want_text, atol=1e-5, rtol=1e-5)


def test_the_standins_are_converted_again_when_the_importer_changes(monkeypatch, tmp_path):
    """The stand-ins' cache key hashes the bytes of the code that writes and converts them."""
    from apclip_core.embedded import peer_files
    from apclip_core.embedded.pretrain import pretrained_tiny_clip
    from apclip_core.model import convert, video_clip

    weights_id = pretrained_tiny_clip().parent.name
    key = zoo.standin_key(weights_id)
    assert zoo.bench_models()["OST"].parent.parent.name == f"{key}-safetensors"
    for module in (convert, peer_files, video_clip):
        changed = tmp_path / f"{module.__name__}.py"
        changed.write_bytes(Path(module.__file__).read_bytes() + b"\n# a change\n")
        with monkeypatch.context() as mp:
            mp.setattr(module, "__file__", str(changed))
            assert zoo.standin_key(weights_id) != key
    assert zoo.standin_key(weights_id) == key


def _bench_without(tmp_path, bench_root, gone: list[str]) -> Path:
    """A copy of the embedded benchmark (links) whose videos `gone` are not videos (an error page saved under
    their names: a failed download). Not absent: a benchmark with files missing is rendered again on use."""
    copy = tmp_path / "apclip_bench"
    for entry in bench_root.iterdir():
        if entry.name != "videos":
            (copy / entry.name).parent.mkdir(parents=True, exist_ok=True)
            (copy / entry.name).symlink_to(entry)
    for video in (bench_root / "videos").rglob("*"):
        relative = video.relative_to(bench_root).as_posix()
        if video.is_file():
            (copy / relative).parent.mkdir(parents=True, exist_ok=True)
            if relative in gone:
                (copy / relative).write_bytes(b"<html><body>404 Not Found</body></html>")
            else:
                (copy / relative).symlink_to(video)
    return copy


def test_partial_data_skips_missing_videos_before_decoding_and_the_paper_profile_says_it_deviates(
        tmp_path, bench_root, monkeypatch):
    """PARTIAL=1 on the zoo: the videos a run cannot use (not on disk, or not a video file) are left out before
    decoding and counted per split, in the rows, the JSON, the markdown and the PNG; the paper-profile result
    says what deviates. Without it the same videos fail to decode and are counted as failed."""
    from apclip_core.data.protocols import bench_zero_shot

    listed = bench_zero_shot(bench_root).eval[0].records
    gone = [listed[i].path for i in (0, 32, 64)]  # in the evenly spaced subset of 24 (every 32nd video)
    monkeypatch.setenv("APCLIP_DATA", str(_bench_without(tmp_path, bench_root, gone).parent))
    drawn = []  # the PNG's notes, as drawn (line breaks of the wrapping undone)
    original = tables.table_figure

    def drawing(*args, **kwargs):
        fig = original(*args, **kwargs)
        drawn.append(" ".join(" ".join(t.get_text() for t in fig.texts).split()))
        return fig

    monkeypatch.setattr(tables, "table_figure", drawing)
    model = {"Vanilla CLIP": str(zoo.bench_models()["Vanilla CLIP"])}
    common = dict(models=model, temporal_views=1, spatial_crops=1, max_videos=N_VIDEOS)

    stopped = zoo.table1_zoo(**common, figures=tmp_path / "stop")
    assert set(stopped.rows["n_failed"]) == {3} and set(stopped.rows["n_skipped"]) == {0}
    assert stopped.protocol_check["ran_on"] == [f"apclip_bench bench_novel_val: 768 listed, {N_VIDEOS - 3} evaluated, "
                                                "3 failed to decode (left out of the accuracy), an evenly spaced "
                                                "subset of the 768 present (max_videos)"]
    assert stopped.protocol_check["ran_on"][0] in drawn[0]  # the smoke profile's PNG says it too

    partial = zoo.table1_zoo(**common, partial_data=True, profile="paper", figures=tmp_path / "partial")
    assert partial.profile == "paper" and json.loads(partial.files.json.read_text())["profile"] == "paper"
    assert set(partial.rows["n_skipped"]) == {3} and set(partial.rows["n_failed"]) == {0}
    assert set(partial.rows["n_videos"]) == {N_VIDEOS}  # drawn from the 765 present
    ran_on = (f"apclip_bench bench_novel_val: 768 listed, {N_VIDEOS} evaluated, 3 skipped (not on disk, or not a "
              "video file), an evenly spaced subset of the 765 present (max_videos)")
    assert partial.protocol_check["ran_on"] == [ran_on]
    statement = partial.protocol_statement
    assert statement.startswith("Profile: paper. Deviates from the paper's protocol:")
    assert "evaluation videos skipped (not on disk, or not a video file): bench_novel_val 3 of 768" in statement
    assert "frames and views: 8 frames, 1 x 1 views at test (the paper: 8 frames, 2 x 2 views)" in statement
    assert "model:" not in statement  # each released model is beside its own published number
    md = partial.files.md.read_text()
    assert f"- {ran_on}" in md and "Deviates from the paper's protocol:" in md
    assert "Deviates from the paper's protocol: - evaluation videos skipped" in drawn[-1] and ran_on in drawn[-1]
    payload = json.loads(partial.files.json.read_text())
    assert payload["protocol"]["missing_videos"] == "skip" and payload["protocol_check"]["same_as_paper"] is False
    assert payload["splits"][0]["first_skipped"] == gone
    from apclip_core.paper import reproduce
    assert reproduce.checked_text(partial).endswith(statement)


def test_the_paper_profile_says_same_protocol_only_when_nothing_deviates():
    from apclip_core.data.views import ViewSpec

    run = zoo.ZooRun(models={"Open-VCLIP": {}})
    run.splits = [{"model": "Open-VCLIP", "dataset": "HMDB-51", "role": "eval", "split": f"hmdb51_val{i}",
                   "list_file": None, "listed": 1530, "evaluated": 1530, "failed": 0, "skipped": 0, "subset_of": None,
                   "first_skipped": [], "first_failed": []} for i in (1, 2, 3)]
    assert zoo.deviation_lines(run, ViewSpec(8, 2, 2)) == []
    assert zoo.ran_on_lines(run)[0] == "HMDB-51 hmdb51_val1: 1530 listed, 1530 evaluated"
    run.splits[1] = {**run.splits[1], "evaluated": 1529, "failed": 1, "first_failed": ["x.avi"]}
    assert zoo.deviation_lines(run, ViewSpec(8, 2, 2)) == [
        "evaluation videos that failed to decode (left out of the accuracy): hmdb51_val2 1 of 1530"]


def test_preflight_with_partial_data_turns_missing_videos_into_notices(splits_root, bench_root, tmp_path, monkeypatch):
    """PARTIAL=1 applies to the zoo as to the tables: a half-downloaded dataset is a notice with its counts;
    a dataset with no video at all is still a problem, whose way out is to leave it out of `datasets`."""
    from apclip_core.data.annotations import read_video_list
    from apclip_core.paper.preflight import zoo_problems

    monkeypatch.setenv("APCLIP_SPLITS", str(splits_root))
    monkeypatch.setenv("APCLIP_CACHE", str(tmp_path / "cache"))
    avi = next(iter(sorted(bench_root.rglob("*.avi"))))
    lists = splits_root / "datasets_splits" / "hmdb_splits"
    for record in [r for i in (1, 2, 3) for r in read_video_list(lists / f"val{i}.txt")[:5]]:
        (tmp_path / "hmdb" / record.path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "hmdb" / record.path).write_bytes(avi.read_bytes())
    (tmp_path / "ost.pt").write_bytes(b"")  # the preflight only asks whether a model file is there
    params = {"profile": "paper", "models": {"OST": str(tmp_path / "ost.pt")}, "datasets": ["hmdb51", "ucf101"],
              "video_roots": {"hmdb51": str(tmp_path / "hmdb"), "ucf101": str(tmp_path / "ucf")}, "max_videos": 5}
    stopped = "\n".join(zoo_problems(params))
    assert "hmdb51_val1: 1525 of 1530 missing" in stopped and "(or PARTIAL=1: run on the videos present" in stopped
    notices: list[str] = []
    problems = zoo_problems({**params, "partial_data": True}, notices=notices)
    assert any(n.startswith("videos of hmdb51_val1: 1525 of 1530 missing") and "skipped (PARTIAL=1)" in n
               for n in notices)
    assert not any("hmdb51" in p for p in problems)
    assert all("none is present, so even PARTIAL=1 has nothing to run on" in p and "out of the zoo's `datasets`" in p
               for p in problems) and len(problems) == 3  # UCF-101's three lists


def test_plan_says_the_zoo_trains_nothing_and_what_it_needs(capsys):
    from apclip_core.__main__ import main

    notebook = str(Path(__file__).resolve().parent.parent / "notebooks" / "18_table1_zoo.ipynb")
    assert main(["plan", notebook, "--profile", "paper"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("table1_zoo: nothing to plan: the zoo trains nothing") and "bug in apclip" not in out + err
    assert "runs/zoo/openvclip.safetensors" in out and "one GPU" in out and "estimated GPU time" in out
    assert "runs/zoo/tcclip.safetensors" in out and "runs/zoo/mote.safetensors" in out   # the re-implemented peers too
    assert main(["plan", notebook, "--json"]) == 0
    needs = json.loads(capsys.readouterr().out)
    assert needs["trains"] is False and needs["datasets"] == [
        {"dataset": "apclip_bench", "splits": ["bench_novel_val"], "videos": 768}]


def test_a_datasets_splits_share_their_prompt_features(tmp_path, monkeypatch, bench_root):
    """HMDB-51's three zero-shot splits have the same classes: each model encodes a prompt set once, not once per
    split (issue 23, item 12: 3,315 texts per split per model on CPU)."""
    from dataclasses import replace

    import torch

    from apclip_core.data.protocols import bench_zero_shot, register_protocol
    from apclip_core.data.views import ViewSpec
    from apclip_core.model.video_clip import create_model, save_checkpoint
    from apclip_core.prompts.bank import PromptBank

    monkeypatch.setenv("APCLIP_CACHE", str(tmp_path / "cache"))  # the prompt features' cache, empty
    novel = bench_zero_shot(bench_root).eval[0]

    def two_splits(root=None):
        protocol = bench_zero_shot(root)
        return replace(protocol, eval=[replace(novel, name="bench_val1"), replace(novel, name="bench_val2")])

    register_protocol(two_splits, name="bench_two_splits")
    monkeypatch.setitem(zoo.DATASETS, "apclip_bench", replace(zoo.DATASETS["apclip_bench"], protocol="bench_two_splits"))
    torch.manual_seed(0)
    checkpoint = save_checkpoint(create_model("apclip-tiny", None), tmp_path / "tiny.safetensors")
    encoded = Counter()
    original = PromptBank._encode_flat
    monkeypatch.setattr(PromptBank, "_encode_flat", lambda self, *a, **k: encoded.update([self.strategy]) or
                        original(self, *a, **k))
    run = zoo.evaluate_zoo([zoo.ZooModel("tiny", checkpoint)], ["apclip_bench"], view=ViewSpec(2, 1, 1),
                           max_videos=4, device="cpu")
    assert {row["split"] for row in run.rows} == {"bench_val1", "bench_val2"}
    assert encoded == Counter({s: 1 for s in zoo.STRATEGIES})  # one encoding per prompt set, for both splits
