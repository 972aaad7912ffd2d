"""Gravity from the robot, end to end: a real node process (`smoke` profile) with
``gravity_frame:=base_link`` and ``use_imu:=true``, a robot process (test/robot_peer.py) publishing
/tf, /tf_static and an IMU for a camera pitched 50° down, and a real rclpy client in this process,
over DDS in this test run's own domain (conftest.py).

The expected gravity is computed here from the robot's own rotations with scipy (camera_link in
base_link, the REP 103 optical rotation) — independently of the node's TF buffer.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy missing: run under `. ./activate.sh` after `make setup`")
pytestmark = pytest.mark.ros

from rcl_interfaces.msg import Parameter as ParameterMsg  # noqa: E402
from rcl_interfaces.msg import ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from robot_peer import OPTICAL_IN_LINK, head_rotation  # noqa: E402
from test_ros_node import FRAME, RGB, ROOT, Client, good_frame, next_stamp, start_node, stop_node, table_depth_mm  # noqa: E402

from dpa_ros.core.camera import CameraModel  # noqa: E402
from dpa_ros.ros import conversions as conv  # noqa: E402

NS = "/dpa_test_gravity"
PITCH_DEG = 50.0


def expected_gravity() -> np.ndarray:
    R_base_optical = (head_rotation(PITCH_DEG) * OPTICAL_IN_LINK).as_matrix()
    return R_base_optical.T @ np.array([0.0, 0.0, -1.0])


def angle_deg(a, b) -> float:
    a, b = np.asarray(a, float) / np.linalg.norm(a), np.asarray(b, float) / np.linalg.norm(b)
    return float(np.degrees(np.arccos(np.clip(a @ b, -1.0, 1.0))))


@pytest.fixture(scope="module")
def robot():
    proc = subprocess.Popen([sys.executable, str(ROOT / "test" / "robot_peer.py"), NS, FRAME, str(PITCH_DEG)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        yield proc
    finally:
        proc.stdin.close()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def node(tmp_path_factory, robot):
    # imu_max_silence_s 3: on a loaded 2-core machine the node's subscriptions can be starved for a second
    # or two while it publishes a scene; the IMU's samples then arrive late (the silence threshold itself
    # is unit-tested in test_gravity.py)
    handle = start_node(tmp_path_factory.mktemp("ros_gravity"), NS, "use_depth:=true", "gravity_frame:=base_link",
                        "use_imu:=true", "imu_max_silence_s:=3.0")
    try:
        yield handle
    finally:
        stop_node(handle)


@pytest.fixture(scope="module")
def client(node, robot):
    c = Client(NS)
    try:
        assert c.wait_ready(90.0), f"node not ready in 90 s; log:\n{node.log()[-3000:]}"
        assert robot.stdout.readline().strip() == "READY", "robot_peer.py did not start"
        yield c
    finally:
        c.close()


def set_gravity(client: Client, values: list[float]):
    v = ParameterValue(type=ParameterType.PARAMETER_DOUBLE_ARRAY, double_array_value=[float(x) for x in values])
    req = SetParameters.Request(parameters=[ParameterMsg(name="gravity", value=v)])
    return client._wait(client.set_params_client.call_async(req), 10.0).results[0]


def scene_json(node, stamp_ns: int) -> dict:
    sec, nsec = divmod(stamp_ns, 1_000_000_000)
    return json.loads((node.export_dir / f"{sec}_{nsec:09d}" / "scene.json").read_text())


def test_a_missing_transform_is_refused_then_gravity_comes_from_tf_for_a_camera_pitched_50_degrees(node, client):
    # an image from a camera that is not in the robot's TF tree: refused with the reason, logged
    s, other = next_stamp(), "wrist_camera_optical_frame"
    client.publish({"image": conv.numpy_to_image(RGB, "rgb8", other, s),
                    "info": conv.camera_info_from_model(CameraModel.from_fov(RGB.shape[1], RGB.shape[0], 60.0,
                                                                             frame_id=other), stamp=s),
                    "depth": conv.numpy_to_image(table_depth_mm(), "16UC1", other, s)})
    res = client.snapshot(30.0)
    assert not res.success
    assert res.message.startswith(f"no gravity from gravity_frame 'base_link': unknown target frame '{other}'")
    assert node.wait_for_log(r"\[WARN\].*no gravity from gravity_frame 'base_link'", 5.0)

    # an image stamped 5 s ahead of the robot's /tf (a clock or a TF publisher that lags): stale, even
    # after the node's tf_wait_s and however late a loaded machine delivers the request
    ahead = next_stamp() + 5_000_000_000
    client.publish(good_frame(ahead))
    res = client.snapshot(30.0)
    while time.time_ns() <= ahead:  # later frames must be newer than this one, or it stays the newest
        time.sleep(0.05)
    assert not res.success
    assert re.search(r"^no gravity from gravity_frame 'base_link': transform base_link -> camera_link is stale: "
                     r"its newest sample is \d\.\d+ s older than the requested time", res.message), res.message

    # the next request, from the camera in the tree, is served with gravity from TF
    stamp = next_stamp()
    client.publish(good_frame(stamp))
    handle, _ = client.send_goal()
    _, result = client.result(handle)
    assert result.success, result.message
    assert "gravity_source tf:base_link" in result.message
    g = result.scene.gravity
    assert angle_deg([g.x, g.y, g.z], expected_gravity()) < 0.5
    assert angle_deg([g.x, g.y, g.z], [0.0, 1.0, 0.0]) == pytest.approx(PITCH_DEG, abs=0.5)
    background = scene_json(node, stamp)["background"]
    assert background["gravity_source"] == "tf:base_link"
    assert angle_deg(background["gravity"], expected_gravity()) < 0.5


def test_the_gravity_parameter_rejects_zero_and_nan_and_wins_over_gravity_frame(node, client):
    for bad, reason in (([0.0, 0.0, 0.0], "is (near) zero"), ([float("nan"), 1.0, 0.0], "non-finite"),
                        ([0.0, 1.0], "must have 3 components")):
        result = set_gravity(client, bad)
        assert not result.successful and reason in result.reason, result.reason
    given = [0.0, 0.6, 0.8]
    assert set_gravity(client, given).successful
    try:
        stamp = next_stamp()
        client.publish(good_frame(stamp))
        res = client.snapshot()
        assert res.success and "gravity_source parameter" in res.message, res.message
        background = scene_json(node, stamp)["background"]
        assert background["gravity_source"] == "parameter"
        np.testing.assert_allclose(background["gravity"], given, atol=1e-9)
    finally:
        assert set_gravity(client, []).successful


def test_gravity_from_the_imu_rotated_into_the_camera_frame(node, client):
    assert all(r.successful for r in client.set_params(gravity_frame=""))  # the IMU is next in precedence
    try:
        stamp = next_stamp()
        client.publish(good_frame(stamp))
        res = client.snapshot()
        assert res.success and "gravity_source imu" in res.message, res.message
        background = scene_json(node, stamp)["background"]
        assert background["gravity_source"] == "imu"
        assert angle_deg(background["gravity"], expected_gravity()) < 0.5
    finally:
        assert all(r.successful for r in client.set_params(gravity_frame="base_link"))
