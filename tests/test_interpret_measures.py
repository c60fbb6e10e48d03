"""The measured interpretability check (issue 7) on the embedded benchmark, where every actor box is known.

The fine-tuned model is the AP-CLIP base-to-novel smoke run (experiments.run: trained on first use,
about 2 CPU minutes once the tiny CLIP is pretrained, then reused - the Figure 5 notebook uses the
same run). All 192 validation videos x 8 frames. Measured (CPU, 2026-11-26):

                                   fine-tuned   pretrained only   random init (seeds 0/1/2)   chance
  pointing game, rollout             0.525          0.530          0.529 / 0.706 / 0.757      0.210
  pointing game, last-layer CLS      0.329          0.335          0.501 / 0.625 / 0.701      0.210
  top-1 prompt of the true class     0.167          0.125          0.042 / 0.042 / 0.040      0.042
  top-1 prompt, true attribute value 0.958          1.000          0.496 / 0.292 / 0.334      0.366

So the attention peak is on the actor far more often than chance, but NOT more often than with
random weights: a random ViT's class token attends to the most distinct tokens (the saturated actor
on a plain backdrop), while the trained models also attend to the backdrop and its pattern, which
are half of what defines a class here. The test asserts what holds (fine-tuned above chance) and
pins the random-init comparison only as a report, not as a claim. The prompt check separates the
models clearly and is asserted against both chance and random init. Margins are well inside the
measured gaps.
"""
from __future__ import annotations

import pytest
import torch

from apclip_core import annotations, benchmark, interpret

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def measured(bench_root):
    model, _ = interpret.benchmark_model("bench_base2novel", "AP-CLIP")
    bank, attrs, groups = interpret.benchmark_bank(bench_root)
    records = annotations.read_video_list(bench_root / "splits" / "val.txt")
    boxes = benchmark.load_boxes(bench_root)
    kwargs = dict(class_attributes=attrs, groups=groups, num_frames=8)
    return {"fine-tuned": interpret.measure(model, records, bench_root, bank, boxes, **kwargs),
            "random": interpret.measure(interpret.random_init_model(model, seed=0), records, bench_root, bank, boxes,
                                        **kwargs)}


@pytest.mark.slow
def test_pointing_game_on_the_benchmark(measured):
    ft, rnd = measured["fine-tuned"], measured["random"]
    assert ft.n_frames == rnd.n_frames == 192 * 8
    assert ft.pointing_chance == pytest.approx(rnd.pointing_chance)    # same frames, same boxes
    assert 0.1 < ft.pointing_chance < 0.35                              # actors cover a fifth of the crop
    assert ft.frames_actor_in_crop == 1.0
    # measured 0.525 against chance 0.210
    assert ft.pointing["rollout"] >= ft.pointing_chance + 0.15
    # the random-init model points at the actor too (measured 0.53-0.76 over seeds): reported, not asserted


@pytest.mark.slow
def test_top1_prompt_belongs_to_the_true_class_more_often_than_chance(measured):
    ft, rnd = measured["fine-tuned"], measured["random"]
    assert ft.top1_class_chance == pytest.approx(1 / 24)                # 36 prompts for each of 24 classes
    # measured: 0.167 (4x chance), random init 0.042
    assert ft.top1_class >= 2 * ft.top1_class_chance
    assert ft.top1_class >= rnd.top1_class + 0.05
    # measured: 0.958 against chance 0.366, random init 0.496
    assert ft.top1_attribute >= ft.top1_attribute_chance + 0.3
    assert ft.top1_attribute >= rnd.top1_attribute + 0.2
