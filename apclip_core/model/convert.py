"""Import the peers' released checkpoints as regular apclip checkpoints.

    python -m apclip_core convert --from {openai,vificlip,openvclip,froster,ost,mote,tcclip} SRC DST
                                  [--base ORIGINAL_CLIP] [--no-interpolate] [--wise-ft ALPHA] [--frames T]
                                  [--heads N[,M]] [--no-quick-gelu]

or `convert(src, dst, "openvclip", base=...)`. DST is what `save_checkpoint` writes (safetensors: a DST
named .pt/.pth becomes .safetensors, with DST.json beside it), so `load_checkpoint`, `evaluate`, `classify`
and training (`pretrained: DST`) read it like any fine-tuned apclip model.

Every source is OpenAI's CLIP underneath (QuickGELU, heads = width // 64), saved in its own layout:

| --from    | weights                   | renamed to OpenAI/open_clip names          | dropped (training only)      |
|-----------|---------------------------|--------------------------------------------|------------------------------|
| openai    | a state dict or TorchScript | as is                                    | input_resolution, context_length, vocab_size |
| vificlip  | ["model"], "module."      | image_encoder. -> visual., text_encoder. -> | prompt_learner.*             |
| ost       | same as vificlip          | same                                       | —                            |
| openvclip | ["model_state"], "model." | as is                                      | —                            |
| froster   | ["model_state"], "model." | as is                                      | projector_v.*, projector_t.* |

What each source needs to give the features its authors measured, recorded in the checkpoint:
- the architecture, read from tensor shapes only (a config's ARCH can be wrong), built as an open_clip
  model config registered under a name derived from it (ViT-B-16 etc. when it is one of those);
- pixel normalisation: ViFi-CLIP and OST normalise 0-255 pixels with ImageNet's mean/std, which on
  apclip's 0-1 input is mean/255 and std/255; the others use CLIP's. Stored as the config's mean/std,
  which every apclip transform reads;
- video pooling ("video_pooling", recorded): ViFi-CLIP averages raw frame features then L2-normalises;
  OST L2-normalises each frame then averages; Open-VCLIP/FROSTER average per-frame logits. apclip's
  "mean" similarity (mean of L2-normalised frames) ranks classes exactly as the last two do; ViFi-CLIP's
  weighs frames by their feature norm: "mean_raw" (model.similarity.pooled_similarity reads the record);
- Open-VCLIP/FROSTER's neighbour-frame attention in every visual layer ("expand_temporal_view": the
  frames per clip, fixed at build time as in their code, not stored in their files: --frames, default 8);
- ViFi-CLIP never trains nor saves the token embedding: it comes from the original CLIP (--base);
- evaluation-time interpolation with the original CLIP (--base), on by default where the authors
  evaluate that way: Open-VCLIP "patching" w = 0.5 original + 0.5 checkpoint, OST's WiSE-FT
  w = 0.2 original + 0.8 checkpoint, over every original-CLIP key; --no-interpolate keeps the saved weights.

Reading: ViFi-CLIP and OST pickle a yacs CfgNode beside the weights, so torch.load(weights_only=True)
refuses them. They are read with a restricted unpickler that maps yacs.config.CfgNode to a plain dict
and refuses every other global that is not a tensor, storage or plain container (yacs is not needed).
X-CLIP-style checkpoints (cross-frame message tokens, MIT, a prompt generator) are refused: they are
not a frame-wise CLIP.

MoTE and TC-CLIP are more than CLIP weights plus pooling; their converted models are apclip's re-implementations
(model.mote, model.tcclip), scored by `zero_shot_logits(frames, classnames)` as their zero-shot evaluations
score, and refuse `encode_video` (their video features depend on the label set, or their text on the video):

| --from | weights                                      | from --base (never saved)    | at evaluation                  |
|--------|----------------------------------------------|------------------------------|--------------------------------|
| mote   | "model_state_dict" (visual.*, logit_scale), "fusion_model_state_dict" (temporal module, K-400 class features) | the whole text tower | always 0.99 checkpoint + 0.01 original on the image tower (its test scripts; --no-interpolate: as saved) |
| tcclip | ["model"], "module."; image_encoder.* with split q/k/v (joined into in_proj here) and local/global bias tables; text_encoder.* with the prompt-generation layer; prompt_learner.ctx; token_prefix/suffix dropped | the token embedding | --wise-ft ALPHA: (1 - ALPHA) original + ALPHA checkpoint over the CLIP parameters (not ctx, bias, prompt generation); default 0 = off, as its zero-shot config; its evaluation script uses 0.7 |

TC-CLIP's docs say wise_ft 1.0 "means the vanilla CLIP weight is used"; its code (wise_state_dict) returns the
checkpoint unchanged for 1.0 and skips the fusion for 0. apclip follows the code. TC-CLIP's settings that shapes
cannot tell (frames 16, context tokens 96, seed ratio 0.3, ToMe r 100, text context 30) are read from the omegaconf
config pickled in its file, else its released config's; the restricted unpickler reads omegaconf's objects as
plain data without omegaconf. Pixels: MoTE CLIP's mean/std, TC-CLIP ImageNet's on 0-255 (as ViFi-CLIP).

Not every CLIP follows OpenAI's convention, and two things of it cannot be read from tensor shapes: the
number of attention heads (an in_proj weight of width W splits into any number of heads) and the
activation. `--heads N[,M]` (image tower, text tower) and `--no-quick-gelu` state them for such a CLIP
(the embedded benchmark's tiny CLIP: 4 heads of 32 and GELU); they are recorded in DST.json. The peers'
files never need them.
"""
from __future__ import annotations

import _compat_pickle
import argparse
import hashlib
import json
import logging
import pickle
import re
import sys
import types
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import open_clip
import torch

from apclip_core import atomic
from apclip_core.errors import CheckpointError
from apclip_core.model.integrity import verify_checkpoint_archive

logger = logging.getLogger(__name__)

