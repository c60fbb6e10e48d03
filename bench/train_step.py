"""A training step with action-conditioned prompts against the single prompt (issue figure 3).

Same model, same batch, same optimizer; only the class side differs:
  single   ViFi-CLIP: one prompt per class ("a video of {action}."), mean-pooled cosine
  ac k=K   AP-CLIP: 36 action-conditioned prompts per class, K of them per class per step
           (train.py's per-step prompt budget, prompts_per_class_per_step), MAKA similarity
The step is train.py's own: PromptClassifier (video tower + text tower with gradient + similarity
+ logit scale), label-smoothed cross-entropy, backward, AdamW from build_optimizer.

The text tower runs on C x K prompts per step, with gradient, so the ratio depends on how many
class prompts there are per frame in the batch. The CPU run is small (1 video x 8 frames against
8 classes); from its timings the row "modelled K400" fits step = frames part + K * C * per-prompt
part and evaluates it at a Kinetics-400 step (32 videos x 8 frames, 400 classes): labelled as a
model, not a measurement. The GPU section measures the real thing.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

from common import fmt_s, ratio, row, timeit

FULL = dict(model="ViT-B-16", batch=1, frames=8, classes=8, budgets=(8, 36), repeats=2)
QUICK = dict(model="apclip-tiny", batch=2, frames=8, classes=3, budgets=(8, 36), repeats=1)
K400 = dict(videos=32, frames=8, classes=400)


class Step:
    """One optimizer step of train.py's classifier on a fixed batch; call it to run the step."""

    def __init__(self, model, bank, similarity: str, k: int, video: torch.Tensor, labels: torch.Tensor,
                 optimizer, *, autocast_dtype: Optional[torch.dtype] = None, seed: int = 0):
        from apclip_core.engine.step import PromptClassifier

        self.clf = PromptClassifier(model, bank, similarity, k)
        self.video, self.labels, self.optimizer = video, labels, optimizer
        self.autocast_dtype = autocast_dtype
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, video: Optional[torch.Tensor] = None, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """One step on the fixed batch, or on (video, labels) (the data-loading benchmark); returns the
        loss as a tensor (no host sync here: the caller decides when to wait for the device)."""
        video = self.video if video is None else video
        labels = self.labels if labels is None else labels
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(video.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            logits = self.clf(video, self.generator).float()
        loss = F.cross_entropy(logits, labels, label_smoothing=0.1)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


def build_banks(classes: int):
    """(single bank, action-conditioned bank) over the first `classes` classes of the prompt file."""
    from apclip_core.prompts.bank import PromptBank
    from prompt_encoding import prompt_file

    path = prompt_file()
    names = list(json.loads(path.read_text(encoding="utf-8"))["classes"])[:classes]
    return PromptBank.single(names), PromptBank.from_prompt_file(path, names, "action_conditioned"), path


def build_model_and_optimizer(model_name: str, device="cpu"):
    from apclip_core.model.video_clip import create_model
    from apclip_core.engine.config import TrainConfig
    from apclip_core.engine.optim import build_optimizer

    torch.manual_seed(0)
    model = create_model(model_name, pretrained=None, device=device).train()
    return model, build_optimizer(model, TrainConfig(model_name=model_name, pretrained=None))


def random_batch(model, batch: int, frames: int, classes: int, device="cpu", seed: int = 0):
    size = model.config["image_size"]
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(batch, 1, frames, 3, size, size, generator=g).to(device)
    labels = torch.randint(0, classes, (batch,), generator=g).to(device)
    return video, labels


def run(*, quick: bool, threads: int, workdir: Path) -> dict:
    s = QUICK if quick else FULL
    single, ac, path = build_banks(s["classes"])
    model, optimizer = build_model_and_optimizer(s["model"])
    video, labels = random_batch(model, s["batch"], s["frames"], s["classes"])
    cases = {"single": Step(model, single, "mean", 1, video, labels, optimizer)}
    for k in s["budgets"]:
        cases[f"ac k={k}"] = Step(model, ac, "maka", k, video, labels, optimizer)
    cases["single"]()                              # warm-up: optimizer state, allocator, thread pools
    times = {name: timeit(step, repeats=s["repeats"], warmup=0) for name, step in cases.items()}
    t1 = times["single"]["median_s"]
    what = f"{s['model']}, {s['batch']} video x {s['frames']} frames, {s['classes']} classes"
    rows = []
    for k in s["budgets"]:
        tk = times[f"ac k={k}"]["median_s"]
        rows.append(row(f"step time: action-conditioned k={k} / single prompt ({what})", ratio(tk, t1),
                        target="info (lower is better)", measured=f"{fmt_s(tk)} vs {fmt_s(t1)}",
                        note=f"{s['classes'] * min(k, 36)} vs {s['classes']} prompts through the text tower per step"))
    # linear cost model from the two budgets: extra time per (class x prompt) and the rest
    k_lo, k_hi = min(s["budgets"]), max(s["budgets"])
    per_prompt = (times[f"ac k={k_hi}"]["median_s"] - times[f"ac k={k_lo}"]["median_s"]) / (s["classes"] * (min(k_hi, 36) - k_lo))
    modelled = {}
    if per_prompt > 0:
        rest = max(t1 - per_prompt * s["classes"], 1e-9)               # frames + optimizer + similarity
        per_frame = rest / (s["batch"] * s["frames"])
        frames_k400 = K400["videos"] * K400["frames"] * per_frame
        for k in (1, 4, 8, 16, 36):
            modelled[k] = ratio(frames_k400 + per_prompt * K400["classes"] * k, frames_k400 + per_prompt * K400["classes"])
        rows.append(row(f"modelled K400 step ({K400['videos']} videos x {K400['frames']} frames, {K400['classes']} classes): "
                        f"k=8 / single", modelled[8], target="info (model)",
                        measured="k=" + ", ".join(f"{k}: {v:.2f}x" for k, v in modelled.items() if v),
                        note=f"fitted on this run: {fmt_s(per_prompt)}/prompt, {fmt_s(per_frame)}/frame (fwd+bwd)"))
    return {"rows": rows, "details": {"sizes": s, "prompt_file": path.name, "times": times,
                                      "per_prompt_s": per_prompt, "modelled_k400_ratio": modelled}}
