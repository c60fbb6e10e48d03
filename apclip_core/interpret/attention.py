"""Visual attention of an open_clip ViT, read with hooks, and where its patches lie in a video frame.

Why hooks. open_clip calls ``nn.MultiheadAttention`` with ``need_weights=False`` (so PyTorch may
take its fused kernels), which means the attention weights are never materialised. A forward
pre-hook (``with_kwargs=True``) on a block's ``attn`` switches ``need_weights=True,
average_attn_weights=False`` for that call, and a forward hook reads ``output[1]``, the per-head
weights ``[N, heads, L, L]``. The block still uses ``output[0]`` exactly as before, so the features
are unchanged up to floating-point rounding of the non-fused path (tested). Only self-attention
calls are recorded (query is key), so the optional temporal module's neighbour-frame calls to
the same module pass through untouched. ``record_attention``
is a context manager that always removes its hooks, also when the forward pass raises.

Two maps per frame (``cls_attention``, ``attention_rollout``):

* last-layer CLS-to-patch attention: row 0 (the class token, which becomes the image embedding)
  of the last block's attention, over the patch tokens, averaged over heads;
* attention rollout (Abnar & Zuidema, 2020): per layer, the head-averaged attention plus the
  identity (the residual connection), rows renormalised to sum to one, multiplied through the
  layers; its CLS row says how much each input patch flows into the class token.

Geometry (``CropGeometry``). The model never sees the decoded frame: the evaluation transform
resizes the short side and crops a square (``apclip_core.data.transforms``). For the embedded
benchmark, an 80x64 frame becomes 91x73 and a centred 64x64 crop starting at (14, 4) of it.
``crop_geometry`` recomputes that resize and crop from the transform's own parameters, and
``CropGeometry`` maps crop pixels (and so patch centres) back to frame pixels, per axis (the two
axes' scales differ slightly because sizes are rounded). Coordinates are continuous, pixel edges
at integers: frame pixel (x, y) covers [x, x+1) x [y, y+1), as in the benchmark's boxes.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["AttentionRecord", "record_attention", "cls_attention", "attention_rollout",
           "CropGeometry", "crop_geometry", "patch_grid", "peak_in_frame", "box_contains", "patch_box_fraction"]


class AttentionRecord:
    """Per hooked block, the attention weights of every forward call: ``weights(layer)`` concatenates
    the calls along the batch (an encoder may be called on several chunks of frames)."""

    def __init__(self, layers: Sequence[int]):
        self.layers = list(layers)
        self._calls: dict[int, list[torch.Tensor]] = {i: [] for i in self.layers}

    def _store(self, layer: int, weights: torch.Tensor) -> None:
        self._calls[layer].append(weights.detach().float())

    def weights(self, layer: int = -1) -> torch.Tensor:
        """[N, heads, L, L] of one hooked block (negative indices count from the last hooked one)."""
        layer = self.layers[layer] if layer < 0 else layer
        if layer not in self._calls:
            raise KeyError(f"block {layer} was not hooked; hooked blocks: {self.layers}")
        calls = self._calls[layer]
        if not calls:
            raise RuntimeError("no attention recorded: run the visual encoder inside `with record_attention(...)`")
        return torch.cat(calls, dim=0)

    def stacked(self) -> torch.Tensor:
        """[hooked layers, N, heads, L, L], first block first."""
        return torch.stack([self.weights(i) for i in self.layers])

    def clear(self) -> None:
        for calls in self._calls.values():
            calls.clear()


def _blocks(visual: nn.Module) -> nn.ModuleList:
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if blocks is None:
        raise TypeError(f"expected an open_clip VisionTransformer (visual.transformer.resblocks), "
                        f"got {type(visual).__name__}")
    for i, block in enumerate(blocks):
        if not isinstance(getattr(block, "attn", None), nn.MultiheadAttention):
            raise TypeError(f"block {i} has no nn.MultiheadAttention ('attn' is "
                            f"{type(getattr(block, 'attn', None)).__name__}); only open_clip's "
                            "ResidualAttentionBlock is supported")
    return blocks


@contextmanager
def record_attention(visual: nn.Module, layers: str | Sequence[int] = "all") -> Iterator[AttentionRecord]:
    """Record the attention weights of ``visual``'s blocks while inside the ``with``.

    layers: "all" (needed for rollout), "last", or block indices. Hooks are removed on exit,
    whatever happens inside.
    """
    blocks = _blocks(visual)
    n = len(blocks)
    if layers == "all":
        chosen = list(range(n))
    elif layers == "last":
        chosen = [n - 1]
    elif isinstance(layers, str):
        raise ValueError(f"layers must be 'all', 'last' or a list of block indices, got {layers!r}")
    else:
        chosen = sorted({i % n for i in layers})
    record = AttentionRecord(chosen)
    handles = []

    def is_self_attention(args, kwargs) -> bool:
        query = args[0] if args else kwargs.get("query")
        key = args[1] if len(args) > 1 else kwargs.get("key")
        return key is query

    def pre_hook(module, args, kwargs):
        # only the block's own self-attention; the temporal module (temporal.py) calls the same
        # module with the neighbour frames' tokens as keys, and that call is left alone
        if not is_self_attention(args, kwargs):
            return None
        return args, dict(kwargs, need_weights=True, average_attn_weights=False)

    def make_hook(layer: int):
        def hook(module, args, kwargs, output):
            if is_self_attention(args, kwargs):
                if output[1] is None:
                    raise RuntimeError(f"block {layer} returned no attention weights")
                record._store(layer, output[1])
        return hook

    try:
        for i in chosen:
            attn = blocks[i].attn
            handles.append(attn.register_forward_pre_hook(pre_hook, with_kwargs=True))
            handles.append(attn.register_forward_hook(make_hook(i), with_kwargs=True))
        yield record
    finally:
        for h in handles:
            h.remove()


def patch_grid(visual: nn.Module) -> tuple[int, int]:
    """(rows, cols) of the patch grid."""
    grid = visual.grid_size
    return (grid, grid) if isinstance(grid, int) else tuple(grid)


def _to_grid(cls_row: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """[N, L] (CLS first, then patches row-major) -> [N, rows, cols]."""
    n_patches = grid[0] * grid[1]
    prefix = cls_row.shape[-1] - n_patches
    if prefix < 1:
        raise ValueError(f"{cls_row.shape[-1]} tokens cannot hold a class token and a {grid} patch grid")
    return cls_row[:, prefix:].reshape(-1, *grid)


def cls_attention(weights: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Head-averaged attention of the class token to each patch: [N, heads, L, L] -> [N, rows, cols]."""
    return _to_grid(weights.float().mean(dim=1)[:, 0, :], grid)


