"""A second ROS 2 process for the DDS tests: publishes messages built from real data, then waits.

Run as ``python test/ros_peer.py OUT_DIR``. It publishes a dpa_ros/Scene whose object carries a
real (trimesh) mesh on ``/dpa_test/scene`` and a TFMessage on ``/tf_static``, both reliable and
transient-local, writes the serialized bytes of what it sent to OUT_DIR, prints READY, and
stays up until its standard input closes (or 60 s pass), so late subscribers can join.
"""
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
import trimesh
from geometry_msgs.msg import Point, TransformStamped
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from shape_msgs.msg import MeshTriangle
from std_msgs.msg import ColorRGBA
from tf2_msgs.msg import TFMessage

from dpa_ros.msg import BackgroundPlane, Scene, SceneObject, StageTiming

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def build_scene(stamp) -> Scene:
    """A Scene with one object whose mesh is a coloured, non-symmetric trimesh solid."""
    mesh = trimesh.util.concatenate([trimesh.creation.box((0.4, 0.1, 0.2)),
                                     trimesh.creation.icosphere(subdivisions=2, radius=0.08)
                                     .apply_translation((0.15, -0.1, 0.0))])
    rng = np.random.default_rng(7)
    colors = rng.random((len(mesh.vertices), 3))
    scene = Scene()
    scene.header.frame_id = "camera_color_optical_frame"
    scene.header.stamp = stamp
    obj = SceneObject(id=3, label="chair", score=0.87, scale=1.25, fit_error=0.0123,
                      mesh_uri="file:///tmp/objects/3.obj")
    obj.mesh.vertices = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in mesh.vertices]
    obj.mesh.triangles = [MeshTriangle(vertex_indices=[int(i) for i in f]) for f in mesh.faces]
    obj.vertex_colors = [ColorRGBA(r=float(r), g=float(g), b=float(b), a=1.0) for r, g, b in colors]
    obj.pose.position.x, obj.pose.position.y, obj.pose.position.z = 0.3, 0.1, 2.5
    obj.pose.orientation.w = 0.5 ** 0.5
    obj.pose.orientation.y = 0.5 ** 0.5
    scene.objects = [obj]
    floor = BackgroundPlane(label="floor", inlier_count=12345)
    floor.plane.coef = [0.0, -0.94, -0.34, 1.2]
    scene.background_planes = [floor]
    scene.gravity.y = 1.0
    scene.timings = [StageTiming(stage="segment", seconds=0.93), StageTiming(stage="layout", seconds=1.7)]
    scene.profile = "smoke"
    return scene


def build_tf(stamp) -> TFMessage:
    t = TransformStamped()
    t.header.stamp = stamp
    t.header.frame_id = "camera_color_optical_frame"
    t.child_frame_id = "dpa_object_3"
    t.transform.translation.z = 2.5
    t.transform.rotation.w = 1.0
    return TFMessage(transforms=[t])


def main(out_dir: Path) -> None:
    rclpy.init()
    try:
        node = rclpy.create_node("dpa_test_peer")
        stamp = node.get_clock().now().to_msg()
        scene, tf = build_scene(stamp), build_tf(stamp)
        node.create_publisher(Scene, "/dpa_test/scene", LATCHED).publish(scene)
        node.create_publisher(TFMessage, "/tf_static", LATCHED).publish(tf)
        (out_dir / "scene.bin").write_bytes(serialize_message(scene))
        (out_dir / "tf.bin").write_bytes(serialize_message(tf))
        print("READY", flush=True)
        done = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
        deadline = time.monotonic() + 60.0
        while not done.is_set() and rclpy.ok() and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