IMAGENET_MEAN_255 = (123.675, 116.28, 103.53)
IMAGENET_STD_255 = (58.395, 57.12, 57.375)
CLIP_MEAN = tuple(open_clip.OPENAI_DATASET_MEAN)
CLIP_STD = tuple(open_clip.OPENAI_DATASET_STD)
DEFAULT_FRAMES = 8                  # Open-VCLIP/FROSTER's released models: 8-frame clips
OPENAI_METADATA = ("input_resolution", "context_length", "vocab_size")  # ints in OpenAI's TorchScript files
STANDARD_MODELS = ("ViT-B-32", "ViT-B-16", "ViT-L-14", "ViT-L-14-336")   # names used when the shapes match


@dataclass(frozen=True)
class SourceFormat:
    name: str
    title: str
    mean: tuple                      # on apclip's 0-1 pixel scale
    std: tuple
    video_pooling: str
    expand_temporal_view: bool       # Open-VCLIP's neighbour-frame attention in the image tower
    original_weight: Optional[float]  # evaluation-time interpolation with the original CLIP (None: as saved)
    interpolation_name: str = ""
    licence: str = "other"           # of the released weights, as a model hub's metadata names it
    licence_note: str = ""           # what the authors' repository says (README, "Importing the peers' checkpoints")


FORMATS: dict[str, SourceFormat] = {
    "openai": SourceFormat("openai", "OpenAI CLIP", CLIP_MEAN, CLIP_STD, "l2_then_mean", False, None,
                           licence="mit", licence_note="MIT (openai/CLIP)"),
    "vificlip": SourceFormat("vificlip", "ViFi-CLIP", tuple(m / 255 for m in IMAGENET_MEAN_255),
                             tuple(s / 255 for s in IMAGENET_STD_255), "mean_then_l2", False, None,
                             licence_note="code MIT; its README states no licence of its own for the weights: check "
                                          "the repository before redistributing"),
    "ost": SourceFormat("ost", "OST", tuple(m / 255 for m in IMAGENET_MEAN_255),
                        tuple(s / 255 for s in IMAGENET_STD_255), "l2_then_mean", False, 0.2, "WiSE-FT",
                        licence_note="code MIT (tomchen-ctj/OST); check its Hugging Face Space for the weights"),
    "openvclip": SourceFormat("openvclip", "Open-VCLIP", CLIP_MEAN, CLIP_STD, "mean_of_frame_logits", True, 0.5,
                              "patching", licence_note="no licence file found: check the repository before "
                                                       "redistributing"),
    "froster": SourceFormat("froster", "FROSTER", CLIP_MEAN, CLIP_STD, "mean_of_frame_logits", True, None,
                            licence="cc-by-nc-sa-4.0", licence_note="CC BY-NC-SA 4.0 (non-commercial, share-alike)"),
    # more than a CLIP (model.mote, model.tcclip): scored by their own zero_shot_logits, no frame pooling
    "mote": SourceFormat("mote", "MoTE", CLIP_MEAN, CLIP_STD, None, False, 0.01, "MoTE's weight patch",
                         licence="apache-2.0", licence_note="Apache-2.0"),
    "tcclip": SourceFormat("tcclip", "TC-CLIP", tuple(m / 255 for m in IMAGENET_MEAN_255),
                           tuple(s / 255 for s in IMAGENET_STD_255), None, False, None, "WiSE-FT",
                           licence="cc-by-nc-4.0", licence_note="CC BY-NC 4.0 (code and weights; non-commercial)"),
}
PEER_MODELS = ("mote", "tcclip")     # formats whose models are apclip's re-implementations, not a plain CLIP
MOTE_FRAMES, TCCLIP_WISE_FT_EVAL = 8, 0.7   # MoTE's clips; the alpha of TC-CLIP's WiSE-FT evaluation script

# training-only keys, named in the peers' code: never part of the model
DROPPED_PREFIXES = {"vificlip": ("prompt_learner.",), "froster": ("projector_v.", "projector_t.")}
XCLIP_MARKERS = ("mit.", "prompts_generator.", "prompts_visual_proj", "prompts_visual_ln", ".message_")


class ConvertError(Exception):
    """A file that cannot be converted (exit code 1). The message says which file and why."""
    exit_code = 1


class ConvertUsageError(ConvertError):
    """The command was asked for something that cannot work as given (exit code 2)."""
    exit_code = 2


# ---- reading files --------------------------------------------------------------------------------
class CfgDict(dict):
    """A yacs CfgNode read back as a plain dict; yacs' own attributes land in __dict__, unused."""


class PickledConfigObject(dict):
    """An omegaconf object (DictConfig, ListConfig, a node, its metadata) read back without omegaconf: built
    empty whatever the pickle passes, its state landing in __dict__ (`plain_config` reads the values). Calling
    it runs nothing, so trusting the names it stands for is safe."""

    def __init__(self, *args, **kwargs):
        super().__init__()


