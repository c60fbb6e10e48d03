"""The embedded benchmark's stand-ins for the peers' released checkpoint files.

ViFi-CLIP, OST, Open-VCLIP and FROSTER release CLIP weights, each in its own layout (documented in
`apclip_core.model.convert`). This module writes any CLIP state dict in OpenAI's names into each of
those layouts, as their training scripts save them: the key prefixes and top-level entries, ViFi-CLIP's
missing token embedding and the prompt learner its own loader deletes, the yacs config pickled beside
ViFi-CLIP/OST weights, FROSTER's training-only projectors; and an X-CLIP-style file, which the importer
must refuse. So the importer and the zoo (`apclip_core.paper.zoo`) are exercised on files shaped like
the real ones, with nothing downloaded.

They are stand-ins, not the peers' models: the weights are whatever state dict is given. The zoo's
smoke profile writes the embedded benchmark's pretrained tiny CLIP (`embedded.pretrain`) in every
layout; tests/test_convert.py writes random tiny CLIPs. Entries that only the peers' training uses
(prompt learner, projectors) are filled with seeded random tensors: the importer drops them unread.
"""
from __future__ import annotations

import sys
import types
from collections import OrderedDict
from pathlib import Path
from typing import Optional

import torch

# the layouts this module writes: the importer's --from names, plus xclip (a layout it refuses)
LAYOUTS = ("openai", "vificlip", "ost", "openvclip", "froster", "xclip")


class YacsStandIn:
    """Registers a stand-in `yacs.config.CfgNode` while active, so a pickle names that class as
    ViFi-CLIP's and OST's files do (yacs need not be installed); whatever `yacs` was imported before
    is put back on exit."""

    def __enter__(self):
        class CfgNode(dict):
            def __init__(self, init=None):
                super().__init__(init or {})
                self.__dict__["__immutable__"] = False
                self.__dict__["__deprecated_keys__"] = set()
                self.__dict__["__renamed_keys__"] = {}
                self.__dict__["__new_allowed__"] = False

        CfgNode.__module__, CfgNode.__qualname__ = "yacs.config", "CfgNode"
        self._saved = {name: sys.modules.get(name) for name in ("yacs", "yacs.config")}
        yacs, config = types.ModuleType("yacs"), types.ModuleType("yacs.config")
        config.CfgNode, yacs.config = CfgNode, config
        sys.modules["yacs"], sys.modules["yacs.config"] = yacs, config
        return CfgNode

    def __exit__(self, *exc):
        for name, module in self._saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def trainer_payload(model: dict, cfg_node, *, arch: str = "ViT-B/16", frames: int = 32) -> dict:
    """What ViFi-CLIP/OST/X-CLIP's save_checkpoint writes: weights, optimizer, scheduler, accuracy, epoch
    and the yacs config (whose ARCH need not match the tensors, as in theirs)."""
    cfg = cfg_node({"MODEL": cfg_node({"ARCH": arch}), "DATA": cfg_node({"NUM_FRAMES": frames})})
    return {"model": OrderedDict(model), "optimizer": {"state": {}, "param_groups": [{"lr": 8e-6, "params": [0]}]},
            "lr_scheduler": {"t_initial": 10}, "max_accuracy": 51.3, "epoch": 10, "config": cfg}


def vificlip_layout(sd: dict, *, with_tokens: bool) -> dict:
    """ViFi-CLIP's (with_tokens=False) or OST's (True) weights: module.image_encoder.* for the image tower,
    module.text_encoder.* for the text tower, module.logit_scale."""
    out = {}
    for k, v in sd.items():
        if k.startswith("visual."):
            out["module.image_encoder." + k[len("visual."):]] = v
        elif k == "logit_scale":
            out["module.logit_scale"] = v
        elif k != "token_embedding.weight" or with_tokens:
            out["module.text_encoder." + k] = v
    return out


def openvclip_layout(sd: dict) -> dict:
    """Open-VCLIP's SWA file: {"model_state": {"model.<OpenAI name>": ...}}."""
    return {"model_state": {"model." + k: v for k, v in sd.items()}}


def _text_width(sd: dict) -> int:
    return int(sd["ln_final.weight"].shape[0])


def _embed_dim(sd: dict) -> int:
    return int(sd["visual.proj"].shape[1])


def froster_layout(sd: dict, generator: torch.Generator) -> dict:
    """FROSTER's file: Open-VCLIP's layout plus its training-only projectors at the top level (no prefix)."""
    state = dict(openvclip_layout(sd)["model_state"])
    embed = _embed_dim(sd)
    for p in ("projector_v", "projector_t"):
        state[f"{p}.0.weight"] = torch.randn(embed, embed, generator=generator)
        state[f"{p}.2.weight"] = torch.randn(embed, embed, generator=generator)
    return {"model_state": state}


def xclip_model(sd: dict, generator: torch.Generator) -> dict:
    """X-CLIP's weights: a CLIP plus modules a frame-wise CLIP lacks (MIT, prompt generator, message tokens)."""
    out = {k.replace("module.image_encoder.", "module.visual."): v
           for k, v in vificlip_layout(sd, with_tokens=True).items()}
    embed, width = _embed_dim(sd), int(sd["visual.conv1.weight"].shape[0])
    out["module.mit.resblocks.0.attn.in_proj_weight"] = torch.randn(3 * embed, embed, generator=generator)
    out["module.prompts_generator.alpha"] = torch.ones(embed)
    out["module.visual.transformer.resblocks.0.message_fc.weight"] = torch.randn(width, width, generator=generator)
    return out


def write_peer_file(layout: str, sd: dict, path: str | Path, *, seed: int = 0) -> Path:
    """Write the OpenAI-layout CLIP state dict `sd` at `path` as `layout`'s released file does.

    openai: the state dict itself. vificlip: the trainer payload with the yacs config, no token embedding,
    and the prompt learner (token embeddings of its training prompts) that its own loader deletes.
    ost: the same payload, token embedding included. openvclip: the SWA file. froster: with its projectors.
    xclip: the trainer payload of an X-CLIP model."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    if layout == "openai":
        torch.save(dict(sd), path)
    elif layout in ("vificlip", "ost", "xclip"):
        if layout == "xclip":
            model = xclip_model(sd, g)
        else:
            model = vificlip_layout(sd, with_tokens=layout == "ost")
        if layout == "vificlip":
            width = _text_width(sd)
            model["module.prompt_learner.token_prefix"] = torch.randn(3, 1, width, generator=g)
            model["module.prompt_learner.token_suffix"] = torch.randn(3, 5, width, generator=g)
        with YacsStandIn() as cfg_node:
            torch.save(trainer_payload(model, cfg_node), path)
    elif layout == "openvclip":
        torch.save(openvclip_layout(sd), path)
    else:
        torch.save(froster_layout(sd, g), path)
    return path


def write_standins(sd: dict, folder: str | Path, layouts: Optional[tuple[str, ...]] = None) -> dict[str, Path]:
    """Every peer's file (and OpenAI's, the original CLIP that --base takes) holding `sd`, in `folder`:
    {layout: path}, named openai.pt, vificlip.pth, ost.pth, openvclip.pth, froster.pth."""
    folder = Path(folder)
    wanted = layouts or ("openai", "vificlip", "ost", "openvclip", "froster")
    return {layout: write_peer_file(layout, sd, folder / (f"{layout}.pt" if layout == "openai" else f"{layout}.pth"))
            for layout in wanted}
