"""Replay the frames of a ROS 2 bag (read with rosbags, no rosbag2 install needed) as live topics.

    python -m dpa_ros.ros.bag_player samples/room/rosbag --rate 2 --duration 60

Every message whose type has a ``header`` is re-stamped with the current time, one stamp per bag
timestamp, so messages recorded together (image, camera_info, depth of one frame) keep one common
stamp and a node that matches frames by stamp sees a live, consistent camera. Publishers are
reliable with depth 5, which both reliable and sensor-data (best-effort) subscribers accept.
"""
from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rclpy.utilities import remove_ros_args


def message_class(type_name: str):
    """The rclpy class of a ROS type name such as ``sensor_msgs/msg/Image``."""
    package, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


def read_bag(path: Path) -> list[tuple[int, list[tuple[str, object]]]]:
    """The bag's messages as rclpy objects, grouped by bag timestamp: [(t_ns, [(topic, msg)])]."""
    from rosbags.highlevel import AnyReader

    frames: dict[int, list[tuple[str, object]]] = {}
    with AnyReader([Path(path)]) as reader:
        for conn, t_ns, raw in reader.messages():
            msg = deserialize_message(bytes(raw), message_class(conn.msgtype))
            frames.setdefault(t_ns, []).append((conn.topic, msg))
    if not frames:
        raise ValueError(f"bag {path} holds no messages")
    return sorted(frames.items())


class BagPlayer(Node):
    """Publishes the bag's frames in order, looping, at ``rate_hz`` frames per second."""

    def __init__(self, frames, rate_hz: float) -> None:
        super().__init__("dpa_bag_player")
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self._frames = frames
        self._next = 0
        self._publishers = {topic: self.create_publisher(type(msg), topic, qos)
                            for _, msgs in frames for topic, msg in msgs}
        self.published = 0
        self.create_timer(1.0 / rate_hz, self._publish_frame)

    def _publish_frame(self) -> None:
        _, msgs = self._frames[self._next]
        stamp = self.get_clock().now().to_msg()
        for topic, msg in msgs:
            if hasattr(msg, "header"):
                msg.header.stamp = stamp
            self._publishers[topic].publish(msg)
        self._next = (self._next + 1) % len(self._frames)
        self.published += 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bag", type=Path, help="rosbag2 directory (sqlite3 or mcap)")
    ap.add_argument("--rate", type=float, default=2.0, help="frames per second (default 2)")
    ap.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0 = never)")
    args = ap.parse_args(remove_ros_args(argv if argv is not None else __import__("sys").argv)[1:])
    frames = read_bag(args.bag)
    rclpy.init(args=argv)
    try:
        player = BagPlayer(frames, args.rate)
        topics = sorted({t for _, msgs in frames for t, _ in msgs})
        player.get_logger().info(f"playing {len(frames)} frame(s) of {args.bag} on {', '.join(topics)} "
                                 f"at {args.rate} Hz")
        deadline = time.monotonic() + args.duration if args.duration > 0 else float("inf")
        while rclpy.ok() and time.monotonic() < deadline:
            rclpy.spin_once(player, timeout_sec=0.1)
        player.destroy_node()
    except KeyboardInterrupt:
        pass
    finally:
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