def plain_config(obj):
    """A config read by the restricted unpickler as plain Python: omegaconf containers as dicts and lists of
    their nodes' values (interpolations stay the strings they were), yacs nodes as dicts."""
    if isinstance(obj, PickledConfigObject):
        state = obj.__dict__
        if "_content" in state:
            return plain_config(state["_content"])
        if "_val" in state:
            return plain_config(state["_val"])
        return None
    if isinstance(obj, dict):
        return {k: plain_config(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain_config(v) for v in obj]
    return obj


def _allowed_globals() -> dict[tuple[str, str], object]:
    allowed = {("collections", "OrderedDict"): OrderedDict, ("builtins", "set"): set,
               ("builtins", "frozenset"): frozenset, ("_codecs", "encode"): __import__("codecs").encode,
               ("torch", "Size"): torch.Size, ("torch", "device"): torch.device,
               ("yacs.config", "CfgNode"): CfgDict,
               # TC-CLIP pickles an omegaconf DictConfig: its metadata names these (calling them is harmless)
               ("typing", "Any"): PickledConfigObject, ("collections", "defaultdict"): PickledConfigObject,
               ("builtins", "dict"): dict, ("builtins", "list"): list, ("builtins", "int"): int}
    for name in ("_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_parameter_with_state"):
        if hasattr(torch._utils, name):
            allowed[("torch._utils", name)] = getattr(torch._utils, name)
    for name in dir(torch):
        value = getattr(torch, name, None)
        if isinstance(value, torch.dtype) or (name.endswith("Storage") and isinstance(value, type)):
            allowed[("torch", name)] = value
    allowed[("torch.storage", "UntypedStorage")] = torch.storage.UntypedStorage
    import numpy as np  # a trainer's max_accuracy may be a numpy scalar
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "scalar")] = scalar
    allowed[("numpy", "dtype")] = np.dtype
    for name in ("Float64DType", "Float32DType", "Int64DType"):
        if hasattr(getattr(np, "dtypes", None), name):
            allowed[("numpy.dtypes", name)] = getattr(np.dtypes, name)
    return {k: v for k, v in allowed.items() if v is not None}


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a class or function the restricted unpickler does not trust."""


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles tensors, plain containers, yacs CfgNode (as CfgDict) and omegaconf's objects (as
    PickledConfigObject); refuses every other global."""
    ALLOWED: dict = {}

    def find_class(self, module: str, name: str):
        if not RestrictedUnpickler.ALLOWED:
            RestrictedUnpickler.ALLOWED = _allowed_globals()
        # protocol 2 (torch.save's) names builtins the Python 2 way (__builtin__.set): translate as pickle does
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if module.split(".")[0] == "omegaconf":
            return PickledConfigObject
        try:
            return RestrictedUnpickler.ALLOWED[(module, name)]
        except KeyError:
            raise RefusedGlobal(f"refused to unpickle the global {module}.{name}") from None


def _restricted_pickle_module() -> types.ModuleType:
    """What torch.load(pickle_module=...) needs: Unpickler and load."""
    mod = types.ModuleType("apclip_restricted_pickle")
    mod.Unpickler = RestrictedUnpickler
    mod.load = lambda f, **kw: RestrictedUnpickler(f, **kw).load()
    mod.__dict__["UnpicklingError"] = pickle.UnpicklingError
    return mod


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())


