"""Optional temporal module: each frame's tokens also attend to its neighbouring frames.

Open-VCLIP turns CLIP's ViT into a video model by expanding, in every self-attention layer,
the keys and values of frame t to the tokens of frames t-1 and t+1, reusing CLIP's own
attention weights. We keep that idea (same attention weights, neighbours within one temporal
view, every layer) but add it as a residual branch with a zero-initialised per-channel gate:

    x_{l+1} = block_l(x_l) + gate_l * Attn_l(q = LN_l(x_l[t]), kv = LN_l(x_l[t-w .. t+w, != t]))

so that switching it on starts exactly from the image model (gate = 0), and training opens
the gate as far as the data asks. The only new parameters are the gates (layers x width:
9,216 for ViT-B/16). Frames of different views (temporal clips, spatial crops) never mix.
"""
from __future__ import annotations

import torch
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
