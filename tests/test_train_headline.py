"""The headline check of the paper on the embedded benchmark (base-to-novel, seed 1).

Both arms start from the same pretrained tiny CLIP and get the same budget (epochs, steps, batch,
frames, views, seed); they differ only in the class side:

* ViFi-CLIP baseline: one prompt per class ("a video of {name}."), mean-pooled frames, cosine;
* AP-CLIP: the 36 action-conditioned prompts per class (prompts/apclip_bench.json, rule-based),
  a per-step budget of k prompts per class in training, all 36 at test, MAKA similarity.

The benchmark's class names carry one known word and an invented stem, so the single prompt says
little about a novel class the model never saw; attribute descriptions say more. The claim tested is the paper's: better novel
accuracy by a clear margin (and a better harmonic mean).
"""
from __future__ import annotations

import json

import pytest

from apclip_core.engine.config import load_config
from apclip_core.engine.train import train

# A reduced budget of the bench_base2novel preset (same recipe) so that both runs fit the CI budget.
BUDGET = dict(epochs=3, frames=4, temporal_views=2, spatial_crops=1, prompts_per_class_per_step=4,
              eval_every_epochs=0, num_workers=0)
MARGIN = 10.0  # points on the novel classes (24 novel classes: chance 4.2; measured at this budget, benchmark spec 2: +16.8)


@pytest.mark.slow
def test_action_conditioned_prompts_with_maka_beat_single_prompt_on_novel_classes(tmp_path, bench_root):
    results = {}
    arms = {"single+mean": dict(prompt_strategy="single", similarity="mean"),
            "action_conditioned+maka": dict(prompt_strategy="action_conditioned", similarity="maka")}
    for arm, prompts in arms.items():
        cfg = load_config("bench_base2novel", output_dir=str(tmp_path / arm.replace("+", "_")),
                          protocol_args={"seed": 1, "root": str(bench_root)}, **BUDGET, **prompts)
        run = train(cfg)
        results[arm] = json.loads((run / "metrics.json").read_text())["epochs"][-1]["eval"]
    print("\nheadline (top-1 %):", json.dumps(results, indent=1))
    base, ours = results["single+mean"], results["action_conditioned+maka"]
    assert ours["bench_novel_val"] >= base["bench_novel_val"] + MARGIN, results
    assert ours["hm"] > base["hm"], results
