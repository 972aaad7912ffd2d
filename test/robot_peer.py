"""A second ROS 2 process standing in for a robot, for the node's gravity tests.

Run as ``python test/robot_peer.py NAMESPACE CAMERA_FRAME PITCH_DEG``. It publishes
- on ``/tf_static`` (reliable, transient-local, one message): ``camera_link -> CAMERA_FRAME`` (the
  REP 103 optical rotation) and ``base_link -> imu_link`` (an IMU mounted at an odd angle, ROLL_PITCH_YAW_IMU);
- on ``/tf`` at 20 Hz, stamped now: ``base_link -> camera_link``, the camera 1.3 m up, panned 20°
  and pitched PITCH_DEG down (a robot head);
- on ``NAMESPACE/imu`` at 100 Hz: a still IMU's ``linear_acceleration`` (9.80665 m/s² up, in imu_link,
  with 0.03 m/s² of noise).
It prints READY once the node subscribes to the IMU and streams until its standard input closes
(or 300 s pass).
"""
from __future__ import annotations

import sys
import threading
import time

import numpy as np
import rclpy
from geometry_msgs.msg import TransformStamped
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from scipy.spatial.transform import Rotation
from sensor_msgs.msg import Imu
from tf2_msgs.msg import TFMessage

STATIC = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
DYNAMIC = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
OPTICAL_IN_LINK = Rotation.from_matrix([[0, 0, 1], [-1, 0, 0], [0, -1, 0]])  # optical x, y, z in camera_link
ROLL_PITCH_YAW_IMU = (10.0, -30.0, 75.0)
PAN_DEG = 20.0


def head_rotation(pitch_deg: float) -> Rotation:
    """camera_link in base_link: pan about z, then pitch about the panned y (positive = looking down)."""
    return Rotation.from_euler("ZY", [PAN_DEG, pitch_deg], degrees=True)


def transform(parent: str, child: str, stamp, rot: Rotation, t) -> TransformStamped:
    m = TransformStamped(child_frame_id=child)
    m.header.frame_id, m.header.stamp = parent, stamp
    m.transform.translation.x, m.transform.translation.y, m.transform.translation.z = (float(v) for v in t)
    x, y, z, w = rot.as_quat()
    m.transform.rotation.x, m.transform.rotation.y, m.transform.rotation.z, m.transform.rotation.w = x, y, z, w
    return m


def main(namespace: str, camera_frame: str, pitch_deg: float) -> None:
    rclpy.init()
    try:
        node = rclpy.create_node("dpa_test_robot")
        now = node.get_clock().now().to_msg()
        imu_rot = Rotation.from_euler("xyz", ROLL_PITCH_YAW_IMU, degrees=True)
        node.create_publisher(TFMessage, "/tf_static", STATIC).publish(TFMessage(transforms=[
            transform("camera_link", camera_frame, now, OPTICAL_IN_LINK, (0.0, 0.0, 0.0)),
            transform("base_link", "imu_link", now, imu_rot, (0.0, 0.0, 0.4))]))
        tf_pub = node.create_publisher(TFMessage, "/tf", DYNAMIC)
        imu_pub = node.create_publisher(Imu, f"{namespace}/imu", 10)
        up_in_imu = imu_rot.inv().apply([0.0, 0.0, 9.80665])
        head = head_rotation(pitch_deg)
        deadline = time.monotonic() + 60.0
        while imu_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        print("READY", flush=True)
        done = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
        rng = np.random.default_rng(11)
        end, k = time.monotonic() + 300.0, 0
        while not done.is_set() and time.monotonic() < end:
            stamp = node.get_clock().now().to_msg()
            if k % 5 == 0:
                tf_pub.publish(TFMessage(transforms=[transform("base_link", "camera_link", stamp, head,
                                                               (0.1, 0.0, 1.3))]))
            imu = Imu()
            imu.header.frame_id, imu.header.stamp = "imu_link", stamp
            a = up_in_imu + rng.normal(scale=0.03, size=3)
            imu.linear_acceleration.x, imu.linear_acceleration.y, imu.linear_acceleration.z = (float(v) for v in a)
            imu_pub.publish(imu)
            k += 1
            time.sleep(0.01)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
