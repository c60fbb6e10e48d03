"""What the text tower adds to a training step, by a FLOP count: for cost estimates whose throughput figure was
not measured on the run's own shape (the bench's figure, ViFi-CLIP's reported rate: one prompt per class per step).

AP-CLIP encodes C classes x k prompts through the text tower at every micro-step (engine/step.py), each cut to the
longest prompt drawn (video_clip.trim_tokens); ViFi-CLIP one short prompt per class. Per step, both towers cost
about 2 x parameters x tokens each way (forward and backward alike, so the ratio holds for both): the image tower
batch x frames x its tokens at its width and depth, the text tower prompts x their tokens at its own. The ratio of
the run's step to the one-prompt step is the factor a plan multiplies an unmeasured training time by, said as
ASSUMED beside it; `MEASURE=1` times the run's own step instead (engine/throughput.py), the text tower included.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class TextCost:
    factor: float          # the run's step / the one-prompt-per-class step (image tower alike)
    prompts: int           # through the text tower per micro-step
    tokens: int            # of the longest prompt (what the batch is cut to)
    reference_prompts: int
    reference_tokens: int

    def describe(self) -> str:
        return (f"text tower ASSUMED x{self.factor:.2f} the one-prompt step by a FLOP count ({self.prompts:,} prompts of "
                f"<= {self.tokens} tokens per step, against {self.reference_prompts:,} of <= {self.reference_tokens})")


@functools.lru_cache(maxsize=4)
def _tokenizer(model_name: str):
    import open_clip

    return open_clip.get_tokenizer(model_name)


def _longest(model_name: str, texts: list[str]) -> int:
    return int(_tokenizer(model_name)(sorted(set(texts))).ne(0).sum(dim=1).max())


def _tower(cfg: dict) -> tuple[int, int]:
    return int(cfg.get("width", 512)), int(cfg.get("layers", 12))


def step_units(model_cfg: dict, *, images: int, prompts: int, tokens: int) -> float:
    """A step's compute in width^2 x layers x tokens units (attention's quadratic part left out: small here)."""
    vision, text = model_cfg.get("vision_cfg", {}), model_cfg.get("text_cfg", {})
    size, patch = vision.get("image_size", 224), vision.get("patch_size", 16)
    size = size[0] if isinstance(size, (list, tuple)) else size
    (vw, vl), (tw, tl) = _tower(vision), _tower(text)
    return images * vl * vw ** 2 * ((size // patch) ** 2 + 1) + prompts * tl * tw ** 2 * tokens


_COSTS: dict[str, TextCost] = {}


def text_cost(cfg) -> TextCost:
    """The run's training step against the one-prompt step on the same classes, model and batch (once per shape:
    a plan's seeds share it)."""
    key = json.dumps({k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("name", "output_dir", "seed")},
                     sort_keys=True, default=str)
    if key not in _COSTS:
        _COSTS[key] = _text_cost(cfg)
    return _COSTS[key]


def _text_cost(cfg) -> TextCost:
    import open_clip

    from apclip_core.engine import throughput
    from apclip_core.model.video_clip import register_model_configs
    from apclip_core.prompts.bank import PromptBank

    register_model_configs()
    model_cfg = open_clip.get_model_config(cfg.model_name) or {}
    classnames = throughput.training_classnames(cfg)[0]
    bank = throughput._bank(cfg, classnames)
    single = PromptBank.single(classnames)
    prompts, reference = throughput.class_prompts(cfg, bank), len(classnames)
    tokens = _longest(cfg.model_name, [t for texts in bank.prompts for t in texts])
    reference_tokens = _longest(cfg.model_name, [t for texts in single.prompts for t in texts])
    images = cfg.batch_size * cfg.frames
    factor = (step_units(model_cfg, images=images, prompts=prompts, tokens=tokens)
              / step_units(model_cfg, images=images, prompts=reference, tokens=reference_tokens))
    return TextCost(factor, prompts, tokens, reference, reference_tokens)
