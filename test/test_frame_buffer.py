"""dpa_ros.ros.frame_buffer without ROS: stamps in ns, payloads are plain strings naming the message.

Stamps follow a 10 Hz camera (100 ms apart) on a clock the test controls; companions are offset by a
few ms as a driver's separate topics are.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from dpa_ros.ros.frame_buffer import (
    CAMERA_INFO,
    CAMERA_INFO_RING_FACTOR,
    DEPTH,
    IMAGE,
    LATE_COMPANION_FACTOR,
    FrameBuffer,
    FrameUnavailable,
)

MS = 1_000_000
T0 = 1_764_000_000 * 1_000_000_000  # a wall-clock-like stamp (Nov 2025), ns
TOL = 0.02


class Clock:
    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


def frame(buf: FrameBuffer, k: int, streams=(IMAGE, CAMERA_INFO, DEPTH), offset_ms: int = 0) -> int:
    """Add frame k (stamp T0 + k·100 ms) on ``streams``, in that order; return the image stamp."""
    stamp = T0 + k * 100 * MS
    for s in streams:
        buf.add(s, stamp + (offset_ms * MS if s != IMAGE else 0), f"{s}@{k}")
    return stamp


def make(use_depth: bool = True, ring: int = 5, now_k: float = 10) -> tuple[FrameBuffer, Clock]:
    clock = Clock(T0 + int(now_k * 100 * MS))
    return FrameBuffer(use_depth, ring, clock, topics={IMAGE: "/cam/image", CAMERA_INFO: "/cam/camera_info",
                                                       DEPTH: "/cam/depth"}), clock


def test_the_newest_complete_set_is_chosen_and_its_age_reported():
    buf, _ = make(now_k=3)
    for k in range(3):
        frame(buf, k)
    got = buf.select(TOL)
    assert (got.image.payload, got.camera_info.payload, got.depth.payload) == ("image@2", "camera_info@2", "depth@2")
    assert got.age_s == pytest.approx(0.1) and got.notes == ()


def test_out_of_order_arrival_across_topics_and_stamps():
    """Depth before image, camera_info last, and an older frame arriving after a newer one."""
    buf, _ = make()
    frame(buf, 5, streams=(DEPTH, IMAGE, CAMERA_INFO))
    frame(buf, 4, streams=(CAMERA_INFO, DEPTH, IMAGE))  # late, older stamps
    assert buf.newest_image_stamp() == T0 + 500 * MS
    assert buf.select(TOL).image.payload == "image@5"


def test_a_newest_image_without_companions_falls_back_to_the_newest_complete_one():
    buf, _ = make()
    frame(buf, 1)
    frame(buf, 2, streams=(IMAGE,))  # its camera_info and depth never come
    t0 = time.monotonic()
    got = buf.select(TOL, wait_s=0.2)
    assert time.monotonic() - t0 >= 0.19  # waited for the companions of image@2 first
    assert got.image.payload == "image@1" and got.depth.payload == "depth@1"


def test_a_missing_camera_info_is_named_with_the_nearest_stamp():
    buf, _ = make(use_depth=False)
    buf.add(CAMERA_INFO, T0, "info")
    buf.add(IMAGE, T0 + 103 * MS, "image")
    with pytest.raises(FrameUnavailable) as err:
        buf.select(TOL)
    assert str(err.value) == (f"missing camera_info for the image stamped {(T0 + 103 * MS) / 1e9:.3f} s: the nearest "
                              "of 1 camera_info messages is 0.103 s away (sync_tolerance_s 0.02)")


def test_nothing_received_yet_names_the_topic():
    buf, _ = make()
    with pytest.raises(FrameUnavailable, match="^no image received yet on /cam/image$"):
        buf.select(TOL)
    buf.add(IMAGE, T0, "image")
    with pytest.raises(FrameUnavailable, match="^no camera_info received yet on /cam/camera_info; "
                                               "no depth received yet on /cam/depth$"):
        buf.select(TOL)


def test_a_late_companion_is_waited_for_and_depth_is_used():
    """The race of the issue: camera_info and depth of the newest image arrive 80 ms after the request."""
    buf, _ = make()
    frame(buf, 1)
    stamp = frame(buf, 2, streams=(IMAGE,))

    def late() -> None:
        time.sleep(0.08)
        buf.add(DEPTH, stamp, "depth@2")
        buf.add(CAMERA_INFO, stamp, "camera_info@2")

    threading.Thread(target=late).start()
    t0 = time.monotonic()
    got = buf.select(TOL, wait_s=60.0)
    assert time.monotonic() - t0 < 60.0  # returned when complete (after 0.08 s), not at the end of the wait
    assert (got.image.payload, got.depth.payload) == ("image@2", "depth@2") and got.notes == ()


def test_the_first_frame_may_arrive_during_the_wait():
    buf, _ = make()
    threading.Timer(0.05, lambda: frame(buf, 3)).start()
    assert buf.select(TOL, wait_s=2.0).image.payload == "image@3"


def test_depth_is_dropped_only_when_allowed_and_after_the_wait():
    buf, _ = make()
    frame(buf, 1, streams=(IMAGE, CAMERA_INFO))
    frame(buf, 2, streams=(IMAGE, CAMERA_INFO))
    buf.add(DEPTH, T0 - 400 * MS, "old depth")
    with pytest.raises(FrameUnavailable, match=r"missing depth for the image stamped .*: the nearest of 1 depth "
                                               r"messages is 0\.600 s away"):
        buf.select(TOL, wait_s=0.05, require_depth=True)
    t0 = time.monotonic()
    got = buf.select(TOL, wait_s=0.1, require_depth=False)
    assert time.monotonic() - t0 >= 0.09
    assert got.image.payload == "image@2" and got.depth is None
    assert got.notes[0].startswith("reconstructing without depth: missing depth for the image stamped")


def test_with_depth_off_depth_is_not_needed():
    buf, _ = make(use_depth=False)
    frame(buf, 1, streams=(IMAGE, CAMERA_INFO))
    got = buf.select(TOL)
    assert got.depth is None and got.notes == ()


def test_stale_frames_are_refused_with_their_age():
    buf, clock = make(now_k=2)
    frame(buf, 1)
    assert buf.select(TOL, max_age_s=0.5).image.payload == "image@1"
    clock.now_ns = T0 + 3_600 * MS  # 3.5 s after image@1
    with pytest.raises(FrameUnavailable) as err:
        buf.select(TOL, max_age_s=0.5)
    assert str(err.value) == (f"the newest complete frame (image stamped {(T0 + 100 * MS) / 1e9:.3f} s) is 3.50 s "
                              "old (max_frame_age_s 0.5)")
    assert buf.select(TOL, max_age_s=0.0).age_s == pytest.approx(3.5)  # 0: any age


def test_a_stale_complete_frame_also_says_why_newer_images_are_incomplete():
    buf, clock = make()
    frame(buf, 1)
    frame(buf, 30, streams=(IMAGE, DEPTH))  # camera_info stopped
    clock.now_ns = T0 + 3_000 * MS
    with pytest.raises(FrameUnavailable, match=r"is 2\.90 s old \(max_frame_age_s 1\); newer images are "
                                               r"incomplete: missing camera_info for the image stamped"):
        buf.select(TOL, max_age_s=1.0)


@pytest.mark.parametrize("offset_ms, ok", [(0, True), (20, True), (-20, True), (21, False), (-21, False)])
def test_tolerance_edges(offset_ms, ok):
    buf, _ = make()
    frame(buf, 1, offset_ms=offset_ms)
    if ok:
        assert buf.select(TOL).image.payload == "image@1"
    else:
        with pytest.raises(FrameUnavailable, match=rf"is 0\.0{abs(offset_ms)} s away"):
            buf.select(TOL)


def test_one_nanosecond_beyond_the_tolerance_is_refused():
    buf, _ = make(use_depth=False)
    buf.add(IMAGE, T0, "image")
    buf.add(CAMERA_INFO, T0 + 20 * MS + 1, "info")
    with pytest.raises(FrameUnavailable):
        buf.select(TOL)
    buf.add(CAMERA_INFO, T0 - 20 * MS, "info exactly at the tolerance")
    assert buf.select(TOL).camera_info.payload == "info exactly at the tolerance"


def test_the_nearest_companion_wins():
    buf, _ = make(use_depth=False)
    buf.add(IMAGE, T0, "image")
    for dt_ms in (-15, 9, -4, 12):
        buf.add(CAMERA_INFO, T0 + dt_ms * MS, f"info {dt_ms}")
    assert buf.select(TOL).camera_info.payload == "info -4"


def test_memory_is_bounded_by_the_ring_size():
    buf, _ = make(ring=4)
    for k in range(1000):
        frame(buf, k)
        frame(buf, k)  # the same frame again (a repeated publish) replaces, does not grow
    held = 2 * 4 * LATE_COMPANION_FACTOR + 4 * CAMERA_INFO_RING_FACTOR
    assert len(buf) == held
    assert buf.select(TOL).image.payload == "image@999"
    frame(buf, 3)  # older than the whole (full) ring: dropped
    assert len(buf) == held
    assert buf.select(TOL, newer_than_ns=T0 + 995 * 100 * MS).image.payload == "image@999"


def test_a_camera_info_outlives_the_images_that_overtake_it():
    """A large image may arrive long after its small camera_info (and after later camera_infos)."""
    buf, _ = make(use_depth=False, ring=2)
    stamp = T0 + 100 * MS
    for k in range(1, 12):  # camera_info of frames 1..11 arrive first
        buf.add(CAMERA_INFO, T0 + k * 100 * MS, f"camera_info@{k}")
    buf.add(IMAGE, stamp, "image@1")
    assert buf.select(TOL).camera_info.payload == "camera_info@1"


def test_an_image_meets_a_depth_that_arrives_frames_behind_it():
    """A loaded subscriber takes the depth stream two frames behind the images (fresh-clone CI met
    this): with a queue depth of 2, the image of every depth that arrives must still be held, and the
    newest image that has its depth is chosen, never the no-depth fallback."""
    buf, _ = make(ring=2, now_k=30)
    lag = 2 * LATE_COMPANION_FACTOR - 1  # the most frames the image ring bridges
    for k in range(20):
        frame(buf, k, streams=(IMAGE, CAMERA_INFO))
        if k >= lag:
            frame(buf, k - lag, streams=(DEPTH,))
    got = buf.select(TOL, require_depth=True)
    assert (got.image.payload, got.depth.payload, got.notes) == (f"image@{19 - lag}", f"depth@{19 - lag}", ())


def test_newer_than_skips_frames_already_used():
    buf, _ = make()
    used = frame(buf, 1)
    with pytest.raises(FrameUnavailable, match="no image newer than"):
        buf.select(TOL, newer_than_ns=used)
    frame(buf, 2)
    assert buf.select(TOL, newer_than_ns=used).image.payload == "image@2"


def test_the_wait_is_bounded():
    buf, _ = make()
    frame(buf, 1, streams=(IMAGE,))
    t0 = time.monotonic()
    with pytest.raises(FrameUnavailable):
        buf.select(TOL, wait_s=0.3)
    assert time.monotonic() - t0 >= 0.29  # it waited, then raised (the raise is the bound)


def test_bad_arguments():
    with pytest.raises(ValueError, match="ring_size"):
        FrameBuffer(True, 0)
    buf, _ = make()
    with pytest.raises(ValueError, match="unknown stream 'imu'"):
        buf.add("imu", T0, None)


def test_the_node_machinery_modules_import_no_ros():
    code = ("import sys; import dpa_ros.ros.frame_buffer, dpa_ros.ros.scheduler, dpa_ros.ros.params; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'rcl_interfaces')); "
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_received_counts_every_stored_message_per_stream():
    buf, _ = make(ring=2)
    for k in range(5):  # more than the ring holds: the count is of intake, not of what is kept
        frame(buf, k, streams=(IMAGE, CAMERA_INFO))
    assert (buf.received(IMAGE), buf.received(CAMERA_INFO), buf.received(DEPTH)) == (5, 5, 0)
    assert len(buf) == min(5, 2 * LATE_COMPANION_FACTOR) + 5


def test_ages_are_measured_from_when_the_request_came():
    """A request that waited (for the models to load) is not refused the frame that was fresh when it asked."""
    buf, clock = make(now_k=2)
    asked = clock.now_ns
    frame(buf, 1)
    clock.now_ns += 50 * 100 * MS  # 5 s of loading later
    with pytest.raises(FrameUnavailable, match="5.10 s old"):
        buf.select(TOL, max_age_s=2.0)
    assert buf.select(TOL, max_age_s=2.0, asked_ns=asked).age_s == pytest.approx(0.1)
