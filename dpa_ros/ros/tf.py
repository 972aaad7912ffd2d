"""Static TF for reconstructed objects: tf2_ros's StaticTransformBroadcaster when it is installed,
otherwise the same thing done directly (a ``tf2_msgs/TFMessage`` on ``/tf_static``, reliable and
transient-local, depth 1, carrying every frame this publisher owns, as tf2_ros does).

Unlike a plain broadcaster, :meth:`StaticTransformPublisher.publish` with ``replace=True`` makes the
published set exactly the given frames, so the objects of an older scene do not linger on
``/tf_static`` for late subscribers once a new scene replaced them. (A tf2 buffer that already
received an old static frame keeps it; static frames never expire.)
"""
from __future__ import annotations

import threading
from typing import Iterable

from geometry_msgs.msg import TransformStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from tf2_msgs.msg import TFMessage

try:  # a full ROS install
    from tf2_ros.static_transform_broadcaster import StaticTransformBroadcaster  # type: ignore
except ImportError:  # the pip environment
    StaticTransformBroadcaster = None

TF_STATIC_TOPIC = "/tf_static"
STATIC_TF_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)


class StaticTransformPublisher:
    """Publishes a node's static transforms on /tf_static, keyed by child frame.

    Thread-safe; ``publish`` sends the whole set each time (one latched message), like tf2_ros.
    """

    def __init__(self, node: Node, use_tf2_ros: bool | None = None) -> None:
        self._lock = threading.Lock()
        self._frames: dict[str, TransformStamped] = {}
        use = StaticTransformBroadcaster is not None if use_tf2_ros is None else use_tf2_ros
        if use and StaticTransformBroadcaster is None:
            raise ImportError("tf2_ros is not installed")
        self._broadcaster = StaticTransformBroadcaster(node) if use else None
        self._pub = None if use else node.create_publisher(TFMessage, TF_STATIC_TOPIC, STATIC_TF_QOS)

    @property
    def backend(self) -> str:
        return "tf2_ros" if self._broadcaster is not None else "tf_static_publisher"

    @property
    def frames(self) -> list[str]:
        with self._lock:
            return list(self._frames)

    def publish(self, transforms: Iterable[TransformStamped], replace: bool = False) -> TFMessage:
        """Add (or update, by child frame) ``transforms`` and publish every owned frame.

        With ``replace`` the owned set becomes exactly ``transforms``. Returns what was published.
        """
        transforms = list(transforms)
        with self._lock:
            if replace:
                self._frames.clear()
            for t in transforms:
                self._frames[t.child_frame_id] = t
            msg = TFMessage(transforms=list(self._frames.values()))
            if self._broadcaster is not None:  # pragma: no cover - only with tf2_ros installed
                if hasattr(self._broadcaster, "net_message"):
                    # tf2_ros accumulates frames forever; keep its state equal to ours
                    self._broadcaster.net_message = TFMessage()
                    if hasattr(self._broadcaster, "_child_frame_ids"):
                        self._broadcaster._child_frame_ids = set()
                self._broadcaster.sendTransform(msg.transforms)
            else:
                self._pub.publish(msg)
            return msg
