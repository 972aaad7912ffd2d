"""Fitting targets from depth: the noise estimate and the in-mask depth smoothing, on rendered scenes."""
import numpy as np

from dpa_ros.assemble import Instance, layout_problems
from dpa_ros.geometry.layout import LayoutConfig
from dpa_ros.geometry.planes import fit_background
from dpa_ros.geometry.targets import TargetConfig, depth_noise, smooth_depth_in_masks
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


def test_the_assembler_fits_the_depth_its_target_config_smooths():
    """``targets.depth_smoothing`` is read where the targets are built: the depth the layout fits is
    the measured one with smoothing 0 and the one smoothed over that window otherwise."""
    scene = synthetic.make_scene(width=320, height=240)
    noisy = _ranged(scene, 0.005)
    union = np.logical_or.reduce(scene.masks)
    background = fit_background(scene.camera.backproject(noisy, ~union), seed=0)
    instances = [Instance(label, 1.0, mask, [mesh]) for label, mask, mesh in zip(scene.labels, scene.masks,
                                                                                 scene.meshes)]
    cfg = LayoutConfig(points=200)
    fitted = {size: layout_problems(noisy, scene.camera, instances, scene.masks, background, cfg,
                                    TargetConfig(depth_smoothing=size))[1] for size in (0, 3, 5)}
    np.testing.assert_array_equal(fitted[0], noisy)
    for size in (3, 5):
        np.testing.assert_array_equal(fitted[size], smooth_depth_in_masks(noisy, scene.masks, size,
                                                                          2 * cfg.occlusion_margin))
    assert not np.array_equal(fitted[3], fitted[5])
    default = layout_problems(noisy, scene.camera, instances, scene.masks, background, cfg)[1]
    np.testing.assert_array_equal(default, fitted[5])             # TargetConfig() smooths over 5 px
