"""The physical-consistency stage on real meshes: resting on the floor, support planes and other objects,
pushing overlapping bodies apart, pitched cameras, no gravity, bad settings."""
import numpy as np
import pytest
import trimesh

from dpa_ros.core.camera import CameraModel
from dpa_ros.core.scene import Background, Plane, Scene, SceneObject, read_scene, write_scene
from dpa_ros.geometry.physics import PhysicsConfig, PhysicsConfigError, apply_results, object_surfaces, settle_objects
from dpa_testing import synthetic as syn

GAP = PhysicsConfig().contact_gap_m


class Room:
    """A camera ``height`` m above a z-up world floor, pitched down by ``pitch`` degrees."""

    def __init__(self, pitch=25.0, height=1.3):
        self.T_cw = syn.look_at_level(height, pitch)
        self.R_cw = self.T_cw[:3, :3]
        self.gravity = self.R_cw @ np.array([0.0, 0.0, -1.0])
        self.height = height
        self.floor = Plane("floor", -self.gravity, height)

    def obj(self, i, mesh, scale, x, y, z=0.0, yaw=0.0):
        """An object whose lowest point is ``z`` m above the floor at world (x, y)."""
        T = syn.object_pose(self.T_cw, mesh, scale, x, y, yaw)
        T[:3, 3] += self.R_cw @ np.array([0.0, 0.0, z])
        return SceneObject(id=i, label="o", score=1.0, mesh=mesh, T_camera_object=T, scale=scale)

    def support(self, z, corners_xy):
        """A horizontal support plane z m above the floor bounded by ``corners_xy`` (world)."""
        corners = np.column_stack([corners_xy, np.full(len(corners_xy), z)])
        polygon = (corners @ self.R_cw.T) + self.T_cw[:3, 3]
        return Plane("support", -self.gravity, self.height - z, polygon=polygon)

    def background(self, *planes):
        return Background(planes=[self.floor, *planes], gravity=self.gravity)

    def world(self, T_camera_object, mesh):
        """Placed vertices in the world frame."""
        v = trimesh.transform_points(mesh.vertices, T_camera_object)
        return trimesh.transform_points(v, np.linalg.inv(self.T_cw))


def _make_table():
    parts = [trimesh.creation.box([1.2, 0.04, 0.8], trimesh.transformations.translation_matrix([0, 0.73, 0]))]
    for x in (-0.55, 0.55):
        for z in (-0.35, 0.35):
            parts.append(trimesh.creation.box([0.05, 0.71, 0.05],
                                              trimesh.transformations.translation_matrix([x, 0.355, z])))
    return trimesh.util.concatenate(parts)


def _assert_pose_kept_rotation(before: SceneObject, after: np.ndarray):
    assert np.allclose(np.asarray(before.T_camera_object)[:3, :3], after[:3, :3])
    assert np.allclose(after[3], [0, 0, 0, 1])


@pytest.mark.parametrize("builder,scale,x,y,yaw,pitch", [
    (syn.make_box, 0.5, 0.0, 2.0, 10.0, 25.0),
    (syn.make_cylinder, 0.3, -0.4, 2.5, 0.0, 0.0),
    (syn.make_chair, 0.8, 0.3, 3.0, 40.0, 36.0),
    (syn.make_l_shape, 0.9, -0.2, 2.2, -30.0, 60.0),
])
def test_a_mesh_sunk_5cm_into_the_floor_comes_out_resting_on_it(builder, scale, x, y, yaw, pitch):
    room = Room(pitch=pitch)
    mesh = builder()
    obj = room.obj(0, mesh, scale, x, y, z=-0.05, yaw=yaw)
    (result,) = settle_objects([obj], room.background(), PhysicsConfig())
    lowest = room.world(result.T_camera_object, mesh)[:, 2].min()
    assert abs(lowest - GAP) < 0.0005
    assert result.support == "floor"
    assert result.penetration_before_m == pytest.approx(0.05, abs=0.001)
    assert result.penetration_after_m <= 0.005
    assert result.shift_m == pytest.approx(0.05 + GAP, abs=0.001)
    _assert_pose_kept_rotation(obj, result.T_camera_object)
    start_xy = room.world(obj.T_camera_object, mesh)[:, :2]
    assert np.allclose(room.world(result.T_camera_object, mesh)[:, :2], start_xy, atol=1e-6)  # straight up


