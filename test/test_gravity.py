"""dpa_ros.geometry.gravity and dpa_ros.ros.imu: gravity from a rotation and from accelerometer samples."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dpa_ros.geometry.gravity import (
    STANDARD_GRAVITY_M_S2,
    GravityError,
    angle_deg,
    check_gravity,
    floor_disagreement_deg,
    gravity_from_accelerometer,
    gravity_from_rotation,
)
from dpa_ros.ros.imu import ImuWindow

S = 1_000_000_000


@pytest.mark.parametrize("bad, reason", [([0.0, 0.0, 0.0], "near"), ([np.nan, 1.0, 0.0], "non-finite"),
                                         ([0.0, 1.0], "3 components"), ([1.0, 0, 0, 0], "3 components")])
def test_check_gravity_rejects_zero_nan_and_wrong_length(bad, reason):
    with pytest.raises(GravityError, match=reason):
        check_gravity(bad)
    np.testing.assert_allclose(check_gravity([0, 2, 0]), [0, 1, 0])


def test_gravity_from_the_rotation_of_a_camera_pitched_50_degrees_down():
    """A level camera's optical frame has y down; pitched 50 deg down, gravity turns towards +z (forward)."""
    R_base_from_optical = Rotation.from_euler("y", 50, degrees=True).as_matrix() @ np.array(
        [[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)  # REP 103 optical axes in a REP 105 body frame, then pitch
    g = gravity_from_rotation(R_base_from_optical.T)
    np.testing.assert_allclose(g, [0.0, np.cos(np.radians(50)), np.sin(np.radians(50))], atol=1e-12)
    assert angle_deg(g, [0, 1, 0]) == pytest.approx(50.0)


def test_accelerometer_at_rest_gives_minus_the_mean_and_motion_is_refused():
    rng = np.random.default_rng(5)
    up_in_imu = Rotation.from_euler("xy", [20, -35], degrees=True).apply([0, 0, 1])
    still = STANDARD_GRAVITY_M_S2 * up_in_imu + rng.normal(scale=0.05, size=(100, 3))
    down, summary = gravity_from_accelerometer(still)
    assert angle_deg(down, -up_in_imu) < 0.1 and "100 samples" in summary
    lifting = still + 2.0 * up_in_imu  # a constant 2 m/s^2 upwards on top of gravity
    with pytest.raises(GravityError, match=r"IMU is accelerating .*\|mean\| 11\.8"):
        gravity_from_accelerometer(lifting)
    shaking = still + rng.normal(scale=1.5, size=(100, 3))  # mean near g, but vibrating
    with pytest.raises(GravityError, match="scatter above 0.5"):
        gravity_from_accelerometer(shaking)
    with pytest.raises(GravityError, match=r"\(N, 3\)"):
        gravity_from_accelerometer(np.zeros((0, 3)))


def test_imu_window_averages_around_the_stamp_and_refuses_a_silent_imu():
    window = ImuWindow()
    with pytest.raises(GravityError, match="no IMU message received yet"):
        window.down_at(10 * S, 0.5, 0.5, 0.5)
    up = np.array([0.0, 0.0, STANDARD_GRAVITY_M_S2])
    for k in range(100):  # 100 Hz from 9.0 s to 9.99 s; a jolt at 9.0-9.3 s outside the window
        a = up + (np.array([5.0, 0, 0]) if k < 30 else 0.0)
        window.add(9 * S + k * S // 100, a, "imu_link")
    down, frame, summary = window.down_at(int(9.95 * S), 0.5, 0.5, 0.5)
    np.testing.assert_allclose(down, [0, 0, -1], atol=1e-12)
    assert frame == "imu_link" and "55 samples" in summary  # 9.45 .. 9.99 s
    with pytest.raises(GravityError, match="accelerating"):  # the window includes the jolt
        window.down_at(int(9.4 * S), 0.5, 0.5, 0.5)
    with pytest.raises(GravityError, match=r"IMU is silent: its nearest sample is 2\.01 s from the image stamp"):
        window.down_at(12 * S, 0.5, 0.5, 0.5)


def test_imu_window_waits_for_samples_stamped_after_the_image():
    """A request right after its image waits for the IMU samples that belong with it (they arrive
    later over the transport), and gives up after the timeout on an IMU that stays silent."""
    import threading

    window = ImuWindow()
    up = np.array([0.0, 0.0, STANDARD_GRAVITY_M_S2])
    window.add(9 * S, up, "imu_link")
    assert not window.wait_until(10 * S, 0.05)  # nothing newer arrives: times out
    late = threading.Timer(0.1, lambda: window.add(10 * S + S // 10, up, "imu_link"))
    late.start()
    try:
        assert window.wait_until(10 * S, 5.0)  # released by the sample from the other thread
    finally:
        late.join()
    down, _, _ = window.down_at(10 * S, 0.5, 0.5, 0.5)
    np.testing.assert_allclose(down, [0, 0, -1], atol=1e-12)


def test_a_given_gravity_that_disagrees_with_the_fitted_floor_is_measured():
    """A real floor fit (planes.fit_background) on points of a floor 1.3 m below a camera pitched 40°
    down; a given gravity 20° off the true one is found 20° off the floor (the node warns above
    gravity_floor_warn_deg), the true one about 0°."""
    from dpa_ros.geometry.planes import fit_background

    rng = np.random.default_rng(2)
    down = np.array([0.0, np.cos(np.radians(40)), np.sin(np.radians(40))])
    u = np.cross(down, [1.0, 0.0, 0.0])
    u /= np.linalg.norm(u)
    v = np.cross(down, u)
    centre = 1.3 * down + 2.0 * np.cross([1.0, 0.0, 0.0], down)  # a patch ahead of the camera, on the floor
    floor_points = centre + rng.uniform(-1.5, 1.5, (4000, 1)) * u + rng.uniform(-1.5, 1.5, (4000, 1)) * v
    floor_points += rng.normal(scale=0.005, size=floor_points.shape)
    off = Rotation.from_rotvec(np.radians(20) * u).apply(down)
    bg = fit_background(floor_points, gravity=off)
    assert floor_disagreement_deg(off, bg) == pytest.approx(20.0, abs=0.5)
    assert floor_disagreement_deg(down, fit_background(floor_points, gravity=down)) < 0.5
    assert floor_disagreement_deg(down, fit_background(np.zeros((0, 3)), gravity=down)) is None
