"""VideoCLIP: an open_clip CLIP applied frame by frame to videos (ViFi-CLIP style), plus checkpoints.

Both towers are trainable (ViFi-CLIP's full fine-tuning); there is no temporal module unless
asked for (see temporal.py). A video [B, V, T, 3, S, S] (V = temporal views x spatial crops)
becomes B x (V*T) L2-normalised frame embeddings, which MAKA (maka.py) compares with prompts.

QuickGELU. OpenAI's CLIP weights were trained with QuickGELU; open_clip's plain 'ViT-B-16'
config builds nn.GELU, and loading OpenAI weights into it gives silently wrong features.
`needs_quick_gelu()` decides from open_clip's own registry (the pretrained tag's cfg says
quick_gelu=True) or the model config / '-quickgelu' name; the decision is recorded in
`VideoCLIP.config["quick_gelu"]` and every reload (load_checkpoint) builds that activation.

Real weights. pretrained="openai" makes open_clip fetch timm/vit_base_patch16_clip_224.openai
from the Hugging Face hub into $HF_HOME/hub (default ~/.cache/huggingface/hub). On a cluster,
point HF_HOME at a shared disk, fetch once on a node with internet:
    HF_HOME=/shared/hf python -c "from apclip_core.model.video_clip import create_model; create_model()"
and run jobs with HF_HUB_OFFLINE=1 so nothing is fetched again. Weights neither cached nor downloadable
raise weights.WeightsUnavailable within seconds, saying all this. A local open_clip state-dict
file works as `pretrained=<path>` with quick_gelu=True (OpenAI weights) or False stated: without
it, it is refused (local_weights_activation_message).

Checkpoints are safetensors files (the weights; the JSON config in the file's metadata too) with the JSON
config beside them (<file>.json): read without unpickling anything, memory-mapped. Checkpoints written
before (a torch.save of {"state_dict", "config"}, e.g. runs/<name>/checkpoint.pt) still load, with
torch.load(weights_only=True).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pickle
from pathlib import Path
from typing import Optional

import open_clip
import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from open_clip.pretrained import get_pretrained_cfg
from open_clip.transformer import text_global_pool
from torch import nn

from apclip_core import atomic
from apclip_core.model.temporal import NeighbourFrameAttention, expanded_view_block

logger = logging.getLogger(__name__)

MODEL_CONFIG_DIR = Path(__file__).resolve().parent / "configs"
CONFIG_FORMAT = "apclip-videoclip/1"


def register_model_configs() -> None:
    """Make apclip's own open_clip configs (e.g. 'apclip-tiny') known to open_clip. Idempotent."""
    if MODEL_CONFIG_DIR not in open_clip.factory._MODEL_CONFIG_PATHS:
        open_clip.add_model_config(MODEL_CONFIG_DIR)


def register_model_config(name: str, model_cfg: dict) -> None:
    """Make an open_clip model config given as a dict known under `name` (e.g. the architecture of an
    imported checkpoint, recorded in its config as "open_clip_config"). Idempotent; a different config
    under a name already taken is refused rather than silently replaced."""
    register_model_configs()
    known = open_clip.get_model_config(name)
    if known is not None:
        if known != model_cfg:
            raise ValueError(f"open_clip model config {name!r} already exists with a different architecture")
        return
    # open_clip registers configs only from files on disk; its registry is a module-level dict that
    # survives rescans (add_model_config keeps existing entries), so an in-memory entry is safe.
    open_clip.factory._MODEL_CONFIGS[name] = json.loads(json.dumps(model_cfg))


def needs_quick_gelu(model_name: str, pretrained: Optional[str]) -> bool:
    """True when the weights were trained with QuickGELU. Reads registries only; never downloads.

    Sources, any of which says yes: the '-quickgelu' model name, the model config's "quick_gelu",
    the pretrained tag's cfg in open_clip's registry (e.g. ("ViT-B-16", "openai")).
    A local checkpoint path carries no such information: pass quick_gelu= explicitly for it.
    """
    register_model_configs()
    if model_name.endswith("-quickgelu"):
        return True
    model_cfg = open_clip.get_model_config(model_name) or {}
    if model_cfg.get("quick_gelu", False):
        return True
    if pretrained and not os.path.isfile(pretrained):
        return bool(get_pretrained_cfg(model_name, pretrained).get("quick_gelu", False))
    return False


