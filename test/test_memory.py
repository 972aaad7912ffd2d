"""Scene memory (dpa_ros.memory) on one rendered scene seen from several camera poses, no ROS.

The fusion test fits every view with the real layout solver (dpa_ros.assemble, given masks and
meshes, as ``dpa-reconstruct --instances``); the forgetting and moving tests feed the memory the
views' ground-truth placements, since what they check is the memory's bookkeeping.
"""
import dataclasses

import numpy as np
import pytest

from dpa_ros.assemble import Instance, assemble_scene
from dpa_ros.core.scene import Scene, SceneObject
from dpa_ros.geometry.layout import LayoutConfig
from dpa_ros.memory import MemoryConfig, SceneMemory, box_overlap, labels_compatible
from dpa_testing import synthetic_views as sv

LAYOUT = LayoutConfig(points=300, iterations=80, restarts=4, seed=0)
#: the three camera poses (world x, y, yaw degrees) of the fusion test
POSES = [(-0.4, 0.0, -8.0), (0.0, 0.0, 0.0), (0.4, 0.0, 8.0)]
MIN_PIXELS = 30


def centre_error(T: np.ndarray, obj: sv.WorldObject) -> float:
    """Distance (m) between the mesh's bounding-box centre placed by ``T`` and by the ground truth."""
    c = obj.mesh.bounds.mean(0)
    G = obj.T_world_object
    return float(np.linalg.norm(T[:3, :3] @ c + T[:3, 3] - (G[:3, :3] @ c + G[:3, 3])))


def visible(view: sv.View) -> list[int]:
    return [i for i, m in enumerate(view.masks) if m.sum() >= MIN_PIXELS]


def fitted(view: sv.View, objects: list[sv.WorldObject]) -> tuple[Scene, list[np.ndarray]]:
    keep = visible(view)
    instances = [Instance(objects[i].label, 1.0, view.masks[i], [objects[i].mesh]) for i in keep]
    return assemble_scene(view.rgb, view.depth, view.camera, instances, config=LAYOUT), [view.masks[i] for i in keep]


def ground_truth(view: sv.View, objects: list[sv.WorldObject]) -> tuple[Scene, list[np.ndarray]]:
    T_cw = np.linalg.inv(view.T_world_camera)
    keep = visible(view)
    objs = [SceneObject(id=n, label=objects[i].label, score=1.0, mesh=objects[i].mesh,
                        T_camera_object=T_cw @ objects[i].T_world_object, scale=objects[i].scale)
            for n, i in enumerate(keep)]
    return Scene(camera=view.camera, objects=objs), [view.masks[i] for i in keep]


@pytest.fixture(scope="module")
def three_views():
    """The default scene from three poses, each fitted by the layout solver."""
    objects = sv.default_objects()
    views = [sv.render_view(objects, sv.camera_pose(*p)) for p in POSES]
    assert all(visible(v) == [0, 1, 2] for v in views)
    return objects, views, [fitted(v, objects) for v in views]


def test_fused_views_keep_ids_and_are_no_worse_than_the_best_single_view(three_views):
    objects, views, fits = three_views
    memory = SceneMemory(MemoryConfig(forget_after=2))
    single = {i: [] for i in range(3)}
    ids = None
    for n, (view, (scene, masks)) in enumerate(zip(views, fits)):
        update = memory.observe(scene, view.T_world_camera, view.depth, masks)
        if n == 0:
            assert update.added == update.ids and len(set(update.ids)) == 3
            ids = update.ids
        else:
            assert update.ids == ids and update.kept == ids and not update.added and not update.forgotten
        for i, obj in enumerate(scene.objects):
            single[i].append(centre_error(view.T_world_camera @ obj.T_camera_object, objects[i]))
        remembered = {m.id: m for m in memory.objects}
        assert sorted(remembered) == sorted(ids)
        for i, k in enumerate(ids):
            fused = centre_error(remembered[k].T_fixed_object, objects[i])
            # the fused fit uses every view's points; 1 mm of slack for the points' subsampling
            assert fused <= min(single[i]) + 1e-3, (objects[i].label, n, fused, single[i])
            assert abs(remembered[k].scale / objects[i].scale - 1) < 0.02
    scene = memory.to_scene("odom", fits[-1][0])
    assert scene.frame_id == "odom" and [o.id for o in scene.objects] == sorted(ids)


