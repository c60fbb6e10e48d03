"""VideoCLIP on the tiny config: QuickGELU decisions and round trips, text trimming, checkpoints."""
from __future__ import annotations

import json
import logging

import numpy as np
import open_clip
import pytest
import torch
from open_clip.transformer import QuickGELU
from torch import nn

from apclip_core.model import video_clip as model_lib
from apclip_core.model.video_clip import (VideoCLIP, create_model, create_model_and_transforms, load_checkpoint,
                               needs_quick_gelu, save_checkpoint, weights_fingerprint)

TINY = "apclip-tiny"


def activations(model: VideoCLIP) -> set[type]:
    return {type(m) for m in model.modules() if isinstance(m, (QuickGELU, nn.GELU))}


def video(seed=0, B=2, V=2, T=3, S=64):
    return torch.randn(B, V, T, 3, S, S, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def no_downloads(monkeypatch):
    """Any attempt to fetch weights fails the test (nothing can be downloaded here anyway)."""
    def refuse(*args, **kwargs):
        raise AssertionError("tried to download weights")
    for name in ("download_pretrained_from_hf", "download_pretrained_from_url"):
        monkeypatch.setattr(open_clip.pretrained, name, refuse)
    monkeypatch.setattr(open_clip.factory, "download_pretrained_from_hf", refuse)


@pytest.fixture
def fake_openai_tag(tmp_path, monkeypatch):
    """Register an 'openai' tag for the tiny model in open_clip's own registry, backed by a local
    file and marked quick_gelu like the real OpenAI tags: exercises the real tag-loading path offline."""
    source = create_model(TINY, None, quick_gelu=True)
    weights = tmp_path / "tiny_openai.pt"
    torch.save(source.clip.state_dict(), weights)
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, TINY,
                        {"openai": {"file": str(weights), "quick_gelu": True}})
    return source, weights


def test_quick_gelu_decision_from_registry_without_downloading(no_downloads):
    assert needs_quick_gelu("ViT-B-16", "openai")
    assert needs_quick_gelu("ViT-B-32", "openai")
    assert needs_quick_gelu("ViT-B-16-quickgelu", None)
    assert not needs_quick_gelu("ViT-B-16", "laion2b_s34b_b88k")
    assert not needs_quick_gelu("ViT-B-16", None)
    assert not needs_quick_gelu(TINY, None)


def test_openai_tag_forces_quick_gelu_and_reload_keeps_it(fake_openai_tag, tmp_path, no_downloads):
    source, _ = fake_openai_tag
    model = create_model(TINY, "openai")
    assert model.config["quick_gelu"] is True
    assert activations(model) == {QuickGELU}
    x = video()
    with torch.no_grad():
        torch.testing.assert_close(model.encode_video(x), source.encode_video(x), rtol=0, atol=0)

    path = save_checkpoint(model, tmp_path / "ft" / "model.pt", epoch=3)
    reloaded = load_checkpoint(path)
    assert activations(reloaded) == {QuickGELU}
    assert reloaded.config == model.config
    tokens = model.tokenize(["a video of juggling.", "a person doing a cartwheel on the beach"])
    with torch.no_grad():
        torch.testing.assert_close(reloaded.encode_video(x), model.encode_video(x), rtol=0, atol=0)
        torch.testing.assert_close(reloaded.encode_text(tokens), model.encode_text(tokens), rtol=0, atol=0)

        # The same weights under the wrong activation give different features: the checks above
        # would catch a reload that forgot the activation.
        wrong = create_model(TINY, None, quick_gelu=False)
        wrong.load_state_dict(model.state_dict())
        assert activations(wrong) == {nn.GELU}
        assert not torch.allclose(wrong.encode_video(x), model.encode_video(x), atol=1e-4)
        assert not torch.allclose(wrong.encode_text(tokens), model.encode_text(tokens), atol=1e-4)


def test_quickgelu_name_can_be_overridden_and_override_survives_reload(tmp_path):
    model = create_model(TINY, None, quick_gelu=True)
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    assert json.loads(path.with_name("m.safetensors.json").read_text())["model"]["quick_gelu"] is True
    assert activations(load_checkpoint(path)) == {QuickGELU}
    plain = create_model(TINY, None)
    assert activations(plain) == {nn.GELU}
    assert activations(load_checkpoint(save_checkpoint(plain, tmp_path / "p.pt"))) == {nn.GELU}


