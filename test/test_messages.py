"""The package's own interfaces: generated classes import, serialize, and travel over DDS."""
import subprocess
import sys
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: run under `. ./activate.sh` after `make setup`")
pytestmark = pytest.mark.ros

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402

from dpa_ros.action import Reconstruct  # noqa: E402
from dpa_ros.msg import BackgroundPlane, Scene, SceneObject, StageTiming  # noqa: E402

HERE = Path(__file__).parent


def test_message_fields_match_the_interface_contract():
    """Every field's name, order and type as msg/*.msg and action/Reconstruct.action define them
    (docs/interfaces.md), read from the generated classes."""
    assert list(SceneObject.get_fields_and_field_types().items()) == [
        ("id", "uint32"), ("label", "string"), ("score", "float"), ("mesh", "shape_msgs/Mesh"),
        ("vertex_colors", "sequence<std_msgs/ColorRGBA>"), ("pose", "geometry_msgs/Pose"), ("scale", "double"),
        ("fit_error", "double"), ("mesh_uri", "string")]
    assert list(Scene.get_fields_and_field_types().items()) == [
        ("header", "std_msgs/Header"), ("objects", "sequence<dpa_ros/SceneObject>"),
        ("background_planes", "sequence<dpa_ros/BackgroundPlane>"), ("gravity", "geometry_msgs/Vector3"),
        ("timings", "sequence<dpa_ros/StageTiming>"), ("profile", "string")]
    assert list(Reconstruct.Goal.get_fields_and_field_types().items()) == [
        ("prompt", "string"), ("profile", "string"), ("instances", "sequence<dpa_ros/Instance>")]
    assert list(Reconstruct.Result.get_fields_and_field_types().items()) == [
        ("success", "boolean"), ("message", "string"), ("scene", "dpa_ros/Scene")]
    assert list(Reconstruct.Feedback.get_fields_and_field_types().items()) == [
        ("stage", "string"), ("progress", "float")]
    obj, scene = SceneObject(), Scene()
    assert type(obj.mesh).__name__ == "Mesh" and type(obj.pose).__name__ == "Pose" and obj.vertex_colors == []
    assert scene.objects == [] and scene.profile == ""
    goal, result, feedback = Reconstruct.Goal(), Reconstruct.Result(), Reconstruct.Feedback()
    assert (goal.prompt, goal.profile) == ("", "")
    assert result.success is False and isinstance(result.scene, Scene)
    assert feedback.stage == "" and feedback.progress == 0.0


def test_scene_round_trips_through_cdr_serialization():
    sys.path.insert(0, str(HERE))
    from builtin_interfaces.msg import Time
    from ros_peer import build_scene
    scene = build_scene(Time(sec=12, nanosec=34))
    data = serialize_message(scene)
    back = deserialize_message(data, Scene)
    # Compare decoded messages (CDR padding bytes are not initialised, so raw bytes may differ).
    assert deserialize_message(serialize_message(back), Scene) == back
    assert back.objects[0].label == "chair" and back.profile == "smoke"
    assert back.objects[0].score == pytest.approx(0.87, abs=1e-6)  # float32 on the wire
    assert len(back.objects[0].mesh.triangles) == len(scene.objects[0].mesh.triangles) > 0
    assert back.objects[0].mesh.triangles[5].vertex_indices.tolist() == \
        scene.objects[0].mesh.triangles[5].vertex_indices.tolist()
    # A changed field breaks equality: the comparison above is not vacuous.
    changed = deserialize_message(data, Scene)
    changed.objects[0].mesh.vertices[10].x += 1e-3
    assert changed != back


def test_plane_and_timing_types():
    plane = BackgroundPlane(label="wall", inlier_count=7)
    plane.plane.coef = [1.0, 0.0, 0.0, -2.0]
    assert deserialize_message(serialize_message(plane), BackgroundPlane).plane.coef.tolist() == [1.0, 0.0, 0.0, -2.0]
    timing = deserialize_message(serialize_message(StageTiming(stage="layout", seconds=1.5)), StageTiming)
    assert (timing.stage, timing.seconds) == ("layout", 1.5)


def _wait_for(node, predicate, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not predicate():
        rclpy.spin_once(node, timeout_sec=0.1)
    return predicate()


def test_scene_and_static_tf_reach_a_late_subscriber_in_another_process(tmp_path):
    """The peer process publishes once with transient-local QoS before we subscribe."""
    from tf2_msgs.msg import TFMessage

    peer = subprocess.Popen([sys.executable, str(HERE / "ros_peer.py"), str(tmp_path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert peer.stdout.readline().strip() == "READY"
        rclpy.init()
        try:
            node = rclpy.create_node("dpa_test_late_subscriber")
            latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.TRANSIENT_LOCAL)
            got: dict = {}
            node.create_subscription(Scene, "/dpa_test/scene", lambda m: got.setdefault("scene", m), latched)
            node.create_subscription(TFMessage, "/tf_static", lambda m: got.setdefault("tf", m), latched)
            assert _wait_for(node, lambda: len(got) == 2, 30.0), f"received only {sorted(got)}"
            node.destroy_node()
        finally:
            rclpy.try_shutdown()
    finally:
        peer.stdin.close()
        peer.wait(timeout=20)
    assert got["scene"] == deserialize_message((tmp_path / "scene.bin").read_bytes(), Scene)
    assert got["tf"] == deserialize_message((tmp_path / "tf.bin").read_bytes(), TFMessage)
    obj = got["scene"].objects[0]
    assert obj.label == "chair" and len(obj.mesh.vertices) == len(obj.vertex_colors) > 100
    assert got["tf"].transforms[0].child_frame_id == "dpa_object_3"
