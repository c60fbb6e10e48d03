"""Prompt banks: builders for every strategy, budgeted sampling, encoding and its on-disk cache."""
from __future__ import annotations

import json

import pytest
import torch

from apclip_core.model.video_clip import create_model
from apclip_core.prompts.bank import SET_TEMPLATES, PromptBank, readable_name
from apclip_core.prompts.strategies import build_prompt_bank

CLASSES = ["ApplyEyeMakeup", "brush_hair", "juggling balls"]
KEYS = ["scene.setting", "actor.clothing", "body.move_speed"]


@pytest.fixture
def prompt_file(tmp_path):
    """A small file in the contract's schema: 3 classes, ragged counts, all three strategies."""
    classes = {}
    for c, name in enumerate(CLASSES):
        n = 2 + c  # 2, 3, 4 action-conditioned descriptions
        classes[name] = {
            "action_conditioned": [{"llm_prompt": j % 3, "attribute": KEYS[j % 3],
                                    "text": f"Description {j} of  {name}."} for j in range(n)],
            "customized": [f"{readable_name(name)} is done like this {j}." for j in range(1 + c)],
            "llm_direct": [f"Direct fact {j}." for j in range(3)],
        }
    data = {"manifest": {"dataset": "toy", "source": "rule-based", "generator_model": "none",
                         "created": "2024-01-01", "template_version": "1", "graph_version": "1",
                         "num_classes": 3, "counts": {}, "notes": ""}, "classes": classes}
    path = tmp_path / "toy.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def model():
    torch.manual_seed(0)
    return create_model("apclip-tiny", None).eval()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("APCLIP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_readable_name():
    assert readable_name("ApplyEyeMakeup") == "apply eye makeup"
    assert readable_name("brush_hair") == "brush hair"
    assert readable_name("YoYo") == "yo yo"
    assert readable_name("BMXRiding") == "BMX riding"
    assert readable_name("playing guitar") == "playing guitar"
    assert readable_name("Pushing something from left to right") == "Pushing something from left to right"
    assert readable_name("skiing") == "skiing"


def test_single_and_set():
    single = PromptBank.single(CLASSES)
    assert single.prompts[0] == ["a video of apply eye makeup."] and single.strategy == "single"
    assert len(SET_TEMPLATES) == 28 and len(set(SET_TEMPLATES)) == 28
    bank = PromptBank.prompt_set(CLASSES)
    assert bank.counts == [28, 28, 28]
    assert "a video of a person doing brush hair." in bank.prompts[1]
    assert "a demonstration of a person practicing juggling balls." in bank.prompts[2]


def test_from_prompt_file_strategies(prompt_file):
    ac = PromptBank.from_prompt_file(prompt_file, CLASSES)
    assert ac.counts == [2, 3, 4]
    assert ac.prompts[0][0] == "a video of apply eye makeup. Description 0 of ApplyEyeMakeup."
    assert ac.attributes[2] == [KEYS[j % 3] for j in range(4)]
    cu = PromptBank.from_prompt_file(prompt_file, CLASSES, "customized")
    assert cu.prompts[1] == ["brush hair is done like this 0.", "brush hair is done like this 1."]
    assert cu.attributes is None
    direct = PromptBank.from_prompt_file(prompt_file, CLASSES, "llm_direct")
    assert direct.prompts[2][1] == "a video of juggling balls. Direct fact 1."
    subset = PromptBank.from_prompt_file(prompt_file, ["juggling balls"])  # any subset, in the given order
    assert subset.classnames == ["juggling balls"] and subset.counts == [4]
    assert build_prompt_bank("set", CLASSES).counts == [28] * 3
    without_first = PromptBank.from_prompt_file(prompt_file, CLASSES, drop_groups=["scene"])  # Table 5's "w/o" a group
    assert all(not a.startswith("scene.") for attrs in without_first.attributes for a in attrs)
    assert without_first.counts == [n - len([a for a in attrs if a.startswith("scene.")])
                                    for n, attrs in zip(ac.counts, ac.attributes)]


def test_prompt_file_errors_name_the_problem(prompt_file):
    with pytest.raises(KeyError, match=r"1 of 2 classes missing: \['Fencing'\]"):
        PromptBank.from_prompt_file(prompt_file, ["brush_hair", "Fencing"])
    with pytest.raises(ValueError, match="choose one of"):
        PromptBank.from_prompt_file(prompt_file, CLASSES, "cupl")
    data = json.loads(prompt_file.read_text())
    del data["classes"]["brush_hair"]["customized"]
    prompt_file.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"no 'customized' prompts for class 'brush_hair'"):
        PromptBank.from_prompt_file(prompt_file, CLASSES, "customized")


