"""Prompt banks: per class a list of prompt texts, encoded by the text tower for MAKA.

The strategies that fill a bank (single, set, customized, llm_direct, action_conditioned) are
named in prompts.strategies; this module holds the bank itself. Open-VCLIP's "set" is averaged in
its paper: use the mean similarity for it (MAKA can use the 28 templates as a bank too).

Prompt-file descriptions are stored without the action; the bank prefixes each one with
"a video of {action}. " (paper 3.2.2) for action_conditioned and llm_direct (a description
that never names the action could not tell two classes apart otherwise). CuPL answers name
the class themselves, so customized prompts are used as written. `prefix=` overrides this.

Encoded features are cached on disk (paths.cache_dir()/"prompt_features") under a key made of
the text tower's weights fingerprint, the model config and the prompt texts, so a repeated
evaluation never re-encodes, and any change of weights or prompts misses the cache.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import torch

from apclip_core import atomic, paths
from apclip_core.errors import BadValue

logger = logging.getLogger(__name__)

from apclip_core.prompts.templates import SET_FORMS, SET_PREFIXES, SET_TEMPLATES  # noqa: F401 - the bank's Set

FILE_STRATEGIES = ("action_conditioned", "customized", "llm_direct")  # the fields of a prompt file's class


def resolve_prompt_file(path: Optional[str | Path]) -> Optional[str]:
    """A prompt file as given, or relative to the project root (configs say prompts/x.json)."""
    if not path or Path(path).is_file():
        return None if not path else str(path)
    candidate = paths.PROJECT_ROOT / path
    return str(candidate) if candidate.is_file() else str(path)


def readable_name(name: str) -> str:
    """A class name as words for a prompt: "ApplyEyeMakeup" -> "apply eye makeup",
    "brush_hair" -> "brush hair", "YoYo" -> "yo yo", "BMXRiding" -> "BMX riding".

    Underscores become spaces; a single CamelCase word is split at case changes and lower-cased
    (all-capital acronyms are kept). Names that already contain spaces (Kinetics, SSv2) keep their
    case and only get their whitespace normalised.
    """
    text = name.replace("_", " ").strip()
    if " " not in text and text != text.lower():
        words = re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+", text)
        text = " ".join(w if (w.isupper() and len(w) > 1) else w.lower() for w in words)
    return " ".join(text.split())


def single_prompt(classname: str) -> str:
    return f"a video of {readable_name(classname)}."


@dataclass
class EncodedBank:
    """feats [C, Nt_max, D] (L2-normalised, zero rows where mask is False), mask [C, Nt_max] bool."""
    feats: torch.Tensor
    mask: torch.Tensor
    prompts: list[list[str]]


@dataclass
class PromptBank:
    classnames: list[str]
    prompts: list[list[str]]                  # ragged: prompts[c] = texts of class c
    strategy: str = "single"
    attributes: Optional[list[list[str]]] = None  # graph key of each prompt (action_conditioned only)

    def __post_init__(self):
        if len(self.prompts) != len(self.classnames):
            raise ValueError(f"{len(self.classnames)} class names but {len(self.prompts)} prompt lists")
        empty = [c for c, p in zip(self.classnames, self.prompts) if not p]
        if empty:
            raise ValueError(f"classes without any prompt: {empty}")
        if self.attributes is not None and [len(a) for a in self.attributes] != [len(p) for p in self.prompts]:
            raise ValueError("attributes must give one graph key per prompt")

    # ---- builders ---------------------------------------------------------------------------
    @classmethod
    def single(cls, classnames: Sequence[str]) -> "PromptBank":
        return cls(list(classnames), [[single_prompt(c)] for c in classnames], "single")

    @classmethod
    def prompt_set(cls, classnames: Sequence[str]) -> "PromptBank":
        return cls(list(classnames), [[t.format(readable_name(c)) for t in SET_TEMPLATES] for c in classnames], "set")

    @classmethod
    def from_prompt_file(cls, path: str | Path, classnames: Sequence[str], strategy: str = "action_conditioned", *,
                         prefix: Optional[bool] = None, drop_groups: Sequence[str] = (),
                         prefix_names: Optional[Sequence[str]] = None) -> "PromptBank":
        """Prompts of `strategy` for `classnames` (names exactly as in the labels CSV) from a prompt file,
        read through the prompt-file schema. drop_groups: attribute groups to leave out of the
        action-conditioned prompts (e.g. ["body"]: Table 5's "w/o Body"). prefix_names: how the
        "a video of {action}." prefix names each class (default: the class names)."""
        from apclip_core.prompts.schema import PromptFile

        if strategy not in FILE_STRATEGIES:
            raise BadValue(f"unknown prompt-file strategy {strategy!r}; choose one of {FILE_STRATEGIES}")
        path = resolve_prompt_file(path)
        prompt_file = PromptFile.read(path)
        classes = prompt_file.classes
        missing = [c for c in classnames if c not in classes]
        if missing:
            from apclip_core.errors import MissingPromptsError

            raise MissingPromptsError(
                f"{path}: {len(missing)} of {len(classnames)} classes missing: {missing[:10]}"
                f"{' ...' if len(missing) > 10 else ''}. Use the prompt file of this dataset, or generate the "
                f"missing classes with `make prompts DATASET=<name> LABELS=<labels csv>`")
        drop = tuple(f"{g.lower()}." for g in drop_groups)
        if prefix is None:
            prefix = strategy != "customized"
        prompts, attributes = [], []
        for c, shown in zip(classnames, prefix_names or classnames):
            if strategy == "action_conditioned":
                entries = [(e.text, e.attribute) for e in classes[c].action_conditioned
                           if not e.attribute.startswith(drop)]
            else:
                entries = [(t, "") for t in getattr(classes[c], strategy) or []]
            if not entries:
                raise BadValue(f"{path}: no {strategy!r} prompts for class {c!r}")
            head = single_prompt(shown) + " " if prefix else ""
            prompts.append([head + " ".join(text.split()) for text, _ in entries])
            attributes.append([a for _, a in entries])
        return cls(list(classnames), prompts, strategy, attributes if strategy == "action_conditioned" else None)

    # ---- sampling -----------------------------------------------------------------------------
    @property
    def counts(self) -> list[int]:
        return [len(p) for p in self.prompts]

    def subsample(self, k: int, generator: Optional[torch.Generator] = None) -> "PromptBank":
        """k prompts per class drawn without replacement (all of them when a class has <= k)."""
        if k < 1:
            raise BadValue(f"k must be >= 1, got {k}")
        picks = [sorted(torch.randperm(n, generator=generator)[:k].tolist()) if n > k else list(range(n))
                 for n in self.counts]
        prompts = [[p[i] for i in idx] for p, idx in zip(self.prompts, picks)]
        attributes = (None if self.attributes is None
                      else [[a[i] for i in idx] for a, idx in zip(self.attributes, picks)])
        return replace(self, prompts=prompts, attributes=attributes)

    # ---- encoding -----------------------------------------------------------------------------
    @property
    def flat_prompts(self) -> list[str]:
        """All prompts, class by class (the order pad() expects)."""
        return [t for p in self.prompts for t in p]

    def _encode_flat(self, model, batch_size: int) -> torch.Tensor:
        """All prompts -> [P, D]. Prompts are sorted by length so that each batch is tokenized to
        its own longest prompt (most are far shorter than CLIP's 77 tokens)."""
        flat = self.flat_prompts
        order = sorted(range(len(flat)), key=lambda i: len(flat[i]))
        feats = [None] * len(flat)
        device = next(model.parameters()).device
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            out = model.encode_text(model.tokenize([flat[i] for i in idx]).to(device))
            for i, f in zip(idx, out):
                feats[i] = f
        return torch.stack(feats)

    def pad(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features of flat_prompts [P, D] -> (feats [C, Nt_max, D] zero-padded, mask [C, Nt_max])."""
        counts = self.counts
        C, n_max = len(counts), max(counts)
        feats = flat.new_zeros(C, n_max, flat.shape[-1])
        mask = torch.zeros(C, n_max, dtype=torch.bool, device=flat.device)
        index = torch.tensor([c * n_max + j for c, n in enumerate(counts) for j in range(n)], device=flat.device)
        feats = feats.view(C * n_max, -1).index_copy(0, index, flat).view(C, n_max, -1)
        mask.view(-1)[index] = True
        return feats, mask

    def cache_key(self, model) -> str:
        from apclip_core.model.video_clip import weights_fingerprint

        h = hashlib.sha256()
        h.update(weights_fingerprint(model).encode())
        h.update(json.dumps({k: model.config.get(k) for k in ("model_name", "quick_gelu", "context_length",
                                                               "precision")}, sort_keys=True).encode())
        h.update(json.dumps(self.prompts, ensure_ascii=False).encode())
        return h.hexdigest()

    @torch.no_grad()
    def encode(self, model, *, batch_size: int = 256, cache: bool = True) -> EncodedBank:
        """Text features of every prompt, padded to [C, Nt_max, D] with a mask; no gradient."""
        path = paths.cache_dir() / "prompt_features" / f"{self.cache_key(model)}.pt" if cache else None
        device = next(model.parameters()).device
        if path is not None and path.is_file():
            stored = torch.load(path, map_location=device, weights_only=True)
            logger.debug("prompt features from cache %s", path)
            return EncodedBank(stored["feats"], stored["mask"], self.prompts)
        feats, mask = self.pad(self._encode_flat(model, batch_size))
        if path is not None:
            atomic.torch_save({"feats": feats.cpu(), "mask": mask.cpu()}, path)
        return EncodedBank(feats, mask, self.prompts)

    def features_for_training(self, model, k: int, generator: Optional[torch.Generator] = None,
                              *, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """One training step's class features: k prompts per class (per-step prompt budget),
        encoded with gradient through the text tower -> (feats [C, k', D], mask [C, k']),
        k' = min(k, largest class).

        Under DistributedDataParallel the text tower must run inside the wrapped forward; do the
        same steps by hand: sub = bank.subsample(k, g); tokens = model.tokenize(sub.flat_prompts);
        video_feats, text = ddp_model(video, tokens); feats, mask = sub.pad(text)."""
        bank = self.subsample(k, generator)
        return bank.pad(bank._encode_flat(model, batch_size))
