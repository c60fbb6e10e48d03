"""TC-CLIP (ECCV 2024): frames that attend to context tokens gathered from the whole clip, and class text
encoded per video with learned context rewritten by that video's context tokens.

Re-implemented from TC-CLIP's published computation (its zero-shot evaluation), not from its code.

Image tower, over the T frames of one clip at once (CLIP's weights; N = 1 + P tokens per frame):
- every frame: patches + CLS + the same spatial positional embedding, ln_pre;
- block i: queries from each frame's own N tokens; keys and values from those N tokens plus the k context
  tokens of block i-1 (none before block 0), shared by all frames; the attention logits get a learned bias
  per head, one for own-frame keys and one for context keys (blocks >= 1); the residual keeps the frame
  tokens only. Seeds: per frame the s = int(P * a) patches the CLS row of that attention (mean over heads)
  weighs most. The T*s seed tokens (after the residual) are merged down to k context tokens by ToMe's
  bipartite soft matching with size-weighted averages (`merge_tokens`); then the MLP runs on frame and
  context tokens alike;
- the frames' CLS tokens of the last block, ln_post @ proj, averaged over frames and L2: the video feature;
  the context tokens of block (prompt level - 1), ln_post @ proj: what the text side reads.
Text, per video: 'a photo of a {name}.' in a context of 30 tokens, the embeddings of 'a photo of a' replaced
by the n learned context vectors; the causal text blocks, except that just before block (prompt level - 1)
the context vectors are rewritten by a cross-attention layer over the video's context tokens (8 heads);
ln_final, EOT, text_projection. Everything before that layer does not depend on the video and is computed
once per label set (`TextPrefix`).
logits = logit_scale.exp() * cosine; views: each view's softmax, averaged (returned as its log).

Where their code hard-codes ViT-B/16 (196 patches, vision layer 11), this module reads the model's own
patch count and depth, so that tiny models compute what theirs would at those sizes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import open_clip
import torch
import torch.nn.functional as F
from torch import nn

from apclip_core.model.mote import LabelSetDependent
from apclip_core.model.video_clip import VideoCLIP, check_video, class_means, prompt_owners

# the released trainer config (configs/trainer/tc_clip.yaml) and zero-shot config: what a file's own
# pickled config overrides
DEFAULTS = {"num_frames": 16, "context_token_k": 96, "seed_token_a": 0.3, "tome_r": 100, "tome_d": 0,
            "ctx_init": "a photo of a", "context_length": 30, "parse_ucf101": True, "prompt_generation_heads": 8}


def merge_schedule(start: int, final: int, r: int) -> list[int]:
    """Tokens removed per matching step from `start` to `final`: r while whole steps of r fit (each at most
    half of what remains), then what is left, at most half at a time."""
    steps, count = [], start
    for _ in range(int((start - final) / r)):
        steps.append(min(r, count // 2))
        count -= steps[-1]
    while count > final:
        steps.append(min(count - final, count // 2))
        count -= steps[-1]
    return steps


def layer_r(layers: int, r: int, inflection: float) -> list[int]:
    """ToMe's per-layer r for (r, inflection): constant for 0, decreasing for -1."""
    low = int(r * (1.0 - inflection))
    high = 2 * r - low
    step = (high - low) / (layers - 1) if layers > 1 else 0
    return [int(low + step * i) for i in range(layers)]


