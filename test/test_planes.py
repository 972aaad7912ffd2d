"""Background planes by RANSAC, their labels (floor, support, wall), and gravity from the floor normal."""
import numpy as np
import pytest

from dpa_ros.geometry.planes import fit_background, fit_plane_lstsq, ransac_plane, robust_refit, supporting_pixels
from dpa_testing.synthetic import make_scene
from dpa_testing.synthetic_planes import StereoSensor, camera_pose, render_planes, room


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


# Floor, supports and walls from a pitched, rolled RGB-D camera under stereo depth noise
# (dpa_testing.synthetic_planes: 640 × 480, fx 380 px, 5 cm baseline, 0.08 px disparity noise,
# disparity and millimetre quantisation, 2 % outliers, flying pixels at depth edges, 2 % holes).

TABLE_HEIGHT, TABLE_W, TABLE_D = 0.75, 1.0, 0.7


def _table_room(pitch_deg, seed, roll_deg=None):
    """A floor, a table top (no instance) in view, a back wall and a side wall, seen from a camera
    1.2–1.6 m high pitched ``pitch_deg`` down and rolled up to ±15° (both drawn from ``seed``)."""
    rng = np.random.default_rng(1000 * seed + int(pitch_deg))
    height = rng.uniform(1.2, 1.6)
    roll = rng.uniform(-15, 15) if roll_deg is None else roll_deg
    forward = (height - TABLE_HEIGHT) / np.tan(np.radians(max(pitch_deg, 20.0) + 5.0))
    rects = room(table=(0.4, forward, TABLE_HEIGHT, TABLE_W, TABLE_D))
    return render_planes(rects, camera_pose(height, pitch_deg, roll), seed=seed)


def _plane_errors(plane, truth):
    """(angle between normals in degrees, offset error in metres) of a fitted plane against (n, d)."""
    n, d = truth
    return _angle_deg(plane.normal, n), plane.offset - d


def _visible(scene, name, share=0.05):
    k = next(i for i, r in enumerate(scene.rectangles) if r.name == name)
    return (scene.ids == k).mean() > share


def _distance_to_polygon(points, polygon):
    """Distance (metres) of 2D ``points`` to a convex 2D ``polygon`` (K, 2) in order; 0 inside."""
    a, b = polygon, np.roll(polygon, -1, axis=0)
    edge = b - a
    rel = points[:, None, :] - a[None]
    cross = edge[None, :, 0] * rel[..., 1] - edge[None, :, 1] * rel[..., 0]
    orientation = np.sign(np.sum(edge[:, 0] * np.roll(edge[:, 1], -1) - edge[:, 1] * np.roll(edge[:, 0], -1)))
    inside = np.all(cross * orientation >= 0, axis=1)
    t = np.clip((rel * edge[None]).sum(-1) / (edge ** 2).sum(-1)[None], 0, 1)
    dist = np.linalg.norm(rel - t[..., None] * edge[None], axis=-1).min(1)
    return np.where(inside, 0.0, dist)


def _table_frame(scene, optical_points):
    """Optical-frame points as world (x, y) on the table's plane."""
    T_wc = np.linalg.inv(scene.T_camera_world)
    return (optical_points @ T_wc[:3, :3].T + T_wc[:3, 3])[:, :2]