@pytest.mark.parametrize("height_above,pitch", [(0.03, 20.0), (0.08, 45.0), (0.01, 70.0)])
def test_a_floating_box_comes_down_onto_the_floor(height_above, pitch):
    room = Room(pitch=pitch)
    mesh = syn.make_box()
    obj = room.obj(0, mesh, 0.4, 0.2, 2.0, z=height_above, yaw=20.0)
    (result,) = settle_objects([obj], room.background(), PhysicsConfig())
    assert result.support == "floor"
    assert abs(room.world(result.T_camera_object, mesh)[:, 2].min() - GAP) < 0.0005
    assert result.shift_m == pytest.approx(height_above - GAP, abs=0.001)
    assert result.penetration_before_m == 0.0 and result.penetration_after_m == 0.0


@pytest.mark.parametrize("overlap,yaw_a,yaw_b,scale_b,pitch", [
    (0.06, 0.0, 0.0, 0.4, 25.0),
    (0.04, 15.0, -10.0, 0.5, 40.0),
    (0.09, 30.0, 5.0, 0.35, 0.0),
])
def test_two_overlapping_boxes_on_the_floor_come_out_apart_each_moved_about_half(overlap, yaw_a, yaw_b,
                                                                                 scale_b, pitch):
    room = Room(pitch=pitch)
    mesh = syn.make_box()
    a = room.obj(0, mesh, 0.5, 0.0, 2.0, yaw=yaw_a)
    # put b's left side `overlap` into a's right side along world x (extents from the placed vertices)
    a_right = room.world(a.T_camera_object, mesh)[:, 0].max()
    b = room.obj(1, mesh, scale_b, 0.0, 2.0, yaw=yaw_b)
    b_left = room.world(b.T_camera_object, mesh)[:, 0].min()
    b = room.obj(1, mesh, scale_b, a_right - overlap - b_left, 2.0, yaw=yaw_b)
    results = settle_objects([a, b], room.background(), PhysicsConfig())
    assert min(r.penetration_before_m for r in results) > overlap / 4   # they did overlap
    for obj, r in zip((a, b), results):
        assert r.penetration_after_m <= 0.005
        assert r.support == "floor"
        assert abs(room.world(r.T_camera_object, mesh)[:, 2].min() - GAP) < 0.0005
        _assert_pose_kept_rotation(obj, r.T_camera_object)
    shifts = [r.shift_m for r in results]
    assert 0.3 * overlap < min(shifts) and max(shifts) < 1.5 * overlap
    assert abs(shifts[0] - shifts[1]) < 0.35 * max(shifts)
    # pushed apart sideways: a went towards -x, b towards +x (world)
    moved = [room.world(r.T_camera_object, mesh).mean(0) - room.world(o.T_camera_object, mesh).mean(0)
             for o, r in zip((a, b), results)]
    assert moved[0][0] < 0 < moved[1][0] and abs(moved[0][2] - GAP) < 1e-6 and abs(moved[1][2] - GAP) < 1e-6


def test_the_better_observed_of_two_overlapping_boxes_moves_less():
    room = Room(pitch=30.0)
    mesh = syn.make_box()
    a = room.obj(0, mesh, 0.4, 0.0, 2.0)
    b = room.obj(1, mesh, 0.4, 0.34, 2.0)        # 6 cm into a
    observed = [np.zeros((3000, 3)), np.zeros((1000, 3))]
    ra, rb = settle_objects([a, b], room.background(), PhysicsConfig(), observed=observed)
    assert ra.penetration_after_m <= 0.005 and rb.penetration_after_m <= 0.005
    assert rb.shift_m > 2 * ra.shift_m