def test_subsample_budget(prompt_file):
    bank = PromptBank.from_prompt_file(prompt_file, CLASSES)
    sub = bank.subsample(3, torch.Generator().manual_seed(0))
    assert sub.counts == [2, 3, 3]
    assert sub.prompts[:2] == bank.prompts[:2]                # classes with <= k keep all
    assert set(sub.prompts[2]) <= set(bank.prompts[2])
    pairs = dict(zip(bank.prompts[2], bank.attributes[2]))
    assert all(pairs[p] == a for p, a in zip(sub.prompts[2], sub.attributes[2]))
    draws = {tuple(bank.subsample(2, torch.Generator().manual_seed(s)).prompts[2]) for s in range(20)}
    assert len(draws) > 1                                      # really random across seeds
    again = bank.subsample(3, torch.Generator().manual_seed(0))
    assert again.prompts == sub.prompts                        # and reproducible per seed


def test_encode_matches_per_prompt_features(prompt_file, model):
    bank = PromptBank.from_prompt_file(prompt_file, CLASSES)
    enc = bank.encode(model, batch_size=4, cache=False)
    assert enc.feats.shape == (3, 4, 128) and enc.mask.tolist()[0] == [True, True, False, False]
    assert not enc.feats.requires_grad
    with torch.no_grad():
        for c, prompts in enumerate(bank.prompts):
            for j, text in enumerate(prompts):
                one = model.encode_text(model.tokenizer([text]))[0]   # full 77-token reference
                torch.testing.assert_close(enc.feats[c, j], one, rtol=1e-5, atol=1e-5)
    assert (enc.feats[~enc.mask] == 0).all()


def count_text_forwards(model):
    calls = []
    model.clip.token_embedding.register_forward_hook(lambda *a: calls.append(1))
    return calls


def test_cache_skips_text_tower_and_weight_change_invalidates(prompt_file, model, private_cache):
    bank = PromptBank.from_prompt_file(prompt_file, CLASSES)
    calls = count_text_forwards(model)
    first = bank.encode(model, batch_size=4)
    n_first = len(calls)
    assert n_first > 0 and len(list((private_cache / "prompt_features").glob("*.pt"))) == 1
    second = bank.encode(model, batch_size=4)
    assert len(calls) == n_first                                  # served from disk
    assert torch.equal(first.feats, second.feats) and torch.equal(first.mask, second.mask)

    other = PromptBank.single(CLASSES).encode(model)              # other prompts: a miss
    assert len(calls) > n_first and other.feats.shape == (3, 1, 128)

    n_before = len(calls)
    with torch.no_grad():
        model.clip.text_projection.mul_(-1.0)                     # text weights change
    third = bank.encode(model, batch_size=4)
    assert len(calls) > n_before                                  # re-encoded, not stale
    torch.testing.assert_close(third.feats, -first.feats)


def test_features_for_training_budget_and_gradient(prompt_file, model):
    bank = PromptBank.from_prompt_file(prompt_file, CLASSES)
    feats, mask = bank.features_for_training(model, 3, torch.Generator().manual_seed(1))
    assert feats.shape == (3, 3, 128) and mask.sum(1).tolist() == [2, 3, 3]
    assert feats.requires_grad
    feats[mask].sum().backward()
    assert model.clip.token_embedding.weight.grad.abs().sum() > 0
    assert model.clip.transformer.resblocks[0].attn.in_proj_weight.grad.abs().sum() > 0


def test_empty_class_rejected():
    with pytest.raises(ValueError, match=r"without any prompt: \['b'\]"):
        PromptBank(["a", "b"], [["x"], []])


def test_manual_training_path_for_ddp_matches_features_for_training(prompt_file, model):
    bank = PromptBank.from_prompt_file(prompt_file, CLASSES)
    feats, mask = bank.features_for_training(model, 3, torch.Generator().manual_seed(1))
    sub = bank.subsample(3, torch.Generator().manual_seed(1))
    video = torch.randn(1, 1, 2, 3, 64, 64)
    _, text = model(video, model.tokenize(sub.flat_prompts))
    manual_feats, manual_mask = sub.pad(text)
    assert torch.equal(manual_mask, mask)
    torch.testing.assert_close(manual_feats, feats, rtol=1e-5, atol=1e-5)
