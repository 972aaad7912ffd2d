"""dpa_ros.ros.tf_buffer: the project's TF buffer (used when tf2_ros is not installed), without DDS.

Expected transforms are built independently with scipy's Rotation (and its Slerp)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from dpa_ros.ros.tf_buffer import TfLookupError, TransformBuffer

S = 1_000_000_000  # ns per second


def T(rot: Rotation, t) -> np.ndarray:
    M = np.eye(4)
    M[:3, :3] = rot.as_matrix()
    M[:3, 3] = t
    return M


def put(buf: TransformBuffer, parent: str, child: str, stamp_ns: int, rot: Rotation, t, static=False) -> None:
    buf.set_transform(parent, child, stamp_ns, t, rot.as_quat(), static=static)  # scipy quaternions are x, y, z, w


@pytest.fixture
def robot():
    """map -> odom -> base_link (dynamic), base_link -> head (dynamic), head -> camera_link -> optical (static),
    base_link -> imu_link (static)."""
    buf = TransformBuffer(history_s=10.0)
    rng = np.random.default_rng(3)
    poses = {}
    for name, parent, child, static in (("odom", "map", "odom", False), ("base", "odom", "base_link", False),
                                        ("head", "base_link", "head", False),
                                        ("cam", "head", "camera_link", True),
                                        ("opt", "camera_link", "camera_optical", True),
                                        ("imu", "base_link", "imu_link", True)):
        rot, t = Rotation.random(random_state=rng), rng.normal(size=3)
        poses[name] = (rot, t)
        put(buf, parent, child, 100 * S, rot, t, static=static)
    return buf, poses


def test_a_chain_through_the_common_ancestor(robot):
    buf, p = robot
    M = {k: T(*v) for k, v in p.items()}
    # camera_optical in base_link, and imu_link in camera_optical (common ancestor base_link)
    expected = M["head"] @ M["cam"] @ M["opt"]
    np.testing.assert_allclose(buf.lookup("base_link", "camera_optical", 100 * S), expected, atol=1e-12)
    expected = np.linalg.inv(expected) @ M["imu"]
    np.testing.assert_allclose(buf.lookup("camera_optical", "imu_link", 100 * S), expected, atol=1e-12)
    # across the root: map <- camera_optical
    full = M["odom"] @ M["base"] @ M["head"] @ M["cam"] @ M["opt"]
    np.testing.assert_allclose(buf.lookup("map", "camera_optical", 100 * S), full, atol=1e-12)
    np.testing.assert_allclose(buf.lookup("camera_optical", "map", 100 * S), np.linalg.inv(full), atol=1e-12)
    np.testing.assert_allclose(buf.lookup("head", "head", 5 * S), np.eye(4))
    assert set(buf.frames()) == {"map", "odom", "base_link", "head", "camera_link", "camera_optical", "imu_link"}


def test_interpolation_is_linear_in_translation_and_slerp_in_rotation():
    buf = TransformBuffer()
    r0, r1 = Rotation.from_euler("xyz", [10, -20, 30], degrees=True), Rotation.from_euler("xyz", [60, 10, -40],
                                                                                          degrees=True)
    t0, t1 = np.array([0.0, 1.0, 2.0]), np.array([1.0, -1.0, 4.0])
    put(buf, "base_link", "head", 10 * S, r0, t0)
    put(buf, "base_link", "head", 12 * S, r1, t1)
    put(buf, "base_link", "head", 11 * S, r1, t1)  # out of order: sorted in
    put(buf, "base_link", "head", 11 * S, Rotation.identity(), t0)  # same stamp: replaces
    got = buf.lookup("base_link", "head", int(10.25 * S))
    expected_rot = Slerp([0.0, 1.0], Rotation.concatenate([r0, Rotation.identity()]))([0.25])[0]
    np.testing.assert_allclose(got[:3, :3], expected_rot.as_matrix(), atol=1e-9)
    np.testing.assert_allclose(got[:3, 3], t0, atol=1e-12)
    got = buf.lookup("base_link", "head", int(11.5 * S))
    expected_rot = Slerp([0.0, 1.0], Rotation.concatenate([Rotation.identity(), r1]))([0.5])[0]
    np.testing.assert_allclose(got[:3, :3], expected_rot.as_matrix(), atol=1e-9)
    np.testing.assert_allclose(got[:3, 3], (t0 + t1) / 2, atol=1e-12)
    # the inverse lookup is the inverse
    np.testing.assert_allclose(buf.lookup("head", "base_link", int(11.5 * S)), np.linalg.inv(got), atol=1e-12)


def test_statics_hold_at_every_time_and_dynamic_stamps_outside_the_samples_are_refused(robot):
    buf, p = robot
    np.testing.assert_allclose(buf.lookup("head", "camera_optical", 0), T(*p["cam"]) @ T(*p["opt"]), atol=1e-12)
    np.testing.assert_allclose(buf.lookup("head", "camera_optical", 10**6 * S), T(*p["cam"]) @ T(*p["opt"]),
                               atol=1e-12)
    # base_link -> head has one sample at 100 s: within tolerance it is used, beyond it is refused
    np.testing.assert_allclose(buf.lookup("base_link", "head", int(100.05 * S), tolerance_s=0.1), T(*p["head"]),
                               atol=1e-12)
    with pytest.raises(TfLookupError, match=r"transform base_link -> head is stale: its newest sample is "
                                            r"2\.000 s older .*future"):
        buf.lookup("base_link", "camera_optical", 102 * S, tolerance_s=0.1)
    with pytest.raises(TfLookupError, match=r"base_link -> head has no sample as old as 99\.000 s.*past"):
        buf.lookup("camera_optical", "base_link", 99 * S, tolerance_s=0.1)


def test_a_lookup_with_a_timeout_waits_for_the_transform_to_arrive(robot):
    """The transform at the image stamp is delivered after the request (another thread, 0.1 s
    later): a lookup with a timeout returns it; without one, or when it never comes, it is refused."""
    import threading

    buf, p = robot
    later = Rotation.from_euler("z", 30, degrees=True)
    with pytest.raises(TfLookupError, match="stale"):
        buf.lookup("base_link", "head", 101 * S)
    with pytest.raises(TfLookupError, match="stale"):  # nothing arrives: refused after the timeout
        buf.lookup("base_link", "head", 101 * S, timeout_s=0.05)
    sender = threading.Timer(0.1, lambda: put(buf, "base_link", "head", 101 * S, later, [1.0, 2.0, 3.0]))
    sender.start()
    try:
        got = buf.lookup("base_link", "head", 101 * S, timeout_s=5.0)
    finally:
        sender.join()
    np.testing.assert_allclose(got, T(later, [1.0, 2.0, 3.0]), atol=1e-12)


def test_history_is_bounded():
    buf = TransformBuffer(history_s=2.0)
    for k in range(50):  # 10 Hz for 5 s
        put(buf, "odom", "base_link", k * S // 10, Rotation.identity(), [k / 10, 0, 0])
    np.testing.assert_allclose(buf.lookup("odom", "base_link", int(3.25 * S))[0, 3], 3.25, atol=1e-9)
    with pytest.raises(TfLookupError, match="past"):
        buf.lookup("odom", "base_link", int(2.5 * S))  # dropped: more than 2 s behind the newest (4.9 s)
    assert len(buf._edges["base_link"].stamps) == 21


def test_unknown_and_unconnected_frames_are_refused_with_the_frames_known(robot):
    buf, _ = robot
    put(buf, "world", "other_camera", 100 * S, Rotation.identity(), [0, 0, 0], static=True)
    with pytest.raises(TfLookupError, match=r"unknown source frame 'wrist_camera' \(frames received: base_link, "):
        buf.lookup("base_link", "wrist_camera", 100 * S)
    with pytest.raises(TfLookupError, match="unknown target frame 'nowhere'"):
        buf.lookup("nowhere", "base_link", 100 * S)
    with pytest.raises(TfLookupError, match=r"frames 'other_camera' and 'camera_optical' are not connected "
                                            r"\(roots 'world' and 'map'\)"):
        buf.lookup("other_camera", "camera_optical", 100 * S)


def test_bad_transforms_are_rejected_and_a_new_parent_reparents():
    buf = TransformBuffer()
    with pytest.raises(ValueError, match="zero quaternion"):
        buf.set_transform("a", "b", 0, [0, 0, 0], [0, 0, 0, 0])
    with pytest.raises(ValueError, match="non-finite"):
        buf.set_transform("a", "b", 0, [np.nan, 0, 0], [0, 0, 0, 1])
    with pytest.raises(ValueError, match="to itself"):
        buf.set_transform("a", "/a", 0, [0, 0, 0], [0, 0, 0, 1])
    buf.set_transform("/a", "b", 0, [1, 0, 0], [0, 0, 0, 1], static=True)
    buf.set_transform("c", "b", 0, [2, 0, 0], [0, 0, 0, 1], static=True)
    assert buf.lookup("c", "b", 0)[0, 3] == 2.0
    with pytest.raises(TfLookupError, match="unknown target frame 'a'"):  # 'a' was only b's parent
        buf.lookup("a", "b", 0)
