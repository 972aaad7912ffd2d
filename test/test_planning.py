"""Scene -> vision_msgs/Detection3DArray and moveit_msgs/CollisionObject (dpa_ros.ros.planning),
checked against geometry computed here with scipy's Rotation from the library scene (not from the
message), and the stand-in message packages against the real packages' type hashes."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: run under `. ./activate.sh` after `make setup`")
pytestmark = pytest.mark.ros

from moveit_msgs.msg import CollisionObject  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from vision_msgs.msg import Detection3DArray  # noqa: E402

from dpa_ros.core.camera import CameraModel  # noqa: E402
from dpa_ros.core.scene import Scene, SceneObject  # noqa: E402
from dpa_ros.ros import conversions as conv  # noqa: E402
from dpa_ros.ros import planning  # noqa: E402

FRAME = "rgbd_color_optical_frame"
STAMP_NS = 1_733_000_123_456_789_012


def _scene(seed: int, n: int = 3) -> Scene:
    """n objects with meshes whose origin is off their centre, random rotations, scales and positions."""
    rng = np.random.default_rng(seed)
    objects = []
    for i in range(n):
        mesh = trimesh.util.concatenate([trimesh.creation.box(rng.uniform(0.1, 0.6, 3)),
                                         trimesh.creation.icosphere(1, radius=0.07).apply_translation((0.3, 0, 0))])
        mesh.apply_translation(rng.uniform(-0.2, 0.2, 3))
        scale = float(rng.uniform(0.5, 2.0))
        T = np.eye(4)
        T[:3, :3] = Rotation.random(random_state=rng).as_matrix() * scale
        T[:3, 3] = rng.uniform((-1, -0.5, 1), (1, 0.5, 4))
        objects.append(SceneObject(id=int(rng.integers(0, 50)) * 10 + i, label=["chair", "table", "lamp"][i % 3],
                                   score=float(rng.uniform(0.3, 1)), mesh=mesh, T_camera_object=T, scale=scale))
    camera = CameraModel.from_fov(640, 480, 60.0, frame_id=FRAME)
    return Scene(camera=camera, objects=objects, stamp_ns=STAMP_NS)


@pytest.mark.parametrize("seed", [1, 42, 777])
def test_detections_match_the_scene(seed):
    scene = _scene(seed)
    scene_msg = conv.scene_to_msg(scene)
    dets = planning.scene_to_detections(scene_msg, "robot1/")
    dets = deserialize_message(serialize_message(dets), Detection3DArray)  # what a subscriber gets
    assert dets.header.frame_id == FRAME and conv.stamp_to_ns(dets.header.stamp) == STAMP_NS
    assert len(dets.detections) == len(scene.objects)
    for det, obj in zip(dets.detections, scene.objects):
        assert det.header == dets.header
        assert det.id == f"robot1/object_{obj.id}"
        assert len(det.results) == 1
        hyp = det.results[0]
        assert hyp.hypothesis.class_id == obj.label and hyp.hypothesis.score == pytest.approx(obj.score, abs=1e-6)
        R = obj.T_camera_object[:3, :3] / obj.scale
        p, q = hyp.pose.pose.position, hyp.pose.pose.orientation
        np.testing.assert_allclose((p.x, p.y, p.z), obj.T_camera_object[:3, 3], atol=1e-12)
        np.testing.assert_allclose(Rotation.from_quat((q.x, q.y, q.z, q.w)).as_matrix(), R, atol=1e-9)
        # the box around the fitted mesh: object-frame extent times scale, centred on the mesh
        lo, hi = obj.mesh.bounds
        size = det.bbox.size
        np.testing.assert_allclose((size.x, size.y, size.z), (hi - lo) * obj.scale, rtol=1e-9)
        centre = (obj.T_camera_object @ np.r_[(lo + hi) / 2, 1])[:3]
        c, bq = det.bbox.center.position, det.bbox.center.orientation
        np.testing.assert_allclose((c.x, c.y, c.z), centre, atol=1e-9)
        np.testing.assert_allclose(Rotation.from_quat((bq.x, bq.y, bq.z, bq.w)).as_matrix(), R, atol=1e-9)
        # every placed vertex lies inside that box
        local = (obj.mesh_in_camera().vertices - centre) @ R
        assert np.all(np.abs(local) <= np.array([size.x, size.y, size.z]) / 2 + 1e-9)
        assert np.linalg.norm(centre - obj.T_camera_object[:3, 3]) > 1e-3  # the centre offset was applied


@pytest.mark.parametrize("seed", [5, 2025])
def test_collision_objects_carry_the_scaled_mesh_at_the_object_pose(seed):
    scene = _scene(seed)
    scene_msg = conv.scene_to_msg(scene)
    cos = planning.scene_to_collision_objects(scene_msg, "dpa_")
    assert len(cos) == len(scene.objects)
    for co, obj in zip(cos, scene.objects):
        co = deserialize_message(serialize_message(co), CollisionObject)
        assert co.id == f"dpa_object_{obj.id}" and co.operation == CollisionObject.ADD
        assert co.header.frame_id == FRAME and conv.stamp_to_ns(co.header.stamp) == STAMP_NS
        assert len(co.meshes) == len(co.mesh_poses) == 1 and not co.primitives and not co.planes
        mp = co.mesh_poses[0]
        assert (mp.position.x, mp.position.y, mp.position.z) == (0.0, 0.0, 0.0) and mp.orientation.w == 1.0
        verts = np.array([(v.x, v.y, v.z) for v in co.meshes[0].vertices])
        faces = np.array([t.vertex_indices for t in co.meshes[0].triangles])
        np.testing.assert_allclose(verts, obj.mesh.vertices * obj.scale, rtol=1e-12)  # metres, object frame
        np.testing.assert_array_equal(faces, obj.mesh.faces)
        # pose (rotation + translation only) applied to the scaled mesh = the placed mesh
        p, q = co.pose.position, co.pose.orientation
        placed = verts @ Rotation.from_quat((q.x, q.y, q.z, q.w)).as_matrix().T + (p.x, p.y, p.z)
        np.testing.assert_allclose(placed, obj.mesh_in_camera().vertices, atol=1e-9)


def test_tracker_removes_the_previous_scenes_stale_ids_first():
    tracker = planning.CollisionObjectTracker()
    first = conv.scene_to_msg(_scene(3, n=3))
    msgs = tracker.update(first, "dpa_")
    first_ids = [f"dpa_object_{o.id}" for o in first.objects]
    assert [(m.id, m.operation) for m in msgs] == [(i, CollisionObject.ADD) for i in first_ids]
    # the next scene keeps the first object's id and drops the others
    second_scene = _scene(9, n=2)
    second_scene.objects[0].id = first.objects[0].id
    second = conv.scene_to_msg(second_scene)
    msgs = tracker.update(second, "dpa_")
    second_ids = [f"dpa_object_{o.id}" for o in second.objects]
    stale = [i for i in first_ids if i not in second_ids]
    assert len(stale) == 2
    assert [(m.id, m.operation) for m in msgs] == ([(i, CollisionObject.REMOVE) for i in stale]
                                                 + [(i, CollisionObject.ADD) for i in second_ids])
    for m in msgs[:2]:
        assert not m.meshes and m.header.frame_id == FRAME
    # an empty scene removes everything that is left
    empty = conv.scene_to_msg(Scene(camera=second_scene.camera, stamp_ns=STAMP_NS + 1))
    assert [(m.id, m.operation) for m in tracker.update(empty, "dpa_")] == [
        (i, CollisionObject.REMOVE) for i in second_ids]
    assert tracker.ids == []


def test_an_object_without_vertices_gets_its_pose_and_size_zero():
    scene = _scene(4, n=1)
    scene_msg = conv.scene_to_msg(scene)
    scene_msg.objects[0].mesh.vertices = []
    scene_msg.objects[0].mesh.triangles = []
    det = planning.scene_to_detections(scene_msg, "").detections[0]
    assert det.bbox.center == scene_msg.objects[0].pose
    assert (det.bbox.size.x, det.bbox.size.y, det.bbox.size.z) == (0.0, 0.0, 0.0)


def test_message_types_hash_like_the_real_packages():
    """The stand-ins (or a real install) announce the real definitions' RIHS01 hashes on the wire."""
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("dpa_test_type_hashes", context=context)
        node.create_publisher(Detection3DArray, "/dpa_test_hash/detections", 1)
        node.create_publisher(CollisionObject, "/dpa_test_hash/collision_object", 1)
        got = {i.topic_type: str(i.topic_type_hash) for t in ("/dpa_test_hash/detections",
                                                              "/dpa_test_hash/collision_object")
               for i in node.get_publishers_info_by_topic(t)}
        assert got == {"vision_msgs/msg/Detection3DArray": planning.DETECTION3D_ARRAY_TYPE_HASH,
                       "moveit_msgs/msg/CollisionObject": planning.COLLISION_OBJECT_TYPE_HASH}
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
