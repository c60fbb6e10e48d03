"""The measured interpretability check (issue 7) on the embedded benchmark, where every actor box is known.

The fine-tuned model is the AP-CLIP base-to-novel smoke run (experiments.run: trained on first use,
about 40 CPU seconds once the tiny CLIP is pretrained, then reused - the Figure 5 notebook uses the
same run). All 192 validation videos x 8 frames. Measured (CPU, 2026-11-26, pretraining 300 steps):

                                   fine-tuned   pretrained only   random init (seeds 0/1/2)   chance
  pointing game, rollout             0.887          0.874          0.529 / 0.706 / 0.757      0.210
  pointing game, last-layer CLS      0.489          0.581          0.501 / 0.625 / 0.701      0.210
  top-1 prompt of the true class     0.203          0.094          0.042 / 0.042 / 0.040      0.042
  top-1 prompt, true attribute value 1.000          1.000          0.496 / 0.292 / 0.334      0.366

A random ViT's class token already attends to the most distinct tokens (the saturated actor on a plain
backdrop), and how much depends on the seed, so the fine-tuned model is compared with the BEST of three
random initialisations, not with one. Attention rollout passes that bar; the last layer's class-token
attention alone does not (it spreads onto the backdrop, which is half of what defines a class here) and
is reported, not claimed. Before the tiny CLIP's pretraining was long enough to learn the actor's
colour (180 steps), the fine-tuned model's rollout scored 0.53, no better than random init: see
apclip_core/pretrain.py. Margins are well inside the measured gaps.
"""
from __future__ import annotations

import pytest
import torch

from apclip_core.data import annotations
from apclip_core.embedded import benchmark
from apclip_core.interpret import explain as interpret
from apclip_core.paper import experiments

torch.set_num_threads(1)
RANDOM_SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def measured(bench_root):
    model, _ = experiments.trained_model("bench_base2novel", "AP-CLIP")
    bank, attrs, groups = interpret.benchmark_bank(bench_root)
    records = annotations.read_video_list(bench_root / "splits" / "val.txt")[::8]   # 192 videos, 4 per class
    boxes = benchmark.load_boxes(bench_root)
    kwargs = dict(class_attributes=attrs, groups=groups, num_frames=8)
    models = {"fine-tuned": model, **{f"random{s}": interpret.random_init_model(model, seed=s) for s in RANDOM_SEEDS}}
    return interpret.compare_models(models, records, bench_root, bank, boxes, **kwargs)[1]


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="benchmark spec 2 (48 classes, 4-frame smoke training): the fine-tuned "
                   "model's rollout peak is in the actor's box in 0.639 of frames, a random init's up to 0.741 "
                   "(notebook 20); spec 1's 0.887 against 0.757 does not hold on it")
def test_pointing_game_fine_tuned_beats_every_random_init(measured):
    ft = measured["fine-tuned"]
    randoms = [measured[f"random{s}"] for s in RANDOM_SEEDS]
    assert all(r.n_frames == ft.n_frames == 192 * 8 for r in randoms)
    assert all(r.pointing_chance == pytest.approx(ft.pointing_chance) for r in randoms)  # same frames, same boxes
    assert 0.1 < ft.pointing_chance < 0.35                              # actors cover a fifth of the crop
    assert ft.frames_actor_in_crop == 1.0
    # rollout: measured 0.887 against the best random init 0.757 (seed 2) and chance 0.210
    best = max((f"random{s}" for s in RANDOM_SEEDS), key=lambda name: measured[name].pointing["rollout"])
    assert ft.pointing["rollout"] >= measured[best].pointing["rollout"] + 0.07, (ft.pointing, [r.pointing for r in randoms])
    assert ft.pointing["rollout"] >= ft.pointing_chance + 0.5
    verdict = interpret.pointing_verdict(measured, "fine-tuned", [f"random{s}" for s in RANDOM_SEEDS])
    assert f"best of 3 baselines ({best})" in verdict and "margin +" in verdict, verdict


@pytest.mark.slow
def test_top1_prompt_belongs_to_the_true_class_more_often_than_chance(measured):
    ft = measured["fine-tuned"]
    randoms = [measured[f"random{s}"] for s in RANDOM_SEEDS]
    assert ft.top1_class_chance == pytest.approx(1 / 48)                # 36 prompts for each of 48 classes
    # measured (spec 2): 0.229 (11x chance), random init 0.000-0.027
    assert ft.top1_class >= 2 * ft.top1_class_chance
    assert ft.top1_class >= max(r.top1_class for r in randoms) + 0.05
    # measured (spec 2): 0.867 against chance 0.378, random init at most 0.594
    assert ft.top1_attribute >= ft.top1_attribute_chance + 0.3
    assert ft.top1_attribute >= max(r.top1_attribute for r in randoms) + 0.2
