"""Fast unit tests of the training machinery on toy tensors/modules (no video, no CLIP)."""
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from apclip_core import atomic
from apclip_core.data import datasets as D
from apclip_core.engine import config as C, distributed as Dist, evaluate as E, optim as O, train as T, train_cli


# ---- config ---------------------------------------------------------------------------------------
def test_every_preset_loads_and_paper_presets_carry_vifi_schedule():
    names = C.config_names()
    for required in ("k400_zero_shot", "base2novel", "few_shot", "fully_supervised",
                     "bench_base2novel", "bench_zero_shot", "bench_few_shot", "bench_fully_supervised"):
        assert required in names
    for name in names:
        cfg = C.load_config(name)
        assert cfg.betas == (0.9, 0.98) and cfg.eps == 1e-8 and cfg.weight_decay == 0.001
        assert cfg.label_smoothing == 0.1
    paper = {n: C.load_config(n) for n in ("k400_zero_shot", "base2novel", "few_shot", "fully_supervised")}
    assert {n: (c.lr, c.epochs, c.effective_batch_size) for n, c in paper.items()} == {
        "k400_zero_shot": (8e-6, 10, 256), "base2novel": (2e-6, 11, 64), "few_shot": (2e-6, 50, 64),
        "fully_supervised": (2.2e-5, 30, 512)}
    for c in paper.values():
        assert c.model_name == "ViT-B-16" and c.pretrained == "openai" and c.warmup_epochs == 5
        assert c.lr_min == pytest.approx(c.lr / 100)
        assert (c.mixup_alpha, c.cutmix_alpha, c.mixup_switch_prob) == (0.8, 1.0, 0.5)
    assert (paper["fully_supervised"].frames, paper["fully_supervised"].temporal_views,
            paper["fully_supervised"].spatial_crops) == (16, 3, 4)
    assert all((c.frames, c.temporal_views, c.spatial_crops) == (8, 2, 2)
               for n, c in paper.items() if n != "fully_supervised")
    assert not C.load_config("bench_base2novel").flip


def test_unknown_key_lists_valid_keys_and_overrides_apply():
    with pytest.raises(ValueError, match=r"unknown key 'similarty' \(did you mean 'similarity'\?\); valid keys: name, model_name"):
        C.load_config("bench_base2novel", similarty="maka")
    cfg = C.load_config("bench_base2novel", epochs=3, similarity="maka")
    assert (cfg.epochs, cfg.similarity) == (3, "maka")
    with pytest.raises(ValueError, match="similarity='cosine' is not valid; choose one of: maka, mean"):
        C.load_config("bench_base2novel", similarity="cosine")
    with pytest.raises(ValueError, match="needs prompt_file"):
        C.TrainConfig(prompt_strategy="action_conditioned")
    with pytest.raises(FileNotFoundError, match="presets: .*bench_base2novel"):
        C.load_config("no_such_preset")


def test_cli_set_parses_yaml_values_and_rejects_unknown(capsys):
    assert train_cli.main(["--config", "bench_base2novel", "--set", "epochs=2", "betas=[0.8,0.9]", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert '"epochs": 2' in out and "0.8" in out
    assert train_cli.main(["--config", "bench_base2novel", "--set", "nope=1", "--print-config"]) == 2
    assert "valid keys" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without a GPU")
def test_paper_profile_on_cpu_refuses_at_once_with_estimate_and_needs():
    with pytest.raises(SystemExit) as exc:
        train_cli.main(["--config", "k400_zero_shot"])
    msg = str(exc.value)
    assert "refusing to train ViT-B-16 on CPU" in msg and "days" in msg and "--allow-cpu" in msg
    assert "prompt file prompts/k400.json" in msg and "Hugging Face" in msg


# ---- schedule and optimiser -----------------------------------------------------------------------
def test_lr_schedule_warmup_then_cosine_to_lr_min():
    cfg = C.TrainConfig(lr=1e-3, epochs=10, warmup_epochs=2)
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(2))], lr=cfg.lr)
    sched = O.build_scheduler(opt, cfg, steps_per_epoch=5)
    lrs = []
    for _ in range(50):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 0.0 and lrs[5] == pytest.approx(cfg.lr / 2)  # linear warm-up from 0 over 10 steps
    assert lrs[10] == pytest.approx(cfg.lr)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))        # cosine decay
    assert lrs[-1] > cfg.lr / 100 and O.lr_at(50, lr=1e-3, lr_min=1e-5, warmup_steps=10, total_steps=50) == \
        pytest.approx(1e-5)


