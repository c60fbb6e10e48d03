import numpy as np
import pytest
import torch

from apclip_core.data.transforms import AugConfig, build_video_transform

MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def clip(t=4, h=64, w=96):
    """Left third red, rest blue: orientation and crop position are visible."""
    x = np.zeros((t, h, w, 3), np.uint8)
    x[:, :, : w // 3, 0] = 255
    x[:, :, w // 3:, 2] = 255
    return x


def denorm(y):
    return y * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)


@pytest.mark.parametrize("crops", [1, 2, 3, 4])
def test_eval_shapes(crops):
    y = build_video_transform(32, MEAN, STD, train=False, num_spatial_crops=crops)(clip())
    assert y.shape == (crops, 4, 3, 32, 32) and y.dtype == torch.float32


def test_normalisation_uses_given_mean_std():
    x = np.full((2, 40, 50, 3), 128, np.uint8)
    y = build_video_transform(32, MEAN, STD, train=False)(x)
    expected = (128 / 255 - torch.tensor(MEAN)) / torch.tensor(STD)
    torch.testing.assert_close(y[0, 0, :, 16, 16], expected, atol=2e-3, rtol=0)


def test_crops_along_long_side_and_fourth_is_zoomed_centre():
    y = build_video_transform(64, MEAN, STD, train=False, num_spatial_crops=4)(clip(h=64, w=128))
    first, centre, last, zoom = (denorm(y[i, 0]) for i in range(4))
    assert first[0, :, :10].mean() > 0.9          # start of the long side: red part
    assert last[0].mean() < 0.05 and last[2].mean() > 0.95   # end: all blue
    assert not torch.allclose(zoom, centre)        # zoomed view differs from the plain centre crop
    y2 = build_video_transform(64, MEAN, STD, train=False, num_spatial_crops=2)(clip(h=64, w=128))
    torch.testing.assert_close(y2[0], y[0])
    torch.testing.assert_close(y2[1], y[2])


def test_train_shape_and_same_augmentation_on_every_frame():
    torch.manual_seed(0)
    t = build_video_transform(32, MEAN, STD, train=True)
    for _ in range(5):
        y = t(clip(t=6))
        assert y.shape == (1, 6, 3, 32, 32)
        for k in range(1, 6):
            torch.testing.assert_close(y[0, k], y[0, 0])


def _left_is_red(y):
    img = denorm(y[0, 0])
    return bool(img[0, :, :4].mean() > img[0, :, -4:].mean())


def test_flip_is_switchable():
    plain = dict(scales=(1.0,), color_jitter_p=0.0, grayscale_p=0.0)
    torch.manual_seed(0)
    on = build_video_transform(48, MEAN, STD, train=True, aug=AugConfig(flip=True, **plain))
    flips = [not _left_is_red(on(clip(w=64))) for _ in range(40)]
    assert 5 < sum(flips) < 35
    off = build_video_transform(48, MEAN, STD, train=True, aug=AugConfig(flip=False, **plain))
    assert all(_left_is_red(off(clip(w=64))) for _ in range(40))


def test_colour_jitter_and_grayscale_happen_at_their_rates():
    torch.manual_seed(1)
    gray_only = build_video_transform(32, MEAN, STD, train=True,
                                      aug=AugConfig(color_jitter_p=0.0, grayscale_p=1.0, flip=False))
    img = denorm(gray_only(clip())[0, 0])
    torch.testing.assert_close(img[0], img[1], atol=1e-4, rtol=0)
    none = build_video_transform(32, MEAN, STD, train=True,
                                 aug=AugConfig(color_jitter_p=0.0, grayscale_p=0.0, flip=False, scales=(1.0,)))
    base = none(clip())
    jitter = build_video_transform(32, MEAN, STD, train=True,
                                   aug=AugConfig(color_jitter_p=1.0, grayscale_p=0.0, flip=False, scales=(1.0,)))
    assert not torch.allclose(jitter(clip()), base)


def test_bad_inputs_are_explained():
    with pytest.raises(ValueError, match="valid"):
        build_video_transform(32, MEAN, STD, train=False, num_spatial_crops=5)
    with pytest.raises(ValueError, match="num_spatial_crops must be 1"):
        build_video_transform(32, MEAN, STD, train=True, num_spatial_crops=3)
    with pytest.raises(ValueError, match=r"\[T, H, W, 3\]"):
        build_video_transform(32, MEAN, STD, train=False)(np.zeros((4, 3, 32, 32), np.uint8))
