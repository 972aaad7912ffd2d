"""A small TF buffer: the transforms of ``/tf`` and ``/tf_static``, looked up through the frame tree.

ROS-free (no rclpy import; stamps are integer nanoseconds), so it is unit-tested without DDS. The
node feeds it with :meth:`TransformBuffer.add_message` (a ``geometry_msgs/TransformStamped``, read
by attribute) when ``tf2_ros`` is not installed; with ``tf2_ros``, :mod:`dpa_ros.ros.tf` uses
tf2_ros's own buffer instead.

Conventions, as in tf2: a transform with ``header.frame_id`` *parent* and ``child_frame_id``
*child* is the pose of the child in the parent (``p_parent = R · p_child + t``, metres), and
:meth:`TransformBuffer.lookup` ``(target, source, stamp)`` returns ``T_target_source``, which maps
points of the source frame into the target frame. Every frame has at most one parent (a tree).

Dynamic transforms (``/tf``) keep a time-ordered history of ``history_s`` seconds behind the newest
sample of each (parent, child) edge; a lookup interpolates between the two samples around the stamp
(translation linearly, rotation by slerp). A stamp outside an edge's samples is answered with the
nearest sample only when it is within ``tolerance_s`` of it; otherwise the lookup is refused with
:class:`TfLookupError` saying which edge, how far and in which direction (a transform that stopped
coming is *stale*). Static transforms (``/tf_static``) hold at every time. Nothing falls back
silently: an unknown frame, two frames in different trees, or a stamp out of range all raise.
"""
from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass, field

import numpy as np

DEFAULT_HISTORY_S = 10.0


class TfLookupError(LookupError):
    """A transform that cannot be looked up; ``str(err)`` is the reason."""


def quaternion_to_matrix(q_xyzw) -> np.ndarray:
    """(3, 3) rotation of a quaternion (x, y, z, w), normalised first; raises ValueError when zero or NaN."""
    q = np.asarray(q_xyzw, dtype=np.float64).reshape(4)
    n = float(np.linalg.norm(q))
    if not np.isfinite(n) or n < 1e-9:
        raise ValueError(f"not a rotation quaternion: {q.tolist()}")
    x, y, z, w = q / n
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def slerp(q0, q1, fraction: float) -> np.ndarray:
    """Spherical interpolation of unit quaternions (x, y, z, w), ``fraction`` in [0, 1], shortest arc."""
    q0 = np.asarray(q0, dtype=np.float64) / np.linalg.norm(q0)
    q1 = np.asarray(q1, dtype=np.float64) / np.linalg.norm(q1)
    dot = float(np.dot(q0, q1))
    if dot < 0.0:
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly equal: linear is exact enough and avoids dividing by sin(~0)
        q = q0 + fraction * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = np.arccos(min(dot, 1.0))
    return (np.sin((1 - fraction) * theta) * q0 + np.sin(fraction * theta) * q1) / np.sin(theta)


@dataclass
class _Edge:
    """One (parent, child) edge: a static transform, or a history sorted by stamp."""

    parent: str
    static: bool
    stamps: list[int] = field(default_factory=list)
    samples: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (translation, quaternion xyzw)


def _clean(frame: str) -> str:
    return str(frame).lstrip("/")