@pytest.mark.parametrize("table_z,sink,pitch", [(0.72, 0.02, 36.0), (0.45, 0.04, 55.0), (0.9, -0.03, 10.0)])
def test_a_box_on_a_support_plane_rests_on_it_and_one_beside_its_polygon_falls_to_the_floor(table_z, sink, pitch):
    room = Room(pitch=pitch)
    table = room.support(table_z, np.array([[-0.6, 1.8], [0.6, 1.8], [0.6, 2.6], [-0.6, 2.6]]))
    box = syn.make_box()
    on = room.obj(0, box, 0.25, 0.1, 2.2, z=table_z - sink, yaw=25.0)
    # beside the table's polygon, 5 cm above floor level (within reach of the floor)
    beside = room.obj(1, box, 0.25, 1.0, 2.2, z=0.05)
    r_on, r_beside = settle_objects([on, beside], room.background(table), PhysicsConfig())
    assert r_on.support == "plane_1"
    assert abs(room.world(r_on.T_camera_object, box)[:, 2].min() - (table_z + GAP)) < 0.0005
    assert r_on.penetration_before_m == pytest.approx(max(sink, 0.0), abs=0.001)
    assert r_on.penetration_after_m <= 0.005
    assert r_beside.support == "floor"
    assert abs(room.world(r_beside.T_camera_object, box)[:, 2].min() - GAP) < 0.0005


def test_a_box_standing_on_the_floor_under_a_support_plane_stays_on_the_floor():
    """A support plane far above the object's underside is something it stands under, not on."""
    room = Room(pitch=30.0)
    table = room.support(0.72, np.array([[-0.6, 1.8], [0.6, 1.8], [0.6, 2.6], [-0.6, 2.6]]))
    box = syn.make_box()
    under = room.obj(0, box, 0.3, 0.0, 2.2, z=-0.02)
    (r,) = settle_objects([under], room.background(table), PhysicsConfig())
    assert r.support == "floor" and r.penetration_after_m <= 0.005


def test_an_object_far_above_every_support_is_left_where_it_is():
    room = Room(pitch=30.0)
    box = syn.make_box()
    obj = room.obj(0, box, 0.3, 0.0, 2.2, z=0.5)
    (r,) = settle_objects([obj], room.background(), PhysicsConfig(max_shift_m=0.15))
    assert r.support == "none" and r.shift_m == 0.0
    assert np.allclose(r.T_camera_object, obj.T_camera_object)


@pytest.mark.parametrize("top_builder,top_scale,dx,sink,pitch", [
    (syn.make_cylinder, 0.12, 0.05, 0.02, 36.0),     # a mug sunk 2 cm into the box
    (syn.make_box, 0.3, -0.08, 0.0, 60.0),           # a box resting on it already
    (syn.make_box, 0.2, 0.1, -0.04, 20.0),           # a box floating 4 cm above it
])
def test_an_object_stacked_on_a_box_rests_on_the_box(top_builder, top_scale, dx, sink, pitch):
    room = Room(pitch=pitch)
    box = syn.make_box()
    bottom = room.obj(3, box, 0.5, 0.0, 2.0, z=-0.03, yaw=10.0)            # itself sunk 3 cm
    box_top = room.world(bottom.T_camera_object, box)[:, 2].max()
    top_mesh = top_builder()
    top = room.obj(7, top_mesh, top_scale, dx, 2.0, z=box_top - sink, yaw=-20.0)
    r_top, r_bottom = settle_objects([top, bottom], room.background(), PhysicsConfig())
    assert r_bottom.support == "floor"
    assert r_top.support == "object_3"
    # the box carries the other: its top is held and it is compressed onto the floor
    placed_box = room.world(r_bottom.T_camera_object, trimesh.Trimesh(r_bottom.vertices, box.faces))
    new_box_top = placed_box[:, 2].max()
    assert abs(new_box_top - box_top) < 0.0005 and abs(placed_box[:, 2].min() - GAP) < 0.0005
    assert r_bottom.stretch == pytest.approx(1 - (0.03 + GAP) / (box_top + 0.03), abs=1e-3)
    assert abs(room.world(r_top.T_camera_object, top_mesh)[:, 2].min() - (new_box_top + GAP)) < 0.001
    assert r_top.penetration_after_m <= 0.005 and r_bottom.penetration_after_m <= 0.005
    if sink > 0:
        assert r_top.penetration_before_m == pytest.approx(sink, abs=0.005)


