"""The newest complete input frame: an image with its camera_info (and depth), matched by stamp.

ROS-free (no rclpy import; stamps are integer nanoseconds, payloads are whatever the caller stores),
so it is unit-tested without DDS. The node's subscription callbacks only call :meth:`FrameBuffer.add`
with the unconverted message; converting a 1920×1440 frame costs tens of milliseconds, so only the
frame a request chooses is converted.

Selection (:meth:`FrameBuffer.select`): a *complete set* is an image plus the camera_info whose stamp
is nearest to the image's, within ``tolerance_s``, plus (when the buffer was made with ``use_depth``)
the nearest depth image within the same tolerance. A request takes the newest complete set whose
image is at least as new as the newest image present when the request came; when that image's
companions have not all arrived yet (a camera driver publishes image, camera_info and depth on
separate topics, in no fixed order), it waits for them up to ``wait_s``. After the wait it takes the
newest complete set there is. Depth is never dropped because it arrived a little late: a set without
depth is used only when ``require_depth`` is false, after the wait, when no image has a matching depth
at all. A chosen set whose image is older than ``max_age_s`` (against ``clock_ns``, the stamps' time
base) is refused with its age.

Memory is bounded: images and depths keep ``LATE_COMPANION_FACTOR`` × ``ring_size`` stamps each, so
that an image still meets a depth image that arrives several frames after it (a loaded subscriber
takes the two large streams in turn, and one can fall a few frames behind the other; with only
``ring_size`` images kept, every image whose depth has arrived may already be gone). camera_info (a
few hundred bytes each) keeps ``CAMERA_INFO_RING_FACTOR`` × ``ring_size``, because a large image can
arrive hundreds of milliseconds after its small camera_info. A message with a stamp already held replaces
the held one; an out-of-order message older than everything in a full ring is dropped.
"""
from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

IMAGE, CAMERA_INFO, DEPTH = "image", "camera_info", "depth"
STREAMS = (IMAGE, CAMERA_INFO, DEPTH)
CAMERA_INFO_RING_FACTOR = 10
LATE_COMPANION_FACTOR = 3


class FrameUnavailable(LookupError):
    """No usable complete frame; ``str(err)`` is the reason (what is missing, or how old the frame is)."""


@dataclass(frozen=True)
class Stamped:
    """One buffered message: its header stamp (ns) and the caller's payload (the unconverted message)."""

    stamp_ns: int
    payload: Any


@dataclass(frozen=True)
class FrameSet:
    """The chosen frame: the image, its camera_info, its depth (None without depth) and notes for the user.

    ``age_s`` is the image's age when it was chosen (seconds, against the buffer's clock).
    """

    image: Stamped
    camera_info: Stamped
    depth: Stamped | None
    age_s: float
    notes: tuple[str, ...] = ()