@pytest.mark.parametrize("pitch", [0, 20, 36, 50, 70, 75])
def test_floor_support_and_walls_without_hints(pitch):
    """For each pitch and three seeds: one floor, its normal within 1° and offset within 1 cm of the
    truth; gravity is minus its normal; the table top is the one support (same accuracy, 2 cm) and
    every wall in view is labelled a wall."""
    for seed in range(3):
        scene = _table_room(pitch, seed)
        bg = fit_background(scene.points(), seed=seed)
        labels = [p.label for p in bg.planes]
        assert labels.count("floor") == 1 and labels.count("support") == 1, (seed, labels)
        angle, offset = _plane_errors(bg.floor, scene.plane("floor"))
        assert angle < 1.0 and abs(offset) < 0.01, (seed, angle, offset)
        assert bg.gravity_source == "floor" and np.array_equal(bg.gravity, -bg.floor.normal)
        assert _angle_deg(bg.gravity, scene.gravity) < 1.0
        support = next(p for p in bg.planes if p.label == "support")
        angle, offset = _plane_errors(support, scene.plane("table"))
        assert angle < 1.0 and abs(offset) < 0.02, (seed, angle, offset)
        walls = [p for p in bg.planes if p.label == "wall"]
        for name in ("back_wall", "side_wall"):
            if _visible(scene, name):
                n, d = scene.plane(name)
                assert any(_angle_deg(w.normal, n) < 2.0 and abs(w.offset - d) < 0.05 for w in walls), (seed, name)


@pytest.mark.parametrize("pitch, roll", [(0, -20), (36, 20), (75, -20)])
def test_floor_under_a_rolled_camera(pitch, roll):
    for seed in range(2):
        scene = _table_room(pitch, seed, roll_deg=roll)
        bg = fit_background(scene.points(), seed=seed)
        angle, offset = _plane_errors(bg.floor, scene.plane("floor"))
        assert angle < 1.0 and abs(offset) < 0.01, (seed, angle, offset)
        assert [p.label for p in bg.planes].count("support") == 1


@pytest.mark.parametrize("pitch, uncovered", [(20, 0.08), (36, 0.04), (50, 0.04), (75, 0.04)])
def test_support_polygon_covers_the_visible_table_top(pitch, uncovered):
    """The support's polygon lies on its plane, within 3 cm of the true table rectangle, and every
    visible point of the table top (noise-free) lies within ``uncovered`` of it: 4 cm, or 8 cm for
    the table 2 m away at pitch 20, whose far corners are seen at a grazing 25° (the stray-point
    filter's 0.02 rad squares of view span about 9 cm of the table there)."""
    for seed in range(3):
        scene = _table_room(pitch, seed)
        bg = fit_background(scene.points(), seed=seed)
        support = next(p for p in bg.planes if p.label == "support")
        poly = support.polygon
        assert poly.ndim == 2 and poly.shape[1] == 3 and len(poly) >= 4
        assert np.abs(poly @ support.normal + support.offset).max() < 1e-9
        table = next(r for r in scene.rectangles if r.name == "table")
        rect = table.corners()[:, :2]
        poly_xy = _table_frame(scene, poly)
        assert _distance_to_polygon(poly_xy, rect).max() < 0.03, f"seed {seed}: polygon overreaches the table"
        k = scene.rectangles.index(table)
        seen = scene.camera.backproject(scene.true_depth, scene.ids == k)
        assert _distance_to_polygon(_table_frame(scene, seen), poly_xy).max() < uncovered, f"seed {seed}: not covered"
        floor = bg.floor
        assert floor.polygon is not None and np.abs(floor.polygon @ floor.normal + floor.offset).max() < 1e-9


def test_a_floor_seen_only_around_4_m_is_within_1_cm():
    """Only the floor between 3.5 and 4.5 m depth is visible (the near floor hidden) beside a wall 6 m
    away: its offset is still within 1 cm under the range-growing noise (σ_z ≈ 6.7 cm at 4 m)."""
    for seed in range(5):
        scene = render_planes(room(table=None, back_wall_y=6.0, side_wall_x=None), camera_pose(1.5, 10, 5), seed=seed)
        near = (scene.ids == 0) & ((scene.true_depth < 3.5) | (scene.true_depth > 4.5))
        bg = fit_background(scene.camera.backproject(scene.depth, ~near), seed=seed)
        angle, offset = _plane_errors(bg.floor, scene.plane("floor"))
        assert angle < 1.0 and abs(offset) < 0.01, (seed, angle, offset)