def test_objects_on_a_table_instance_rest_on_its_top_and_the_table_on_the_floor():
    room = Room(pitch=40.0)
    table_mesh = _make_table()
    table = room.obj(0, table_mesh, 1.0, 0.0, 2.4, z=-0.04, yaw=5.0)
    top_z = room.world(table.T_camera_object, table_mesh)[:, 2].max()
    mug, box = syn.make_cylinder(), syn.make_box()
    objs = [table, room.obj(1, mug, 0.1, 0.2, 2.3, z=top_z - 0.01), room.obj(2, box, 0.2, -0.3, 2.5, z=top_z + 0.02)]
    results = settle_objects(objs, room.background(), PhysicsConfig())
    assert [r.support for r in results] == ["floor", "object_0", "object_0"]
    placed_table = room.world(results[0].T_camera_object, trimesh.Trimesh(results[0].vertices, table_mesh.faces))
    new_top = placed_table[:, 2].max()
    assert abs(new_top - top_z) < 0.0005 and abs(placed_table[:, 2].min() - GAP) < 0.0005  # top held, legs shortened
    for r, mesh in zip(results[1:], (mug, box)):
        assert abs(room.world(r.T_camera_object, mesh)[:, 2].min() - (new_top + GAP)) < 0.001
    assert max(r.penetration_after_m for r in results) <= 0.005


@pytest.mark.parametrize("gap,pitch", [(0.19, 40.0), (0.17, 60.0)])
def test_a_table_whose_legs_came_out_short_is_stretched_down_to_the_floor_its_top_held(gap, pitch, tmp_path):
    """The table floats farther above the floor than max_shift_m (the generated legs are too short):
    it is stretched along gravity until it stands on the floor; its top, and the mug on it, stay."""
    room = Room(pitch=pitch)
    table_mesh = _make_table()
    table = room.obj(0, table_mesh, 1.0, 0.0, 2.4, z=gap, yaw=5.0)
    top_z = room.world(table.T_camera_object, table_mesh)[:, 2].max()
    mug = syn.make_cylinder()
    objs = [table, room.obj(1, mug, 0.1, 0.2, 2.3, z=top_z + GAP)]
    results = settle_objects(objs, room.background(), PhysicsConfig(max_shift_m=0.15, max_stretch=0.3))
    assert [r.support for r in results] == ["floor", "object_0"]
    height = top_z - gap
    assert results[0].stretch == pytest.approx((height + gap - GAP) / height, abs=1e-3)
    assert results[0].shift_m < 1e-9
    stretched = room.world(results[0].T_camera_object, trimesh.Trimesh(results[0].vertices, table_mesh.faces))
    assert stretched[:, 2].max() == pytest.approx(top_z, abs=1e-6)
    assert stretched[:, 2].min() == pytest.approx(GAP, abs=0.0005)
    np.testing.assert_allclose(stretched[:, :2], room.world(table.T_camera_object, table_mesh)[:, :2], atol=1e-6)
    assert results[1].shift_m < 0.002
    apply_results(objs, results)
    assert objs[0].physics_stretch == results[0].stretch
    assert room.world(objs[0].T_camera_object, objs[0].mesh)[:, 2].min() == pytest.approx(GAP, abs=0.0005)
    # scene.json and the exported mesh carry the stretch: read back from disk
    write_scene(Scene(camera=CameraModel.from_fov(640, 480, 60.0), objects=objs, background=room.background()),
                tmp_path)
    back = read_scene(tmp_path).objects[0]
    assert back.physics_stretch == pytest.approx(results[0].stretch)
    assert room.world(back.T_camera_object, back.mesh)[:, 2].min() == pytest.approx(GAP, abs=0.0005)
    # beyond max_stretch it is not stretched: left where it is
    (r,) = settle_objects([room.obj(0, table_mesh, 1.0, 0.0, 2.4, z=0.4)], room.background(),
                          PhysicsConfig(max_shift_m=0.15, max_stretch=0.3))
    assert r.support == "none" and r.stretch == 1.0 and r.shift_m == 0.0