def _matrix(translation: np.ndarray, quaternion: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = quaternion_to_matrix(quaternion)
    T[:3, 3] = translation
    return T


class TransformBuffer:
    """Transforms by (parent, child), with a bounded history; thread-safe (see the module docstring).

    Args:
        history_s: how far behind each edge's newest sample dynamic samples are kept (s).
    """

    def __init__(self, history_s: float = DEFAULT_HISTORY_S) -> None:
        if not history_s > 0:
            raise ValueError(f"history_s must be positive, got {history_s}")
        self.history_ns = int(history_s * 1e9)
        self._edges: dict[str, _Edge] = {}  # by child frame
        self._lock = threading.Condition()

    # ------------------------------------------------------------------------------- filling
    def set_transform(self, parent: str, child: str, stamp_ns: int, translation, quaternion_xyzw,
                      static: bool = False) -> None:
        """Store the pose of ``child`` in ``parent`` (metres; quaternion x, y, z, w) at ``stamp_ns``.

        A child that gets a new parent is re-parented (its history restarts), as tf2 does. Raises
        ValueError for an empty frame, a frame that is its own parent, or a non-finite value.
        """
        parent, child = _clean(parent), _clean(child)
        if not parent or not child:
            raise ValueError(f"transform with an empty frame id (parent '{parent}', child '{child}')")
        if parent == child:
            raise ValueError(f"transform from frame '{child}' to itself")
        t = np.asarray(translation, dtype=np.float64).reshape(3)
        q = np.asarray(quaternion_xyzw, dtype=np.float64).reshape(4)
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(q))) or np.linalg.norm(q) < 1e-9:
            raise ValueError(f"transform {parent} -> {child} has a non-finite value or a zero quaternion")
        q = q / np.linalg.norm(q)
        with self._lock:
            edge = self._edges.get(child)
            if edge is None or edge.parent != parent or edge.static != static:
                edge = self._edges[child] = _Edge(parent, static)
            self._lock.notify_all()
            if static:
                edge.stamps, edge.samples = [int(stamp_ns)], [(t, q)]
                return
            i = bisect.bisect_left(edge.stamps, int(stamp_ns))
            if i < len(edge.stamps) and edge.stamps[i] == int(stamp_ns):
                edge.samples[i] = (t, q)
            else:
                edge.stamps.insert(i, int(stamp_ns))
                edge.samples.insert(i, (t, q))
            cut = bisect.bisect_left(edge.stamps, edge.stamps[-1] - self.history_ns)
            del edge.stamps[:cut], edge.samples[:cut]

    def add_message(self, transform, static: bool = False) -> None:
        """Store one ``geometry_msgs/TransformStamped`` (any object with its attributes)."""
        tr, rot = transform.transform.translation, transform.transform.rotation
        stamp = transform.header.stamp
        self.set_transform(transform.header.frame_id, transform.child_frame_id,
                           int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec),
                           (tr.x, tr.y, tr.z), (rot.x, rot.y, rot.z, rot.w), static=static)

    def frames(self) -> list[str]:
        """Every frame known (a parent or a child of some transform), sorted."""
        with self._lock:
            return sorted(set(self._edges) | {e.parent for e in self._edges.values()})

    # ------------------------------------------------------------------------------- lookup
    def lookup(self, target_frame: str, source_frame: str, stamp_ns: int, tolerance_s: float = 0.0,
               timeout_s: float = 0.0) -> np.ndarray:
        """``T_target_source`` (4×4, metres) at ``stamp_ns``, chained through the common ancestor.

        Raises :class:`TfLookupError` for an unknown frame, frames in different trees, or a stamp
        farther than ``tolerance_s`` outside an edge's samples (module docstring). With
        ``timeout_s`` > 0 a failed lookup is retried as transforms arrive, for at most that long
        (transforms are often delivered after the image they belong with), as tf2's
        ``lookup_transform(..., timeout)`` does; the error is the last attempt's.
        """
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._lock:
            while True:
                try:
                    return self._lookup_locked(target_frame, source_frame, stamp_ns, tolerance_s)
                except TfLookupError:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise
                    self._lock.wait(left)

    def _lookup_locked(self, target_frame: str, source_frame: str, stamp_ns: int, tolerance_s: float) -> np.ndarray:
        target, source = _clean(target_frame), _clean(source_frame)
        known = set(self._edges) | {e.parent for e in self._edges.values()}
        for name, frame in (("target", target), ("source", source)):
            if frame not in known:
                listed = ", ".join(sorted(known)[:12]) or "none yet"
                raise TfLookupError(f"unknown {name} frame '{frame}' (frames received: {listed})")
        if target == source:
            return np.eye(4)
        up_source = self._chain(source)
        up_target = self._chain(target)
        ancestors = {p for _, p in up_target} | {target}
        common = next((f for f in [source] + [p for _, p in up_source] if f in ancestors), None)
        if common is None:
            raise TfLookupError(f"frames '{target}' and '{source}' are not connected (roots "
                                f"'{up_target[-1][1] if up_target else target}' and "
                                f"'{up_source[-1][1] if up_source else source}')")
        T_common_source = self._compose(up_source, common, stamp_ns, tolerance_s)
        T_common_target = self._compose(up_target, common, stamp_ns, tolerance_s)
        return np.linalg.inv(T_common_target) @ T_common_source

    def _chain(self, frame: str) -> list[tuple[str, str]]:
        """[(child, parent), ...] from ``frame`` up to its root."""
        chain, seen = [], {frame}
        while frame in self._edges:
            parent = self._edges[frame].parent
            if parent in seen:
                raise TfLookupError(f"the frame tree has a loop through '{parent}'")
            chain.append((frame, parent))
            seen.add(parent)
            frame = parent
        return chain

    def _compose(self, chain: list[tuple[str, str]], stop: str, stamp_ns: int, tolerance_s: float) -> np.ndarray:
        """``T_stop_frame`` of the chain's first frame, multiplying edges up to ``stop``."""
        T = np.eye(4)
        for child, _ in chain:
            if child == stop:
                break
            T = self._edge_at(child, stamp_ns, tolerance_s) @ T
        return T

    def _edge_at(self, child: str, stamp_ns: int, tolerance_s: float) -> np.ndarray:
        edge = self._edges[child]
        if edge.static:
            return _matrix(*edge.samples[0])
        stamps, tol_ns = edge.stamps, int(tolerance_s * 1e9)
        name = f"{edge.parent} -> {child}"
        i = bisect.bisect_left(stamps, stamp_ns)
        if i < len(stamps) and stamps[i] == stamp_ns:
            return _matrix(*edge.samples[i])
        if i == len(stamps):  # after the newest sample: the transform is late or stopped coming
            gap = (stamp_ns - stamps[-1]) / 1e9
            if stamp_ns - stamps[-1] <= tol_ns:
                return _matrix(*edge.samples[-1])
            raise TfLookupError(f"transform {name} is stale: its newest sample is {gap:.3f} s older than the "
                                f"requested time {stamp_ns / 1e9:.3f} s (tolerance {tolerance_s:g} s; would "
                                "extrapolate into the future)")
        if i == 0:  # before the oldest sample kept
            gap = (stamps[0] - stamp_ns) / 1e9
            if stamps[0] - stamp_ns <= tol_ns:
                return _matrix(*edge.samples[0])
            raise TfLookupError(f"transform {name} has no sample as old as {stamp_ns / 1e9:.3f} s: the oldest "
                                f"kept is {gap:.3f} s later (tolerance {tolerance_s:g} s, history "
                                f"{self.history_ns / 1e9:g} s; would extrapolate into the past)")
        (t0, q0), (t1, q1) = edge.samples[i - 1], edge.samples[i]
        f = (stamp_ns - stamps[i - 1]) / (stamps[i] - stamps[i - 1])
        return _matrix(t0 + f * (t1 - t0), slerp(q0, q1, f))
