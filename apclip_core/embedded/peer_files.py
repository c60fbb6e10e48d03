"""The embedded benchmark's stand-ins for the peers' released checkpoint files.

ViFi-CLIP, OST, Open-VCLIP and FROSTER release CLIP weights, each in its own layout (documented in
`apclip_core.model.convert`). This module writes any CLIP state dict in OpenAI's names into each of
those layouts, as their training scripts save them: the key prefixes and top-level entries, ViFi-CLIP's
missing token embedding and the prompt learner its own loader deletes, the yacs config pickled beside
ViFi-CLIP/OST weights, FROSTER's training-only projectors; MoTE's image tower beside its temporal module
(`mote_fusion`), TC-CLIP's split q/k/v attention, bias tables, learned context and prompt-generation layer
(`tcclip_extras`) beside its omegaconf config (OmegaConfStandIn); and an X-CLIP-style file, which the
importer must refuse. So the importer and the zoo (`apclip_core.paper.zoo`) are exercised on files shaped like
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
LAYOUTS = ("openai", "vificlip", "ost", "openvclip", "froster", "xclip", "mote", "tcclip")


class _ModulesStandIn:
    """Saves what sys.modules holds under MODULES on entry (`_save`) and puts it back on exit."""
    MODULES: tuple = ()

    def _save(self) -> None:
        self._saved = {name: sys.modules.get(name) for name in self.MODULES}

    def __exit__(self, *exc):
        for name, module in self._saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


class YacsStandIn(_ModulesStandIn):
    """Registers a stand-in `yacs.config.CfgNode` while active, so a pickle names that class as
    ViFi-CLIP's and OST's files do (yacs need not be installed); whatever `yacs` was imported before
    is put back on exit."""
    MODULES = ("yacs", "yacs.config")

    def __enter__(self):
        class CfgNode(dict):
            def __init__(self, init=None):
                super().__init__(init or {})
                self.__dict__["__immutable__"] = False
                self.__dict__["__deprecated_keys__"] = set()
                self.__dict__["__renamed_keys__"] = {}
                self.__dict__["__new_allowed__"] = False

        CfgNode.__module__, CfgNode.__qualname__ = "yacs.config", "CfgNode"
        self._save()
        yacs, config = types.ModuleType("yacs"), types.ModuleType("yacs.config")
        config.CfgNode, yacs.config = CfgNode, config
        sys.modules["yacs"], sys.modules["yacs.config"] = yacs, config
        return CfgNode


class OmegaConfStandIn(_ModulesStandIn):
    """Registers stand-ins for omegaconf's DictConfig, ListConfig, AnyNode, Metadata and ContainerMetadata
    while active, so that `to_dict_config(d)` pickles as TC-CLIP's hydra config does: the same class names and
    the same state (_metadata with typing.Any types and a defaultdict resolver cache, _parent, _content of
    nodes holding _val). omegaconf need not be installed; whatever was imported before is put back on exit."""
    MODULES = ("omegaconf", "omegaconf.base", "omegaconf.nodes", "omegaconf.dictconfig", "omegaconf.listconfig")

    def __enter__(self):
        import collections
        import typing

        classes = {}
        for module, name in (("omegaconf.base", "Metadata"), ("omegaconf.base", "ContainerMetadata"),
                             ("omegaconf.nodes", "AnyNode"), ("omegaconf.dictconfig", "DictConfig"),
                             ("omegaconf.listconfig", "ListConfig")):
            cls = type(name, (), {})
            cls.__module__, cls.__qualname__ = module, name
            classes[name] = cls
        self._save()
        for name in self.MODULES:
            sys.modules[name] = types.ModuleType(name)
        for name, cls in classes.items():
            setattr(sys.modules[cls.__module__], name, cls)

        def metadata(kind, key, object_type):
            meta = classes[kind]()
            meta.__dict__.update(ref_type=typing.Any, object_type=object_type, optional=True, key=key, flags={},
                                 flags_root=False, resolver_cache=collections.defaultdict(dict))
            if kind == "ContainerMetadata":
                meta.__dict__.update(key_type=typing.Any, element_type=typing.Any)
            return meta

        def node(value, key, parent):
            if isinstance(value, (dict, list)):
                container = classes["DictConfig" if isinstance(value, dict) else "ListConfig"]()
                container.__dict__.update(_metadata=metadata("ContainerMetadata", key, type(value)), _parent=parent)
                items = value.items() if isinstance(value, dict) else enumerate(value)
                content = {k: node(v, k, container) for k, v in items}
                container._content = content if isinstance(value, dict) else list(content.values())
                return container
            leaf = classes["AnyNode"]()
            leaf.__dict__.update(_metadata=metadata("Metadata", key, None), _parent=parent, _val=value)
            return leaf

        return lambda config: node(config, None, None)


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


# ---- MoTE and TC-CLIP: a CLIP plus modules of their own ------------------------------------------------
def _block(width: int, generator: torch.Generator, prefix: str, names=("ln_1", "ln_2")) -> dict:
    out = {}
    for ln in names:
        out[f"{prefix}{ln}.weight"] = 1 + 0.1 * torch.randn(width, generator=generator)
        out[f"{prefix}{ln}.bias"] = 0.1 * torch.randn(width, generator=generator)
    return out


def mote_fusion(sd: dict, generator: torch.Generator, *, layers: int = 2, experts: int = 3, classes: int = 12,
                positions: int = 77) -> dict:
    """MoTE's fusion_model_state_dict for the CLIP `sd`: the K-400 class features (here `classes` random unit
    rows), learned frame positions, `layers` temporal blocks of `experts` MLP experts; the fusion weight is
    saved as zeros, as MoTE never trains it."""
    d = _embed_dim(sd)
    out = {"spe_cls_feature": torch.nn.functional.normalize(torch.randn(classes, d, generator=generator), dim=-1),
           "frame_position_embeddings.weight": 0.2 * torch.randn(positions, d, generator=generator)}
    for i in range(layers):
        b = f"transformer.resblocks.{i}."
        out[b + "attn.in_proj_weight"] = 0.2 * torch.randn(3 * d, d, generator=generator)
        out[b + "attn.in_proj_bias"] = 0.1 * torch.randn(3 * d, generator=generator)
        out[b + "attn.out_proj.weight"] = 0.2 * torch.randn(d, d, generator=generator)
        out[b + "attn.out_proj.bias"] = 0.1 * torch.randn(d, generator=generator)
        out.update(_block(d, generator, b))
        out[b + "mlp.mote_fusion_weight"] = torch.zeros(experts)
        for e in range(experts):
            out[f"{b}mlp.fc_up.{e}.weight"] = 0.2 * torch.randn(4 * d, d, generator=generator)
            out[f"{b}mlp.fc_up.{e}.bias"] = 0.1 * torch.randn(4 * d, generator=generator)
            out[f"{b}mlp.fc_dn.{e}.weight"] = 0.1 * torch.randn(d, 4 * d, generator=generator)
            out[f"{b}mlp.fc_dn.{e}.bias"] = 0.1 * torch.randn(d, generator=generator)
    return out


def mote_initial_fusion(sd: dict, generator: torch.Generator, *, layers: int = 2, experts: int = 4) -> dict:
    """MoTE's temporal module as its code initialises it for the CLIP `sd` (linear and embedding weights
    N(0, 0.02), biases 0, LayerNorms 1/0, fusion weight 0, the 400 stored class features 0): the zoo's
    stand-in, whose modulation is then exp(-20), so it scores as the mean of the CLIP's frames."""
    out = mote_fusion(sd, generator, layers=layers, experts=experts, classes=400)
    for k, v in out.items():
        if k == "spe_cls_feature" or k.endswith(("bias", "mote_fusion_weight")):
            out[k] = torch.zeros_like(v)
        elif ".ln_" in k:
            out[k] = torch.ones_like(v)
        else:
            out[k] = 0.02 * torch.randn(v.shape, generator=generator)
    return out