def test_a_box_sunk_deeper_than_max_shift_is_compressed_its_top_held():
    room = Room(pitch=35.0)
    box = syn.make_box()
    obj = room.obj(0, box, 1.0, 0.0, 3.0, z=-0.2)
    top_z = room.world(obj.T_camera_object, box)[:, 2].max()
    (r,) = settle_objects([obj], room.background(), PhysicsConfig(max_shift_m=0.15))
    placed = room.world(r.T_camera_object, trimesh.Trimesh(r.vertices, box.faces))
    assert r.support == "floor" and r.stretch < 1.0
    assert placed[:, 2].max() == pytest.approx(top_z, abs=1e-6)
    assert placed[:, 2].min() == pytest.approx(GAP, abs=0.0005)
    assert r.penetration_after_m <= 0.005


def _observed_surface(room: Room, mesh: trimesh.Trimesh, T_camera_object: np.ndarray) -> np.ndarray:
    """Surface samples of ``mesh`` placed by ``T_camera_object`` above the floor (optical frame): what a
    depth camera sees of it, less what the floor hides."""
    samples, _ = trimesh.sample.sample_surface(mesh, 3000, seed=1)
    points = trimesh.transform_points(samples, T_camera_object)
    above = trimesh.transform_points(points, np.linalg.inv(room.T_cw))[:, 2] > 0.005
    return points[above]


@pytest.mark.parametrize("pitch,sink", [(30.0, 0.06), (55.0, 0.04), (45.0, -0.05)])
def test_the_observation_decides_whether_a_misplaced_box_is_stretched_or_translated(pitch, sink):
    """A box whose generated height is wrong (its top seen where the layout put it) is compressed or
    stretched onto the floor with its top held; one whose shape is right but whose place is wrong (the
    depth sees all of it elsewhere) is translated. ``sink`` > 0: sunk into the floor, < 0: floating."""
    room = Room(pitch=pitch)
    box = syn.make_box()
    obj = room.obj(0, box, 0.5, 0.1, 2.2, z=-sink, yaw=15.0)
    placed = room.world(obj.T_camera_object, box)
    top_z, height = placed[:, 2].max(), np.ptp(placed[:, 2])
    # the true object: the same footprint and top, the bottom on the floor
    true_mesh = box.copy()
    true_vertices = room.world(obj.T_camera_object, box)
    true_vertices[:, 2] = top_z - (top_z - true_vertices[:, 2]) * (top_z / height)
    true_mesh.vertices = trimesh.transform_points(true_vertices, room.T_cw)
    wrong_height = _observed_surface(room, true_mesh, np.eye(4))
    (r,) = settle_objects([obj], room.background(), PhysicsConfig(), observed=[wrong_height])
    after = room.world(r.T_camera_object, trimesh.Trimesh(r.vertices, box.faces))
    assert r.support == "floor" and r.stretch == pytest.approx((top_z - GAP) / height, abs=1e-3)
    assert after[:, 2].max() == pytest.approx(top_z, abs=1e-6) and after[:, 2].min() == pytest.approx(GAP, abs=5e-4)
    assert r.shift_m < 1e-9
    # the true object: the same shape, standing on the floor
    truth = room.obj(0, box, 0.5, 0.1, 2.2, z=0.0, yaw=15.0)
    wrong_place = _observed_surface(room, box, truth.T_camera_object)
    (r,) = settle_objects([obj], room.background(), PhysicsConfig(), observed=[wrong_place])
    assert r.support == "floor" and r.stretch == 1.0
    assert r.shift_m == pytest.approx(abs(sink + GAP) if sink > 0 else abs(sink) - GAP, abs=1e-3)
    np.testing.assert_allclose(r.T_camera_object[:3, 3], truth.T_camera_object[:3, 3], atol=2e-3)


def test_a_support_plane_on_a_table_instances_top_is_claimed_by_it_and_one_under_a_box_is_not():
    """A mask a few pixels short leaves a table instance's top to the background fit, which finds a
    support plane there: that plane is the table's surface, not a separate board. A support plane a box
    stands on stays a support."""
    room = Room(pitch=45.0)
    table_mesh = _make_table()
    table = room.obj(0, table_mesh, 1.0, 0.0, 2.4, yaw=5.0)
    top_z = room.world(table.T_camera_object, table_mesh)[:, 2].max()
    on_top = room.support(top_z - 0.004, [[-0.3, 2.2], [0.3, 2.2], [0.3, 2.6], [-0.3, 2.6]])
    board = room.support(0.45, [[1.0, 2.0], [1.6, 2.0], [1.6, 2.6], [1.0, 2.6]])
    box = room.obj(1, syn.make_box(), 0.2, 1.3, 2.3, z=0.45 + GAP)
    background = room.background(on_top, board)
    assert object_surfaces([table, box], background) == [1]
    assert object_surfaces([box], background) == []
    assert object_surfaces([table, box], Background(planes=background.planes)) == []  # no gravity, no height


