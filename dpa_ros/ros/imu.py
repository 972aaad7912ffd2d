"""The IMU's recent accelerometer samples, and gravity from them at an image's stamp.

ROS-free (no rclpy import; stamps are integer nanoseconds), so it is unit-tested without DDS. The
node stores every ``sensor_msgs/Imu`` it receives with :meth:`ImuWindow.add_message`; a request
then asks :meth:`ImuWindow.down_at` for the down direction **in the IMU's frame** (the message's
``header.frame_id``), which the node rotates into the camera frame through TF.
"""
from __future__ import annotations

import bisect
import threading

import numpy as np

from dpa_ros.geometry.gravity import GravityError, gravity_from_accelerometer

KEPT_S = 30.0


class ImuWindow:
    """Accelerometer samples of the last ``KEPT_S`` seconds (by stamp), thread-safe."""

    def __init__(self) -> None:
        self._stamps: list[int] = []
        self._samples: list[tuple[np.ndarray, str]] = []  # (linear_acceleration m/s², frame_id)
        self._lock = threading.Condition()

    def add(self, stamp_ns: int, acceleration, frame_id: str) -> None:
        """One sample: ``acceleration`` (3,) m/s² in ``frame_id`` at ``stamp_ns``."""
        with self._lock:
            i = bisect.bisect_right(self._stamps, int(stamp_ns))
            self._stamps.insert(i, int(stamp_ns))
            self._samples.insert(i, (np.asarray(acceleration, dtype=np.float64).reshape(3), str(frame_id)))
            cut = bisect.bisect_left(self._stamps, self._stamps[-1] - int(KEPT_S * 1e9))
            del self._stamps[:cut], self._samples[:cut]
            self._lock.notify_all()

    def wait_until(self, stamp_ns: int, timeout_s: float) -> bool:
        """Block until a sample stamped at or after ``stamp_ns`` is stored, at most ``timeout_s``
        seconds (messages arrive after the image they belong with); True when one is."""
        with self._lock:
            return self._lock.wait_for(lambda: bool(self._stamps) and self._stamps[-1] >= stamp_ns,
                                       timeout=max(0.0, timeout_s))

    def add_message(self, msg) -> None:
        """Store one ``sensor_msgs/Imu`` (any object with its attributes)."""
        a, stamp = msg.linear_acceleration, msg.header.stamp
        self.add(int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec), (a.x, a.y, a.z), msg.header.frame_id)

    def down_at(self, stamp_ns: int, window_s: float, max_silence_s: float,
                max_error_m_s2: float) -> tuple[np.ndarray, str, str]:
        """(down unit vector in the IMU frame, that frame id, a summary) from the samples stamped in
        ``[stamp_ns - window_s, stamp_ns + window_s / 2]``.

        Raises :class:`GravityError` when no sample was received, when the sample nearest to the
        stamp is farther than ``max_silence_s`` from it (a silent IMU), when the samples in the
        window come from several frames, or when the IMU is accelerating
        (:func:`~dpa_ros.geometry.gravity.gravity_from_accelerometer`).
        """
        with self._lock:
            stamps, samples = list(self._stamps), list(self._samples)
        if not stamps:
            raise GravityError("no IMU message received yet")
        i = bisect.bisect_left(stamps, stamp_ns)
        nearest = min(abs(stamps[j] - stamp_ns) for j in (i - 1, i) if 0 <= j < len(stamps)) / 1e9
        if nearest > max_silence_s:
            raise GravityError(f"IMU is silent: its nearest sample is {nearest:.2f} s from the image stamp "
                               f"{stamp_ns / 1e9:.3f} s (imu_max_silence_s {max_silence_s:g})")
        lo = bisect.bisect_left(stamps, stamp_ns - int(window_s * 1e9))
        hi = bisect.bisect_right(stamps, stamp_ns + int(window_s * 0.5e9))
        chosen = samples[lo:hi]
        if not chosen:
            raise GravityError(f"no IMU sample within {window_s:g} s of the image stamp {stamp_ns / 1e9:.3f} s")
        frames = {f for _, f in chosen}
        if len(frames) != 1 or not next(iter(frames)):
            raise GravityError(f"IMU samples come from frames {sorted(frames)}; expected one, non-empty frame_id")
        down, summary = gravity_from_accelerometer(np.array([a for a, _ in chosen]), max_error_m_s2)
        return down, frames.pop(), summary
