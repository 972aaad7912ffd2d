"""Background planes by RANSAC and gravity from the floor normal."""
import numpy as np

from dpa_ros.geometry.planes import fit_background, supporting_pixels
from dpa_ros.geometry.synthetic import make_scene


def _angle_deg(a, b):
    return np.degrees(np.arccos(np.clip(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b), -1, 1)))


def test_floor_wall_and_gravity_from_a_tilted_camera():
    scene = make_scene(pitch_deg=25.0, noise_std=0.005)
    pts = scene.camera.backproject(scene.depth, ~np.logical_or.reduce(scene.masks))
    bg = fit_background(pts)
    labels = [p.label for p in bg.planes]
    assert labels.count("floor") == 1 and "wall" in labels
    assert _angle_deg(bg.gravity, scene.gravity) < 2.0
    floor = bg.floor
    assert floor.offset == np.float64(floor.offset) and abs(floor.offset - scene.camera_height) < 0.03
    assert np.dot(floor.normal, -scene.gravity) > 0       # normal points up, at the camera


def test_no_floor_means_unknown_gravity():
    rng = np.random.default_rng(0)
    wall = np.stack([rng.uniform(-2, 2, 3000), rng.uniform(-1, 1, 3000), np.full(3000, 3.0)], 1)
    bg = fit_background(wall)
    assert bg.gravity is None and [p.label for p in bg.planes] == ["wall"]
    assert abs(abs(bg.planes[0].normal[2]) - 1) < 1e-6 and abs(bg.planes[0].offset - 3.0) < 1e-6


def test_supporting_pixels_are_the_floor_and_wall_outside_every_mask():
    """The rendered floor and wall (ids n, n + 1) outside the object masks are supporting pixels, the
    objects are not, and a plane labelled "plane" (neither floor nor wall) supports nothing."""
    scene = make_scene(pitch_deg=25.0, noise_std=0.005)
    objects = np.logical_or.reduce(scene.masks)
    bg = fit_background(scene.camera.backproject(scene.depth, ~objects))
    support = supporting_pixels(scene.depth, scene.camera, bg.planes, ~objects)
    ids, n = scene.extra["ids"], len(scene.masks)
    background = (ids == n) | (ids == n + 1)
    assert not (support & objects).any()
    assert support[background].mean() > 0.97
    assert not support[~background].any()
    relabelled = [type(p)(label="plane", normal=p.normal, offset=p.offset) for p in bg.planes]
    assert not supporting_pixels(scene.depth, scene.camera, relabelled, ~objects).any()


def test_a_plane_an_object_stands_behind_does_not_support_it():
    """Planes count for an object only when its points lie in front of them: points behind the
    fitted wall (an object a cabinet front, fitted as a wall, hides) keep the floor but not the wall."""
    scene = make_scene(pitch_deg=25.0)
    objects = np.logical_or.reduce(scene.masks)
    bg = fit_background(scene.camera.backproject(scene.depth, ~objects))
    wall = next(p for p in bg.planes if p.label == "wall")
    floor_only = supporting_pixels(scene.depth, scene.camera, [bg.floor], ~objects)
    in_front = scene.camera.backproject(scene.depth, scene.masks[0])
    behind = in_front - (in_front @ wall.normal + wall.offset + 0.5)[:, None] * wall.normal   # 0.5 m behind it
    assert np.array_equal(supporting_pixels(scene.depth, scene.camera, bg.planes, ~objects, points=behind), floor_only)
    both = supporting_pixels(scene.depth, scene.camera, bg.planes, ~objects, points=in_front)
    assert both.sum() > floor_only.sum() and np.array_equal(both, supporting_pixels(scene.depth, scene.camera,
                                                                                     bg.planes, ~objects))