@pytest.mark.parametrize("beyond,pitch", [(0.012, 40.0), (0.018, 60.0)])
def test_an_object_whose_centre_lies_just_beyond_its_supports_edge_is_slid_onto_it(beyond, pitch):
    """A generated table a little smaller than the real one leaves a box the camera saw standing on
    it with its centre past the top's edge: the box keeps standing on the table, slid inside its
    edge, instead of falling to the floor (or toppling in a simulator). The same for a support plane
    whose seen polygon ends short of a mug on it."""
    room = Room(pitch=pitch)
    table_mesh = _make_table()
    table = room.obj(0, table_mesh, 1.0, 0.0, 2.4)
    top = room.world(table.T_camera_object, table_mesh)
    top_z, edge_x = top[:, 2].max(), top[:, 0].max()
    box = syn.make_box()
    obj = room.obj(1, box, 0.12, edge_x + beyond, 2.4, z=top_z + GAP)
    ra, rb = settle_objects([table, obj], room.background(), PhysicsConfig())
    assert rb.support == "object_0"
    placed = room.world(rb.T_camera_object, box)
    centre_x = (placed[:, 0].min() + placed[:, 0].max()) / 2
    assert edge_x - centre_x == pytest.approx(0.01, abs=1e-3)  # slid just inside the edge, no further
    new_top = room.world(ra.T_camera_object, table_mesh)[:, 2].max()  # the table itself came to rest GAP up
    assert placed[:, 2].min() == pytest.approx(new_top + GAP, abs=1e-3)
    # a support plane whose polygon ends before the mug's centre
    board = room.support(0.5, [[-0.5, 2.0], [0.3, 2.0], [0.3, 2.6], [-0.5, 2.6]])
    mug = syn.make_cylinder()
    cup = room.obj(0, mug, 0.08, 0.3 + beyond, 2.3, z=0.5 + GAP)
    (r,) = settle_objects([cup], room.background(board), PhysicsConfig())
    assert r.support == "plane_1"
    placed = room.world(r.T_camera_object, mug)
    assert 0.3 - (placed[:, 0].min() + placed[:, 0].max()) / 2 == pytest.approx(0.01, abs=1e-3)
    # beyond its own half-width the object is not on the support: a box on the floor beside the board
    far = room.obj(0, box, 0.12, 0.3 + 0.08, 2.3, z=0.5 + GAP)
    (r,) = settle_objects([far], room.background(board), PhysicsConfig())
    assert r.support == "none" and r.shift_m == 0.0


def test_penetration_into_an_open_mesh_is_measured_and_removed():
    """A box with its top face missing (not watertight) still counts what is inside it."""
    room = Room(pitch=25.0)
    closed = syn.make_box()
    top = np.argmax(closed.face_normals[:, 1])
    keep = np.ones(len(closed.faces), bool)
    keep[[f for f in range(len(closed.faces)) if np.allclose(closed.face_normals[f], closed.face_normals[top])]] = False
    open_box = trimesh.Trimesh(closed.vertices, closed.faces[keep], process=False)
    assert not open_box.is_watertight
    a = room.obj(0, open_box, 0.5, 0.0, 2.0)
    b = room.obj(1, closed, 0.4, 0.42, 2.0)        # 3 cm into a along world x
    results = settle_objects([a, b], room.background(), PhysicsConfig())
    assert min(r.penetration_before_m for r in results) > 0.02
    assert max(r.penetration_after_m for r in results) <= 0.005