def mote_payload(sd: dict, fusion: dict) -> dict:
    """What MoTE's epoch_saving writes (no prefix): the image tower and logit scale only (its text side is
    the original CLIP's, never saved), the temporal module, the optimizer."""
    visual = {k: v for k, v in sd.items() if k.startswith("visual.") or k == "logit_scale"}
    return {"epoch": 29, "model_state_dict": OrderedDict(visual), "fusion_model_state_dict": OrderedDict(fusion),
            "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 8e-6, "params": [0]}]}}


# the settings TC-CLIP's config holds that shapes cannot tell: its released trainer and zero-shot configs
# (without prompt_generation_layer_level: the converter's default, the last text block, as the released 12 of 12),
# and the same shrunk for the tests' tiny models
TCCLIP_RELEASED_CONFIG = {"num_frames": 16, "context_token_k": 96, "seed_token_a": 0.3, "tome_r": 100, "tome_d": 0,
                          "n_ctx": 4, "ctx_init": "a photo of a", "context_length": 30, "model_arch": "ViT-B/16",
                          "positional_embedding_type": "space", "local_global_bias": True, "wise_ft": 0.0}
TCCLIP_TINY_CONFIG = {**TCCLIP_RELEASED_CONFIG, "num_frames": 4, "context_token_k": 6, "tome_r": 4}


def tcclip_extras(sd: dict, generator: torch.Generator, *, n_ctx: int = 4, classes: int = 3,
                  context_length: int = 30, heads: Optional[int] = None) -> dict:
    """TC-CLIP's own parameters for the CLIP `sd`, in its names (after 'module.'): the learned context, the
    prompt-generation layer, the local/global bias of visual blocks 1.., and the prompt learner's buffers
    (embeddings of the training class prompts, deleted by its loader)."""
    import re

    w, vw = _text_width(sd), int(sd["visual.conv1.weight"].shape[0])
    heads = heads or vw // 64     # the image tower's (OpenAI's heads of 64 unless stated)
    visual_layers = {int(m.group(1)) for k in sd if (m := re.match(r"visual\.transformer\.resblocks\.(\d+)\.", k))}
    out = {"prompt_learner.ctx": 0.2 * torch.randn(n_ctx, w, generator=generator),
           "prompt_learner.token_prefix": torch.randn(classes, 1, w, generator=generator),
           "prompt_learner.token_suffix": torch.randn(classes, context_length - 1 - n_ctx, w, generator=generator)}
    for i in sorted(visual_layers)[1:]:
        out[f"image_encoder.transformer.resblocks.{i}.attn.local_global_bias_table"] = \
            0.5 * torch.randn(heads, 1, 2, generator=generator)
    g = "text_encoder.prompt_generation_layer.0."
    out[g + "attn.in_proj_weight"] = 0.2 * torch.randn(3 * w, w, generator=generator)
    out[g + "attn.in_proj_bias"] = 0.1 * torch.randn(3 * w, generator=generator)
    out[g + "attn.out_proj.weight"] = 0.2 * torch.randn(w, w, generator=generator)
    out[g + "attn.out_proj.bias"] = 0.1 * torch.randn(w, generator=generator)
    out.update(_block(w, generator, g, ("ln_1", "ln_1_kv", "ln_2")))
    out[g + "mlp.c_fc.weight"] = 0.2 * torch.randn(4 * w, w, generator=generator)
    out[g + "mlp.c_fc.bias"] = 0.1 * torch.randn(4 * w, generator=generator)
    out[g + "mlp.c_proj.weight"] = 0.1 * torch.randn(w, 4 * w, generator=generator)
    out[g + "mlp.c_proj.bias"] = 0.1 * torch.randn(w, generator=generator)
    return out


def tcclip_initial_extras(sd: dict, generator: torch.Generator, *, heads: int, n_ctx: int = 4,
                          ctx_init: str = "a photo of a", classes: int = 3, context_length: int = 30) -> dict:
    """TC-CLIP's own parameters as its code initialises them from the CLIP `sd`: the context vectors are the
    token embeddings of `ctx_init`, the prompt-generation layer a copy of the last text block (its ln_1_kv
    = ln_1), the local/global bias N(0, 0.02) (`heads`: the image tower's). The zoo's stand-in."""
    import open_clip

    out = tcclip_extras(sd, generator, n_ctx=n_ctx, classes=classes, context_length=context_length, heads=heads)
    tokens = open_clip.tokenize([ctx_init], context_length=context_length)[0]
    out["prompt_learner.ctx"] = sd["token_embedding.weight"][tokens[1:1 + n_ctx]].clone()
    last = max(int(k.split(".")[2]) for k in sd if k.startswith("transformer.resblocks."))
    g = "text_encoder.prompt_generation_layer.0."
    for k in [k for k in out if k.startswith(g)]:
        name = k[len(g):].replace("ln_1_kv.", "ln_1.")
        out[k] = sd[f"transformer.resblocks.{last}.{name}"].clone()
    for k in [k for k in out if k.endswith("local_global_bias_table")]:
        out[k] = 0.02 * torch.randn(out[k].shape, generator=generator)
    return out


def tcclip_model(sd: dict, extras: dict) -> dict:
    """TC-CLIP's weights as its DDP model saves them: module.image_encoder.* with each attention's in_proj
    split into q_proj/k_proj/v_proj, module.text_encoder.* without token embedding, module.logit_scale, and
    its own parameters (`tcclip_extras`)."""
    out = {}
    for k, v in sd.items():
        if k.startswith("visual."):
            k = "image_encoder." + k[len("visual."):]
            if k.endswith(("attn.in_proj_weight", "attn.in_proj_bias")):
                kind = k.rsplit("_", 1)[1]
                for name, part in zip(("q_proj", "k_proj", "v_proj"), v.chunk(3)):
                    out[f"module.{k.rsplit('.', 1)[0]}.{name}.{kind}"] = part.clone()
                continue
        elif k == "token_embedding.weight":
            continue
        elif k != "logit_scale":
            k = "text_encoder." + k
        out["module." + k] = v
    out.update({"module." + k: v for k, v in extras.items()})
    return out


def write_peer_file(layout: str, sd: dict, path: str | Path, *, seed: int = 0, extras: Optional[dict] = None,
                    config: Optional[dict] = None) -> Path:
    """Write the OpenAI-layout CLIP state dict `sd` at `path` as `layout`'s released file does.

    openai: the state dict itself. vificlip: the trainer payload with the yacs config, no token embedding,
    and the prompt learner (token embeddings of its training prompts) that its own loader deletes.
    ost: the same payload, token embedding included. openvclip: the SWA file. froster: with its projectors.
    xclip: the trainer payload of an X-CLIP model. mote: MoTE's file, `extras` its fusion_model_state_dict
    (default: `mote_fusion`). tcclip: TC-CLIP's trainer payload, `extras` its own parameters (default:
    `tcclip_extras`) and `config` the settings pickled as an omegaconf DictConfig (default: TCCLIP_TINY_CONFIG)."""
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
    elif layout == "mote":
        torch.save(mote_payload(sd, extras if extras is not None else mote_fusion(sd, g)), path)
    elif layout == "tcclip":
        model = tcclip_model(sd, extras if extras is not None else tcclip_extras(sd, g))
        with OmegaConfStandIn() as dict_config:
            payload = {"model": model, "optimizer": {"state": {}, "param_groups": [{"lr": 8e-6, "params": [0]}]},
                       "lr_scheduler": {"t_initial": 10}, "max_accuracy": 54.2, "epoch": 9,
                       "config": dict_config(dict(config if config is not None else TCCLIP_TINY_CONFIG))}
            torch.save(payload, path)
    elif layout == "openvclip":
        torch.save(openvclip_layout(sd), path)
    else:
        torch.save(froster_layout(sd, g), path)
    return path


def write_standins(sd: dict, folder: str | Path, layouts: Optional[tuple[str, ...]] = None, *,
                   heads: Optional[int] = None) -> dict[str, Path]:
    """Every peer's file (and OpenAI's, the original CLIP that --base takes) holding `sd`, in `folder`:
    {layout: path}, named openai.pt, vificlip.pth, ost.pth, openvclip.pth, froster.pth, mote.pth, tcclip.pth.
    MoTE's and TC-CLIP's own modules are as their code initialises them from that CLIP (mote_initial_fusion,
    tcclip_initial_extras; `heads`: the image tower's, OpenAI's width // 64 unless stated), TC-CLIP's config
    its released one."""
    folder = Path(folder)
    wanted = layouts or ("openai", "vificlip", "ost", "openvclip", "froster")
    g = torch.Generator().manual_seed(0)
    out = {}
    for layout in wanted:
        path = folder / (f"{layout}.pt" if layout == "openai" else f"{layout}.pth")
        if layout == "mote":
            out[layout] = write_peer_file(layout, sd, path, extras=mote_initial_fusion(sd, g))
        elif layout == "tcclip":
            extras = tcclip_initial_extras(sd, g, heads=heads or int(sd["visual.conv1.weight"].shape[0]) // 64)
            out[layout] = write_peer_file(layout, sd, path, extras=extras, config=TCCLIP_RELEASED_CONFIG)
        else:
            out[layout] = write_peer_file(layout, sd, path)
    return out
