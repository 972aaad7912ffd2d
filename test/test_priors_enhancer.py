"""Stable Diffusion img2img adapter (stage 2) and the white-canvas crop, with the smoke profile."""

import numpy as np
import pytest

from dpa_ros.priors.crops import mask_bbox, white_canvas_crop
from dpa_ros.priors.enhancer import StableDiffusionEnhancer
from dpa_ros.priors.profiles import load_profile


@pytest.fixture(scope="module")
def enhancer():
    enh = StableDiffusionEnhancer(load_profile("smoke").enhancer, profile="smoke", device="cpu")
    enh.load()
    return enh


def test_white_canvas_crop(image):
    mask = np.zeros(image.shape[:2], bool)
    mask[40:100, 50:170] = True  # 60 rows × 120 cols
    mask[40, 50] = False
    canvas = white_canvas_crop(image, mask, size=100, fill=0.6)
    assert canvas.shape == (100, 100, 3) and canvas.dtype == np.uint8
    content = np.any(canvas != 255, axis=2)
    r0, r1, c0, c1 = mask_bbox(content)
    assert c1 - c0 == 60 and abs((r1 - r0) - 30) <= 1  # longer side 0.6·size, aspect kept
    assert abs((c0 + c1) / 2 - 50) <= 1 and abs((r0 + r1) / 2 - 50) <= 1  # centred
    assert np.all(canvas[:10] == 255) and np.all(canvas[:, :10] == 255)


def test_one_pixel_mask_crop(image):
    mask = np.zeros(image.shape[:2], bool)
    mask[7, 9] = True
    canvas = white_canvas_crop(image, mask, size=50, fill=0.6)
    block = canvas[10:40, 10:40]
    assert np.all(block == image[7, 9])
    assert np.all(canvas[:10] == 255) and np.all(canvas[40:] == 255)


def test_crop_rejects_bad_masks(image):
    with pytest.raises(ValueError, match="empty mask"):
        white_canvas_crop(image, np.zeros(image.shape[:2], bool))
    with pytest.raises(ValueError, match="does not match"):
        white_canvas_crop(image, np.ones((5, 5), bool))


def _canvases(image, size):
    m1 = np.zeros(image.shape[:2], bool)
    m1[30:150, 60:220] = True
    m2 = np.zeros(image.shape[:2], bool)
    m2[3, 4] = True  # a one-pixel instance
    return [white_canvas_crop(image, m1, size), white_canvas_crop(image, m2, size),
            np.full((size, size, 3), 128, np.uint8)]  # a grey canvas


def test_candidates_shape_dtype_range(enhancer, image):
    s, m = enhancer.canvas_size, enhancer.cfg.candidates
    canv = _canvases(image, s)
    out = enhancer.enhance(canv, ["cup", "spoon", "plate"], seed=3)
    assert out.shape == (3, m, s, s, 3) and out.dtype == np.uint8
    assert out.std() > 0  # images, not a constant fill
    assert not np.array_equal(out[0, 0], out[0, 1])  # candidates differ


def test_deterministic_under_seed(enhancer, image):
    canv = _canvases(image, enhancer.canvas_size)[:1]
    a = enhancer.enhance(canv, ["cup"], seed=11)
    b = enhancer.enhance(canv, ["cup"], seed=11)
    c = enhancer.enhance(canv, ["cup"], seed=12)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_no_instances_or_no_candidates(enhancer):
    s = enhancer.canvas_size
    assert enhancer.enhance([], [], seed=0).shape == (0, enhancer.cfg.candidates, s, s, 3)
    view = StableDiffusionEnhancer(enhancer.cfg.replace(candidates=0), profile="smoke", device="cpu")
    out = view.enhance([np.full((s, s, 3), 255, np.uint8)], ["cup"], seed=0)
    assert out.shape == (1, 0, s, s, 3) and not view.loaded  # nothing to do, nothing loaded


@pytest.mark.real_weights
def test_real_weights_fast_profile(image, require_weights):
    cfg = load_profile("fast").enhancer
    require_weights(cfg, "enhancer", "fast")
    enh = StableDiffusionEnhancer(cfg, profile="fast")
    out = enh.enhance(_canvases(image, 512)[:1], ["cup"], seed=0)
    assert out.shape == (1, cfg.candidates, 512, 512, 3) and out.std() > 10