def attention_rollout(layer_weights: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Attention rollout: [layers, N, heads, L, L] -> [N, rows, cols] (Abnar & Zuidema, 2020).

    Per layer A = mean over heads + I, rows renormalised; R = A_last @ ... @ A_first; the class
    token's row of R, over the patches.
    """
    if layer_weights.ndim != 5:
        raise ValueError(f"expected [layers, N, heads, L, L], got {tuple(layer_weights.shape)}")
    att = layer_weights.float().mean(dim=2)                                   # [layers, N, L, L]
    eye = torch.eye(att.shape[-1], dtype=att.dtype, device=att.device)
    att = att + eye
    att = att / att.sum(dim=-1, keepdim=True)
    rollout = att[0]
    for a in att[1:]:
        rollout = a @ rollout
    return _to_grid(rollout[:, 0, :], grid)


# ---- geometry ---------------------------------------------------------------------------------
def _resized_size(h: int, w: int, short: int) -> tuple[int, int]:
    """transforms._resize_short's output size (h, w)."""
    if min(h, w) == short:
        return h, w
    if h <= w:
        return short, max(short, round(w * short / h))
    return max(short, round(h * short / w)), short


@dataclass(frozen=True)
class CropGeometry:
    """A square crop of ``size`` at (left, top) of the frame resized to (resized_w, resized_h)."""
    frame_w: int
    frame_h: int
    resized_w: int
    resized_h: int
    left: int
    top: int
    size: int

    @property
    def scale(self) -> tuple[float, float]:
        """Frame pixels per crop pixel, (x, y)."""
        return self.frame_w / self.resized_w, self.frame_h / self.resized_h

    def to_frame(self, x, y):
        """Crop coordinates (continuous, pixel edges at integers) -> frame coordinates."""
        sx, sy = self.scale
        return (np.asarray(x, dtype=float) + self.left) * sx, (np.asarray(y, dtype=float) + self.top) * sy

    def to_crop(self, x, y):
        """Frame coordinates -> crop coordinates (inverse of to_frame)."""
        sx, sy = self.scale
        return np.asarray(x, dtype=float) / sx - self.left, np.asarray(y, dtype=float) / sy - self.top

    def extent(self) -> tuple[float, float, float, float]:
        """The crop's region in the frame as matplotlib's imshow extent (left, right, bottom, top)."""
        (x0, x1), (y0, y1) = self.to_frame([0, self.size], [0, self.size])
        return float(x0), float(x1), float(y1), float(y0)

    def patch_centres(self, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Frame coordinates (x [rows, cols], y [rows, cols]) of each patch's centre."""
        rows, cols = grid
        px, py = self.size / cols, self.size / rows
        xs, ys = np.meshgrid((np.arange(cols) + 0.5) * px, (np.arange(rows) + 0.5) * py)
        return self.to_frame(xs, ys)


def crop_geometry(frame_hw: tuple[int, int], transform, crop: int = 0) -> CropGeometry:
    """Where evaluation crop ``crop`` of ``transform`` (transforms.VideoTransform, train=False) lies
    in a frame of (height, width) = frame_hw. Mirrors VideoTransform._eval_crops exactly."""
    if getattr(transform, "train", True):
        raise ValueError("crop geometry is defined for the evaluation transform (train=False); "
                         "training crops are random")
    h, w = int(frame_hw[0]), int(frame_hw[1])
    size, n = transform.image_size, transform.num_crops
    if not 0 <= crop < n:
        raise ValueError(f"crop {crop} out of range: the transform makes {n} crop(s)")
    if n == 1 or crop == 3:  # the centre view: short side -> transform.large, centre crop
        rh, rw = _resized_size(h, w, transform.large)
        # torchvision's center_crop: int(round((image - crop) / 2.0))
        return CropGeometry(w, h, rw, rh, int(round((rw - size) / 2.0)), int(round((rh - size) / 2.0)), size)
    rh, rw = _resized_size(h, w, size)
    p = (0.0, 1.0)[crop] if n == 2 else (0.0, 0.5, 1.0)[crop]
    if rw >= rh:
        top, left = (rh - size) // 2, round((rw - size) * p)
    else:
        top, left = round((rh - size) * p), (rw - size) // 2
    return CropGeometry(w, h, rw, rh, int(left), int(top), size)


def peak_in_frame(attn_map: torch.Tensor | np.ndarray, geometry: CropGeometry) -> tuple[float, float]:
    """Frame coordinates (x, y) of the centre of the patch where ``attn_map`` [rows, cols] peaks."""
    m = np.asarray(attn_map.detach().cpu() if isinstance(attn_map, torch.Tensor) else attn_map)
    r, c = np.unravel_index(int(np.argmax(m)), m.shape)
    xs, ys = geometry.patch_centres(m.shape)
    return float(xs[r, c]), float(ys[r, c])


def box_contains(box: Sequence[float], x: float, y: float) -> bool:
    """Point in box (x0, y0, x1, y1) with exclusive ends, as the benchmark's boxes."""
    return box[0] <= x < box[2] and box[1] <= y < box[3]


def patch_box_fraction(box: Sequence[float], geometry: CropGeometry, grid: tuple[int, int]) -> float:
    """Share of patch centres inside ``box``: the pointing game's hit rate for a uniformly random peak."""
    xs, ys = geometry.patch_centres(grid)
    inside = (xs >= box[0]) & (xs < box[2]) & (ys >= box[1]) & (ys < box[3])
    return float(inside.mean())
