"""One training step's pieces, shared by the loop (engine.train) and the throughput measurement
(engine.throughput), so that what the plan times is exactly what training runs: the class side
(`PromptClassifier` over the run's `training_bank`) and the precision (`autocast_dtype`)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from apclip_core.engine.config import TrainConfig
from apclip_core.model.similarity import get_similarity, takes_raw_frames
from apclip_core.prompts.bank import resolve_prompt_file
from apclip_core.prompts.strategies import build_prompt_bank


class PromptClassifier(nn.Module):
    """logits = logit_scale.exp() * similarity(video frames, prompt set of each class).

    A module (not a function) so DDP wraps the whole step: the text tower runs inside forward and
    its gradients are synchronised like the visual tower's.
    """

    def __init__(self, model: nn.Module, bank, similarity: str, prompts_per_step: int):
        super().__init__()
        self.model, self.bank = model, bank
        self.k = prompts_per_step if prompts_per_step > 0 else max(len(p) for p in bank.prompts)
        self.similarity = get_similarity(similarity)
        self.raw_frames = takes_raw_frames(similarity)

    def forward(self, video: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        frames = self.model.encode_video(video, normalize=not self.raw_frames)   # [B, V*T, D]
        prompts, mask = self.bank.features_for_training(self.model, self.k, generator)  # [C, k', D]
        sim = self.similarity(frames.float(), prompts.float(), mask)
        return self.model.logit_scale.exp() * sim


def training_bank(cfg: TrainConfig, classnames: list[str]):
    """The prompts the run trains with: the config's strategy, prompt file and dropped attribute groups
    (evaluation builds its banks the same way, per split: engine.evaluate.evaluate_protocol)."""
    return build_prompt_bank(cfg.prompt_strategy, classnames, resolve_prompt_file(cfg.prompt_file),
                             drop_groups=cfg.drop_attribute_groups)


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> Optional[torch.dtype]:
    if cfg.precision == "fp32" or (cfg.precision == "auto" and device.type == "cpu"):
        return None
    return torch.float16 if cfg.precision == "fp16" else torch.bfloat16
