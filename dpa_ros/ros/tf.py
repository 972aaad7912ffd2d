"""TF: a listener for looking transforms up (:class:`TransformListener`), and static TF for
reconstructed objects (:class:`StaticTransformPublisher`).

Static TF for reconstructed objects: tf2_ros's StaticTransformBroadcaster when it is installed,
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

import numpy as np
from geometry_msgs.msg import TransformStamped
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from tf2_msgs.msg import TFMessage

from dpa_ros.ros.tf_buffer import TfLookupError, TransformBuffer, quaternion_to_matrix

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


TF_TOPIC = "/tf"
DYNAMIC_TF_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.VOLATILE)
LISTENER_STATIC_TF_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                                    reliability=ReliabilityPolicy.RELIABLE,
                                    durability=DurabilityPolicy.TRANSIENT_LOCAL)

try:  # a full ROS install
    import tf2_ros  # type: ignore
except ImportError:  # the pip environment
    tf2_ros = None


class TransformListener:
    """Listens to ``/tf`` (volatile) and ``/tf_static`` (transient-local) and looks transforms up.

    tf2_ros's Buffer and TransformListener when tf2_ros imports, otherwise
    :class:`dpa_ros.ros.tf_buffer.TransformBuffer` fed by the node's own subscriptions. Either way
    :meth:`lookup` returns ``T_target_source`` (4×4) or raises :class:`TfLookupError`.
    """

    def __init__(self, node: Node, history_s: float = 10.0, callback_group=None,
                 use_tf2_ros: bool | None = None) -> None:
        use = tf2_ros is not None if use_tf2_ros is None else use_tf2_ros
        if use and tf2_ros is None:
            raise ImportError("tf2_ros is not installed")
        if use:  # pragma: no cover - only with tf2_ros installed
            from rclpy.duration import Duration

            self._tf2 = tf2_ros.Buffer(cache_time=Duration(seconds=history_s))
            self._listener = tf2_ros.TransformListener(self._tf2, node, spin_thread=False)
            self._buffer = None
        else:
            self._tf2 = None
            self._buffer = TransformBuffer(history_s)
            node.create_subscription(TFMessage, TF_TOPIC, lambda m: self._add(m, False), DYNAMIC_TF_QOS,
                                     callback_group=callback_group)
            node.create_subscription(TFMessage, TF_STATIC_TOPIC, lambda m: self._add(m, True),
                                     LISTENER_STATIC_TF_QOS, callback_group=callback_group)
        self._node = node

    @property
    def backend(self) -> str:
        return "tf2_ros" if self._tf2 is not None else "dpa_ros.ros.tf_buffer"

    def _add(self, msg: TFMessage, static: bool) -> None:
        for t in msg.transforms:
            try:
                self._buffer.add_message(t, static=static)
            except ValueError as exc:
                self._node.get_logger().warning(f"ignored a transform on {TF_STATIC_TOPIC if static else TF_TOPIC}: "
                                                f"{exc}", throttle_duration_sec=10.0)

    def lookup(self, target_frame: str, source_frame: str, stamp_ns: int, tolerance_s: float,
               timeout_s: float = 0.0) -> np.ndarray:
        """``T_target_source`` (4×4, metres) at ``stamp_ns``, waiting up to ``timeout_s`` for it to
        arrive; raises :class:`TfLookupError` with the reason."""
        if self._buffer is not None:
            return self._buffer.lookup(target_frame, source_frame, stamp_ns, tolerance_s, timeout_s)
        return self._lookup_tf2(target_frame, source_frame, stamp_ns, tolerance_s, timeout_s)  # pragma: no cover

    def _lookup_tf2(self, target, source, stamp_ns, tolerance_s, timeout_s):  # pragma: no cover - needs tf2_ros
        from rclpy.duration import Duration
        from rclpy.time import Time

        try:
            msg = self._tf2.lookup_transform(target, source, Time(nanoseconds=stamp_ns),
                                             timeout=Duration(seconds=max(0.0, timeout_s)))
        except tf2_ros.ExtrapolationException as exc:
            try:  # tf2 has no tolerance: take the latest common transform if it is close enough
                msg = self._tf2.lookup_transform(target, source, Time())
            except tf2_ros.TransformException as exc2:
                raise TfLookupError(f"{target} <- {source}: {exc2}") from exc2
            got = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            if got != 0 and abs(got - stamp_ns) > tolerance_s * 1e9:
                raise TfLookupError(f"{target} <- {source}: {exc}") from exc
        except tf2_ros.TransformException as exc:
            raise TfLookupError(f"{target} <- {source}: {exc}") from exc
        tr, rot = msg.transform.translation, msg.transform.rotation
        T = np.eye(4)
        T[:3, :3] = quaternion_to_matrix((rot.x, rot.y, rot.z, rot.w))
        T[:3, 3] = (tr.x, tr.y, tr.z)
        return T