def activation_stated(model_name: str) -> bool:
    """True when the model's name or config says which activation it uses ('-quickgelu', or a config
    with a "quick_gelu" key, as apclip's own configs have): then a local weights file is unambiguous."""
    register_model_configs()
    return model_name.endswith("-quickgelu") or "quick_gelu" in (open_clip.get_model_config(model_name) or {})


def local_weights_activation_message(model_name: str, pretrained: str) -> str:
    """Why a local weights file needs quick_gelu stated, and how to state it everywhere a model is named."""
    return (f"pretrained={pretrained!r} is a local weights file, which does not say which activation it was "
            f"trained with, and {model_name!r} does not either. OpenAI's CLIP weights were trained with "
            "QuickGELU (x * sigmoid(1.702 x)); loaded into a GELU model they give silently wrong features and "
            "every number would be wrong. State it: quick_gelu=True for OpenAI weights (or the model name "
            f"'{model_name}-quickgelu'), quick_gelu=False for weights trained with GELU (e.g. LAION's). "
            "Train: `--set quick_gelu=true` or `quick_gelu: true` in the config; evaluate and classify: "
            "`--quick-gelu` / `--no-quick-gelu`; notebooks: overrides: {quick_gelu: true}.")


def trim_tokens(tokens: torch.Tensor) -> torch.Tensor:
    """Token ids cut to the longest text of the batch (the text tower pools at the EOT token)."""
    return tokens[:, :int(tokens.ne(0).any(dim=0).nonzero().max()) + 1]