class _Ring:
    """Up to ``size`` messages of one stream, sorted by stamp, one per stamp."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.stamps: list[int] = []
        self.items: list[Stamped] = []

    def add(self, item: Stamped) -> None:
        i = bisect.bisect_left(self.stamps, item.stamp_ns)
        if i < len(self.stamps) and self.stamps[i] == item.stamp_ns:
            self.items[i] = item  # same stamp again (a repeated publish): keep the latest payload
            return
        if len(self.stamps) >= self.size and i == 0:
            return  # older than everything in a full ring
        self.stamps.insert(i, item.stamp_ns)
        self.items.insert(i, item)
        if len(self.stamps) > self.size:
            del self.stamps[0], self.items[0]

    def nearest(self, stamp_ns: int) -> tuple[Stamped | None, float]:
        """(the message with the stamp closest to ``stamp_ns``, |Δ| in s), or (None, inf) when empty."""
        i = bisect.bisect_left(self.stamps, stamp_ns)
        best, best_dt = None, float("inf")
        for j in (i - 1, i):
            if 0 <= j < len(self.stamps):
                dt = abs(self.stamps[j] - stamp_ns) / 1e9
                if dt < best_dt:
                    best, best_dt = self.items[j], dt
        return best, best_dt


class FrameBuffer:
    """Buffers image, camera_info and depth messages and picks the newest complete set (module docstring).

    Args:
        use_depth: depth is part of a complete set.
        ring_size: the subscriptions' queue depth; images and depths keep ``LATE_COMPANION_FACTOR`` × as
            many, camera_info ``CAMERA_INFO_RING_FACTOR`` × as many.
        clock_ns: now, in the stamps' time base (the node's ROS clock), for frame ages.
        topics: topic name per stream, used in the reasons (``{"image": "/ns/image", ...}``).
    """

    def __init__(self, use_depth: bool, ring_size: int = 5, clock_ns: Callable[[], int] = time.time_ns,
                 topics: dict[str, str] | None = None) -> None:
        if ring_size < 1:
            raise ValueError(f"ring_size must be at least 1, got {ring_size}")
        self.use_depth = use_depth
        self.ring_size = ring_size
        self._clock_ns = clock_ns
        self._topics = {s: s for s in STREAMS} | dict(topics or {})
        self._rings = {s: _Ring(ring_size * (CAMERA_INFO_RING_FACTOR if s == CAMERA_INFO else LATE_COMPANION_FACTOR))
                       for s in STREAMS}
        self._changed = threading.Condition()
        self._received = {s: 0 for s in STREAMS}

    def received(self, stream: str) -> int:
        """Messages of ``stream`` stored since the buffer was made (the intake count, for rates)."""
        with self._changed:
            return self._received[stream]

    def add(self, stream: str, stamp_ns: int, payload: Any) -> None:
        """Store one message of ``stream`` (image, camera_info or depth) with its header stamp in ns."""
        if stream not in self._rings:
            raise ValueError(f"unknown stream '{stream}' (one of {', '.join(STREAMS)})")
        with self._changed:
            self._rings[stream].add(Stamped(int(stamp_ns), payload))
            self._received[stream] += 1
            self._changed.notify_all()

    def __len__(self) -> int:
        """Messages held, all streams together (at most (2 × LATE_COMPANION_FACTOR + CAMERA_INFO_RING_FACTOR) ×
        ring_size)."""
        with self._changed:
            return sum(len(r.stamps) for r in self._rings.values())

    def newest_image_stamp(self) -> int | None:
        """Stamp (ns) of the newest buffered image, or None."""
        with self._changed:
            stamps = self._rings[IMAGE].stamps
            return stamps[-1] if stamps else None

    # ------------------------------------------------------------------------------- selection
    def select(self, tolerance_s: float, wait_s: float = 0.0, max_age_s: float = 0.0, require_depth: bool = False,
               newer_than_ns: int | None = None, asked_ns: int | None = None) -> FrameSet:
        """The newest complete set (module docstring); raises :class:`FrameUnavailable` with the reason.

        Args:
            tolerance_s: largest stamp difference between the image and each companion (s).
            wait_s: longest wait for the companions of the newest image (s).
            max_age_s: refuse a set whose image is older than this (s); 0 = any age.
            require_depth: with ``use_depth``, never fall back to a set without depth.
            newer_than_ns: only consider images stamped after this (continuous mode: never twice).
            asked_ns: when the request came (``clock_ns`` time base); ages are measured against it, so
                a request that waited for the models is not refused a frame that was fresh when it
                asked (None: now).
        """
        tol = float(tolerance_s)
        deadline = time.monotonic() + max(float(wait_s), 0.0)
        with self._changed:
            images = self._rings[IMAGE]
            target = images.stamps[-1] if images.stamps else None
            while True:
                best = self._newest_complete(tol, self.use_depth, newer_than_ns)
                if best is not None and target is not None and best.image.stamp_ns >= target:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
                if target is None and images.stamps:
                    target = images.stamps[-1]  # the first image arrived during the wait
            notes: tuple[str, ...] = ()
            if best is None and self.use_depth and not require_depth:
                best = self._newest_complete(tol, False, newer_than_ns)
                if best is not None:
                    notes = (f"reconstructing without depth: {self._missing(best.image, DEPTH, tol)}",)
            if best is None:
                raise FrameUnavailable(self._why_incomplete(tol, newer_than_ns))
            age_s = ((self._clock_ns() if asked_ns is None else asked_ns) - best.image.stamp_ns) / 1e9
            if max_age_s > 0 and age_s > max_age_s:
                reason = (f"the newest complete frame (image stamped {best.image.stamp_ns / 1e9:.3f} s) is "
                          f"{age_s:.2f} s old (max_frame_age_s {max_age_s:g})")
                newest = images.items[-1]
                if newest.stamp_ns != best.image.stamp_ns:
                    reason += f"; newer images are incomplete: {self._why_incomplete(tol, best.image.stamp_ns)}"
                raise FrameUnavailable(reason)
            return FrameSet(best.image, best.camera_info, best.depth, age_s, notes)

    def _newest_complete(self, tol: float, with_depth: bool, newer_than_ns: int | None) -> FrameSet | None:
        infos, depths = self._rings[CAMERA_INFO], self._rings[DEPTH]
        for image in reversed(self._rings[IMAGE].items):
            if newer_than_ns is not None and image.stamp_ns <= newer_than_ns:
                return None
            info, dt = infos.nearest(image.stamp_ns)
            if info is None or dt > tol:
                continue
            depth = None
            if with_depth:
                depth, ddt = depths.nearest(image.stamp_ns)
                if depth is None or ddt > tol:
                    continue
            return FrameSet(image, info, depth, age_s=0.0)
        return None

    def _missing(self, image: Stamped, stream: str, tol: float) -> str:
        """Why ``image`` has no ``stream`` companion within ``tol`` ('' when it has one)."""
        ring = self._rings[stream]
        found, dt = ring.nearest(image.stamp_ns)
        if found is None:
            return f"no {stream} received yet on {self._topics[stream]}"
        if dt <= tol:
            return ""
        return (f"missing {stream} for the image stamped {image.stamp_ns / 1e9:.3f} s: the nearest of "
                f"{len(ring.stamps)} {stream} messages is {dt:.3f} s away (sync_tolerance_s {tol:g})")

    def _why_incomplete(self, tol: float, newer_than_ns: int | None) -> str:
        images = self._rings[IMAGE]
        if not images.items:
            return f"no image received yet on {self._topics[IMAGE]}"
        newest = images.items[-1]
        if newer_than_ns is not None and newest.stamp_ns <= newer_than_ns:
            return f"no image newer than {newer_than_ns / 1e9:.3f} s"
        streams = (CAMERA_INFO, DEPTH) if self.use_depth else (CAMERA_INFO,)
        reasons = [r for r in (self._missing(newest, s, tol) for s in streams) if r]
        return "; ".join(reasons) or "no complete frame"