def test_a_removed_object_is_forgotten_after_forget_after_views_and_an_unseen_one_is_kept():
    objects = sv.default_objects()
    memory = SceneMemory(MemoryConfig(forget_after=2))
    first = sv.render_view(objects, sv.camera_pose(0.0, 0.0, 0.0))
    scene, masks = ground_truth(first, objects)
    ids = memory.observe(scene, first.T_world_camera, first.depth, masks).ids
    box_id = ids[2]
    # the camera turned away: nothing is visible, so nothing counts a miss
    away = sv.render_view(objects, sv.camera_pose(0.0, 0.0, 120.0))
    assert visible(away) == []
    scene, masks = ground_truth(away, objects)
    for _ in range(3):
        assert memory.observe(scene, away.T_world_camera, away.depth, masks).forgotten == []
    assert sorted(m.id for m in memory.objects) == sorted(ids)
    # the box taken away, seen from where it stood
    without_box = objects[:2]
    forgotten = []
    for n in range(2):
        view = sv.render_view(without_box, sv.camera_pose(0.2 * n, 0.0, 0.0))
        scene, masks = ground_truth(view, without_box)
        update = memory.observe(scene, view.T_world_camera, view.depth, masks)
        assert update.ids == ids[:2]
        forgotten.append(update.forgotten)
    assert forgotten == [[], [box_id]]
    assert sorted(m.id for m in memory.objects) == sorted(ids[:2])


def test_a_moved_object_keeps_its_id_at_its_new_pose():
    objects = sv.default_objects()
    memory = SceneMemory(MemoryConfig(forget_after=2))
    view = sv.render_view(objects, sv.camera_pose(0.0, 0.0, 0.0))
    scene, masks = ground_truth(view, objects)
    ids = memory.observe(scene, view.T_world_camera, view.depth, masks).ids
    assert len(ids) == 3
    moved = list(objects)
    moved[0] = sv.world_object("chair", objects[0].mesh, 0.8, -0.9, 2.3, 60.0)   # 0.46 m away, turned 35°
    view = sv.render_view(moved, sv.camera_pose(0.1, 0.0, 0.0))
    scene, masks = ground_truth(view, moved)
    update = memory.observe(scene, view.T_world_camera, view.depth, masks)
    assert update.ids == ids and update.moved == [ids[0]] and update.kept == ids[1:] and not update.forgotten
    chair = next(m for m in memory.objects if m.id == ids[0])
    assert centre_error(chair.T_fixed_object, moved[0]) < 0.01
    assert centre_error(chair.T_fixed_object, objects[0]) > 0.3
    assert len(chair.views) == 1


def test_clear_forget_and_settings():
    objects = sv.default_objects()
    memory = SceneMemory()
    view = sv.render_view(objects, sv.camera_pose(0.0, 0.0, 0.0))
    scene, masks = ground_truth(view, objects)
    ids = memory.observe(scene, view.T_world_camera, view.depth, masks).ids
    assert memory.forget(ids[1]) and not memory.forget(ids[1]) and not memory.forget(99)
    assert [m.id for m in memory.objects] == [ids[0], ids[2]]
    assert memory.clear() == [ids[0], ids[2]] and memory.objects == []
    # ids are not reused after a clear
    assert set(memory.observe(scene, view.T_world_camera, view.depth, masks).ids).isdisjoint(ids)
    with pytest.raises(ValueError, match="forget_after"):
        SceneMemory(MemoryConfig(forget_after=0))
    with pytest.raises(ValueError, match="2 masks for 3 objects"):
        memory.observe(scene, view.T_world_camera, view.depth, masks[:2])
    with pytest.raises(ValueError, match="mask 1 has shape"):
        memory.observe(scene, view.T_world_camera, view.depth, [masks[0], masks[1][:-1], masks[2]])
    other = dataclasses.replace(scene.objects[0], label="table")
    assert not labels_compatible(other.label, "chair") and labels_compatible(" Chair", "chair")
    a = np.array([[0.0, 0, 0], [1, 1, 1]])
    assert box_overlap(a, a + 0.5) == pytest.approx(0.125) and box_overlap(a, a + 2) == 0.0


