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

N_VIDEOS = 24  # an evenly spaced subset of the benchmark's 96 novel-class videos: every class, a fast test
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
    assert payload["datasets"]["apclip_bench"]["splits"]["bench_novel_val"] == {"videos": N_VIDEOS, "classes": 12,
                                                                                "subset_of": 96}
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
    from apclip_core.model import convert

    weights_id = pretrained_tiny_clip().parent.name
    key = zoo.standin_key(weights_id)
    assert zoo.bench_models()["OST"].parent.parent.name == key
    for module in (convert, peer_files):
        changed = tmp_path / f"{module.__name__}.py"
        changed.write_bytes(Path(module.__file__).read_bytes() + b"\n# a change\n")
        with monkeypatch.context() as mp:
            mp.setattr(module, "__file__", str(changed))
            assert zoo.standin_key(weights_id) != key
    assert zoo.standin_key(weights_id) == key
