"""Write the demo's input frame, samples/room/, from a rendered ground-truth scene.

    python scripts/make_sample.py [--out samples/room]

The frame is rendered (dpa_testing.synthetic: exact z-buffer of known meshes at known
poses, no learned model) so that the demo can show a layout fit against known ground truth:

    rgb.png              8-bit RGB, 320×240
    depth.png            16-bit depth in millimetres (0 = no reading), with sensor-like noise
    camera_info.yaml     ROS camera_info YAML (frame camera_color_optical_frame)
    instances.json       "bring your own priors" input of dpa-reconstruct: per object its label,
                         mask (masks/<i>.png) and two mesh proposals (the right shape and a wrong one)
    meshes/*.obj         the proposals, in the glTF convention (+Y up, front toward +Z)
    ground_truth/        the true scene (scene.json + meshes) for dpa-eval
    rosbag/              the same frame as a ROS 2 bag (rosbags): Image rgb8, CameraInfo, Image 16UC1
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import yaml
from PIL import Image as PILImage

from dpa_ros.core.scene import write_scene
from dpa_testing import synthetic

FRAME_ID = "camera_color_optical_frame"
TOPICS = {"image": "/camera/color/image_raw", "camera_info": "/camera/color/camera_info",
          "depth": "/camera/aligned_depth_to_color/image_raw"}
WRONG_SHAPE = {"chair": "box", "cabinet": "cylinder", "box": "chair"}
BUILDERS = {"chair": synthetic.make_chair, "cabinet": synthetic.make_l_shape, "box": synthetic.make_box,
            "cylinder": synthetic.make_cylinder}


def shade(scene: synthetic.SyntheticScene) -> np.ndarray:
    """Flat object colours darkened with distance, plus a little texture noise (8-bit RGB)."""
    rng = np.random.default_rng(1)
    depth = np.nan_to_num(scene.depth, nan=6.0)
    light = np.clip(1.15 - 0.12 * depth, 0.35, 1.0)[..., None]
    rgb = scene.rgb.astype(float) * light + rng.normal(0, 4, scene.rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def write_bag(path: Path, rgb: np.ndarray, depth_mm: np.ndarray, cam: dict) -> None:
    """One frame as a rosbag2 (sqlite3) with the typestore of ROS 2 Humble+ messages."""
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    ts = get_typestore(Stores.ROS2_HUMBLE)
    Header, Time = ts.types["std_msgs/msg/Header"], ts.types["builtin_interfaces/msg/Time"]
    Image, CameraInfo = ts.types["sensor_msgs/msg/Image"], ts.types["sensor_msgs/msg/CameraInfo"]
    RoI = ts.types["sensor_msgs/msg/RegionOfInterest"]
    stamp_ns = 1_700_000_000_000_000_000
    header = Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=FRAME_ID)
    h, w = rgb.shape[:2]
    msgs = {
        "image": Image(header=header, height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3,
                       data=np.ascontiguousarray(rgb).reshape(-1)),
        "depth": Image(header=header, height=h, width=w, encoding="16UC1", is_bigendian=0, step=w * 2,
                       data=np.ascontiguousarray(depth_mm.astype("<u2")).view(np.uint8).reshape(-1)),
        "camera_info": CameraInfo(
            header=header, height=h, width=w, distortion_model="plumb_bob",
            d=np.zeros(5), k=np.asarray(cam["camera_matrix"]["data"], float),
            r=np.eye(3).ravel(), p=np.asarray(cam["projection_matrix"]["data"], float),
            binning_x=0, binning_y=0, roi=RoI(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)),
    }
    if path.exists():
        shutil.rmtree(path)
    with Writer(path, version=8) as writer:
        for key, msg in msgs.items():
            conn = writer.add_connection(TOPICS[key], msg.__msgtype__, typestore=ts)
            writer.write(conn, stamp_ns, ts.serialize_cdr(msg, msg.__msgtype__))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "samples" / "room")
    args = ap.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    scene = synthetic.make_scene(width=320, height=240, hfov_deg=70.0, noise_std=0.004, seed=3)
    rgb = shade(scene)
    PILImage.fromarray(rgb).save(out / "rgb.png")
    depth_mm = np.where(np.isfinite(scene.depth), np.round(scene.depth * 1000.0), 0).astype(np.uint16)
    PILImage.fromarray(depth_mm).save(out / "depth.png")
    camera = scene.camera.__class__(K=scene.camera.K, width=scene.camera.width, height=scene.camera.height,
                                    frame_id=FRAME_ID)
    cam = camera.to_camera_info_dict()
    (out / "camera_info.yaml").write_text(yaml.safe_dump(cam, sort_keys=False))

    (out / "masks").mkdir(exist_ok=True)
    (out / "meshes").mkdir(exist_ok=True)
    for name, build in BUILDERS.items():
        build().export(out / "meshes" / f"{name}.obj")
    instances = []
    for i, (label, mask) in enumerate(zip(scene.labels, scene.masks)):
        PILImage.fromarray(mask.astype(np.uint8) * 255).save(out / "masks" / f"{i}.png")
        instances.append({"label": label, "score": 1.0, "mask": f"masks/{i}.png",
                          "meshes": [f"meshes/{label}.obj",
                                     f"meshes/{WRONG_SHAPE[label]}.obj"]})
    (out / "instances.json").write_text(json.dumps(instances, indent=2) + "\n")

    gt = scene.ground_truth_scene()
    gt.camera = camera
    write_scene(gt, out / "ground_truth")
    write_bag(out / "rosbag", rgb, depth_mm, cam)
    print(f"wrote {out}: {len(instances)} objects, {camera.width}x{camera.height}")


if __name__ == "__main__":
    main()
