"""`apclip export`: a fine-tuned run and a converted peer's checkpoint as folders ready for a model hub,
their model cards parsed back (YAML metadata with model-index results) the way a hub reads them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from apclip_core.engine.evaluate import sha256_file
from apclip_core.paper.export import export
from apclip_core.model.video_clip import load_checkpoint

REPO = Path(__file__).resolve().parent.parent


def card_of(folder: Path) -> tuple[dict, str]:
    """(metadata, body) of a model card: the YAML block between the first two '---' lines, as a hub parses it."""
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    header, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(header), body


def test_a_fine_tuned_run_exports_weights_config_and_a_card_with_its_results(tiny_run, tmp_path):
    out = export(tiny_run, tmp_path / "hub")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    # the weights are the run's, read back without unpickling
    exported, trained = load_checkpoint(out / "model.safetensors"), load_checkpoint(tiny_run)
    assert all(torch.equal(exported.state_dict()[k], v) for k, v in trained.state_dict().items())

    metrics = json.loads((tiny_run / "metrics.json").read_text())
    shipped = sha256_file(REPO / "prompts/apclip_bench.json")
    assert metrics["prompt_sha256"] == {"prompts/apclip_bench.json": shipped}   # the run recorded it
    config = json.loads((out / "config.json").read_text())
    assert config["prompt_sha256"] == {"prompts/apclip_bench.json": shipped}
    assert config["train_config"]["prompt_file"] == "prompts/apclip_bench.json"

    meta, body = card_of(out)
    assert meta["license"] == "mit" and meta["pipeline_tag"] == "video-classification"
    [index] = meta["model-index"]
    assert index["name"] == tiny_run.name
    by_split = {r["dataset"]["split"]: {m["name"]: m["value"] for m in r["metrics"]}
                for r in index["results"] if "split" in r["dataset"]}
    for split in ("bench_base_val", "bench_novel_val"):
        record = json.loads((tiny_run / f"eval_{split}.json").read_text())
        assert by_split[split] == {"top-1 accuracy": round(record["top1"], 2), "top-5 accuracy": round(record["top5"], 2)}
    headline = [r for r in index["results"] if "split" not in r["dataset"]]
    final = metrics["epochs"][-1]["eval"]
    assert {m["name"]: m["value"] for m in headline[0]["metrics"]} == {
        "harmonic mean of base and novel top-1": round(final["hm"], 2)}
    assert "&id" not in (out / "README.md").read_text()  # plain YAML, no anchors
    for said in ("## Training config", '"lr": 0.0001', "## Protocol and deviations", shipped,
                 "- a subset of the lists", "- model: apclip-tiny", "## Input: pixels, frames and pooling", str(trained.config["mean"]),
                 "trained on 2 frames", "## Source and licence"):
        assert said in body, said


def test_a_converted_peer_card_names_the_peer_its_licence_and_published_numbers(tmp_path):
    from apclip_core.paper.export import model_index, published_numbers
    from apclip_core.paper import zoo

    out = export(zoo.bench_models()["FROSTER"], tmp_path / "froster")  # the tiny CLIP in FROSTER's layout, converted
    meta, body = card_of(out)
    assert meta["license"] == "cc-by-nc-sa-4.0" and meta["base_model"].startswith("FROSTER")
    assert "FROSTER's released weights: CC BY-NC-SA 4.0" in body
    assert "convert --from froster" in body and "mean_of_frame_logits" in body
    assert "Not fine-tuned by apclip" in body and "Deviates" not in body
    assert json.loads((out / "config.json").read_text())["converted_from"]["source_format"] == "froster"
    pub = zoo.published()
    froster = pub[pub.model == "FROSTER"]
    for row in froster.itertuples():  # the peer's numbers beside ours, each with its source and protocol
        assert f"| {row.backbone} | {row.dataset} | {row.value} |" in body and row.source in body
    # ...but in the metadata only on this model's backbone: the tiny stand-in is no ViT-B/16
    assert meta["backbone"] != "ViT-B/16" and not [r for r in meta["model-index"][0]["results"] if "source" in r]
    [index] = model_index("froster", {}, [], published_numbers({"source_format": "froster"}), "zero_shot", "ViT-B/16")
    assert {(r["dataset"]["name"], r["metrics"][0]["value"], r["source"]["name"].split(":")[0])
            for r in index["results"]} == set(zip(froster.dataset, froster.value.astype(float), froster.source))


def test_export_of_nothing_says_what_to_give(tmp_path, capsys):
    from apclip_core.__main__ import main

    assert main(["export", str(tmp_path / "nope"), str(tmp_path / "out")]) == 1
    assert "nope not found: give a run folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
