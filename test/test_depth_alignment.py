"""Depth alignment: robust closed-form scale/shift against sensor depth or a floor at known height."""
import numpy as np
import pytest

from dpa_ros.geometry.depth_alignment import DepthAlignmentError, align_depth, align_depth_to_floor, floor_depth
from dpa_testing.synthetic import make_scene


@pytest.fixture(scope="module")
def scene():
    return make_scene()


def test_exact_affine_is_recovered(scene):
    relative = (scene.depth - 0.3) / 2.5
    fit = align_depth(relative, scene.depth)
    assert fit.scale == pytest.approx(2.5, rel=1e-9)
    assert fit.shift == pytest.approx(0.3, abs=1e-9)
    assert fit.residual < 1e-9 and fit.inlier_fraction == 1.0
    np.testing.assert_allclose(fit.apply(relative), scene.depth, atol=1e-9)


def test_outliers_and_invalid_pixels_are_rejected(scene):
    rng = np.random.default_rng(1)
    relative = (scene.depth - 0.3) / 2.5 + rng.normal(0, 0.002, scene.depth.shape)
    reference = scene.depth.copy()
    bad = rng.random(reference.shape) < 0.25             # a quarter of the sensor pixels are wrong
    reference[bad] = rng.uniform(0.2, 8.0, bad.sum())
    reference[:10] = np.nan                                # holes, zeros and infs in the sensor depth
    reference[10:15] = 0.0
    reference[15:18] = np.inf
    relative[-3:] = np.nan
    fit = align_depth(relative, reference)
    assert fit.scale == pytest.approx(2.5, rel=0.01)
    assert fit.shift == pytest.approx(0.3, abs=0.02)
    assert fit.residual < 0.02
    assert 0.6 < fit.inlier_fraction < 0.85
    plain = np.polyfit(relative[np.isfinite(reference) & (reference > 0) & np.isfinite(relative)],
                       reference[np.isfinite(reference) & (reference > 0) & np.isfinite(relative)], 1)
    assert abs(plain[0] - 2.5) > 5 * abs(fit.scale - 2.5)   # plain least squares is far worse


def test_floor_at_known_height(scene):
    """Objects on the floor are outliers of the floor reference; the floor pins scale and shift."""
    relative = (scene.depth - 0.2) / 3.0
    up = -scene.gravity
    expected = floor_depth(scene.camera, scene.camera_height, up)
    floor_px = ~np.logical_or.reduce(scene.masks) & np.isfinite(expected)
    np.testing.assert_allclose(scene.depth[floor_px & (scene.depth < 4.0)],
                               expected[floor_px & (scene.depth < 4.0)], rtol=1e-6)
    fit = align_depth_to_floor(relative, scene.camera, scene.camera_height, up=up)
    assert fit.scale == pytest.approx(3.0, rel=0.02)
    assert fit.shift == pytest.approx(0.2, abs=0.03)


def test_too_few_valid_pixels_is_a_clear_error(scene):
    with pytest.raises(DepthAlignmentError, match="only 0 pixels"):
        align_depth(scene.depth, np.full_like(scene.depth, np.nan))
    with pytest.raises(DepthAlignmentError, match="differ in shape"):
        align_depth(scene.depth, scene.depth[:10])
    with pytest.raises(DepthAlignmentError, match="constant"):
        align_depth(np.ones_like(scene.depth), scene.depth)
    with pytest.raises(DepthAlignmentError, match="positive"):
        align_depth_to_floor(scene.depth, scene.camera, 0.0)