def encode_text_tokens(clip: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """An open_clip CLIP's text features (L2-normalised) for tokens [P, L], L <= its context.

    The same computation as open_clip's CLIP.encode_text, which adds the full [77, W] positional
    embedding and mask and so only accepts L == 77; here both are sliced to L, which with the
    causal mask gives the same features several times faster.
    """
    L = tokens.shape[1]
    cast_dtype = clip.transformer.get_cast_dtype()
    x = clip.token_embedding(tokens).to(cast_dtype)
    x = x + clip.positional_embedding[:L].to(cast_dtype)
    attn_mask = clip.attn_mask[:L, :L] if clip.attn_mask is not None else None
    x = clip.transformer(x, attn_mask=attn_mask)
    x = clip.ln_final(x)
    x = text_global_pool(x, tokens, clip.text_pool_type, eos_token_id=getattr(clip, "text_eos_id", None))
    if clip.text_projection is not None:
        x = clip.text_projection(x) if isinstance(clip.text_projection, nn.Linear) else x @ clip.text_projection
    return F.normalize(x.float(), dim=-1)


def check_video(video: torch.Tensor) -> None:
    if video.ndim != 6:
        raise ValueError(f"video must be [B, V, T, 3, S, S], got shape {tuple(video.shape)}")


def prompt_owners(prompts: list[list[str]]) -> torch.Tensor:
    """The class of each prompt of a ragged per-class list, flattened in order: [P]."""
    return torch.tensor([c for c, texts in enumerate(prompts) for _ in texts], dtype=torch.long)


def class_means(feats: torch.Tensor, owners: torch.Tensor) -> torch.Tensor:
    """Per class, the L2-normalised mean of its prompts' L2-normalised features [P, D] -> [C, D]."""
    sums = torch.zeros(int(owners.max()) + 1, feats.shape[1], dtype=feats.dtype, device=feats.device)
    return F.normalize(sums.index_add_(0, owners.to(feats.device), feats), dim=-1)


def zero_shot_templates(source_format: Optional[str]) -> tuple[str, ...]:
    """The class text a converted peer's own zero-shot evaluation uses: ViFi-CLIP (and OST, built on it, whose
    descriptors with optimal transport apclip does not reproduce) 'a photo of a {}.', Open-VCLIP and FROSTER
    the 28 "Set" templates, vanilla CLIP the bare name; apclip's own checkpoints its single prompt."""
    from apclip_core.prompts.templates import SET_TEMPLATES

    return {"vificlip": ("a photo of a {}.",), "ost": ("a photo of a {}.",), "openvclip": SET_TEMPLATES,
            "froster": SET_TEMPLATES, "openai": ("{}",)}.get(source_format or "", ("a video of {}.",))


class VideoCLIP(nn.Module):
    """open_clip CLIP + optional temporal module; frame-level video and prompt embeddings."""

    def __init__(self, clip: nn.Module, config: dict, tokenizer=None):
        super().__init__()
        self.clip = clip
        self.config = dict(config)
        self.tokenizer = tokenizer or open_clip.get_tokenizer(config["model_name"])
        self.temporal: Optional[NeighbourFrameAttention] = None
        # Open-VCLIP/FROSTER's neighbour-frame attention (temporal.expanded_view_block): frames per
        # clip, fixed when the model is built as in their code; 0 = off (a frame-wise image tower)
        self.expand_temporal_view = int(config.get("expand_temporal_view", 0) or 0)
        self.config["expand_temporal_view"] = self.expand_temporal_view
        if config.get("temporal_module", False):
            self.enable_temporal_module(config.get("temporal_window", 1))
        self._fingerprint: Optional[tuple[tuple, str]] = None

    # ---- video ----------------------------------------------------------------------------
    def enable_temporal_module(self, window: int = 1) -> None:
        """Add the zero-initialised neighbour-frame attention (outputs unchanged until trained)."""
        visual = self.clip.visual
        if not hasattr(visual, "transformer") or not hasattr(visual, "_embeds"):
            raise TypeError(f"the temporal module needs an open_clip VisionTransformer, got {type(visual).__name__}")
        blocks = visual.transformer.resblocks
        param = next(visual.parameters())
        self.temporal = NeighbourFrameAttention(len(blocks), visual.transformer.width, window).to(param.device)
        self.config.update(temporal_module=True, temporal_window=window)

    def encode_video(self, video: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
        """video [B, V, T, 3, S, S] -> L2-normalised frame embeddings [B, V*T, D] (view-major);
        normalize=False: the image tower's raw outputs (float32), whose norms ViFi-CLIP's pooling uses."""
        if video.ndim != 6:
            raise ValueError(f"video must be [B, V, T, 3, S, S], got shape {tuple(video.shape)}")
        B, V, T = video.shape[:3]
        if self.expand_temporal_view and T != self.expand_temporal_view:
            raise ValueError(
                f"this model's neighbour-frame attention (Open-VCLIP/FROSTER) was built for clips of "
                f"{self.expand_temporal_view} frames, got {T}: use {self.expand_temporal_view} frames per clip "
                f"(evaluate --frames {self.expand_temporal_view}), or convert the checkpoint again with --frames {T}")
        frames = video.reshape(B * V * T, *video.shape[3:]).to(self._visual_dtype())
        if self.temporal is None and not self.expand_temporal_view:
            feats = self.clip.encode_image(frames)
        else:
            feats = self._encode_frames_temporal(frames, T)
        feats = F.normalize(feats.float(), dim=-1) if normalize else feats.float()
        return feats.reshape(B, V * T, -1)

    def zero_shot_logits(self, video: torch.Tensor, classnames: list[str],
                         prompts: Optional[list[list[str]]] = None) -> torch.Tensor:
        """video [B, V, T, 3, S, S] (normalised as config mean/std say) -> [B, C] logits, as the converted peer's
        own zero-shot evaluation scores: its class text (zero_shot_templates; several templates: L2 each,
        averaged, L2), its frame pooling per view (the recorded video_pooling: ViFi-CLIP L2 of the mean of raw
        frame features; OST and OpenAI CLIP L2 of the mean of L2 frames; Open-VCLIP and FROSTER the mean of the
        frames' cosines), logit_scale.exp() x that, the views' mean.
        The same call scores MoTE and TC-CLIP (model.mote, model.tcclip), whose features depend on the label set.
        prompts: each class's texts (e.g. action descriptions) in place of the templates, averaged alike."""
        check_video(video)
        B, V, T = video.shape[:3]
        templates = zero_shot_templates(self.config.get("source_format"))
        prompts = prompts or [[t.format(c) for t in templates] for c in classnames]
        texts = encode_text_tokens(self.clip, self.tokenize([t for texts in prompts for t in texts]))
        classes = class_means(texts, prompt_owners(prompts))
        pooling = self.config.get("video_pooling")
        frames = self.encode_video(video, normalize=pooling != "mean_then_l2")
        videos = frames.reshape(B, V, T, -1).mean(dim=2)                                  # [B, V, D]
        if pooling != "mean_of_frame_logits":   # Open-VCLIP/FROSTER average the frames' cosines: no second L2
            videos = F.normalize(videos, dim=-1)
        return (self.clip.logit_scale.exp() * videos @ classes.T).mean(dim=1)

    def _encode_frames_temporal(self, frames: torch.Tensor, num_frames: int) -> torch.Tensor:
        """open_clip's VisionTransformer.forward, with the neighbour-frame branch after each block
        and/or each block's attention expanded to the neighbouring frames (expand_temporal_view)."""
        visual = self.clip.visual
        x = visual._embeds(frames)
        for i, block in enumerate(visual.transformer.resblocks):
            run = (lambda z, b=block: expanded_view_block(b, z, num_frames)) if self.expand_temporal_view else block
            if visual.transformer.grad_checkpointing and self.training:
                y = torch.utils.checkpoint.checkpoint(run, x, use_reentrant=False)
            else:
                y = run(x)
            x = self.temporal(i, x, y, block, num_frames) if self.temporal is not None else y
        pooled, _ = visual._pool(x)
        if visual.proj is not None:
            pooled = pooled @ visual.proj
        return pooled

    def _visual_dtype(self) -> torch.dtype:
        """dtype the frames must have: the patch embedding's (open_clip's 'bf16'/'fp16' keep some
        parameters, e.g. the class embedding, in fp32)."""
        conv = getattr(self.clip.visual, "conv1", None)
        return conv.weight.dtype if conv is not None else next(self.clip.visual.parameters()).dtype

    def forward(self, video: torch.Tensor, tokens: Optional[torch.Tensor] = None):
        """encode_video(video), or (encode_video(video), encode_text(tokens)) when tokens are given:
        one forward through both towers, which is what DistributedDataParallel needs to see."""
        feats = self.encode_video(video)
        return feats if tokens is None else (feats, self.encode_text(tokens))

    # ---- text -----------------------------------------------------------------------------
    @property
    def context_length(self) -> int:
        return int(self.config["context_length"])

    def _can_trim(self) -> bool:
        """Trimming padding is exact for CLIP's BPE tokenizer (pads with 0) feeding a causal text
        tower pooled at the EOT token: padding after the EOT cannot influence it."""
        clip = self.clip
        return (isinstance(self.tokenizer, open_clip.SimpleTokenizer) and hasattr(clip, "positional_embedding")
                and getattr(clip, "attn_mask", None) is not None and clip.text_pool_type in ("argmax", "eos"))

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """Token ids [P, L], L = length of the longest prompt (<= context_length; longer prompts
        are truncated by the tokenizer as in CLIP)."""
        tokens = self.tokenizer([texts] if isinstance(texts, str) else list(texts))
        if not self._can_trim() or tokens.numel() == 0:
            return tokens
        return trim_tokens(tokens)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [P, L] (L <= context_length) -> L2-normalised text embeddings [P, D]."""
        if tokens.shape[1] > self.context_length:
            raise ValueError(f"{tokens.shape[1]} tokens exceed the context length {self.context_length}")
        if not hasattr(self.clip, "positional_embedding"):  # CustomTextCLIP (HF/other text towers)
            return F.normalize(self.clip.encode_text(tokens).float(), dim=-1)
        return encode_text_tokens(self.clip, tokens)

    @property
    def logit_scale(self) -> nn.Parameter:
        """CLIP's learnable log temperature (logits = logit_scale.exp() * cosine)."""
        return self.clip.logit_scale

    # ---- identity of the text tower (prompt-feature cache key) -------------------------------
    def text_state(self) -> dict[str, torch.Tensor]:
        """Every tensor the text features depend on (everything but the visual tower and logit scale)."""
        return {k: v for k, v in self.clip.state_dict().items()
                if not k.startswith("visual.") and k not in ("logit_scale", "logit_bias")}


def weights_fingerprint(model: VideoCLIP) -> str:
    """sha256 of the text tower's tensors + the config that shapes text features (activation, name).

    Memoised: the full hash is recomputed only when the text tower changed. Change detection is
    cheap (storage, version counters, and one on-device float32 sum and norm per tensor): version
    counters alone miss edits through `.data` and fused optimizers (fused AdamW does not bump
    them); the sums catch any real training step or reload, though not an edit smaller than the
    sums' rounding. Full hash: ~0.3 s for ViT-B/16's text tower on an idle 2-core CPU.
    """
    state = model.text_state()
    with torch.no_grad():
        sums = torch.stack([torch.stack([v.sum(dtype=torch.float32), torch.linalg.vector_norm(v, dtype=torch.float32)])
                            for v in state.values()]).tolist()
    stamp = tuple((k, v.data_ptr(), v._version, *s) for (k, v), s in zip(state.items(), sums))
    if model._fingerprint is not None and model._fingerprint[0] == stamp:
        return model._fingerprint[1]
    h = hashlib.sha256()
    h.update(json.dumps({k: model.config.get(k) for k in ("model_name", "quick_gelu", "context_length")},
                        sort_keys=True).encode())
    for k in sorted(state):
        v = state[k].detach()
        h.update(f"{k}:{v.dtype}:{tuple(v.shape)}".encode())
        h.update(v.cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    digest = h.hexdigest()
    model._fingerprint = (stamp, digest)
    return digest


# ---- construction -------------------------------------------------------------------------------
class _DropRandomInitNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No pretrained weights loaded")


@contextlib.contextmanager
def quiet_random_init_notice(active: bool = True):
    """open_clip logs "No pretrained weights loaded ... initialized randomly" on the root logger (a pink
    stderr box in a notebook) when built without weights; said where that is on purpose: a checkpoint
    load builds that way and then loads its weights, and pretrained=None asks for a random model."""
    notice = _DropRandomInitNotice()
    if active:
        logging.getLogger().addFilter(notice)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(notice)


def create_model(model_name: str = "ViT-B-16", pretrained: Optional[str] = "openai", *,
                 temporal_module: bool = False, temporal_window: int = 1, quick_gelu: Optional[bool] = None,
                 device: str | torch.device = "cpu", precision: str = "fp32",
                 load_weights: bool = True, expand_temporal_view: int = 0,
                 open_clip_config: Optional[dict] = None) -> VideoCLIP:
    """Build a VideoCLIP from any open_clip model name + pretrained tag, local file or None.

    quick_gelu=None decides with needs_quick_gelu(); the decision is stored in the config so a
    reload builds the same activation whatever the name says. A local weights file says nothing about
    its activation: unless the model name or config does, quick_gelu=None is refused for it.
    open_clip_config: the architecture as a dict, registered under model_name and kept in the config (imported checkpoints, convert.py).
    expand_temporal_view: Open-VCLIP's neighbour-frame attention for clips of that many frames (0 = off).
    """
    register_model_configs()
    if open_clip_config is not None:
        register_model_config(model_name, open_clip_config)
    if quick_gelu is None:
        if pretrained and load_weights and os.path.isfile(pretrained) and not activation_stated(model_name):
            from apclip_core.errors import ActivationUnstated

            raise ActivationUnstated(local_weights_activation_message(model_name, pretrained))
        quick_gelu = needs_quick_gelu(model_name, pretrained)
    if load_weights:  # not cached and no network: say so in seconds, not after open_clip's retries
        from apclip_core.model.weights import ensure_available

        ensure_available(model_name, pretrained)
    weights_file = bool(pretrained and load_weights and os.path.isfile(pretrained))
    if pretrained and load_weights and not weights_file and not open_clip.get_pretrained_cfg(model_name, pretrained):
        from apclip_core.errors import BadValue

        tags = open_clip.list_pretrained_tags_by_model(model_name)
        raise BadValue(f"pretrained {pretrained!r} is neither a file nor one of open_clip's tags for {model_name} "
                       f"({', '.join(tags) or 'it has none: give a weights file'})")
    if weights_file:
        from apclip_core.model.integrity import verify_checkpoint_archive

        verify_checkpoint_archive(pretrained, "weights file")
    try:
        # weights follow at once, or a random model was asked for (pretrained=None): open_clip's notice would alarm
        with quiet_random_init_notice(not load_weights or not pretrained):
            clip = open_clip.create_model(
                model_name, pretrained=pretrained if load_weights else None, precision=precision, device=device,
                force_quick_gelu=quick_gelu, quick_gelu=quick_gelu)  # the last wins over the name's config
    except pickle.UnpicklingError:
        if not weights_file:
            raise
        from apclip_core.errors import CheckpointError  # never torch's advice to unpickle with weights_only=False

        raise CheckpointError(f"{pretrained} holds Python objects other than tensors, so it is not plain weights; give "
                              f"an open_clip state dict of tensors, or import a peer's released checkpoint with "
                              f"`python -m apclip_core convert`") from None
    preprocess = getattr(clip.visual, "preprocess_cfg", {})
    image_size = clip.visual.image_size
    config = {
        "format": CONFIG_FORMAT,
        "model_name": model_name,
        "pretrained": pretrained,
        "quick_gelu": bool(quick_gelu),
        "temporal_module": bool(temporal_module),
        "temporal_window": int(temporal_window),
        "expand_temporal_view": int(expand_temporal_view),
        "precision": precision,
        "image_size": int(image_size[0] if isinstance(image_size, (tuple, list)) else image_size),
        "mean": list(preprocess.get("mean", open_clip.OPENAI_DATASET_MEAN)),
        "std": list(preprocess.get("std", open_clip.OPENAI_DATASET_STD)),
        "context_length": int(getattr(clip, "context_length", 77)),
        "embed_dim": int(clip.text_projection.shape[-1] if isinstance(clip.text_projection, torch.Tensor)
                         else clip.visual.output_dim),
        "open_clip_version": open_clip.__version__,
    }
    if open_clip_config is not None:
        config["open_clip_config"] = json.loads(json.dumps(open_clip_config))
    return VideoCLIP(clip, config)


def create_model_and_transforms(model_name: str = "ViT-B-16", pretrained: Optional[str] = "openai", *,
                                checkpoint: Optional[str | Path] = None, temporal_module: bool = False,
                                device: str | torch.device = "cpu", precision: str = "fp32",
                                num_spatial_crops: int = 1, aug=None, quick_gelu: Optional[bool] = None):
    """(VideoCLIP, train_transform, eval_transform). With checkpoint=, the model (name, weights,
    activation, temporal module) comes from the checkpoint; temporal_module=True adds the module
    (zero-initialised) if the checkpoint had none. An apclip checkpoint given as `pretrained` (e.g. one
    written by `apclip convert`, as a training starting point) is read the same way."""
    if checkpoint is None and pretrained and is_checkpoint(pretrained):
        checkpoint = pretrained
    if checkpoint is not None:
        model = load_checkpoint(checkpoint, device=device)
        if temporal_module and model.temporal is None:
            model.enable_temporal_module()
    else:
        model = create_model(model_name, pretrained, temporal_module=temporal_module, quick_gelu=quick_gelu,
                             device=device, precision=precision)
    from apclip_core.data.transforms import build_video_transform  # H2's module; imported late to keep model import light

    cfg = model.config
    train_tf = build_video_transform(cfg["image_size"], cfg["mean"], cfg["std"], train=True, aug=aug)
    eval_tf = build_video_transform(cfg["image_size"], cfg["mean"], cfg["std"], train=False,
                                    num_spatial_crops=num_spatial_crops)
    return model, train_tf, eval_tf


# ---- checkpoints --------------------------------------------------------------------------------
CHECKPOINT_FILE = "checkpoint.safetensors"   # what a run writes
LEGACY_CHECKPOINT_FILE = "checkpoint.pt"     # what runs wrote before safetensors (still read)
CONFIG_METADATA_KEY = "apclip_config"        # the JSON config, inside the safetensors header


def run_checkpoint(run_dir: str | Path) -> Path:
    """A run folder's checkpoint: checkpoint.safetensors, or checkpoint.pt of a run trained before it."""
    run_dir = Path(run_dir)
    new, old = run_dir / CHECKPOINT_FILE, run_dir / LEGACY_CHECKPOINT_FILE
    return old if old.is_file() and not new.is_file() else new


def checkpoint_file(path: str | Path) -> Path:
    """The file save_checkpoint writes for `path`: a .safetensors file (model.pt -> model.safetensors)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return path
    return path.with_suffix(".safetensors") if path.suffix in (".pt", ".pth", ".bin") else \
        path.with_name(path.name + ".safetensors")


def save_checkpoint(model: VideoCLIP, path: str | Path, /, **extra_json) -> Path:
    """The weights as safetensors at checkpoint_file(path), the JSON config in its metadata and beside it
    (<file>.json); returns the file written.

    JSON = {"model": model.config, **extra_json} (e.g. train config, epoch, metrics). Written to
    temporary files and renamed, so a crash never leaves a half-written checkpoint.
    """
    from safetensors.torch import save as safetensors_bytes

    if "model" in extra_json:
        raise ValueError("'model' is reserved for the model config in the checkpoint JSON")
    path = checkpoint_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config_json = json.dumps({"model": model.config, **extra_json}, indent=2, sort_keys=True, default=str)
    state_dict = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic.write_bytes(path, safetensors_bytes(state_dict, metadata={CONFIG_METADATA_KEY: config_json}))
    atomic.write_text(path.with_name(path.name + ".json"), config_json + "\n")
    return path


def read_torch_file(path: str | Path, what: str = "checkpoint") -> object:
    """torch.load(weights_only=True) of a file the user named, every failure as one CheckpointError
    that names the file and says what to do (never torch's advice to unpickle unsafely)."""
    import pickle
    import zipfile

    from apclip_core.errors import CheckpointError
    from apclip_core.model.integrity import verify_checkpoint_archive

    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a {what} file; give the file inside it "
                              f"(a run folder holds {CHECKPOINT_FILE})")
    if not path.is_file():
        raise CheckpointError(f"{what} {path} not found; check the path (a finished run writes "
                              f"runs/<name>/{CHECKPOINT_FILE})")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): the copy or the run that wrote it was cut short; "
                              f"copy it again or re-run")
    verify_checkpoint_archive(path, what)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, RuntimeError, ValueError, OSError,
            AttributeError, ModuleNotFoundError) as exc:
        reason = str(exc).split("\n")[0][:160]
        if isinstance(exc, pickle.UnpicklingError):
            reason = "it holds Python objects other than tensors, so it is not an apclip file"
        raise CheckpointError(f"{path} is not a readable {what} (truncated, corrupt or another format: "
                              f"{reason}). An apclip {what} is written by `apclip train`; a released model of "
                              f"another project can be imported with `python -m apclip_core convert`") from None