def test_encode_video_shapes_normalisation_and_frame_order():
    model = create_model(TINY, None).eval()
    x = video(B=2, V=2, T=3)
    with torch.no_grad():
        feats = model.encode_video(x)
        assert feats.shape == (2, 6, 128)
        torch.testing.assert_close(feats.norm(dim=-1), torch.ones(2, 6))
        # view-major frame order: frame t of view v is row v*T + t
        single = model.clip.encode_image(x[1, 1, 2][None], normalize=True)[0]
        torch.testing.assert_close(feats[1, 5], single, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"\[B, V, T, 3, S, S\]"):
        model.encode_video(x[0])


def test_a_random_model_asked_for_raises_no_alarm_but_open_clip_alone_still_does(caplog):
    caplog.set_level(logging.INFO)
    create_model(TINY, None)                        # pretrained=None: random on purpose (notebooks' baselines)
    assert not [r for r in caplog.records if "No pretrained weights" in r.getMessage()]
    open_clip.create_model(TINY, pretrained=None)   # the filter is gone afterwards: open_clip's own call says it
    assert [r for r in caplog.records if "No pretrained weights" in r.getMessage()]


def test_both_towers_are_trainable():
    model = create_model(TINY, None)
    assert all(p.requires_grad for p in model.parameters())
    x = video(B=1, V=1, T=2)
    tokens = model.tokenize(["a video of juggling."])
    (model.encode_video(x).sum() + model.encode_text(tokens).sum()).backward()
    assert model.clip.visual.conv1.weight.grad.abs().sum() > 0
    assert model.clip.token_embedding.weight.grad.abs().sum() > 0


def test_encode_text_matches_open_clip_at_full_length_and_trimmed():
    model = create_model(TINY, None).eval()
    texts = ["a video of juggling.", "a video of apply eye makeup. The actor wears a black jacket and stands still."]
    full = model.tokenizer(texts)
    assert full.shape[1] == 77
    trimmed = model.tokenize(texts)
    assert trimmed.shape[1] == int((full != 0).sum(1).max()) < 77
    assert torch.equal(trimmed, full[:, :trimmed.shape[1]])
    with torch.no_grad():
        reference = model.clip.encode_text(full, normalize=True)
        torch.testing.assert_close(model.encode_text(full), reference, rtol=0, atol=0)
        torch.testing.assert_close(model.encode_text(trimmed), reference, rtol=1e-5, atol=1e-5)
        # each prompt alone, trimmed to its own length, gives the same features too
        alone = torch.cat([model.encode_text(model.tokenize([t])) for t in texts])
        torch.testing.assert_close(alone, reference, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="exceed the context length"):
        model.encode_text(torch.zeros(1, 78, dtype=torch.long))


def test_overlong_prompt_is_truncated_to_context_length():
    model = create_model(TINY, None)
    tokens = model.tokenize(["word " * 200])
    assert tokens.shape == (1, 77)


