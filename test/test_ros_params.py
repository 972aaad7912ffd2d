"""Node parameters end to end, each by its observable effect: ``prompt``, ``require_depth``,
``intrinsics``, ``export_formats`` (and its refusal of an unknown format, at start and at set time),
``publish_detections: false`` and ``sync_tolerance_s``.

A real node process (scripts/reconstruct_node, config/reconstruct.yaml, the ``smoke`` profile) and
real rclpy clients in this process, over DDS in this test run's own domain (conftest.py); the
frames are test_ros_node's (test/assets/coffee.png, a tilted table plane in 16UC1 millimetres).
The parameters that may change at run time are set on one node, in file order, each test putting
back what it changed; ``publish_detections`` is read-only, so it gets a node of its own.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: run under `. ./activate.sh` after `make setup`")
pytestmark = pytest.mark.ros

from action_msgs.msg import GoalStatus  # noqa: E402
from moveit_msgs.msg import CollisionObject  # noqa: E402
from test_ros_node import (  # noqa: E402
    CAMERA,
    FRAME,
    LATCHED,
    RGB,
    Client,
    good_frame,
    next_stamp,
    start_node,
    stop_node,
    table_depth_mm,
    wait_until,
)
from vision_msgs.msg import Detection3DArray  # noqa: E402

from dpa_ros.core.scene import read_scene  # noqa: E402
from dpa_ros.export import FORMATS, ExportOptions, output_paths  # noqa: E402
from dpa_ros.ros import conversions as conv  # noqa: E402

NS = "/dpa_test_params"
DEFAULT_PROMPT_LABELS = {"cup", "plate", "spoon", "table"}  # config/profiles/smoke.yaml's prompt
#: P of the intrinsics test: another focal length and principal point than K (CAMERA)
P_FX, P_FY, P_CX, P_CY = 200.0, 210.0, 140.0, 95.0


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    handle = start_node(tmp_path_factory.mktemp("ros_params"), NS, "use_depth:=true", "export_formats:=[obj]")
    try:
        yield handle
    finally:
        stop_node(handle)


@pytest.fixture(scope="module")
def client(node):
    c = Client(NS)
    try:
        assert c.wait_ready(90.0), f"node not ready in 90 s; log:\n{node.log()[-3000:]}"
        yield c
    finally:
        c.close()


def snapshot_ok(client: Client, stamp: int):
    """A snapshot that must succeed: (its reply message, the scene ~/scene published for ``stamp``)."""
    res = client.snapshot()
    assert res.success, res.message
    assert wait_until(lambda: client.latest("scene", stamp) is not None, 10.0)
    return res.message, client.latest("scene", stamp)


def exported_dir(message: str) -> Path:
    m = re.search(r"exported to (\S+?)(;|$)", message)
    assert m, f"no export directory in the reply: {message}"
    return Path(m.group(1))


# ------------------------------------------------------------------------------------------ prompt
def test_the_prompt_parameter_names_the_categories_and_a_goal_prompt_wins(node, client):
    assert all(r.successful for r in client.set_params(prompt="zebra. kettle."))
    try:
        stamp = next_stamp()
        client.publish(good_frame(stamp))
        message, scene = snapshot_ok(client, stamp)
        labels = {o.label for o in scene.objects}
        assert labels and labels <= {"zebra", "kettle"}, labels
        assert re.search(r"prompt 'zebra\. kettle\.'", node.log())
        # a goal's own prompt is used instead of the parameter
        client.publish(good_frame(next_stamp()))
        handle, _ = client.send_goal(prompt="lamp.")
        status, result = client.result(handle)
        assert status == GoalStatus.STATUS_SUCCEEDED, result.message
        assert result.scene.objects and {o.label for o in result.scene.objects} == {"lamp"}
    finally:
        assert all(r.successful for r in client.set_params(prompt=""))
    # '' is the profile's prompt again
    stamp = next_stamp()
    client.publish(good_frame(stamp))
    _, scene = snapshot_ok(client, stamp)
    assert scene.objects and {o.label for o in scene.objects} <= DEFAULT_PROMPT_LABELS


# ----------------------------------------------------------------------------------- require_depth
def _image_msg(stamp: int):
    return conv.numpy_to_image(RGB[:, :, ::-1], "bgr8", FRAME, stamp)


def flush_images(client: Client, with_info: bool, count: int = 30) -> None:
    """Publish ``count`` images without depth (with their camera_info when ``with_info``), more than
    the node's image buffer holds (3 x input_depth = 15): no earlier complete frame is left to serve."""
    for _ in range(count):
        stamp = next_stamp()
        client.pubs["image"].publish(_image_msg(stamp))
        if with_info:
            client.pubs["info"].publish(conv.camera_info_from_model(CAMERA, stamp=stamp))
        time.sleep(0.02)
    time.sleep(0.2)