def is_safetensors(path: Path) -> bool:
    """A .safetensors file, or a file that starts like one (8-byte header length, then the JSON header)."""
    if path.suffix == ".safetensors":
        return path.is_file()
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size


def read_safetensors_checkpoint(path: Path) -> dict:
    """{"state_dict", "config"} of a checkpoint written by save_checkpoint: the header is JSON and the
    tensors raw bytes, so nothing is unpickled. Any damage is one CheckpointError naming the file."""
    from safetensors import SafetensorError, safe_open

    from apclip_core.errors import CheckpointError

    try:
        with safe_open(path, framework="pt", device="cpu") as f:
            config = (f.metadata() or {}).get(CONFIG_METADATA_KEY)
            state_dict = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated, corrupt or another format: "
                              f"{str(exc).splitlines()[0][:160]}). An apclip checkpoint is written by `apclip train` "
                              f"or `apclip convert`; copy it again or re-run") from None
    if config is None:
        raise CheckpointError(f"{path} is a safetensors file without apclip's config (metadata "
                              f"'{CONFIG_METADATA_KEY}'); for a plain open_clip state dict use "
                              "create_model(name, pretrained=<path>)")
    return {"state_dict": state_dict, "config": config}


def read_checkpoint(path: str | Path) -> dict:
    """The payload of a checkpoint: a safetensors file, or a torch file written before safetensors.
    A run folder stands for its checkpoint."""
    path = Path(path)
    if path.is_dir() and run_checkpoint(path).is_file():
        path = run_checkpoint(path)
    return read_safetensors_checkpoint(path) if is_safetensors(path) else read_torch_file(path)