def read_file(path: str | Path, what: str = "SRC"):
    """A checkpoint file's content: a TorchScript module's state dict, or the unpickled payload."""
    path = Path(path)
    if not path.is_file():
        raise ConvertUsageError(f"{what} {path}: no such file")
    try:
        verify_checkpoint_archive(path, f"{what} file")
    except CheckpointError as e:
        raise ConvertError(f"{what} {e}") from None
    if _is_torchscript(path):
        try:
            with warnings.catch_warnings():  # torch.jit is deprecated, but it is how OpenAI released CLIP
                warnings.simplefilter("ignore", DeprecationWarning)
                return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
        except Exception as e:  # noqa: BLE001
            raise ConvertError(f"{what} {path}: a TorchScript file that torch.jit.load cannot read ({e})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # a yacs config inside (ViFi-CLIP/OST): the restricted unpickler below reads it
    except Exception as e:  # noqa: BLE001
        raise ConvertError(f"{what} {path}: not a PyTorch checkpoint ({type(e).__name__}: {e})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_restricted_pickle_module())
    except RefusedGlobal as e:
        raise ConvertError(f"{what} {path}: {e}. apclip reads only tensors, plain containers and yacs or omegaconf configs "
                           "from a pickle; re-save the weights as a plain state dict of tensors") from None
    except Exception as e:  # noqa: BLE001
        raise ConvertError(f"{what} {path}: not a PyTorch checkpoint ({type(e).__name__}: {e})") from None


# ---- layouts --------------------------------------------------------------------------------------
def _tensors(d) -> dict:
    return {k: v for k, v in d.items() if isinstance(v, torch.Tensor)} if isinstance(d, dict) else {}


def _strip(keys, prefix: str) -> list[str]:
    return [k[len(prefix):] if k.startswith(prefix) else k for k in keys]


def detect_format(payload) -> tuple[Optional[str], str]:
    """(format name or None, what in the file says so). 'xclip' and 'apclip' are recognised to be refused."""
    if not isinstance(payload, dict):
        return None, f"the file holds a {type(payload).__name__}, not a dict of weights"
    if "state_dict" in payload and "config" in payload and isinstance(payload.get("config"), str):
        return "apclip", "keys 'state_dict' and 'config' (already an apclip checkpoint)"
    if isinstance(payload.get("model_state_dict"), dict) and isinstance(payload.get("fusion_model_state_dict"), dict):
        return "mote", "'model_state_dict' and 'fusion_model_state_dict' (MoTE's image tower and temporal module)"
    if isinstance(payload.get("model"), dict):
        keys = _strip(payload["model"], "module.")
        if any(".attn.q_proj." in k or "prompt_generation_layer." in k for k in keys):
            return "tcclip", "'model' with split q_proj/k_proj/v_proj attention and a prompt_generation_layer"
        if any(m in k for k in keys for m in XCLIP_MARKERS):
            return "xclip", "X-CLIP modules (mit., prompts_generator., message_ attention)"
        if any(k.startswith("image_encoder.") for k in keys):
            if "text_encoder.token_embedding.weight" in keys:
                return "ost", "'model' with module.image_encoder.* and a text token embedding"
            return "vificlip", "'model' with module.image_encoder.* and no text token embedding"
    if isinstance(payload.get("model_state"), dict):
        state = payload["model_state"]
        if any(k.startswith(p) for k in state for p in DROPPED_PREFIXES["froster"]):
            return "froster", "'model_state' with FROSTER's projector_v/projector_t"
        if any(k.startswith("model.visual.") for k in state):
            return "openvclip", "'model_state' with model.visual.* (Open-VCLIP; FROSTER also has projector_v/t)"
    tensors = _tensors(payload)
    if tensors and "visual.conv1.weight" in tensors:
        return "openai", "a state dict with OpenAI's names (visual.conv1.weight, ...)"
    if tensors and any(m in k for k in tensors for m in XCLIP_MARKERS):
        return "xclip", "X-CLIP modules (mit., prompts_generator., message_ attention)"
    top = ", ".join(sorted(map(str, payload))[:8])
    return None, f"top-level keys {top}{' ...' if len(payload) > 8 else ''}"


def _check_format(payload, fmt: str, path: Path) -> None:
    found, why = detect_format(payload)
    if found == "xclip":
        raise ConvertError(f"{path} is an X-CLIP-style checkpoint ({why}): its image tower exchanges "
                           "messages between frames and its text side adds a prompt generator, which a "
                           "frame-wise CLIP does not have, so it cannot be loaded as one. Not convertible.")
    if found == "apclip":
        raise ConvertUsageError(f"{path} is already an apclip checkpoint: load it with load_checkpoint / "
                                "evaluate --checkpoint, no conversion needed")
    if found is None:
        raise ConvertError(f"{path} is not a checkpoint layout apclip knows ({why}); known: "
                           f"{', '.join(FORMATS)} (see `python -m apclip_core convert --help`)")
    same_family = {found, fmt} <= {"openvclip", "froster"} and fmt == "froster"  # projectors may be stripped
    if found != fmt and not same_family:
        raise ConvertUsageError(f"{path} looks like a {FORMATS[found].title} checkpoint ({why}), not "
                                f"{FORMATS[fmt].title}: run again with --from {found}")


def to_openai_layout(payload, fmt: str) -> tuple[dict, list[str]]:
    """(state dict with OpenAI/open_clip names, float32; the training-only keys dropped)."""
    if fmt == "openai":
        raw = {k: v for k, v in payload.items() if k not in OPENAI_METADATA}
        dropped = [k for k in OPENAI_METADATA if k in payload]
    elif fmt in ("vificlip", "ost"):
        raw, dropped = {}, []
        for key, value in payload["model"].items():
            k = key[len("module."):] if key.startswith("module.") else key
            if k.startswith(DROPPED_PREFIXES["vificlip"]):
                dropped.append(key)
                continue
            if k.startswith("image_encoder."):
                k = "visual." + k[len("image_encoder."):]
            elif k.startswith("text_encoder."):
                k = k[len("text_encoder."):]
            raw[k] = value
    else:  # openvclip, froster
        raw, dropped = {}, []
        for key, value in payload["model_state"].items():
            if key.startswith(DROPPED_PREFIXES["froster"]):
                dropped.append(key)
                continue
            raw[key[len("model."):] if key.startswith("model.") else key] = value
    bad = [k for k, v in raw.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ConvertError(f"the weights hold non-tensor entries: {', '.join(map(str, bad[:10]))}")
    return {k: v.detach().float() for k, v in raw.items()}, dropped


# ---- architecture -----------------------------------------------------------------------------------
def _count_blocks(sd: dict, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in sd if (m := pattern.match(k))}
    if found != set(range(len(found))):
        raise ConvertError(f"blocks {prefix}N are not numbered 0..{len(found) - 1}: {sorted(found)}")
    return len(found)


def infer_architecture(sd: dict, *, heads: Optional[tuple[int, int]] = None, quick_gelu: bool = True) -> dict:
    """The open_clip model config of an OpenAI-layout ViT CLIP, from tensor shapes alone, with OpenAI's
    heads of 64 and QuickGELU unless `heads` (image tower, text tower) and `quick_gelu` say otherwise."""
    if any(k.startswith("visual.layer1.") for k in sd):
        raise ConvertError("the image tower is a ResNet (visual.layer1.*); apclip imports ViT CLIPs only")
    needed = ["visual.conv1.weight", "visual.positional_embedding", "visual.proj",
              "visual.transformer.resblocks.0.mlp.c_fc.weight", "positional_embedding", "token_embedding.weight",
              "ln_final.weight", "text_projection", "transformer.resblocks.0.mlp.c_fc.weight"]
    missing = [k for k in needed if k not in sd]
    if missing:
        raise ConvertError(f"cannot infer the architecture: missing {', '.join(missing)}")
    conv = sd["visual.conv1.weight"]
    width, patch = int(conv.shape[0]), int(conv.shape[-1])
    tokens = int(sd["visual.positional_embedding"].shape[0]) - 1
    grid = round(tokens ** 0.5)
    if grid * grid != tokens:
        raise ConvertError(f"visual.positional_embedding has {tokens} patch positions, not a square grid")
    text_width = int(sd["ln_final.weight"].shape[0])
    if heads is None:
        for w, what in ((width, "image"), (text_width, "text")):
            if w % 64:
                raise ConvertError(f"the {what} tower's width {w} is not a multiple of 64 (OpenAI CLIP: heads of 64); "
                                   "a CLIP of another convention: state its heads (--heads)")
        heads = (width // 64, text_width // 64)
    for w, n, what in ((width, heads[0], "image"), (text_width, heads[1], "text")):
        if n < 1 or w % n:
            raise ConvertUsageError(f"--heads: the {what} tower's width {w} does not split into {n} heads")
    return {
        "embed_dim": int(sd["visual.proj"].shape[1]),
        "quick_gelu": bool(quick_gelu),
        "vision_cfg": {
            "image_size": grid * patch, "layers": _count_blocks(sd, "visual.transformer.resblocks."),
            "width": width, "patch_size": patch, "head_width": width // heads[0],
            "mlp_ratio": sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0] / width,
        },
        "text_cfg": {
            "context_length": int(sd["positional_embedding"].shape[0]),
            "vocab_size": int(sd["token_embedding.weight"].shape[0]),
            "width": text_width, "heads": heads[1],
            "layers": _count_blocks(sd, "transformer.resblocks."),
            "mlp_ratio": sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0] / text_width,
        },
    }


def _canonical(cfg: dict) -> tuple:
    v, t = cfg["vision_cfg"], cfg["text_cfg"]
    return (cfg["embed_dim"], v["image_size"], v["layers"], v["width"], v["patch_size"], v.get("head_width", 64),
            float(v.get("mlp_ratio", 4.0)), t["context_length"], t["vocab_size"], t["width"], t["heads"],
            t["layers"], float(t.get("mlp_ratio", 4.0)))


def model_name_for(cfg: dict) -> str:
    """open_clip's own name when the architecture is one of its OpenAI ViTs, else a name from its hash."""
    for name in STANDARD_MODELS:
        known = open_clip.get_model_config(name)
        if known and _canonical(known) == _canonical(cfg):
            return name
    digest = hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:10]
    v = cfg["vision_cfg"]
    return f"apclip-import-w{v['width']}-l{v['layers']}-p{v['patch_size']}-i{v['image_size']}-{digest}"


# ---- the original CLIP (--base) -------------------------------------------------------------------
def load_base(base: str, model_name: str) -> tuple[dict, str]:
    """(OpenAI-layout float32 state dict, description) of the original CLIP."""
    if base == "openai":
        if model_name not in STANDARD_MODELS:
            raise ConvertUsageError(f"--base openai: the checkpoint's architecture ({model_name}) is not one of "
                                    f"OpenAI's ({', '.join(STANDARD_MODELS)}); pass a local file instead")
        try:
            clip = open_clip.create_model(model_name, pretrained="openai", force_quick_gelu=True)
        except Exception as e:  # noqa: BLE001 - offline, no cache
            raise ConvertError(f"--base openai: could not fetch OpenAI's {model_name} weights ({e}); without "
                               "internet pass a local OpenAI CLIP file (e.g. ~/.cache/clip/ViT-B-16.pt)") from None
        return {k: v.detach().float() for k, v in clip.state_dict().items()}, f"openai:{model_name}"
    payload = read_file(base, "--base")
    found, why = detect_format(payload)
    if found != "openai":
        raise ConvertUsageError(f"--base {base} is not an original CLIP in OpenAI's layout ({why}); pass OpenAI's "
                                "TorchScript file (e.g. ViT-B-16.pt) or its state dict")
    sd, _ = to_openai_layout(payload, "openai")
    return sd, str(base)


def _check_base_shapes(base: dict, sd: dict, keys, base_name: str) -> None:
    missing = [k for k in keys if k not in base]
    wrong = [f"{k} {tuple(base[k].shape)} vs {tuple(sd[k].shape)}" for k in keys
             if k in base and k in sd and base[k].shape != sd[k].shape]
    if missing or wrong:
        raise ConvertUsageError(f"--base {base_name} is not the original CLIP of this checkpoint's architecture: "
                                + "; ".join(filter(None, [missing and f"missing {', '.join(missing[:10])}",
                                                          wrong and f"shapes differ: {', '.join(wrong[:5])}"])))


# ---- conversion -------------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def load_strict(clip: torch.nn.Module, sd: dict, src: Path, what: str = "a CLIP of the inferred architecture") -> None:
    """load_state_dict, after checking every key is used and every needed key present, shapes equal."""
    expected = clip.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    shapes = [f"{k}: file {tuple(sd[k].shape)}, model {tuple(expected[k].shape)}"
              for k in sorted(set(sd) & set(expected)) if sd[k].shape != expected[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}"
                         f"{' ...' if len(unexpected) > 20 else ''}")
        if shapes:
            parts.append(f"shape mismatches: {'; '.join(shapes[:10])}")
        raise ConvertError(f"{src}: the weights do not fit {what} (names after "
                           f"renaming to apclip's layout): " + " | ".join(parts))
    clip.load_state_dict(sd, strict=True)


# ---- MoTE and TC-CLIP: a CLIP plus modules of their own ---------------------------------------------------
def _standard_name_of_visual(sd: dict) -> str:
    """The OpenAI model whose image tower has these shapes (to fetch the matching original CLIP), else a
    description that load_base refuses with the valid choices."""
    conv = sd.get("visual.conv1.weight")
    if conv is not None:
        grid = round((sd["visual.positional_embedding"].shape[-2] - 1) ** 0.5)
        for name in STANDARD_MODELS:
            v = open_clip.get_model_config(name)["vision_cfg"]
            if (v["width"], v["patch_size"], v["image_size"], v["layers"]) == (
                    conv.shape[0], conv.shape[-1], grid * conv.shape[-1],
                    _count_blocks(sd, "visual.transformer.resblocks.")):
                return name
    return "an architecture that is not OpenAI's"


def mote_layout(payload) -> tuple[dict, dict, dict]:
    """(image tower + logit scale in OpenAI names, the temporal module's state, its shape) of a MoTE file."""
    visual = payload["model_state_dict"]
    fusion = {k: v.detach().float() for k, v in payload["fusion_model_state_dict"].items()}
    bad = [k for k in visual if not (k.startswith("visual.") or k == "logit_scale")]
    if bad:
        raise ConvertError(f"model_state_dict holds keys beyond MoTE's image tower: {', '.join(bad[:10])}")
    if "spe_cls_feature" not in fusion or "frame_position_embeddings.weight" not in fusion:
        raise ConvertError("fusion_model_state_dict lacks spe_cls_feature or frame_position_embeddings.weight: "
                           "not MoTE's temporal module")
    classes, width = fusion["spe_cls_feature"].shape
    experts = len({k.split(".")[5] for k in fusion if k.startswith("transformer.resblocks.0.mlp.fc_up.")})
    shape = {"width": int(width), "layers": _count_blocks(fusion, "transformer.resblocks."), "experts": experts,
             "positions": int(fusion["frame_position_embeddings.weight"].shape[0]), "classes": int(classes)}
    return {k: v.detach().float() for k, v in visual.items()}, fusion, shape


def tcclip_layout(payload, heads: Optional[int] = None) -> tuple[dict, dict, list[str]]:
    """(the CLIP in OpenAI names, q/k/v joined into in_proj, no token embedding; TC-CLIP's own parameters in
    model.tcclip's names; the dropped prompt-learner buffers) of a TC-CLIP file. heads: of the image tower
    (default OpenAI's width // 64), for a file without bias tables."""
    sd, extras, dropped, split, bias_tables = {}, {}, [], {}, {}
    for key, value in payload["model"].items():
        k = key[len("module."):] if key.startswith("module.") else key
        value = value.detach().float()
        if k in ("prompt_learner.token_prefix", "prompt_learner.token_suffix"):
            dropped.append(key)          # embeddings of the training class names: rebuilt per label set
        elif k == "prompt_learner.ctx":
            extras["ctx"] = value
        elif k.startswith("text_encoder.prompt_generation_layer."):
            rest = k[len("text_encoder.prompt_generation_layer."):]
            if not rest.startswith("0."):
                raise ConvertError(f"{key}: more than one prompt-generation layer; apclip reads TC-CLIP's released "
                                   "models, which have one (prompt_generation_layer_level 12)")
            extras["prompt_generation_layer." + rest[2:]] = value
        elif k.startswith("image_encoder."):
            k = "visual." + k[len("image_encoder."):]
            m = re.match(r"(.*)\.attn\.([qkv])_proj\.(weight|bias)$", k)
            if m:
                split[(m.group(1), m.group(3), m.group(2))] = value
            elif k.endswith(".attn.local_global_bias_table"):
                bias_tables[k] = value
            else:
                sd[k] = value
        elif k.startswith("text_encoder."):
            sd[k[len("text_encoder."):]] = value
        else:
            sd[k] = value
    for block, kind in sorted({(b, kind) for b, kind, _ in split}):
        parts = [split.get((block, kind, name)) for name in "qkv"]
        if any(p is None for p in parts):
            raise ConvertError(f"{block}.attn: q_proj/k_proj/v_proj.{kind} incomplete")
        sd[f"{block}.attn.in_proj_{kind}"] = torch.cat(parts)
    layers = _count_blocks(sd, "visual.transformer.resblocks.")
    heads = heads or int(sd["visual.conv1.weight"].shape[0]) // 64
    prefix = "visual.transformer.resblocks."
    if f"{prefix}0.attn.local_global_bias_table" in bias_tables:
        raise ConvertError("visual block 0 has a local_global_bias_table; TC-CLIP's first block has none")
    tables = [bias_tables.get(f"{prefix}{i}.attn.local_global_bias_table") for i in range(1, layers)]
    if bias_tables and any(t is None for t in tables):
        raise ConvertError("local_global_bias_table is missing in some visual blocks")
    # without the bias (local_global_bias: false) every logit gets 0: the same as zero tables
    extras["local_global_bias"] = (torch.stack([t[:, 0, :] for t in tables]) if bias_tables
                                   else torch.zeros(layers - 1, heads, 2))
    return sd, extras, dropped


def tcclip_settings(payload, sd: dict, extras: dict, src: Path) -> tuple[dict, list[str]]:
    """TC-CLIP's settings that shapes cannot tell (frames, context tokens k, seed ratio a, ToMe r, context
    length...), from the config pickled in its file, else its released config's; and the keys so defaulted."""
    from apclip_core.model.tcclip import DEFAULTS

    cfg = plain_config(payload.get("config"))
    cfg = cfg if isinstance(cfg, dict) else {}
    settings, defaulted = {}, []
    for key, default in DEFAULTS.items():
        settings[key] = cfg.get(key, default) if cfg.get(key) is not None else default
        if cfg.get(key) is None:
            defaulted.append(key)
    if cfg.get("positional_embedding_type", "space") != "space" or sd["visual.positional_embedding"].ndim != 2:
        raise ConvertError(f"{src}: TC-CLIP with a joint spatio-temporal positional embedding; apclip reads the "
                           "released models, which use one spatial embedding for every frame ('space')")
    text_layers = _count_blocks(sd, "transformer.resblocks.")
    visual_layers = _count_blocks(sd, "visual.transformer.resblocks.")
    level = cfg.get("prompt_generation_layer_level", text_layers)   # 1-based; 12 of 12 as released
    if not isinstance(level, int) or not 1 <= level <= min(text_layers, visual_layers):
        raise ConvertError(f"{src}: prompt_generation_layer_level {level!r} is not one text block (1.."
                           f"{min(text_layers, visual_layers)}); apclip reads TC-CLIP's released models (12)")
    if "prompt_generation_layer_level" not in cfg:
        defaulted.append("prompt_generation_layer_level")
    n_ctx = int(extras["ctx"].shape[0]) if "ctx" in extras else 0
    if not n_ctx:
        raise ConvertError(f"{src}: no prompt_learner.ctx (TC-CLIP's learned context vectors)")
    width = int(sd["ln_final.weight"].shape[0])
    if width % settings["prompt_generation_heads"]:
        raise ConvertError(f"{src}: the text width {width} does not split into TC-CLIP's "
                           f"{settings['prompt_generation_heads']} prompt-generation heads")
    if int(sd["visual.proj"].shape[1]) != width:
        raise ConvertError(f"{src}: the prompt-generation layer reads the projected context tokens (width "
                           f"{int(sd['visual.proj'].shape[1])}) with the text width {width}; TC-CLIP needs both "
                           "equal (512 in ViT-B/16)")
    settings.update(n_ctx=n_ctx, prompt_generation_layer=level - 1)
    return settings, defaulted


def convert(src: str | Path, dst: str | Path, source_format: str, *, base: Optional[str] = None,
            interpolate: bool = True, frames: Optional[int] = None, heads: Optional[int | tuple[int, int]] = None,
            quick_gelu: bool = True, wise_ft: Optional[float] = None):
    """Convert a peer's checkpoint at `src` into an apclip checkpoint at `dst`; returns the VideoCLIP.
    heads (one count for both towers, or (image, text)) and quick_gelu: for a CLIP that is not OpenAI's
    convention (heads of 64, QuickGELU), which tensor shapes cannot tell; None/True for every peer's file."""
    from apclip_core.model.video_clip import checkpoint_file, create_model, save_checkpoint

    if source_format not in FORMATS:
        raise ConvertUsageError(f"unknown --from {source_format!r}; valid: {', '.join(FORMATS)}")
    fmt = FORMATS[source_format]
    src, dst = Path(src), checkpoint_file(dst)
    if frames is not None and not fmt.expand_temporal_view and source_format != "tcclip":
        raise ConvertUsageError(f"--frames applies to Open-VCLIP/FROSTER's neighbour-frame attention and TC-CLIP's "
                                f"clip length only; {fmt.title} encodes frames one by one")
    if frames is not None and frames < 2:
        raise ConvertUsageError(f"--frames must be >= 2 (frames per clip), got {frames}")
    if src.resolve() == dst.resolve():
        raise ConvertUsageError(f"DST {dst} is SRC: write the apclip checkpoint to another file")
    if dst.is_dir():
        raise ConvertUsageError(f"DST {dst} is a folder; give the checkpoint's file name (e.g. {dst / 'model.pt'})")
    atomic.writable_folder(dst.parent)  # a read-only folder, or a file in its place: said before SRC is read
    if isinstance(heads, int):
        heads = (heads, heads)
    shape_of = {"heads": tuple(heads) if heads else None, "quick_gelu": quick_gelu}

    if wise_ft is not None and source_format != "tcclip":
        raise ConvertUsageError(f"--wise-ft is TC-CLIP's evaluation-time interpolation; {fmt.title} has "
                                + (f"its own ({fmt.interpolation_name}; --no-interpolate turns it off)"
                                   if fmt.original_weight else "none"))
    payload = read_file(src)
    _check_format(payload, source_format, src)
    if source_format in PEER_MODELS:
        return _convert_peer_model(payload, src, dst, source_format, base=base, interpolate=interpolate,
                                   wise_ft=wise_ft, frames=frames, shape_of=shape_of)
    sd, dropped = to_openai_layout(payload, source_format)
    del payload
    if source_format == "vificlip" and "token_embedding.weight" not in sd and base is None:
        raise ConvertUsageError(f"{src}: ViFi-CLIP never saves the text token embedding (it is never trained); "
                                "pass --base with the original CLIP of the same architecture (OpenAI's "
                                "ViT-B-16.pt TorchScript file or state dict, or 'openai' to download it)")
    weight = fmt.original_weight if interpolate else None
    if weight is not None and base is None:
        raise ConvertUsageError(f"{src}: {fmt.title} is evaluated with its weights interpolated with the original "
                                f"CLIP ({fmt.interpolation_name}: {weight} original + {1 - weight:g} checkpoint); "
                                "pass --base ORIGINAL_CLIP, or --no-interpolate to keep the weights as saved")

    try:
        if "token_embedding.weight" in sd:
            arch = infer_architecture(sd, **shape_of)
        else:  # ViFi-CLIP: the vocabulary comes from the base; until then assume OpenAI's (only names the model)
            width = sd["ln_final.weight"].shape[0] if "ln_final.weight" in sd else 64
            arch = infer_architecture({**sd, "token_embedding.weight": torch.empty((49408, width), device="meta")},
                                      **shape_of)
    except ConvertError as e:
        raise type(e)(f"{src}: {e}") from None
    base_sd, base_name, token_from_base = None, None, False
    needs_base = weight is not None or "token_embedding.weight" not in sd
    if base is not None and not needs_base:
        logger.info("--base %s is not needed for %s%s; ignored", base, fmt.title,
                    " with --no-interpolate" if fmt.original_weight else "")
        base = None
    if base is not None:
        base_sd, base_name = load_base(base, model_name_for(arch))
        if "token_embedding.weight" not in sd:
            if "token_embedding.weight" not in base_sd:
                raise ConvertUsageError(f"--base {base} has no token_embedding.weight")
            sd["token_embedding.weight"] = base_sd["token_embedding.weight"].clone()
            token_from_base = True
            arch = infer_architecture(sd, **shape_of)
        _check_base_shapes(base_sd, sd, list(sd), base_name)
    model_name = model_name_for(arch)
    if weight is not None:
        sd = {k: weight * base_sd[k] + (1 - weight) * v for k, v in sd.items()}

    n_frames = (frames or DEFAULT_FRAMES) if fmt.expand_temporal_view else 0
    # open_clip knows its own names; a generated architecture travels in the checkpoint's config
    model = create_model(model_name, None, quick_gelu=arch["quick_gelu"], load_weights=False, expand_temporal_view=n_frames,
                         open_clip_config=None if model_name in STANDARD_MODELS else arch)
    load_strict(model.clip, sd, src)
    interpolation = {"original_weight": weight, "method": fmt.interpolation_name if weight is not None else None,
                     "default_original_weight": fmt.original_weight, "applied": weight is not None}
    model.config.update(
        mean=list(fmt.mean), std=list(fmt.std), video_pooling=fmt.video_pooling, source_format=source_format,
        pretrained=None, interpolation=interpolation)
    record = {"source": str(src), "source_sha256": _sha256(src), "source_format": source_format,
              "source_title": fmt.title, "base": base_name,
              "base_sha256": _sha256(Path(base)) if base not in (None, "openai") else None,
              "token_embedding_from_base": token_from_base, "dropped_keys": dropped,
              "interpolation": interpolation, "expand_temporal_view": n_frames,
              "mean": list(fmt.mean), "std": list(fmt.std), "video_pooling": fmt.video_pooling,
              # what the shapes could not say: OpenAI's convention unless --heads / --no-quick-gelu were given
              "heads": [arch["vision_cfg"]["width"] // arch["vision_cfg"]["head_width"], arch["text_cfg"]["heads"]],
              "quick_gelu": arch["quick_gelu"], "heads_and_activation_stated": heads is not None or not quick_gelu}
    try:
        save_checkpoint(model, dst, converted_from=record)
    except OSError as e:
        raise ConvertError(f"DST {dst}: cannot write the checkpoint ({e})") from None
    return model


def _convert_peer_model(payload, src: Path, dst: Path, source_format: str, *, base: Optional[str],
                        interpolate: bool, wise_ft: Optional[float], frames: Optional[int] = None,
                        shape_of: Optional[dict] = None):
    """MoTE or TC-CLIP: their CLIP (the parts each saves, the rest from --base), their own modules, their
    evaluation-time interpolation, written by save_checkpoint like every converted model."""
    from apclip_core.model.video_clip import create_model, peer_model_class, save_checkpoint

    fmt = FORMATS[source_format]
    if source_format == "mote":
        sd, own, shape = mote_layout(payload)
        dropped, defaulted = [], []
        original_weight = fmt.original_weight if interpolate else None
        needs = "its whole text tower (MoTE saves only the image tower; its class text is the original CLIP's)"
    else:
        if not interpolate:
            raise ConvertUsageError("TC-CLIP's interpolation is --wise-ft ALPHA (default 0: off, as its zero-shot "
                                    "config); --no-interpolate does not apply")
        alpha = 0.0 if wise_ft is None else float(wise_ft)
        if not 0.0 <= alpha <= 1.0:
            raise ConvertUsageError(f"--wise-ft {wise_ft}: ALPHA is the checkpoint's weight, from 0 (off: the "
                                    f"checkpoint as saved) to 1 (also the checkpoint); its evaluation script uses "
                                    f"{TCCLIP_WISE_FT_EVAL}")
        sd, own, dropped = tcclip_layout(payload, ((shape_of or {}).get("heads") or (None,))[0])
        settings, defaulted = tcclip_settings(payload, sd, own, src)
        if frames is not None:   # the clip length is fixed when their model is built; the weights do not depend on it
            settings["num_frames"] = frames
        # TC-CLIP's code: alpha = 0 skips the fusion; else w = (1 - alpha) original + alpha checkpoint
        original_weight = 1.0 - alpha if alpha else None
        needs = "its token embedding (TC-CLIP never saves one)"
    del payload
    if base is None:
        raise ConvertUsageError(f"{src}: {fmt.title} needs the original CLIP of the same architecture for {needs}; "
                                "pass --base (OpenAI's ViT-B-16.pt TorchScript file or state dict, or 'openai')")
    base_sd, base_name = load_base(base, _standard_name_of_visual(sd))
    text_keys = [k for k in base_sd if not k.startswith("visual.") and k != "logit_scale"]
    if source_format == "mote":   # everything on the text side is the original CLIP's
        sd.update({k: base_sd[k].clone() for k in text_keys})
    elif "token_embedding.weight" in base_sd:
        sd["token_embedding.weight"] = base_sd["token_embedding.weight"].clone()
    try:
        arch = infer_architecture(sd, **(shape_of or {}))
    except ConvertError as e:
        raise type(e)(f"{src}: {e}") from None
    _check_base_shapes(base_sd, sd, list(sd), base_name)
    if original_weight is not None:   # MoTE: the keys it saves; TC-CLIP: every CLIP parameter it saves
        patched = [k for k in sd if k not in text_keys] if source_format == "mote" else \
            [k for k in sd if k != "token_embedding.weight"]
        for k in patched:
            sd[k] = original_weight * base_sd[k] + (1 - original_weight) * sd[k]
    model_name = model_name_for(arch)
    plain = create_model(model_name, None, quick_gelu=arch["quick_gelu"], load_weights=False,
                         open_clip_config=None if model_name in STANDARD_MODELS else arch)
    interpolation = {"original_weight": original_weight,
                     "method": fmt.interpolation_name if original_weight is not None else None,
                     "default_original_weight": fmt.original_weight, "applied": original_weight is not None}
    config = dict(plain.config, mean=list(fmt.mean), std=list(fmt.std), video_pooling=None,
                  source_format=source_format, pretrained=None, interpolation=interpolation, peer_model=source_format)
    if source_format == "mote":
        shape["heads"] = arch["text_cfg"]["width"] // 64   # MoTE: heads of the temporal module = text width // 64
        if shape["width"] != arch["embed_dim"]:
            raise ConvertError(f"{src}: the temporal module's width {shape['width']} is not the CLIP's embedding "
                               f"width {arch['embed_dim']}")
        config.update(mote=shape, frames_per_clip=MOTE_FRAMES)
        settings = shape
    else:
        config.update(tcclip=settings, frames_per_clip=settings["num_frames"])
    model = peer_model_class(source_format)(plain.clip, config, plain.tokenizer)
    load_strict(model.clip, sd, src)
    load_strict(model.mote if source_format == "mote" else model.tc, own, src, f"{fmt.title}'s own modules")
    record = {"source": str(src), "source_sha256": _sha256(src), "source_format": source_format,
              "source_title": fmt.title, "base": base_name,
              "base_sha256": _sha256(Path(base)) if base != "openai" else None,
              "heads": [arch["vision_cfg"]["width"] // arch["vision_cfg"]["head_width"], arch["text_cfg"]["heads"]],
              "quick_gelu": arch["quick_gelu"], "from_base": "text tower" if source_format == "mote" else "token_embedding.weight",
              "dropped_keys": dropped, "interpolation": interpolation, "settings": settings,
              "settings_defaulted": defaulted, "mean": list(fmt.mean), "std": list(fmt.std)}
    try:
        save_checkpoint(model, dst, converted_from=record)
    except OSError as e:
        raise ConvertError(f"DST {dst}: cannot write the checkpoint ({e})") from None
    return model


# ---- CLI (its parser: model.convert_cli, which imports no torch) -----------------------------------
def run_command_line(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """The `convert` command once its arguments are parsed."""
    from apclip_core.model.video_clip import checkpoint_file

    heads = None
    if args.heads is not None:
        try:
            counts = [int(n) for n in args.heads.split(",")]
        except ValueError:
            counts = []
        if len(counts) not in (1, 2):
            parser.error(f"--heads: expected N or N,M (image tower, text tower), got {args.heads!r}")
        heads = (counts[0], counts[-1])
    try:
        model = convert(args.src, args.dst, args.source_format, base=args.base,
                        interpolate=not args.no_interpolate, frames=args.frames, heads=heads,
                        quick_gelu=args.quick_gelu, wise_ft=args.wise_ft)
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    cfg = model.config
    if cfg.get("peer_model"):
        print(f"wrote {checkpoint_file(args.dst)} ({FORMATS[args.source_format].title} -> {cfg['model_name']} with its own modules, "
              f"interpolation {cfg['interpolation']['original_weight'] or 'off'}, "
              f"{cfg['frames_per_clip']} frames per clip as evaluated; score with zero_shot_logits)")
        return 0
    print(f"wrote {checkpoint_file(args.dst)} ({FORMATS[args.source_format].title} -> {cfg['model_name']}, "
          f"interpolation {cfg['interpolation']['original_weight'] or 'off'}, "
          f"neighbour-frame attention {cfg['expand_temporal_view'] or 'off'}, pooling {cfg['video_pooling']}"
          + (f", heads {heads[0]}/{heads[1]}" if heads else "") + ("" if args.quick_gelu else ", GELU") + ")")
    return 0

