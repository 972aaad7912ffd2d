"""Gravity from the robot for one request: the ``gravity`` parameter, TF to ``gravity_frame``, or an IMU.

:class:`GravitySources` owns the node's TF listener (:class:`dpa_ros.ros.tf.TransformListener`) and
IMU subscription (:class:`dpa_ros.ros.imu.ImuWindow`) and answers :meth:`GravitySources.resolve`
for an image's frame and stamp. Precedence, when several are set: ``gravity`` > ``gravity_frame`` >
``use_imu``; none set means the library fits the floor. A source that is set but cannot answer
(missing or stale transform, silent or accelerating IMU) raises :class:`GravityUnavailable`:
the request is refused with that reason, never reconstructed without gravity.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Imu

from dpa_ros.geometry.gravity import GravityError, check_gravity, gravity_from_rotation
from dpa_ros.ros.imu import ImuWindow
from dpa_ros.ros.tf import TransformListener
from dpa_ros.ros.tf_buffer import TfLookupError

IMU_QOS = QoSProfile(depth=200, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)


class GravityUnavailable(ValueError):
    """A configured gravity source cannot give gravity for this frame; ``str(err)`` is the reason."""


class GravitySources:
    """The node's gravity sources (module docstring); ``param(name)`` reads a node parameter."""

    def __init__(self, node: Node, param: Callable[[str], Any], callback_group=None) -> None:
        self._param, self._node, self._group = param, node, callback_group
        self.tf: TransformListener | None = None  # /tf is subscribed to only once a source needs it
        if param("gravity_frame") or param("use_imu"):
            self.listen()
        self.imu = ImuWindow()
        self.imu_topic = None
        if param("use_imu"):
            sub = node.create_subscription(Imu, "imu", self.imu.add_message, IMU_QOS, callback_group=callback_group)
            self.imu_topic = sub.topic_name

    def listen(self) -> TransformListener:
        """The TF listener, subscribing to /tf and /tf_static now if it has not yet (``gravity_frame``
        set at run time: transforms published before this are missing until they are sent again)."""
        if self.tf is None:
            self.tf = TransformListener(self._node, history_s=float(self._param("tf_history_s")),
                                        callback_group=self._group)
        return self.tf

    @property
    def tf_backend(self) -> str:
        return self.tf.backend if self.tf is not None else "not listening"

    def resolve(self, camera_frame: str, stamp_ns: int) -> tuple[np.ndarray | None, str, str]:
        """(gravity unit vector pointing down in ``camera_frame`` or None, source, detail) at ``stamp_ns``.

        ``source`` is what the scene records (``parameter``, ``tf:<frame>``, ``imu``; ``floor`` when
        no source is set and the library fits the floor). Raises :class:`GravityUnavailable`.
        """
        p = self._param
        if len(p("gravity")):
            return check_gravity(p("gravity")), "parameter", "gravity from the gravity parameter"
        tolerance, wait = float(p("tf_tolerance_s")), float(p("tf_wait_s"))
        if p("gravity_frame"):
            frame = str(p("gravity_frame"))
            try:
                T = self.listen().lookup(camera_frame, frame, stamp_ns, tolerance, wait)
            except TfLookupError as exc:
                raise GravityUnavailable(f"no gravity from gravity_frame '{frame}': {exc}") from exc
            return gravity_from_rotation(T[:3, :3]), f"tf:{frame}", f"gravity from TF {camera_frame} <- {frame}"
        if p("use_imu"):
            window_s = float(p("imu_window_s"))
            self.imu.wait_until(stamp_ns + int(window_s * 0.5e9), float(p("imu_max_silence_s")))
            try:
                down_imu, imu_frame, summary = self.imu.down_at(stamp_ns, window_s,
                                                                float(p("imu_max_silence_s")),
                                                                float(p("imu_max_error_m_s2")))
            except GravityError as exc:
                raise GravityUnavailable(f"no gravity from the IMU on {self.imu_topic}: {exc}") from exc
            try:
                T = self.listen().lookup(camera_frame, imu_frame, stamp_ns, tolerance, wait)
            except TfLookupError as exc:
                raise GravityUnavailable(f"no gravity from the IMU on {self.imu_topic}: its frame: {exc}") from exc
            return (check_gravity(T[:3, :3] @ down_imu), "imu",
                    f"gravity from the IMU on {self.imu_topic} ({summary})")
        return None, "floor", "gravity from the fitted floor"