def is_checkpoint(path: str | Path) -> bool:
    """True when `path` is a file written by save_checkpoint (its JSON sidecar, or the file, says so)."""
    path = Path(path)
    if not path.is_file():
        return False
    sidecar = path.with_name(path.name + ".json")
    try:
        if sidecar.is_file():
            return json.loads(sidecar.read_text()).get("model", {}).get("format") == CONFIG_FORMAT
        if is_safetensors(path):
            from safetensors import safe_open

            with safe_open(path, framework="pt") as f:
                config = (f.metadata() or {}).get(CONFIG_METADATA_KEY, "{}")
            return json.loads(config)["model"]["format"] == CONFIG_FORMAT
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return isinstance(payload, dict) and json.loads(payload.get("config", "{}"))["model"]["format"] == CONFIG_FORMAT
    except Exception:  # noqa: BLE001 - any unreadable file is simply not an apclip checkpoint
        return False


# Converted peers that are more than a frame-wise CLIP: their model classes live in modules built on this one,
# so they are found by name when a checkpoint asks for one (model.mote, model.tcclip import this module).
PEER_MODELS = {"mote": ("apclip_core.model.mote", "MoTEVideoCLIP"),
               "tcclip": ("apclip_core.model.tcclip", "TCCLIPVideoCLIP")}


