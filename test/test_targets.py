"""Fitting targets from depth: the noise estimate and the in-mask depth smoothing, on rendered scenes."""
import numpy as np

from dpa_ros.geometry.targets import depth_noise, smooth_depth_in_masks
from dpa_testing import synthetic


def _ranged(scene, std_per_m: float, seed: int = 0) -> np.ndarray:
    """The scene's depth with range noise of std ``std_per_m`` × depth (a time-of-flight-like sensor)."""
    rng = np.random.default_rng(seed)
    return scene.depth * (1.0 + std_per_m * rng.normal(size=scene.depth.shape))


def test_depth_noise_recovers_the_noise_and_is_blind_to_planes_creases_and_millimetre_steps():
    scene = synthetic.make_scene(width=320, height=240)
    clean = np.round(scene.depth * 1000) / 1000                  # a 16-bit millimetre depth image
    for mask in scene.masks:
        assert depth_noise(clean, mask) < 0.001
        noisy = _ranged(scene, 0.005)
        expected = 0.005 * float(np.median(scene.depth[mask]))
        assert abs(depth_noise(noisy, mask) / expected - 1) < 0.2, (depth_noise(noisy, mask), expected)
    assert depth_noise(clean, np.zeros_like(scene.masks[0])) == 0.0


def test_smoothing_divides_the_noise_inside_masks_keeps_depth_edges_and_leaves_clean_depth_alone():
    scene = synthetic.make_scene(width=320, height=240)
    noisy = _ranged(scene, 0.005)
    out = smooth_depth_in_masks(noisy, scene.masks, size=5, jump=0.1)
    union = np.logical_or.reduce(scene.masks)
    np.testing.assert_array_equal(out[~union], noisy[~union])     # background as measured
    moved = union & (out != noisy)
    assert moved.sum() > 0.6 * union.sum()                        # all but depth edges and steep slopes
    before, after = np.abs(noisy - scene.depth)[moved], np.abs(out - scene.depth)[moved]
    assert np.median(after) < np.median(before) / 3, (np.median(before), np.median(after))
    assert after.mean() < before.mean() / 2, (before.mean(), after.mean())    # creases keep a little bias
    # Clean depth stays as it is (a mean would round the boxes' edges).
    clean = np.round(scene.depth * 1000) / 1000
    np.testing.assert_array_equal(smooth_depth_in_masks(clean, scene.masks, 5, 0.1), clean)
    # A depth step inside one mask (a seat in front of a leg): pixels whose window spans it keep their depth.
    depth = np.full((40, 40), 2.0)
    depth[:, 20:] = 2.5
    depth = depth + np.random.default_rng(1).normal(0, 0.01, depth.shape)
    out = smooth_depth_in_masks(depth, [np.ones((40, 40), bool)], size=5, jump=0.1)
    np.testing.assert_array_equal(out[:, 18:22], depth[:, 18:22])
    assert np.abs(out[:, 5:15] - 2.0).mean() < np.abs(depth[:, 5:15] - 2.0).mean() / 3
    np.testing.assert_array_equal(smooth_depth_in_masks(depth, [np.ones((40, 40), bool)], 1, 0.1), depth)