def test_the_inverse_depth_refit_does_not_tilt_a_far_floor():
    """Range noise runs along the rays, which meet a far floor at a grazing angle: a perpendicular
    least-squares fit of the floor seen between 3.5 and 4.5 m tilts it (errors in variables), the
    inverse-depth refit does not. Gaussian disparity noise only, so the difference is the model's."""
    sensor = StereoSensor(outlier_fraction=0.0, flying_fraction=0.0, hole_fraction=0.0)
    for seed in range(3):
        scene = render_planes(room(table=None, back_wall_y=None, side_wall_x=None), camera_pose(1.5, 10, 5),
                              sensor=sensor, seed=seed)
        band = (scene.true_depth > 3.5) & (scene.true_depth < 4.5)
        pts = scene.camera.backproject(scene.depth, band)
        n, d = fit_plane_lstsq(pts)
        truth = scene.plane("floor")
        assert abs(d - truth[1]) > 0.03                                  # the perpendicular fit is off
        n, d, w = robust_refit(pts, n, d, threshold=0.02, depth_noise=scene.depth_noise)
        assert _angle_deg(n, truth[0]) < 0.1 and abs(d - truth[1]) < 0.005, seed
        assert (w > 0).mean() > 0.99


@pytest.mark.parametrize("pitch", [0, 45, 75])
def test_given_gravity_is_returned_and_horizontal_planes_are_snapped_to_it(pitch):
    """A given gravity comes back verbatim with source "given", and the floor and the table top
    take minus it as their normal. With the true gravity their offsets are within 1 cm (2 cm for the
    table); with one 0.3° off (as an IMU may be) they still pass within 1 cm, on average, of the
    floor and table the camera sees (a tilted normal moves d, the offset at the camera, further)."""
    for seed in range(2):
        scene = _table_room(pitch, seed)
        bg = fit_background(scene.points(), gravity=scene.gravity, seed=seed)
        assert bg.gravity_source == "given" and np.array_equal(bg.gravity, scene.gravity)
        assert abs(bg.floor.offset - scene.plane("floor")[1]) < 0.01
        support = next(p for p in bg.planes if p.label == "support")
        assert abs(support.offset - scene.plane("table")[1]) < 0.02
        assert ("wall" in [p.label for p in bg.planes]) == _visible(scene, "back_wall")

        axis = np.cross(scene.gravity, [1.0, 0.0, 0.0])
        tilt = np.radians(0.3)
        g = scene.gravity * np.cos(tilt) + axis / np.linalg.norm(axis) * np.sin(tilt)
        bg = fit_background(scene.points(), gravity=g, seed=seed)
        assert bg.gravity_source == "given" and np.array_equal(bg.gravity, g)
        support = next(p for p in bg.planes if p.label == "support")
        assert np.array_equal(bg.floor.normal, -g) and np.array_equal(support.normal, -g)
        for plane, k in ((bg.floor, 0), (support, 1)):
            seen = scene.camera.backproject(scene.true_depth, scene.ids == k)
            assert np.abs(seen @ plane.normal + plane.offset).mean() < 0.01, (seed, plane.label)


def test_given_gravity_without_a_horizontal_plane_gives_no_floor():
    rng = np.random.default_rng(0)
    wall = np.stack([rng.uniform(-2, 2, 3000), rng.uniform(-1, 1, 3000), np.full(3000, 3.0)], 1)
    g = np.array([0.0, 1.0, 0.0])
    bg = fit_background(wall, gravity=g)
    assert bg.floor is None and bg.gravity_source == "given" and np.array_equal(bg.gravity, g)
    assert [p.label for p in bg.planes] == ["wall"]
    with pytest.raises(ValueError, match="non-finite"):
        fit_background(wall, gravity=[0.0, np.nan, 1.0])