def peer_model_class(name: str) -> type:
    """The model class of a converted peer that is more than a frame-wise CLIP (config "peer_model")."""
    import importlib

    if name not in PEER_MODELS:
        raise ValueError(f"unknown peer_model {name!r} in the checkpoint's config; known: {', '.join(PEER_MODELS)}")
    module, cls = PEER_MODELS[name]
    return getattr(importlib.import_module(module), cls)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> VideoCLIP:
    """Rebuild the VideoCLIP saved by save_checkpoint (architecture + activation from its config), from its
    .safetensors file, a checkpoint.pt written before, or a run folder."""
    from apclip_core.errors import CheckpointError

    payload = read_checkpoint(path)
    if not isinstance(payload, dict) or "state_dict" not in payload or "config" not in payload:
        raise CheckpointError(f"{path} is not an apclip checkpoint (expected keys 'state_dict' and 'config'); "
                              "for a plain open_clip state dict use create_model(name, pretrained=<path>)")
    saved = json.loads(payload["config"])
    config = dict(saved["model"])
    trained = (saved.get("train_config") or {}).get("similarity")
    if trained:  # fine-tuned by apclip: scored as trained (not as the converted weights it started from were)
        config["trained_similarity"] = trained
    model = create_model(config["model_name"], config["pretrained"], temporal_module=config["temporal_module"],
                         temporal_window=config.get("temporal_window", 1), quick_gelu=config["quick_gelu"],
                         precision=config.get("precision", "fp32"), load_weights=False,
                         expand_temporal_view=config.get("expand_temporal_view", 0),
                         open_clip_config=config.get("open_clip_config"))
    if config.get("peer_model"):  # MoTE, TC-CLIP: the CLIP inside their own model class
        model = peer_model_class(config["peer_model"])(model.clip, {**model.config, **config}, model.tokenizer)
    model.config.update(config)  # keep mean/std/size exactly as trained
    model.load_state_dict(payload["state_dict"], strict=True)
    return model.to(device)