def test_the_nodes_masks_from_the_placed_meshes_match_the_rendered_ones():
    """dpa_ros.ros.scene_memory (the node's memory, ROS-free): without goal masks, an object's pixels
    are where its placed mesh is the nearest surface and agrees with the depth."""
    from dpa_ros.ros.scene_memory import NodeMemory, visible_masks

    objects = sv.default_objects()
    view = sv.render_view(objects, sv.camera_pose(0.0, 0.0, 0.0))
    scene, masks = ground_truth(view, objects)
    got, depth = visible_masks(scene, view.depth)
    assert depth is not None
    for g, m in zip(got, masks):
        assert (g & m).sum() / (g | m).sum() > 0.9
    _, rendered = visible_masks(scene, None)
    assert not np.isfinite(rendered[~np.logical_or.reduce(masks)]).any()  # no object: no rendered depth
    memory = NodeMemory("odom", forget_after=2)
    first = memory.observe(scene, view.T_world_camera, view.depth)
    assert first.scene.frame_id == "odom" and first.update.added == [0, 1, 2]
    assert memory.observe(scene, view.T_world_camera, None).update.kept == [0, 1, 2]
    assert memory.forget(1) and memory.ids() == [0, 2] and memory.clear() == [0, 2]
    assert "memory in odom: 0 object(s) []" in memory.current(first).summary("odom")


@pytest.mark.parametrize("axis", [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
def test_a_view_that_fits_the_chair_upside_down_and_off_is_righted_by_its_own_depth(axis):
    """The layout solver can leave a chair on its back or upside down; the memory's turned,
    two-sided starts find the pose that the view's depth points and free space support."""
    objects = sv.default_objects()
    view = sv.render_view(objects, sv.camera_pose(0.0, 0.0, 0.0), noise_std=0.005, seed=3)
    scene, masks = ground_truth(view, objects)
    chair = objects[0]
    centre = chair.mesh.bounds.mean(0)
    flip = np.eye(4)
    flip[:3, :3] = trimesh_rotation(np.pi, axis)
    flip[:3, 3] = centre - flip[:3, :3] @ centre
    wrong = chair.T_world_object @ flip
    wrong[:3, :3] *= 1.12                                  # 12 % too large
    wrong[:3, 3] += [0.08, 0.0, 0.05]                      # and 9 cm off
    T_cw = np.linalg.inv(view.T_world_camera)
    objs = list(scene.objects)
    objs[0] = dataclasses.replace(objs[0], T_camera_object=T_cw @ wrong, scale=1.12 * chair.scale)
    assert centre_error(wrong, chair) > 0.08
    memory = SceneMemory()
    ids = memory.observe(dataclasses.replace(scene, objects=objs), view.T_world_camera, view.depth, masks).ids
    righted = next(m for m in memory.objects if m.id == ids[0])
    assert centre_error(righted.T_fixed_object, chair) < 0.01
    R = righted.T_fixed_object[:3, :3] / righted.scale @ (chair.T_world_object[:3, :3] / chair.scale).T
    assert np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1))) < 3.0
    assert abs(righted.scale / chair.scale - 1) < 0.02


def trimesh_rotation(angle: float, axis) -> np.ndarray:
    import trimesh

    return trimesh.transformations.rotation_matrix(angle, axis)[:3, :3]
