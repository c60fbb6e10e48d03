"""MoTE (NeurIPS 2024): CLIP frames + a temporal mixture-of-experts transformer whose output depends on
the evaluated label set.

Re-implemented from MoTE's published computation (its zero-shot evaluation), not from its code:

- frames: the plain CLIP image tower (cls token after ln_post @ proj, unnormalised) per frame;
- classes: each name through 28 templates (4 openings x 7 endings, the same "Set" Open-VCLIP uses) and the
  ORIGINAL CLIP's text tower (MoTE never trains nor saves one), L2 per template, averaged, L2 again;
- temporal module over the T frames of one clip, X = [f_1..f_T]:
    m = mean over the top-5 classes g of the evaluated set (by cosine with the L2 mean frame) of the best
        cosine between g and the top-5 of the 400 Kinetics class features stored in the file;
    w = exp(-(1 - m) / 0.05)                                    (needs >= 5 classes: top-5)
    Z = X + P[0:T]; L blocks of Z += MHA(LN1 Z); Z += MoE(LN2 Z)     (LayerNorm eps 1e-12, no mask)
    MoE at evaluation: the experts' weights merged with softmax(fusion weight), then W_dn QuickGELU(W_up z)
    Y = w Z + X;   video feature v = L2(mean_t Y)
- logits = 100 v.g (a fixed 100, not the logit scale); views: the mean of the views' logits.

Because w depends on the classes scored, a MoTE video has no label-free embedding: `encode_video` refuses and
says so; `zero_shot_logits(frames, classnames)` is the model's one scoring entry.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from apclip_core.errors import UserError
from apclip_core.model.video_clip import VideoCLIP, check_video, class_means, encode_text_tokens, prompt_owners
from apclip_core.prompts.templates import SET_TEMPLATES

# MoTE's class text: 4 openings x 7 endings, the same 28 templates as Open-VCLIP's "Set"
TEMPLATES = SET_TEMPLATES
TOP_CLASSES = 5          # the modulation's estimate: top-5 classes on each side
MODULATION_SCALE = 0.05  # w = exp(-(1 - m) / scale)
LOGIT_SCALE = 100.0      # test_zeroshot's fixed scale
LAYER_NORM_EPS = 1e-12   # its TF-style LayerNorm (epsilon inside the square root, as torch's)


class LabelSetDependent(UserError, TypeError):
    """A model whose video feature depends on the classes scored (or whose class text depends on the video):
    it has no label-free encode_video; the CLIs say so in one message."""


class MergedExperts(nn.Module):
    """MoTE's MLP at evaluation: E experts (fc_up [4D, D], fc_dn [D, 4D]) merged into one by the softmax of
    the fusion weight (stored zeros in released files: a plain average)."""

    def __init__(self, width: int, experts: int):
        super().__init__()
        self.fc_up = nn.ModuleList(nn.Linear(width, 4 * width) for _ in range(experts))
        self.fc_dn = nn.ModuleList(nn.Linear(4 * width, width) for _ in range(experts))
        self.mote_fusion_weight = nn.Parameter(torch.zeros(experts), requires_grad=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        a = torch.softmax(self.mote_fusion_weight, dim=0)

        def merged(layers, what):
            return sum(a[i] * getattr(layer, what) for i, layer in enumerate(layers))

        h = F.linear(z, merged(self.fc_up, "weight"), merged(self.fc_up, "bias"))
        h = h * torch.sigmoid(1.702 * h)                                     # QuickGELU
        return F.linear(h, merged(self.fc_dn, "weight"), merged(self.fc_dn, "bias"))


class TemporalBlock(nn.Module):
    def __init__(self, width: int, heads: int, experts: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1 = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.mlp = MergedExperts(width, experts)
        self.ln_2 = nn.LayerNorm(width, eps=LAYER_NORM_EPS)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.ln_1(z)
        z = z + self.attn(h, h, h, need_weights=False)[0]
        return z + self.mlp(self.ln_2(z))


class _Blocks(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, experts: int):
        super().__init__()
        self.resblocks = nn.ModuleList(TemporalBlock(width, heads, experts) for _ in range(layers))


class MoTETemporal(nn.Module):
    """The temporal module; its state-dict names are MoTE's fusion_model_state_dict's."""

    def __init__(self, width: int, layers: int, heads: int, experts: int, positions: int, classes: int):
        super().__init__()
        self.spe_cls_feature = nn.Parameter(torch.zeros(classes, width), requires_grad=False)
        self.frame_position_embeddings = nn.Embedding(positions, width)
        self.transformer = _Blocks(width, layers, heads, experts)

    def modulation(self, frames: torch.Tensor, class_features: torch.Tensor) -> torch.Tensor:
        """w [B] from raw frame features [B, T, D] and the evaluated classes' features [C, D] (L2)."""
        if len(class_features) < TOP_CLASSES:
            raise ValueError(f"MoTE scores a label set of at least {TOP_CLASSES} classes (its modulation takes the "
                             f"top {TOP_CLASSES}); got {len(class_features)}")
        mean = F.normalize(frames.mean(dim=1), dim=-1)                               # [B, D]
        top_given = class_features[(mean @ class_features.T).topk(TOP_CLASSES, dim=-1).indices]      # [B, 5, D]
        stored = self.spe_cls_feature
        top_stored = stored[(mean @ stored.T).topk(TOP_CLASSES, dim=-1).indices]                    # [B, 5, D]
        m = (top_given @ top_stored.transpose(1, 2)).max(dim=-1).values.mean(dim=-1)                # [B]
        return torch.exp(-(1 - m) / MODULATION_SCALE)

    def forward(self, frames: torch.Tensor, class_features: torch.Tensor) -> torch.Tensor:
        """frames [B, T, D] raw -> L2-normalised video features [B, D] for that label set."""
        w = self.modulation(frames, class_features)
        z = frames + self.frame_position_embeddings.weight[:frames.shape[1]]
        for block in self.transformer.resblocks:
            z = block(z)
        return F.normalize((w[:, None, None] * z + frames).mean(dim=1), dim=-1)