def merge_tokens(x: torch.Tensor, size: torch.Tensor | None, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One bipartite soft matching step: tokens [B, n, D] alternate into A (even) and B (odd); each A token's
    most cosine-similar B token is its edge; the r A tokens with the strongest edges are merged into their
    partners by size-weighted average. Returns ([unmerged A in edge order..., B...], sizes)."""
    if size is None:
        size = torch.ones_like(x[..., :1])
    r = min(r, x.shape[1] // 2)
    if r <= 0:
        return x, size
    unit = F.normalize(x, dim=-1)
    best, partner = (unit[:, ::2] @ unit[:, 1::2].transpose(1, 2)).max(dim=-1)        # [B, |A|]
    order = best.argsort(dim=-1, descending=True)[..., None]
    kept, moved = order[:, r:], order[:, :r]
    into = partner[..., None].gather(1, moved)

    def merged(z: torch.Tensor) -> torch.Tensor:
        a, b = z[:, ::2], z[:, 1::2]
        c = z.shape[-1]
        b = b.scatter_reduce(1, into.expand(-1, -1, c), a.gather(1, moved.expand(-1, -1, c)), reduce="sum")
        return torch.cat([a.gather(1, kept.expand(-1, -1, c)), b], dim=1)

    weighted, size = merged(x * size), merged(size)
    return weighted / size, size


class PromptGenerationLayer(nn.Module):
    """Cross-attention of the learned context vectors (queries) to a video's context tokens, then an MLP."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1 = nn.LayerNorm(width)
        self.ln_1_kv = nn.LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, 4 * width))
        self.mlp.add_module("gelu", open_clip.transformer.QuickGELU())
        self.mlp.add_module("c_proj", nn.Linear(4 * width, width))
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, ctx: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        kv = self.ln_1_kv(context)
        ctx = ctx + self.attn(self.ln_1(ctx), kv, kv, need_weights=False)[0]
        return ctx + self.mlp(self.ln_2(ctx))


class TCExtras(nn.Module):
    """What TC-CLIP adds to a CLIP: the learned context vectors, the local/global attention bias of visual
    blocks 1.., the prompt-generation layer."""

    def __init__(self, n_ctx: int, text_width: int, visual_layers: int, visual_heads: int, generation_heads: int):
        super().__init__()
        self.ctx = nn.Parameter(torch.zeros(n_ctx, text_width))
        self.local_global_bias = nn.Parameter(torch.zeros(visual_layers - 1, visual_heads, 2))
        self.prompt_generation_layer = PromptGenerationLayer(text_width, generation_heads)


@dataclass
class TextPrefix:
    """The video-independent part of the class text: the hidden states just before the prompt-generation
    layer, and the token ids (for the EOT position)."""
    hidden: torch.Tensor     # [C, L, W]
    tokens: torch.Tensor     # [C, L]


def class_prompt_names(classnames: list[str], split_capitals: bool = True) -> list[str]:
    """TC-CLIP's reading of class names: a space before each capital (UCF-101's CamelCase), '_' as spaces."""
    if split_capitals:
        classnames = [re.sub(r"([A-Z])", r" \1", name).strip() for name in classnames]
    return [name.replace("_", " ") for name in classnames]