def test_checkpoint_is_safetensors_loaded_without_unpickling(tmp_path, monkeypatch):
    import pickle

    from safetensors import safe_open

    model = create_model(TINY, None, temporal_module=True)
    with torch.no_grad():
        model.temporal.gate.fill_(0.1)
        model.clip.logit_scale.fill_(3.0)
    path = save_checkpoint(model, tmp_path / "model.pt", epoch=2, train={"lr": 2e-6})
    assert path == tmp_path / "model.safetensors" and not (tmp_path / "model.pt").exists()
    with safe_open(path, framework="pt") as f:  # a plain safetensors file: any reader gets the weights
        assert set(f.keys()) == set(model.state_dict())
        in_file = json.loads(f.metadata()["apclip_config"])
    sidecar = json.loads((tmp_path / "model.safetensors.json").read_text())
    assert sidecar == in_file
    assert sidecar["epoch"] == 2 and sidecar["train"] == {"lr": 2e-6}

    def no_pickle(*args, **kwargs):
        raise AssertionError("a safetensors checkpoint was unpickled")
    monkeypatch.setattr(torch, "load", no_pickle)
    monkeypatch.setattr(pickle, "Unpickler", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    reloaded = load_checkpoint(path)
    assert reloaded.temporal is not None
    assert torch.equal(reloaded.temporal.gate, model.temporal.gate)
    assert reloaded.logit_scale.item() == pytest.approx(3.0)
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(model, tmp_path / "x.pt", model="oops")


def save_checkpoint_before_safetensors(model, path):
    """How apclip wrote checkpoints before safetensors (a run's checkpoint.pt), reproduced as it was."""
    config_json = json.dumps({"model": model.config, "epoch": 1}, indent=2, sort_keys=True, default=str)
    torch.save({"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "config": config_json},
               path)
    path.with_name(path.name + ".json").write_text(config_json + "\n")


def test_checkpoints_written_before_safetensors_still_load(tmp_path):
    from apclip_core.model.video_clip import is_checkpoint, run_checkpoint

    model = create_model(TINY, None, quick_gelu=True)
    with torch.no_grad():
        model.clip.logit_scale.fill_(2.5)
    old_run = tmp_path / "old_run"
    old_run.mkdir()
    save_checkpoint_before_safetensors(model, old_run / "checkpoint.pt")
    assert run_checkpoint(old_run) == old_run / "checkpoint.pt" and is_checkpoint(old_run / "checkpoint.pt")
    x = video()
    for given in (old_run / "checkpoint.pt", old_run):  # the file, or the run folder
        reloaded = load_checkpoint(given)
        assert activations(reloaded) == {QuickGELU} and reloaded.logit_scale.item() == pytest.approx(2.5)
        with torch.no_grad():
            torch.testing.assert_close(reloaded.encode_video(x), model.encode_video(x), rtol=0, atol=0)
    new = save_checkpoint(model, old_run / "checkpoint")  # the run retrained: its new file is the one read
    assert run_checkpoint(old_run) == new == old_run / "checkpoint.safetensors"


def test_damaged_or_foreign_safetensors_are_refused_naming_the_file(tmp_path):
    from safetensors.torch import save_file

    from apclip_core.errors import CheckpointError

    path = save_checkpoint(create_model(TINY, None), tmp_path / "m.safetensors")
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.safetensors is not a readable checkpoint"):
        load_checkpoint(tmp_path / "cut.safetensors")
    save_file({"w": torch.zeros(2)}, tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match=r"plain\.safetensors is a safetensors file without apclip's config"):
        load_checkpoint(tmp_path / "plain.safetensors")


def test_plain_open_clip_state_dict_is_not_mistaken_for_a_checkpoint(tmp_path):
    model = create_model(TINY, None)
    plain = tmp_path / "open_clip_model.pt"
    torch.save(model.clip.state_dict(), plain)
    with pytest.raises(ValueError, match="not an apclip checkpoint"):
        load_checkpoint(plain)
    from_file = create_model(TINY, str(plain))  # the pretrained tiny CLIP path (H1's pretrain output)
    assert torch.equal(from_file.clip.visual.conv1.weight, model.clip.visual.conv1.weight)


def test_weights_fingerprint_memoised_and_tracks_text_tower(monkeypatch):
    model = create_model(TINY, None)
    first = weights_fingerprint(model)
    calls = []
    real_sha = model_lib.hashlib.sha256
    monkeypatch.setattr(model_lib.hashlib, "sha256", lambda *a: calls.append(1) or real_sha(*a))
    assert weights_fingerprint(model) == first and not calls  # memoised: nothing rehashed
    with torch.no_grad():
        model.clip.visual.conv1.weight.add_(1.0)              # the visual tower is not part of it
    assert weights_fingerprint(model) == first
    opt = torch.optim.SGD(model.clip.transformer.parameters(), lr=0.1)
    model.encode_text(model.tokenize(["a video of juggling."])).sum().backward()
    opt.step()
    changed = weights_fingerprint(model)
    assert changed != first and calls
    # changes that bypass tensors' version counters are caught too
    with torch.no_grad():
        model.clip.ln_final.weight.data.mul_(1.5)
    assert weights_fingerprint(model) != changed
    for p in model.clip.transformer.parameters():
        p.grad = torch.ones_like(p)
    torch.optim.AdamW(model.clip.transformer.parameters(), lr=1e-3, fused=True).step()
    assert weights_fingerprint(model) not in (first, changed)
    changed = weights_fingerprint(model)
    twin = create_model(TINY, None)
    twin.load_state_dict(model.state_dict())
    assert weights_fingerprint(twin) == changed                # same weights, same fingerprint


def test_create_model_and_transforms_uses_model_preprocessing(tmp_path):
    pytest.importorskip("apclip_core.data.transforms")
    model, train_tf, eval_tf = create_model_and_transforms(TINY, None, num_spatial_crops=3)
    clip = (np.random.default_rng(0).integers(0, 255, (4, 90, 120, 3))).astype(np.uint8)
    assert tuple(eval_tf(clip).shape) == (3, 4, 3, 64, 64)
    assert tuple(train_tf(clip).shape) == (1, 4, 3, 64, 64)
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    again, _, _ = create_model_and_transforms(checkpoint=path, temporal_module=True)
    assert again.temporal is not None and again.config["model_name"] == TINY


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_low_precision_models_encode(precision):
    model = create_model(TINY, None, precision=precision, temporal_module=True)
    feats, text = model(video(B=1, V=1, T=2), model.tokenize(["a video of juggling."]))
    assert feats.shape == (1, 2, 128) and text.shape == (1, 128)
    assert torch.isfinite(feats).all() and torch.isfinite(text).all()
