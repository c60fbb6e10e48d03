"""Optional temporal module: each frame's tokens also attend to its neighbouring frames.

Open-VCLIP turns CLIP's ViT into a video model by expanding, in every self-attention layer,
the keys and values of frame t to the tokens of frames t-1 and t+1, reusing CLIP's own
attention weights. We keep that idea (same attention weights, neighbours within one temporal
view, every layer) but add it as a residual branch with a zero-initialised per-channel gate:

    x_{l+1} = block_l(x_l) + gate_l * Attn_l(q = LN_l(x_l[t]), kv = LN_l(x_l[t-w .. t+w, != t]))

so that switching it on starts exactly from the image model (gate = 0), and training opens
the gate as far as the data asks. The only new parameters are the gates (layers x width:
9,216 for ViT-B/16). Frames of different views (temporal clips, spatial crops) never mix.

Open-VCLIP's own form, without gate and inside CLIP's attention (`expanded_view_block`), is here too:
imported Open-VCLIP/FROSTER checkpoints need it (model config "expand_temporal_view": frames per clip).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NeighbourFrameAttention(nn.Module):
    """Gated attention from each frame's tokens to the tokens of its `window` neighbours on each side."""

    def __init__(self, num_layers: int, width: int, window: int = 1):
        super().__init__()
        if window < 1:
            raise ValueError(f"window must be >= 1 (neighbours on each side), got {window}")
        self.window = window
        self.gate = nn.Parameter(torch.zeros(num_layers, width))

    def forward(self, layer: int, x: torch.Tensor, y: torch.Tensor, block: nn.Module,
                num_frames: int) -> torch.Tensor:
        """x: the block's input tokens [N*T, L, W] (N clips of T frames), y = block(x).

        Returns y + gate[layer] * (attention of frame t's tokens to its neighbours' tokens),
        computed with the block's own LayerNorm and attention weights (Open-VCLIP style).
        """
        if num_frames == 1:
            return y
        attn = block.attn
        if not isinstance(attn, nn.MultiheadAttention) or not attn.batch_first:
            raise TypeError("the temporal module needs open_clip ResidualAttentionBlocks with batch-first "
                            f"nn.MultiheadAttention; got {type(attn).__name__}")
        h = block.ln_1(x)
        kv, ignore = neighbour_tokens(h, num_frames, self.window)
        out = attn(h, kv, kv, key_padding_mask=ignore, need_weights=False)[0]
        return y + self.gate[layer].to(y.dtype) * out


def neighbour_tokens(h: torch.Tensor, num_frames: int, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens of frames t-window..t+window (t excluded) for every frame t.

    h: [N*T, L, W] -> keys [N*T, 2*window*L, W] and key_padding_mask [N*T, 2*window*L]
    (True where the neighbour lies outside the clip, so it is ignored). With T >= 2 every
    frame has at least one real neighbour, so no row is fully masked.
    """
    NT, L, W = h.shape
    if NT % num_frames:
        raise ValueError(f"{NT} frames are not a whole number of clips of {num_frames} frames")
    h = h.view(NT // num_frames, num_frames, L, W)
    t = torch.arange(num_frames, device=h.device)
    keys, ignore = [], []
    for offset in [*range(-window, 0), *range(1, window + 1)]:
        src = t + offset
        keys.append(h[:, src.clamp(0, num_frames - 1)])                       # [N, T, L, W]
        outside = (src < 0) | (src >= num_frames)                             # [T]
        ignore.append(outside[None, :, None].expand(h.shape[0], num_frames, L))
    keys = torch.cat(keys, dim=2).reshape(NT, -1, W)
    ignore = torch.cat(ignore, dim=2).reshape(NT, -1)
    return keys, ignore


# ---- Open-VCLIP / FROSTER: neighbour-frame attention inside CLIP's own attention ------------------
# Unlike the gated branch above, this replaces every visual attention layer and has no parameters:
# it is how Open-VCLIP ("expand_temporal_view") and FROSTER trained and evaluate their weights, so
# importing their checkpoints needs it (a plain frame-wise tower gives different frame features).
def expanded_view_block(block: nn.Module, x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """An open_clip ResidualAttentionBlock's forward with expand_temporal_view attention.

    x: [N*T, L, W], N clips of T = num_frames consecutive frames (one temporal view each).
    """
    x = x + block.ls_1(expanded_view_attention(block.attn, block.ln_1(x), num_frames))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def expanded_view_attention(attn: nn.Module, h: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Frame t's L tokens (queries) attend to the 3L tokens of frames t-1, t, t+1 (keys and values).

    At a clip's ends the missing neighbour is a block of L zero vectors AFTER the input projection
    (key and value exactly zero, no bias), which still takes part in the softmax: each zero key has
    logit 0, so it takes weight from the real keys while adding nothing to the output. That is what
    Open-VCLIP's code computes; masking the missing frame instead would give different features.
    """
    if not isinstance(attn, nn.MultiheadAttention) or not attn.batch_first:
        raise TypeError("expand_temporal_view needs open_clip ResidualAttentionBlocks with batch-first "
                        f"nn.MultiheadAttention; got {type(attn).__name__}")
    NT, L, W = h.shape
    if NT % num_frames:
        raise ValueError(f"{NT} frames are not a whole number of clips of {num_frames} frames")
    heads = attn.num_heads
    q, k, v = F.linear(h, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)

    def with_neighbours(z: torch.Tensor) -> torch.Tensor:       # [N*T, L, W] -> [N*T, 3L, W]
        z = z.view(NT // num_frames, num_frames, L, W)
        zero = z.new_zeros(z.shape[0], 1, L, W)
        previous = torch.cat([zero, z[:, :-1]], dim=1)
        following = torch.cat([z[:, 1:], zero], dim=1)
        return torch.cat([previous, z, following], dim=2).reshape(NT, 3 * L, W)

    def split(z: torch.Tensor) -> torch.Tensor:                 # [N*T, n, W] -> [N*T, heads, n, W/heads]
        return z.view(NT, z.shape[1], heads, W // heads).transpose(1, 2)

    out = F.scaled_dot_product_attention(split(q), split(with_neighbours(k)), split(with_neighbours(v)))
    out = out.transpose(1, 2).reshape(NT, L, W)
    return F.linear(out, attn.out_proj.weight, attn.out_proj.bias)