def test_optimizer_decays_matrices_only():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    model.scale = nn.Parameter(torch.tensor(1.0))
    opt = O.build_optimizer(model, C.TrainConfig())
    decay, no_decay = opt.param_groups
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 3])] and decay["weight_decay"] == 0.001
    assert len(no_decay["params"]) == 4 and no_decay["weight_decay"] == 0.0
    assert opt.defaults["betas"] == (0.9, 0.98) and opt.defaults["eps"] == 1e-8


# ---- losses and mixing ----------------------------------------------------------------------------
def test_soft_target_ce_equals_label_smoothing_ce_without_mixing():
    logits = torch.randn(6, 5)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    soft = O.soft_target_cross_entropy(logits, O.smooth_one_hot(labels, 5, 0.1))
    assert soft.item() == pytest.approx(F.cross_entropy(logits, labels, label_smoothing=0.1).item(), rel=1e-6)


def _mix(seed, **kw):
    video = torch.randn(4, 1, 3, 3, 16, 16, generator=torch.Generator().manual_seed(seed))  # [B, V, T, C, H, W]
    labels = torch.tensor([0, 1, 2, 3])
    args = dict(mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.5, smoothing=0.1) | kw
    mixed, targets = O.mixup_cutmix(video, labels, 5, np.random.default_rng(seed), **args)
    return video, mixed, targets


def test_mixup_blends_with_reversed_batch_and_targets_match():
    video, mixed, targets = _mix(0, cutmix_alpha=0.0)
    lam = ((mixed - video.flip(0)) / (video - video.flip(0)))[0].flatten()
    lam = lam[torch.isfinite(lam)].median().item()
    assert torch.allclose(mixed, lam * video + (1 - lam) * video.flip(0), atol=1e-5)
    assert torch.allclose(targets.sum(1), torch.ones(4))
    expected = lam * O.smooth_one_hot(torch.tensor([0, 1, 2, 3]), 5, 0.1)
    expected += (1 - lam) * O.smooth_one_hot(torch.tensor([3, 2, 1, 0]), 5, 0.1)
    assert torch.allclose(targets, expected, atol=1e-5)


def test_cutmix_box_is_the_same_in_every_frame_and_view():
    video, mixed, targets = _mix(1, mixup_alpha=0.0)
    pasted = (mixed != video)[0]                 # [V, T, C, H, W]
    region = pasted.any(dim=(0, 1, 2))           # [H, W]
    assert region.any() and not region.all()
    assert (pasted == region).all()              # same pixels replaced in every view, frame, channel
    lam = 1 - region.float().mean().item()
    assert targets[0, 0].item() == pytest.approx(lam * (0.9 + 0.02) + (1 - lam) * 0.02, abs=1e-6)


def test_mixing_is_a_function_of_the_generator():
    _, a, ta = _mix(7)
    _, b, tb = _mix(7)
    assert torch.equal(a, b) and torch.equal(ta, tb)


