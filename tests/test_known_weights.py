"""Weights identified by content (issue 23, item 1): a weights file is the paper's (OpenAI's ViT-B/16) only when
its fingerprint is recorded as such, never because of its name, path or activation."""
from __future__ import annotations

import json

import pytest
import torch

from apclip_core.model import known_weights
from apclip_core.paper import deviations


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """A random-init tiny open_clip ViT saved as a plain state dict, named as OpenAI's file would be."""
    import open_clip

    from apclip_core.model.video_clip import register_model_configs

    register_model_configs()
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "ViT-B-16.pt"
    torch.save(open_clip.create_model("apclip-tiny", pretrained=None, force_quick_gelu=True).state_dict(), path)
    return path


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A scratch copy of the shipped registry, read by everything in place of it."""
    path = tmp_path / "known_weights.json"
    path.write_text(known_weights.REGISTRY.read_text())
    monkeypatch.setattr(known_weights, "REGISTRY", path)
    return path


def as_recorded(fingerprint: str, path) -> dict:
    """The model of a run record (experiments.run_record) that started from `path`, stated as OpenAI's."""
    return {"model_name": "ViT-B-16", "pretrained": str(path), "quick_gelu": True, "pretrained_fingerprint": fingerprint}


def test_the_shipped_registry_records_nothing_it_could_not_compute():
    """OpenAI's fingerprints cannot be computed where apclip is developed: none is shipped until a maintainer
    records them (python -m apclip_core fingerprint), so every local file is 'not identified' until then."""
    assert known_weights.registry() == {}
    assert known_weights.recorded_for("ViT-B-16") == []


def test_loaded_weights_are_fingerprinted_and_float16_copies_match(standin, tmp_path):
    from apclip_core.model.video_clip import create_model

    fp = known_weights.of_model(create_model("apclip-tiny", str(standin), quick_gelu=True))
    assert fp.startswith(f"{known_weights.SCHEME}:") and fp == known_weights.fingerprint(torch.load(standin))
    half = {k: v.half() for k, v in torch.load(standin).items()}  # OpenAI's release is float16
    assert known_weights.fingerprint(half) == fp
    moved = torch.load(standin)
    moved["visual.proj"][0, 0] += 1e-2  # one weight changed (fine-tuned, another seed): another fingerprint
    assert known_weights.fingerprint(moved) != fp
    assert known_weights.of_model(create_model("apclip-tiny", None)) is None  # no weights: nothing to identify
    assert known_weights.fingerprint({"weight": torch.zeros(2)}) is None  # not an open_clip ViT CLIP


def test_a_random_init_file_named_and_stated_as_openais_is_not_the_papers_model(standin, registry):
    fp = known_weights.fingerprint(torch.load(standin))
    model = as_recorded(fp, standin)
    assert not deviations.model_is_papers(model)
    assert deviations.deviations([{"run_dir": "runs/x", "model": model, "splits": []}]) == [
        f"model: ViT-B-16 with weights {standin}, QuickGELU: not identified as OpenAI's "
        f"(the paper: {deviations.PAPER_MODEL})"]
    # a run recorded before fingerprints (none in its metrics.json) cannot be vouched for either
    assert not deviations.model_is_papers({**model, "pretrained_fingerprint": None})


def test_a_file_whose_fingerprint_is_recorded_is_identified(standin, registry, capsys):
    from apclip_core.__main__ import main

    assert main(["fingerprint", str(standin), "--model", "apclip-tiny"]) == 0
    printed = capsys.readouterr().out
    fp = printed.split()[0]
    assert fp == known_weights.fingerprint(torch.load(standin)) and "not known" in printed
    assert known_weights.registry() == {}  # printing records nothing
    # as a maintainer records OpenAI's own file: then the same content is the paper's model, whatever its path
    known_weights.record(fp, known_weights.OPENAI["ViT-B-16"], "ViT-B-16-quickgelu", "ViT-B-16.pt")
    assert deviations.model_is_papers(as_recorded(fp, "/elsewhere/renamed.bin"))
    assert deviations.deviations([{"run_dir": "runs/x", "model": as_recorded(fp, standin), "splits": []}]) == []
    # stated with the wrong activation it is still not the paper's model
    assert not deviations.model_is_papers({**as_recorded(fp, standin), "quick_gelu": False})
    # once OpenAI's fingerprint is known, open_clip's `openai` tag must match it too
    assert not deviations.model_is_papers({"model_name": "ViT-B-16", "pretrained": "openai", "quick_gelu": None,
                                           "pretrained_fingerprint": "1:" + "0" * 64})
    assert deviations.model_is_papers({"model_name": "ViT-B-16", "pretrained": "openai", "quick_gelu": None,
                                       "pretrained_fingerprint": fp})


def test_the_record_command_writes_the_registry(standin, registry, capsys):
    from apclip_core.__main__ import main

    assert main(["fingerprint", str(standin), "--model", "apclip-tiny", "--record", "tiny stand-in"]) == 0
    entry, = json.loads(registry.read_text())["weights"].values()
    assert entry == {"label": "tiny stand-in", "model_name": "apclip-tiny", "recorded_from": str(standin)}
    assert main(["fingerprint", str(standin), "--model", "apclip-tiny"]) == 0
    assert "known as tiny stand-in" in capsys.readouterr().out


def test_the_open_clip_tag_passes_only_while_no_fingerprint_is_recorded(registry):
    tag = {"model_name": "ViT-B-16", "pretrained": "openai", "quick_gelu": None}
    assert deviations.model_is_papers(tag)
    known_weights.record("1:" + "f" * 64, known_weights.OPENAI["ViT-B-16"], "ViT-B-16", "somewhere")
    assert not deviations.model_is_papers(tag)  # a run that recorded no fingerprint cannot show it matches


def test_a_runs_record_carries_the_fingerprint_training_wrote(tmp_path):
    from apclip_core.paper import experiments

    (tmp_path / "metrics.json").write_text(json.dumps({
        "config": {"model_name": "ViT-B-16", "pretrained": "/w/ViT-B-16.pt", "quick_gelu": True}, "epochs": [],
        "train_data": {"split": "s", "listed": 1, "used": 1}, "pretrained_fingerprint": "1:abc"}))
    assert experiments.run_record(tmp_path)["model"] == as_recorded("1:abc", "/w/ViT-B-16.pt")
