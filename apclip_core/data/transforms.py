"""Frame transforms for video CLIP: ViFi-CLIP's training augmentations and multi-crop testing.

Every random choice is drawn ONCE per clip and applied to all its frames (a crop or a colour change
that jumps between frames would be a fake motion cue). Randomness comes from torch's global RNG,
which the DataLoader seeds per worker from the loader's seed (see datasets.build_loader).

Training (ViFi-CLIP / MMAction2 recipe, for image size S; S=224 gives ViFi's numbers):
  short side -> round(S * 256 / 224); multi-scale crop (scales 1, .875, .75, .66 of the short side,
  width and height scales at most one step apart, 5 fixed offsets: four corners + centre);
  resize to S x S; horizontal flip p .5 (switchable: ``AugConfig(flip=False)`` for datasets whose
  classes have a direction, like the embedded benchmark or SSv2); colour jitter p .8 (brightness .4,
  contrast .4, saturation .2, hue .1); grayscale p .2; normalise with the CLIP model's mean/std.

Testing, ``num_spatial_crops``:
  1: short side -> round(S * 256 / 224), centre S x S crop (ViFi-CLIP's single view).
  2: short side -> S, two S x S crops at both ends of the long side (together they cover the frame).
  3: short side -> S, three crops along the long side: start, centre, end (ViFi "three crop").
  4: the three crops of 3, plus the single-view centre crop of 1 (a zoomed-in centre view); the
     paper's 4 spatial crops for fully supervised testing are not specified further.
Output: float tensor ``[num_crops, T, 3, S, S]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms.v2 import functional as F

from apclip_core.errors import BadValue

__all__ = ["AugConfig", "VideoTransform", "build_video_transform", "SPATIAL_CROPS"]

SPATIAL_CROPS = (1, 2, 3, 4)


@dataclass(frozen=True)
class AugConfig:
    """Training augmentation switches (defaults = ViFi-CLIP)."""

    flip: bool = True                     # off for direction-sensitive classes
    flip_p: float = 0.5
    scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)
    max_wh_scale_gap: int = 1
    color_jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.2
    resize_ratio: float = 256 / 224       # short side before cropping, relative to the image size


def _to_tchw(video) -> torch.Tensor:
    """uint8 [T, H, W, 3] numpy/tensor -> uint8 tensor [T, 3, H, W]."""
    x = torch.from_numpy(np.ascontiguousarray(video)) if isinstance(video, np.ndarray) else torch.as_tensor(video)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected a video of shape [T, H, W, 3], got {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        raise ValueError(f"expected uint8 frames, got {x.dtype}")
    return x.permute(0, 3, 1, 2).contiguous()


def _resize_short(x: torch.Tensor, short: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    if min(h, w) == short:
        return x
    if h <= w:
        size = [short, max(short, round(w * short / h))]
    else:
        size = [max(short, round(h * short / w)), short]
    return F.resize(x, size, antialias=True)


def _crops_along_long_side(x: torch.Tensor, size: int, positions: tuple[float, ...]) -> list[torch.Tensor]:
    """Square crops of ``size`` centred on the short side, at fractions of the free long-side range."""
    h, w = x.shape[-2:]
    out = []
    for p in positions:
        if w >= h:
            top, left = (h - size) // 2, round((w - size) * p)
        else:
            top, left = round((h - size) * p), (w - size) // 2
        out.append(x[..., top:top + size, left:left + size])
    return out


class VideoTransform:
    """Callable: uint8 [T, H, W, 3] -> float [num_crops, T, 3, S, S] (see module docstring)."""

    def __init__(self, image_size: int, mean, std, *, train: bool, num_spatial_crops: int = 1,
                 aug: AugConfig | None = None):
        if isinstance(image_size, (tuple, list)):
            if len(set(image_size)) != 1:
                raise ValueError(f"only square image sizes are supported, got {image_size}")
            image_size = image_size[0]
        if num_spatial_crops not in SPATIAL_CROPS:
            raise BadValue(f"num_spatial_crops={num_spatial_crops} not supported; valid: {SPATIAL_CROPS}")
        if train and num_spatial_crops != 1:
            raise ValueError("training uses one random crop per clip; num_spatial_crops must be 1 with train=True")
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values (RGB), got {mean} and {std}")
        self.image_size = int(image_size)
        self.train = train
        self.num_crops = num_spatial_crops
        self.aug = aug or AugConfig()
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.large = round(self.image_size * self.aug.resize_ratio)

    def __repr__(self) -> str:
        mode = "train" if self.train else f"eval, {self.num_crops} crop(s)"
        return f"VideoTransform(S={self.image_size}, {mode}, aug={self.aug if self.train else None})"

    def __call__(self, video) -> torch.Tensor:
        x = _to_tchw(video)
        crops = self._train_crop(x) if self.train else self._eval_crops(x)
        out = []
        for c in crops:
            c = c.float().div_(255.0)
            if self.train:
                c = self._photometric(c)
            out.append((c - self.mean) / self.std)
        return torch.stack(out)

    # -- training -------------------------------------------------------------------------------
    def _train_crop(self, x: torch.Tensor) -> list[torch.Tensor]:
        a = self.aug
        x = _resize_short(x, self.large)
        h, w = x.shape[-2:]
        base = min(h, w)
        sizes = [int(base * s) for s in a.scales]
        pairs = [(cw, ch) for i, ch in enumerate(sizes) for j, cw in enumerate(sizes) if abs(i - j) <= a.max_wh_scale_gap]
        cw, ch = pairs[int(torch.randint(len(pairs), ()))]
        w_step, h_step = (w - cw) // 4, (h - ch) // 4
        offsets = [(0, 0), (4 * w_step, 0), (0, 4 * h_step), (4 * w_step, 4 * h_step), (2 * w_step, 2 * h_step)]
        left, top = offsets[int(torch.randint(len(offsets), ()))]
        x = x[..., top:top + ch, left:left + cw]
        x = F.resize(x, [self.image_size, self.image_size], antialias=True)
        if a.flip and float(torch.rand(())) < a.flip_p:
            x = x.flip(-1)
        return [x]

    def _photometric(self, x: torch.Tensor) -> torch.Tensor:
        """Colour jitter (random order, one draw per clip) then grayscale; x float [T, 3, S, S] in 0..1."""
        a = self.aug
        if float(torch.rand(())) < a.color_jitter_p:
            factors = {
                "brightness": float(torch.empty(()).uniform_(max(0.0, 1 - a.brightness), 1 + a.brightness)),
                "contrast": float(torch.empty(()).uniform_(max(0.0, 1 - a.contrast), 1 + a.contrast)),
                "saturation": float(torch.empty(()).uniform_(max(0.0, 1 - a.saturation), 1 + a.saturation)),
                "hue": float(torch.empty(()).uniform_(-a.hue, a.hue)),
            }
            ops = {"brightness": F.adjust_brightness, "contrast": F.adjust_contrast,
                   "saturation": F.adjust_saturation, "hue": F.adjust_hue}
            for k in torch.randperm(4).tolist():
                name = list(ops)[k]
                x = ops[name](x, factors[name])
        if float(torch.rand(())) < a.grayscale_p:
            x = F.rgb_to_grayscale(x, num_output_channels=3)
        return x

    # -- testing --------------------------------------------------------------------------------
    def _centre_view(self, x: torch.Tensor) -> torch.Tensor:
        return F.center_crop(_resize_short(x, self.large), [self.image_size, self.image_size])

    def _eval_crops(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.num_crops == 1:
            return [self._centre_view(x)]
        small = _resize_short(x, self.image_size)
        if self.num_crops == 2:
            return _crops_along_long_side(small, self.image_size, (0.0, 1.0))
        three = _crops_along_long_side(small, self.image_size, (0.0, 0.5, 1.0))
        return three if self.num_crops == 3 else three + [self._centre_view(x)]


def build_video_transform(image_size, mean, std, *, train: bool, num_spatial_crops: int = 1,
                          aug: AugConfig | None = None) -> VideoTransform:
    """The transform for a CLIP model: pass its image_size / mean / std (open_clip preprocess cfg)."""
    return VideoTransform(image_size, mean, std, train=train, num_spatial_crops=num_spatial_crops, aug=aug)