# ---- checkpoint machinery -------------------------------------------------------------------------
def test_rng_state_round_trips_through_weights_only_checkpoint(tmp_path):
    random.seed(1); np.random.seed(2); torch.manual_seed(3)
    path = tmp_path / "state.pt"
    atomic.torch_save({"rng": Dist.rng_state()}, path)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    Dist.set_rng_state(torch.load(path, weights_only=True)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "last.pt"
    atomic.torch_save({"x": torch.ones(2)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic.torch_save({"x": Unpicklable()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["x"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_sampler_resumes_mid_epoch_and_shards_like_distributed_sampler():
    data = list(range(23))
    full = list(D.ResumableSampler(data, num_replicas=1, rank=0, seed=5))
    s = D.ResumableSampler(data, num_replicas=1, rank=0, seed=5)
    s.set_position(0, 8)
    assert list(s) == full[8:] and len(s) == 15
    s.set_position(1, 0)
    assert sorted(s) == data and list(s) != full      # reshuffled each epoch
    shards = [list(D.ResumableSampler(data, num_replicas=2, rank=r, seed=5)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 12 and set(shards[0] + shards[1]) == set(data)


class _RandomItems(torch.utils.data.Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, i):
        return (random.random(), float(np.random.rand()), torch.rand(1).item())


def test_epoch_seeded_items_depend_only_on_epoch_and_index():
    ds = D.EpochSeededDataset(_RandomItems(), seed=0)
    forward = [ds[i] for i in range(10)]
    torch.manual_seed(0)
    before = torch.get_rng_state()
    backward = [ds[i] for i in reversed(range(10))][::-1]
    assert forward == backward
    assert torch.equal(torch.get_rng_state(), before)   # the caller's RNG is untouched
    ds.set_epoch(1)
    assert ds[0] != forward[0]


def test_params_checksum_detects_any_change():
    model = nn.Linear(3, 3)
    before = Dist.params_checksum(model)
    with torch.no_grad():
        model.bias[0] += 1e-7
    assert Dist.params_checksum(model) != before


def test_eval_subset_is_evenly_spaced_and_leaves_small_splits_alone(tmp_path):
    from apclip_core.data.annotations import VideoRecord
    from apclip_core.data.protocols import Split

    split = Split("val", [VideoRecord(f"v{i}.mp4", i % 3) for i in range(10)], ["a", "b", "c"], tmp_path)
    sub = E.eval_subset(split, 4)
    assert [r.path for r in sub.records] == ["v0.mp4", "v2.mp4", "v5.mp4", "v7.mp4"]
    assert len(split.records) == 10 and sub.classnames == split.classnames     # the full split is untouched
    assert E.eval_subset(split, 0) is split and E.eval_subset(split, 10) is split


def test_the_training_bank_drops_the_attribute_groups_the_config_drops():
    """Table 5's "w/o Body" trains without the Body descriptions, not only evaluates without them."""
    from apclip_core.engine.step import training_bank

    names = ["blorping upward", "chorving slowly"]
    full = training_bank(C.load_config("bench_base2novel"), names)
    cfg = C.load_config("bench_base2novel", drop_attribute_groups=["body"])
    without = training_bank(cfg, names)
    assert any(a.startswith("body.") for attrs in full.attributes for a in attrs)
    assert not any(a.startswith("body.") for attrs in without.attributes for a in attrs)
    assert without.counts == [n * 2 // 3 for n in full.counts]  # 12 of 36 per class are Body


def test_last_pt_is_written_before_the_final_evaluation_and_a_resume_only_evaluates(tmp_path, bench_root, monkeypatch):
    """A job cut during the final evaluation (hours on Kinetics; issue 23, item 8) loses no training step."""
    import json

    import torch

    from apclip_core.engine import train as training
    from apclip_core.engine.config import load_config

    run = tmp_path / "run"
    cfg = load_config("bench_base2novel", pretrained=None, epochs=1, max_steps_per_epoch=2, batch_size=2,
                      effective_batch_size=2, frames=2, temporal_views=1, spatial_crops=1, eval_max_videos=2,
                      num_workers=0, warmup_epochs=0, prompt_strategy="single", output_dir=str(run))

    def evaluation_cut_short(*args, **kwargs):
        raise KeyboardInterrupt("the job's time ran out during the final evaluation")

    with monkeypatch.context() as patched:
        patched.setattr(training, "evaluate_epoch", evaluation_cut_short)
        with pytest.raises(KeyboardInterrupt):
            training.train(cfg)
    state = torch.load(run / "last.pt", weights_only=True)
    assert (state["epoch"], state["micro_step"], state["global_step"]) == (0, 2, 2)  # every step kept
    training.train(cfg, resume=True)
    assert "resumed from" in (run / "train.log").read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["complete"] and "eval" in metrics["epochs"][-1] and metrics["epochs"][-1]["step"] == 2