def _without_depth(stamp: int) -> dict:
    return {"image": _image_msg(stamp), "info": conv.camera_info_from_model(CAMERA, stamp=stamp)}


def _frame_text(stamp: int) -> str:
    return f" of frame {stamp // 1_000_000_000}.{stamp % 1_000_000_000:09d} s "


DEPTH_MISSING = (r"missing depth for the image stamped {:.3f} s: the nearest of \d+ depth messages is [\d.]+ s "
                 r"away \(sync_tolerance_s 0\.02\)")


def test_require_depth_refuses_a_frame_without_depth_and_otherwise_it_falls_back_with_a_note(node, client):
    flush_images(client, with_info=True)
    stamp = next_stamp()
    client.publish(_without_depth(stamp))
    message, scene = snapshot_ok(client, stamp)          # require_depth false (the default): the fallback
    assert _frame_text(stamp) in message and " without sensor depth" in message, message
    assert re.search("; reconstructing without depth: " + DEPTH_MISSING.format(stamp / 1e9), message), message
    assert all(r.successful for r in client.set_params(require_depth=True))
    try:
        flush_images(client, with_info=True)
        stamp = next_stamp()
        client.publish(_without_depth(stamp))
        res = client.snapshot(30.0)
        assert not res.success and re.fullmatch(DEPTH_MISSING.format(stamp / 1e9), res.message), res.message
        # with its depth a frame is taken
        stamp = next_stamp()
        client.publish(good_frame(stamp))
        message, _ = snapshot_ok(client, stamp)
        assert _frame_text(stamp) in message and " with sensor depth" in message, message
    finally:
        assert all(r.successful for r in client.set_params(require_depth=False))


# -------------------------------------------------------------------------------------- intrinsics
def _frame_with_p(stamp: int) -> dict:
    """A frame whose camera_info's P differs from its K (no distortion)."""
    frame = good_frame(stamp)
    info = frame["info"]
    info.p = [P_FX, 0.0, P_CX, 0.0, 0.0, P_FY, P_CY, 0.0, 0.0, 0.0, 1.0, 0.0]
    return frame


def test_intrinsics_k_and_p_choose_the_camera_matrix_of_the_scene(node, client):
    """The exported scene.json's camera is K with intrinsics k, the left 3x3 of P with p (and with
    auto, since the distortion is zero)."""
    p = np.array([[P_FX, 0, P_CX], [0, P_FY, P_CY], [0, 0, 1]])
    expected = {"k": CAMERA.K, "p": p, "auto": p}
    assert not np.allclose(expected["k"], expected["p"])
    try:
        for choice in ("k", "p", "auto"):
            assert all(r.successful for r in client.set_params(intrinsics=choice))
            stamp = next_stamp()
            client.publish(_frame_with_p(stamp))
            message, _ = snapshot_ok(client, stamp)
            camera = read_scene(exported_dir(message)).camera
            np.testing.assert_allclose(camera.K, expected[choice], err_msg=choice)
            assert (camera.width, camera.height) == (CAMERA.width, CAMERA.height)
    finally:
        assert all(r.successful for r in client.set_params(intrinsics="auto"))


# ---------------------------------------------------------------------------------- export_formats
def _written_formats(scene_dir: Path) -> set[str]:
    return {f for f in FORMATS if all(p.exists() for p in output_paths(scene_dir, f, ExportOptions()))}


def test_export_formats_writes_exactly_those_formats_and_refuses_an_unknown_one(node, client):
    stamp = next_stamp()
    client.publish(good_frame(stamp))
    message, _ = snapshot_ok(client, stamp)
    out = exported_dir(message)
    assert _written_formats(out) == {"obj"}              # export_formats:=[obj] at start
    assert (out / "scene.json").is_file() and (out / "objects").is_dir()
    assert len(list((out / "obj_world").glob("*.obj"))) == len(read_scene(out).objects) > 0
    try:
        assert all(r.successful for r in client.set_params(export_formats=["glb", "ply"]))
        (result,) = client.set_params(export_formats=["glb", "fbx"])
        assert not result.successful
        assert result.reason == f"export_formats: unknown format(s) ['fbx']; choose from {', '.join(FORMATS)}"
        stamp = next_stamp()
        client.publish(good_frame(stamp))
        message, _ = snapshot_ok(client, stamp)
        assert _written_formats(exported_dir(message)) == {"glb", "ply"}  # the refused value changed nothing
    finally:
        assert all(r.successful for r in client.set_params(export_formats=["obj"]))