class MoTEVideoCLIP(VideoCLIP):
    """A converted MoTE model: the CLIP (image tower from the checkpoint, text tower the original CLIP's) plus
    MoTE's temporal module. config["mote"] holds the module's shape."""

    def __init__(self, clip: nn.Module, config: dict, tokenizer=None):
        super().__init__(clip, config, tokenizer)
        self.mote = MoTETemporal(**config["mote"])

    def encode_video(self, video: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
        raise LabelSetDependent(
            "MoTE has no label-free video embedding: its temporal module is modulated by the top-5 of the classes "
            "being scored (against the Kinetics-400 class features stored in its file), so encode_video cannot "
            "give the features its authors evaluate; score with zero_shot_logits(frames, classnames) (a split: "
            "apclip_core.engine.evaluate.evaluate_zero_shot)")

    def frame_features(self, video: torch.Tensor) -> torch.Tensor:
        """Raw CLIP frame features [B, V, T, D] (the temporal module's input)."""
        B, V, T = video.shape[:3]
        feats = self.clip.encode_image(video.reshape(B * V * T, *video.shape[3:]).to(self._visual_dtype()))
        return feats.float().reshape(B, V, T, -1)

    def class_features(self, classnames: list[str], prompts: list[list[str]] | None = None) -> torch.Tensor:
        """[C, D]: per class, the mean of its 28 templates' L2 features, L2 again (MoTE's zero-shot classifier);
        prompts: each class's own texts (e.g. action descriptions) in place of the templates, averaged alike."""
        prompts = prompts or [[t.format(name) for t in TEMPLATES] for name in classnames]
        feats = encode_text_tokens(self.clip, self.tokenize([t for texts in prompts for t in texts]))
        return class_means(feats, prompt_owners(prompts))

    def zero_shot_logits(self, video: torch.Tensor, classnames: list[str],
                         prompts: list[list[str]] | None = None) -> torch.Tensor:
        """video [B, V, T, 3, S, S] -> [B, C]: 100 x cosine per view, averaged over the views. prompts: each
        class's texts in place of MoTE's templates (they drive the modulation too, as its classifier does)."""
        check_video(video)
        classes = self.class_features(list(classnames), prompts)
        frames = self.frame_features(video)
        B, V = frames.shape[:2]
        videos = self.mote(frames.flatten(0, 1), classes).reshape(B, V, -1)
        return (LOGIT_SCALE * videos @ classes.T).mean(dim=1)

