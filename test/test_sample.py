"""The shipped demo sample (samples/room) is consistent, and its rosbag replays as live topics."""
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from dpa_ros.assemble import load_instances_json
from dpa_ros.core.camera import CameraModel
from dpa_ros.core.scene import read_scene

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "room"


def test_sample_files_agree_with_each_other():
    camera = CameraModel.from_yaml(SAMPLE / "camera_info.yaml")
    rgb = np.asarray(PILImage.open(SAMPLE / "rgb.png"))
    depth = np.asarray(PILImage.open(SAMPLE / "depth.png"))
    assert rgb.shape == (camera.height, camera.width, 3) and rgb.dtype == np.uint8
    assert depth.shape == (camera.height, camera.width) and depth.dtype == np.uint16
    valid = depth > 0
    assert valid.mean() > 0.9 and 500 < np.median(depth[valid]) < 6000  # millimetres, a room
    instances = load_instances_json(SAMPLE / "instances.json")
    truth = read_scene(SAMPLE / "ground_truth")
    assert [i.label for i in instances] == [o.label for o in truth.objects]
    for inst, obj in zip(instances, truth.objects):
        assert inst.mask.shape == depth.shape and inst.mask.sum() > 100
        assert len(inst.meshes) == 2
        # The object's true centre projects inside its mask's bounding box.
        u, v = camera.project(obj.translation[None])[0]
        rows, cols = np.nonzero(inst.mask)
        assert cols.min() <= u <= cols.max() and rows.min() <= v <= rows.max()


@pytest.mark.ros
def test_bag_player_publishes_the_sample_frame_with_one_fresh_stamp():
    rclpy = pytest.importorskip("rclpy", reason="rclpy missing: run under `. ./activate.sh`")
    from sensor_msgs.msg import CameraInfo, Image

    player = subprocess.Popen([sys.executable, "-m", "dpa_ros.ros.bag_player", str(SAMPLE / "rosbag"),
                               "--rate", "5", "--duration", "30"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    got: dict = {}
    rclpy.init()
    try:
        node = rclpy.create_node("dpa_test_bag_listener")
        for topic, cls in (("/camera/color/image_raw", Image), ("/camera/color/camera_info", CameraInfo),
                           ("/camera/aligned_depth_to_color/image_raw", Image)):
            node.create_subscription(cls, topic, lambda m, t=topic: got.setdefault(t, []).append(m), 10)
        started = time.time()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(len(got.get(t, [])) < 2 for t in (
                "/camera/color/image_raw", "/camera/color/camera_info", "/camera/aligned_depth_to_color/image_raw")):
            rclpy.spin_once(node, timeout_sec=0.1)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
        player.terminate()
        player.wait(timeout=10)
    assert len(got) == 3, f"topics received: {sorted(got)}"
    image, info, depth = (got[t][-1] for t in ("/camera/color/image_raw", "/camera/color/camera_info",
                                               "/camera/aligned_depth_to_color/image_raw"))
    assert (image.encoding, depth.encoding) == ("rgb8", "16UC1")
    assert (image.width, image.height) == (info.width, info.height) == (320, 240)
    assert len(image.data) == image.step * image.height
    stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in (image, info, depth)}
    assert len(stamps) == 1, "one frame's messages must share one stamp"
    sec, nsec = stamps.pop()
    assert abs(sec + nsec * 1e-9 - started) < 60, "re-stamped with the current time"
    assert got["/camera/color/image_raw"][0].header.stamp != got["/camera/color/image_raw"][-1].header.stamp