def test_a_table_top_filling_the_view_is_the_floor():
    """The documented rule: with one horizontal plane in view it is the floor (there is nothing
    lower for it to stand on)."""
    scene = render_planes(room(table=(0.0, 0.4, TABLE_HEIGHT, 3.0, 3.0), back_wall_y=None, side_wall_x=None),
                          camera_pose(1.4, 70, 0), seed=0)
    table = scene.camera.backproject(scene.depth, scene.ids == 1)
    bg = fit_background(table)
    assert [p.label for p in bg.planes] == ["floor"]
    assert abs(bg.floor.offset - (1.4 - TABLE_HEIGHT)) < 0.01


def test_ransac_on_degenerate_points_finds_no_plane():
    """Fewer than 3 points, identical points, collinear points and points on a plane through the
    camera centre (which the camera sees edge-on) hold no plane: ransac_plane says None and
    fit_background returns no planes and no gravity."""
    rng = np.random.default_rng(0)
    line = np.outer(np.linspace(0.5, 3.0, 500), [0.2, 0.1, 1.0])
    edge_on = np.stack([rng.uniform(-2, 2, 3000), np.zeros(3000), rng.uniform(1, 4, 3000)], 1)
    cases = {"none": np.zeros((0, 3)), "two": np.array([[0, 0, 1.0], [1, 0, 1.0]]),
             "identical": np.tile([0.3, -0.2, 2.0], (500, 1)), "collinear": line, "edge-on": edge_on}
    for name, pts in cases.items():
        assert ransac_plane(pts, 0.02, 100, rng) is None, name
        bg = fit_background(pts)
        assert bg.planes == [] and bg.gravity is None and bg.gravity_source == "none", name
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        fit_background(np.zeros((10, 2)))


def test_supporting_pixels_leave_out_the_table_top():
    """A table top hides what is under it: by default its pixels are not supporting, the floor's are."""
    scene = _table_room(50, 0)
    bg = fit_background(scene.points())
    support = supporting_pixels(scene.depth, scene.camera, bg.planes, np.ones(scene.depth.shape, bool))
    measured = np.abs(scene.depth - scene.true_depth) < 0.02          # not an outlier or a flying pixel
    assert not support[(scene.ids == 1) & measured].any()
    assert support[(scene.ids == 0) & measured].mean() > 0.97
    with_tables = supporting_pixels(scene.depth, scene.camera, bg.planes, np.ones(scene.depth.shape, bool),
                                    labels=("floor", "wall", "support"))
    assert with_tables[(scene.ids == 1) & measured].mean() > 0.97


@pytest.mark.parametrize("points", [
    np.zeros((0, 3)),                                              # no point
    np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 1.0]]),                  # two
    np.tile([[0.3, -0.2, 2.0]], (50, 1)),                          # one point, 50 times
    np.linspace([0.0, 0.0, 1.0], [1.0, 0.5, 3.0], 40),             # collinear
], ids=["empty", "two", "identical", "collinear"])
def test_ransac_plane_on_points_without_a_plane_is_none(points):
    assert ransac_plane(points, 0.01, 200, np.random.default_rng(0)) is None


def test_ransac_plane_finds_the_plane_of_a_noisy_floor_with_outliers():
    rng = np.random.default_rng(3)
    floor = np.column_stack([rng.uniform(-1, 1, 400), np.full(400, 1.2), rng.uniform(1, 4, 400)])
    floor[:, 1] += rng.normal(0, 0.002, 400)
    outliers = rng.uniform([-1, -1, 1], [1, 1, 4], (100, 3))
    normal, d, inliers = ransac_plane(np.vstack([floor, outliers]), 0.01, 200, rng)
    sign = np.sign(normal[1])
    np.testing.assert_allclose(sign * normal, [0, 1, 0], atol=0.01)
    assert abs(sign * d + 1.2) < 0.005 and inliers[:400].mean() > 0.95 and inliers[400:].mean() < 0.2