class TCCLIPVideoCLIP(VideoCLIP):
    """A converted TC-CLIP model. config["tcclip"] holds its settings (frames, k, a, r, context length...)."""

    def __init__(self, clip: nn.Module, config: dict, tokenizer=None):
        super().__init__(clip, config, tokenizer)
        tc = config["tcclip"]
        visual = clip.visual
        self.tc = TCExtras(tc["n_ctx"], clip.ln_final.weight.shape[0], len(visual.transformer.resblocks),
                           visual.transformer.resblocks[0].attn.num_heads, tc["prompt_generation_heads"])

    @property
    def settings(self) -> dict:
        return self.config["tcclip"]

    def encode_video(self, video: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
        raise LabelSetDependent(
            "TC-CLIP has no frame-wise video embedding: each frame attends to context tokens gathered from the "
            "whole clip and its class text is encoded per video from them, so encode_video cannot give the "
            "features its authors evaluate; score with zero_shot_logits(frames, classnames) (a split: "
            "apclip_core.engine.evaluate.evaluate_zero_shot)")

    # ---- image tower ---------------------------------------------------------------------------
    def _block(self, i: int, x: torch.Tensor, T: int, N: int, r: int) -> torch.Tensor:
        """Visual block i on x [B, T*N (+k), W] -> [B, T*N + k', W] (frame tokens, then new context tokens)."""
        block = self.clip.visual.transformer.resblocks[i]
        attn = block.attn
        B, _, W = x.shape
        TN, heads = T * N, attn.num_heads
        h = block.ln_1(x)
        w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
        b_q, b_k, b_v = attn.in_proj_bias.chunk(3)
        q = F.linear(h[:, :TN], w_q, b_q).reshape(B * T, N, W)
        k, v = F.linear(h, w_k, b_k), F.linear(h, w_v, b_v)

        def per_frame(z):  # own-frame keys, then the context keys shared by every frame
            own = z[:, :TN].reshape(B * T, N, W)
            shared = z[:, TN:].unsqueeze(1).expand(-1, T, -1, -1).reshape(B * T, -1, W)
            return torch.cat([own, shared], dim=1)

        def split(z):
            return z.reshape(B * T, z.shape[1], heads, W // heads).transpose(1, 2)

        q, k, v = split(q), split(per_frame(k)), split(per_frame(v))
        logits = (q * (W // heads) ** -0.5) @ k.transpose(-2, -1)                 # [BT, heads, N, N + k]
        if i > 0:
            bias = self.tc.local_global_bias[i - 1]                                # [heads, 2]
            own = torch.arange(logits.shape[-1], device=x.device) < N
            logits = logits + torch.where(own, bias[:, :1], bias[:, 1:])[None, :, None, :]
        weights = logits.softmax(dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(B, TN, W)
        x = x[:, :TN] + block.ls_1(F.linear(out, attn.out_proj.weight, attn.out_proj.bias))

        seeds_per_frame = int((N - 1) * self.settings["seed_token_a"])
        cls_row = weights[:, :, 0, 1:N].mean(dim=1).reshape(B, T, N - 1)
        seeds = cls_row.topk(seeds_per_frame, dim=-1).indices                      # [B, T, s]
        patches = x.reshape(B, T, N, W)[:, :, 1:]
        context = patches.gather(2, seeds[..., None].expand(-1, -1, -1, W)).reshape(B, T * seeds_per_frame, W)
        size = None
        for step in merge_schedule(context.shape[1], self.settings["context_token_k"], r):
            context, size = merge_tokens(context, size, step)
        x = torch.cat([x, context], dim=1)
        return x + block.ls_2(block.mlp(block.ln_2(x)))

    def encode_clips(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """clips [B, T, 3, S, S] -> (L2-normalised video features [B, D], context tokens [B, k, D])."""
        visual = self.clip.visual
        B, T = clips.shape[:2]
        x = visual._embeds(clips.reshape(B * T, *clips.shape[2:]).to(self._visual_dtype()))
        N = x.shape[1]
        x = x.reshape(B, T * N, -1)
        layers = len(visual.transformer.resblocks)
        rs = layer_r(layers, self.settings["tome_r"], self.settings["tome_d"])
        context_layer = self.settings["prompt_generation_layer"]
        for i in range(layers):
            x = self._block(i, x, T, N, rs[i])
            if i == context_layer:
                context = self._project(x[:, T * N:])
        cls = self._project(x[:, :T * N].reshape(B, T, N, -1)[:, :, 0])
        return F.normalize(cls.mean(dim=1), dim=-1), context

    def _project(self, tokens: torch.Tensor) -> torch.Tensor:
        visual = self.clip.visual
        tokens = visual.ln_post(tokens)
        return (tokens @ visual.proj if visual.proj is not None else tokens).float()

    # ---- text, per video -----------------------------------------------------------------------
    def prompt_tokens(self, classnames: list[str]) -> torch.Tensor:
        """'<ctx_init> {name}.' per class, in TC-CLIP's context length (30 in the released config)."""
        names = class_prompt_names(list(classnames), self.settings["parse_ucf101"])
        texts = [f"{self.settings['ctx_init']} {name}." for name in names]
        return open_clip.tokenize(texts, context_length=self.settings["context_length"])

    def text_prefix(self, classnames: list[str] | None = None, *, tokens: torch.Tensor | None = None) -> TextPrefix:
        """The video-independent text layers, once per label set: embeddings (learned context in place of the
        ctx_init words), positions, the causal blocks before the prompt-generation layer."""
        tokens = self.prompt_tokens(classnames) if tokens is None else tokens
        clip, n = self.clip, self.settings["n_ctx"]
        L = tokens.shape[1]
        x = clip.token_embedding(tokens)
        x = torch.cat([x[:, :1], self.tc.ctx.expand(len(tokens), -1, -1).to(x.dtype), x[:, 1 + n:]], dim=1)
        x = x + clip.positional_embedding[:L]
        for block in clip.transformer.resblocks[:self.settings["prompt_generation_layer"]]:
            x = block(x, attn_mask=clip.attn_mask[:L, :L])
        return TextPrefix(x, tokens)

    def text_features(self, prefix: TextPrefix, context: torch.Tensor) -> torch.Tensor:
        """[C, D] L2-normalised class features for ONE video's context tokens [k, D]."""
        clip, n = self.clip, self.settings["n_ctx"]
        x, L = prefix.hidden, prefix.tokens.shape[1]
        C = len(x)
        ctx = self.tc.prompt_generation_layer(x[:, 1:1 + n], context.to(x.dtype).expand(C, -1, -1))
        x = torch.cat([x[:, :1], ctx, x[:, 1 + n:]], dim=1)
        for block in clip.transformer.resblocks[self.settings["prompt_generation_layer"]:]:
            x = block(x, attn_mask=clip.attn_mask[:L, :L])
        x = clip.ln_final(x)[torch.arange(C), prefix.tokens.argmax(dim=-1)] @ clip.text_projection
        return F.normalize(x.float(), dim=-1)

    def description_tokens(self, texts: list[str]) -> torch.Tensor:
        """'<ctx_init> <text>' per text, for the learned context to take the ctx_init words' place in front of
        any prompt (an action description); context 77 as TC-CLIP's LLM-rephrased runs, trimmed to the longest."""
        from apclip_core.model.video_clip import trim_tokens

        return trim_tokens(open_clip.tokenize([f"{self.settings['ctx_init']} {t}" for t in texts]))

    def zero_shot_logits(self, video: torch.Tensor, classnames: list[str],
                         prompts: list[list[str]] | None = None) -> torch.Tensor:
        """video [B, V, T, 3, S, S] -> [B, C]: logit_scale.exp() x cosine with the video's own class text; with
        V > 1 views, the log of the mean of the views' softmax (their combination, as a logit). prompts: each
        class's texts (e.g. action descriptions) in place of 'a photo of a {name}.', each through the per-video
        text path, their features averaged per class (L2 each, mean, L2)."""
        check_video(video)
        if prompts is None:
            return self.logits_for(video, self.text_prefix(list(classnames)))
        if len(prompts) != len(classnames):
            raise ValueError(f"{len(classnames)} class names but {len(prompts)} prompt lists")
        prefix = self.text_prefix(tokens=self.description_tokens([t for texts in prompts for t in texts]))
        return self.logits_for(video, prefix, prompt_owners(prompts))

    def logits_for(self, video: torch.Tensor, prefix: TextPrefix, owner: torch.Tensor | None = None) -> torch.Tensor:
        """zero_shot_logits with the label set's video-independent text layers computed already (once per label
        set, whatever the number of videos); owner[p]: the class of prompt p when a class has several."""
        B, V, T = video.shape[:3]
        if T != self.settings["num_frames"]:
            raise ValueError(f"this TC-CLIP model was built for clips of {self.settings['num_frames']} frames (fixed "
                             f"when its model is built, as in its code), got {T}: use {self.settings['num_frames']} "
                             f"frames per clip, or convert the checkpoint again with --frames {T}")
        feats, context = self.encode_clips(video.flatten(0, 1))
        scale = self.clip.logit_scale.exp()
        def classes(i):  # this view's class features: one prompt per class, or each class's prompts averaged
            texts = self.text_features(prefix, context[i])
            return texts if owner is None else class_means(texts, owner)

        logits = torch.stack([scale * feats[i] @ classes(i).T for i in range(B * V)])
        logits = logits.reshape(B, V, -1)
        return logits[:, 0] if V == 1 else logits.softmax(dim=-1).mean(dim=1).log()