def test_without_gravity_nothing_moves_and_penetration_is_still_measured():
    room = Room(pitch=25.0)
    box = syn.make_box()
    obj = room.obj(0, box, 0.4, 0.0, 2.0, z=-0.05)
    (r,) = settle_objects([obj], Background(planes=[room.floor], gravity=None), PhysicsConfig())
    assert r.support == "none" and r.shift_m == 0.0
    assert np.allclose(r.T_camera_object, obj.T_camera_object)
    assert r.penetration_before_m == pytest.approx(0.05, abs=0.001) == r.penetration_after_m


def test_disabled_stage_returns_poses_unchanged():
    room = Room()
    obj = room.obj(0, syn.make_box(), 0.4, 0.0, 2.0, z=-0.05)
    (r,) = settle_objects([obj], room.background(), PhysicsConfig(enabled=False))
    assert r.support == "" and np.isnan(r.penetration_before_m) and r.shift_m == 0.0
    assert np.allclose(r.T_camera_object, obj.T_camera_object)


@pytest.mark.parametrize("field,value", [
    ("max_penetration_m", 0.0), ("max_penetration_m", float("nan")), ("contact_gap_m", -0.001),
    ("max_shift_m", -1.0), ("samples", 0), ("samples", 100.5), ("occupancy_rays", 2), ("directions", 1),
    ("separation_tolerance_m", 0.01), ("rounds", 0), ("max_stretch", 1.0), ("max_stretch", -0.1),
])
def test_bad_config_values_raise_naming_the_field(field, value):
    with pytest.raises(PhysicsConfigError, match=field):
        PhysicsConfig(**{field: value})


def test_bad_inputs_raise():
    room = Room()
    obj = room.obj(0, syn.make_box(), 0.4, 0.0, 2.0)
    with pytest.raises(ValueError, match="observed"):
        settle_objects([obj], room.background(), PhysicsConfig(), observed=[])
    with pytest.raises(ValueError, match="gravity"):
        settle_objects([obj], Background(planes=[room.floor], gravity=np.zeros(3)), PhysicsConfig())


@pytest.mark.parametrize("tilt_deg,sink", [(2.0, 0.05), (-4.0, 0.03)])
def test_a_fitted_floor_a_few_degrees_off_the_given_gravity_is_still_rested_on(tilt_deg, sink):
    """Gravity from TF and the fitted floor disagree by a few degrees (the floor plane turned about the
    camera's x axis, so it moves by more than ``sink`` where the box is): the box still ends touching it."""
    room = Room(pitch=35.0)
    tilt = trimesh.transformations.rotation_matrix(np.radians(tilt_deg), room.R_cw @ [1.0, 0.0, 0.0])[:3, :3]
    floor = Plane("floor", tilt @ room.floor.normal, room.height)
    mesh = syn.make_box()
    obj = room.obj(0, mesh, 0.4, 0.3, 2.2, z=-sink, yaw=15.0)
    (r,) = settle_objects([obj], Background(planes=[floor], gravity=room.gravity), PhysicsConfig())
    def clearance(T):
        return (trimesh.transform_points(mesh.vertices, T) @ floor.normal + floor.offset).min()
    assert abs(clearance(obj.T_camera_object)) > 0.02       # the tilt moved the floor by more than the sink
    assert r.support == "floor" and 0.0 < clearance(r.T_camera_object) < 2 * GAP
    assert r.penetration_before_m == pytest.approx(max(0.0, -clearance(obj.T_camera_object)), abs=0.001)
    assert r.penetration_after_m <= 0.005


def test_results_are_written_into_the_scene_objects():
    room = Room()
    mesh = syn.make_box()
    objs = [room.obj(0, mesh, 0.4, 0.0, 2.0, z=-0.05), room.obj(5, mesh, 0.3, 1.0, 2.5, z=0.02)]
    results = settle_objects(objs, room.background(), PhysicsConfig())
    apply_results(objs, results)
    for obj, r in zip(objs, results):
        assert obj.support == "floor" and obj.physics_shift_m == r.shift_m > 0.01
        assert obj.penetration_before_m == r.penetration_before_m
        assert np.allclose(obj.T_camera_object, r.T_camera_object)
        assert abs(room.world(obj.T_camera_object, mesh)[:, 2].min() - GAP) < 0.0005
    assert settle_objects([], room.background(), PhysicsConfig()) == []
    with pytest.raises(ValueError, match="results"):
        apply_results(objs, results[:1])