def test_an_unknown_export_format_at_start_stops_the_node_with_the_reason(tmp_path):
    handle = start_node(tmp_path, "/dpa_test_bad_export", "export_formats:=[obj,fbx]", "load_on_start:=false")
    try:
        rc = handle.proc.wait(timeout=60)
    finally:
        stop_node(handle)
    assert rc == 2
    assert re.search(r"\[FATAL\].*invalid parameter: export_formats: unknown format\(s\) \['fbx'\]; choose from "
                     + re.escape(", ".join(FORMATS)), handle.log()), handle.log()[-2000:]


# ---------------------------------------------------------------------------------- sync_tolerance_s
def _companions_late(stamp: int, late_ns: int) -> dict:
    """The image at ``stamp``, its camera_info and depth stamped ``late_ns`` later."""
    return {"image": _image_msg(stamp), "info": conv.camera_info_from_model(CAMERA, stamp=stamp + late_ns),
            "depth": conv.numpy_to_image(table_depth_mm(), "16UC1", FRAME, stamp + late_ns)}


def test_sync_tolerance_decides_whether_companions_30_ms_off_are_matched(node, client):
    flush_images(client, with_info=False)                # no image in the buffer has a camera_info
    stamp = next_stamp()
    client.publish(_companions_late(stamp, 30_000_000))
    res = client.snapshot(30.0)
    assert not res.success
    assert re.search(rf"missing camera_info for the image stamped {stamp / 1e9:.3f} s: the nearest of \d+ "
                     r"camera_info messages is 0\.030 s away \(sync_tolerance_s 0\.02\)", res.message), res.message
    assert all(r.successful for r in client.set_params(sync_tolerance_s=0.05))
    try:
        stamp = next_stamp()
        client.publish(_companions_late(stamp, 30_000_000))
        message, scene = snapshot_ok(client, stamp)      # the same offsets, now within the tolerance
        assert _frame_text(stamp) in message and " with sensor depth" in message, message
        assert conv.stamp_to_ns(scene.header.stamp) == stamp
    finally:
        assert all(r.successful for r in client.set_params(sync_tolerance_s=0.02))


# ------------------------------------------------------------------------------ publish_detections
def test_publish_detections_false_publishes_no_detections_while_the_other_outputs_come(node, client, tmp_path):
    """A node of its own (publish_detections is read-only). The module's node, which publishes them,
    is the control: its latched detections reach the same subscriber setup."""
    ns = "/dpa_test_no_detections"
    handle = start_node(tmp_path, ns, "use_depth:=true", "publish_detections:=false", export=False)
    c = None
    try:
        s0 = next_stamp()                                 # the control's detections (latched)
        client.publish(good_frame(s0))
        snapshot_ok(client, s0)
        c = Client(ns)
        got: dict[str, list] = {"off": [], "control": [], "collision": []}
        topic = f"{ns}/dpa_reconstructor/detections"
        c.node.create_subscription(Detection3DArray, topic, got["off"].append, LATCHED)
        c.node.create_subscription(Detection3DArray, f"{NS}/dpa_reconstructor/detections", got["control"].append,
                                   LATCHED)
        c.node.create_subscription(CollisionObject, "/collision_object", got["collision"].append, 100)
        assert c.wait_ready(90.0), handle.log()[-3000:]
        stamp = next_stamp()
        c.publish(good_frame(stamp))
        message, scene = snapshot_ok(c, stamp)
        assert scene.objects
        assert wait_until(lambda: c.latest("markers", stamp) is not None and c.latest("cloud", stamp) is not None,
                          10.0)
        ours = lambda: [m for m in got["collision"] if conv.stamp_to_ns(m.header.stamp) == stamp]  # noqa: E731
        assert wait_until(lambda: len(ours()) >= len(scene.objects), 10.0)
        assert wait_until(lambda: got["control"], 10.0), "the control node's latched detections never came"
        time.sleep(1.0)
        assert got["off"] == [] and c.node.count_publishers(topic) == 0
    finally:
        if c is not None:
            c.close()
        stop_node(handle)
