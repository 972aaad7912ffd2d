"""A second ROS 2 process that streams RGB-D frames like a camera driver, for the node's streaming test.

Run as ``python test/camera_streamer.py NAMESPACE STATS.json [--width W --height H --rate HZ
--reliability best_effort|reliable --history N --seconds S --floor PITCH_DEG HEIGHT_M]``. Every period it
stamps a frame with the current time and publishes, on ``NAMESPACE/image`` (rgb8),
``NAMESPACE/depth`` (16UC1 mm) and ``NAMESPACE/camera_info``, first the image, then after a
random 0–30 ms the depth, then the camera_info: companions arrive after their image, as with a
driver's separate topics. The pixels are test/assets/coffee.png scaled to the size, and a tilted
table plane with holes for depth (``--floor PITCH_DEG HEIGHT_M``: a floor that far below a camera
pitched that much down). It prints READY once the node's inputs are matched, streams until its
standard input closes (or ``--seconds`` pass), and writes the frames it published, the time it
took, the measured rate and each image's publish time (``time.monotonic()``, the system-wide clock
other processes read too) to STATS.json.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from dpa_ros.core.camera import CameraModel
from dpa_ros.ros import conversions as conv

ROOT = Path(__file__).resolve().parents[1]
FRAME = "streamer_camera_color_optical_frame"


def floor_depth_m(camera: CameraModel, pitch_deg: float, height_m: float) -> np.ndarray:
    """(H, W) z-depth (metres, 0 where the ray misses) of a floor ``height_m`` below a camera pitched
    ``pitch_deg`` down: the plane up·p + height_m = 0 of the optical frame, up = (0, -cos p, -sin p)."""
    p = np.radians(pitch_deg)
    u, v = np.meshgrid(np.arange(camera.width), np.arange(camera.height))
    y = (v - camera.K[1, 2]) / camera.K[1, 1]
    toward = np.cos(p) * y + np.sin(p)  # -up · (x', y', 1)
    with np.errstate(divide="ignore"):
        z = np.where(toward > 1e-3, height_m / np.maximum(toward, 1e-3), 0.0)
    return np.where(z < 20.0, z, 0.0) + 0.0 * u


def frame_messages(width: int, height: int, floor: tuple[float, float] | None = None
                   ) -> tuple[Image, Image, CameraInfo]:
    """The streamed (image, depth, camera_info): depth is a tilted table plane (rows 0.9 m to 0.45 m
    deep) or, with ``floor`` = (pitch degrees, height metres), :func:`floor_depth_m`; some holes."""
    bgr = cv2.imread(str(ROOT / "test" / "assets" / "coffee.png"), cv2.IMREAD_COLOR)
    rgb = np.ascontiguousarray(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_LINEAR)[:, :, ::-1])
    camera = CameraModel.from_fov(width, height, 60.0, frame_id=FRAME)
    if floor is None:
        rows = np.linspace(0.9, 0.45, height)[:, None] * np.ones((1, width))
    else:
        rows = floor_depth_m(camera, *floor)
    depth = np.round(rows * 1000).astype(np.uint16)
    depth[::37, ::41] = 0
    return (conv.numpy_to_image(rgb, "rgb8", FRAME), conv.numpy_to_image(depth, "16UC1", FRAME),
            conv.camera_info_from_model(camera))


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("namespace")
    ap.add_argument("stats", type=Path)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1440)
    ap.add_argument("--rate", type=float, default=12.0)
    ap.add_argument("--reliability", choices=("best_effort", "reliable"), default="reliable")
    ap.add_argument("--history", type=int, default=10,
                    help="publisher history depth (KEEP_LAST): 10 is rclcpp's and image_transport's default. "
                         "With a shallow one a reliable writer drops an image the reader has not yet "
                         "acknowledged when the next ones come, which happens when the reader's CPU is busy")
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--floor", type=float, nargs=2, metavar=("PITCH_DEG", "HEIGHT_M"),
                    help="stream a floor this far below a camera pitched this much down as depth")
    args = ap.parse_args(argv)
    rclpy.init()
    try:
        node = rclpy.create_node("dpa_test_camera")
        qos = QoSProfile(depth=args.history, history=HistoryPolicy.KEEP_LAST, durability=DurabilityPolicy.VOLATILE,
                         reliability=(ReliabilityPolicy.RELIABLE if args.reliability == "reliable"
                                      else ReliabilityPolicy.BEST_EFFORT))
        pubs = {k: node.create_publisher(t, f"{args.namespace}/{k}", qos)
                for k, t in (("image", Image), ("depth", Image), ("camera_info", CameraInfo))}
        image, depth, info = frame_messages(args.width, args.height, None if args.floor is None else tuple(args.floor))
        deadline = time.monotonic() + 60.0
        while any(p.get_subscription_count() == 0 for p in pubs.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        print("READY", flush=True)
        done = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
        rng = random.Random(20261202)
        period = 1.0 / args.rate
        t_start = time.monotonic()
        end = t_start + args.seconds
        published = 0
        publish_times = []
        next_t = t_start
        while not done.is_set() and time.monotonic() < end:
            stamp = node.get_clock().now().to_msg()
            for msg in (image, depth, info):
                msg.header.stamp = stamp
            pubs["image"].publish(image)
            publish_times.append(time.monotonic())
            time.sleep(rng.uniform(0.0, 0.03))
            pubs["depth"].publish(depth)
            pubs["camera_info"].publish(info)
            published += 1
            next_t += period
            time.sleep(max(0.0, next_t - time.monotonic()))
        elapsed = time.monotonic() - t_start
        args.stats.write_text(json.dumps({"frames": published, "seconds": elapsed, "rate_hz": published / elapsed,
                                          "width": args.width, "height": args.height,
                                          "publish_monotonic": publish_times}))
        node.destroy_node()
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
