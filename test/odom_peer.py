"""A second ROS 2 process standing in for a robot's odometry, for the node's scene-memory test.

Run as ``python test/odom_peer.py FIXED_FRAME CAMERA_FRAME``. Each line on standard input is a
camera pose in the fixed frame, ``x y z qx qy qz qw`` (metres; the camera optical frame's pose,
REP 103); from then on it publishes ``FIXED_FRAME -> CAMERA_FRAME`` with that pose on ``/tf``
at 50 Hz, stamped now, and prints ``POSE <n>`` once the new pose has been sent for 0.3 s (so
that the transform at a later image stamp lies between two samples of it). It prints READY when
started and stops when its standard input closes (or after 600 s).
"""
from __future__ import annotations

import sys
import threading
import time

import rclpy
from geometry_msgs.msg import TransformStamped
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from tf2_msgs.msg import TFMessage

DYNAMIC = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
PERIOD_S = 0.02
SETTLE_S = 0.3


def main(fixed_frame: str, camera_frame: str) -> None:
    rclpy.init()
    try:
        node = rclpy.create_node("dpa_test_odom")
        pub = node.create_publisher(TFMessage, "/tf", DYNAMIC)
        pose: list[list[float]] = []
        lock = threading.Lock()

        def read_poses() -> None:
            for n, line in enumerate(sys.stdin):
                with lock:
                    pose[:] = [[float(v) for v in line.split()]]
                time.sleep(SETTLE_S)
                print(f"POSE {n}", flush=True)
            with lock:
                pose[:] = [None]

        threading.Thread(target=read_poses, daemon=True).start()
        print("READY", flush=True)
        deadline = time.monotonic() + 600.0
        while time.monotonic() < deadline:
            with lock:
                current = pose[0] if pose else []
            if current is None:
                break
            if current:
                m = TransformStamped(child_frame_id=camera_frame)
                m.header.frame_id, m.header.stamp = fixed_frame, node.get_clock().now().to_msg()
                t, q = m.transform.translation, m.transform.rotation
                t.x, t.y, t.z, q.x, q.y, q.z, q.w = current
                pub.publish(TFMessage(transforms=[m]))
            time.sleep(PERIOD_S)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
