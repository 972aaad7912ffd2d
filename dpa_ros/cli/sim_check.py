"""``dpa-sim-check SCENE_DIR``: simulate an exported scene in MuJoCo and report which objects moved.

A thin parser over :func:`dpa_ros.export.sim_check.check_scene` and
:func:`dpa_ros.export.sim_check.stability_image`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from dpa_ros.core.fileio import atomic_write_text
from dpa_ros.core.scene import SCENE_JSON, Scene, SceneFormatError, read_scene
from dpa_ros.export.sim_check import REPORT_JSON, STABILITY_PNG, SimCheckError, check_scene, stability_image
from dpa_ros.overlay import PREVIEW_PNG, write_png


def _base_image(scene: Scene, scene_dir: Path, image: Path | None) -> np.ndarray | None:
    """The --image (must match the camera), else preview.png when its size matches, else None."""
    path = image if image is not None else scene_dir / PREVIEW_PNG
    if not path.is_file():
        if image is not None:
            raise SimCheckError(f"--image {image} does not exist")
        return None
    rgb = np.asarray(Image.open(path).convert("RGB"))
    if rgb.shape[:2] != (scene.camera.height, scene.camera.width):
        if image is not None:
            raise SimCheckError(f"--image {image} is {rgb.shape[1]}x{rgb.shape[0]}, the scene's camera is "
                                f"{scene.camera.width}x{scene.camera.height}")
        return None
    return rgb


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dpa-sim-check", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Simulate SCENE_DIR/mujoco/scene.xml in MuJoCo (written from scene.json when missing) and "
                    "report per object the deepest contact at t=0, drift, turn and whether it stayed put. "
                    f"Writes {REPORT_JSON} and {STABILITY_PNG} into SCENE_DIR. Exit 0 when it ran, 1 with "
                    "--strict when an object moved, 2 on bad input.")
    p.add_argument("scene_dir", type=Path, help="directory with scene.json (from dpa-reconstruct)")
    p.add_argument("--duration", type=float, default=2.0, help="simulated seconds")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    p.add_argument("--write-mjcf", action="store_true", help="rewrite mujoco/ from scene.json first")
    p.add_argument("--image", type=Path, default=None,
                   help=f"RGB image to draw {STABILITY_PNG} on (default: SCENE_DIR/{PREVIEW_PNG})")
    p.add_argument("--no-image", action="store_true", help=f"do not write {STABILITY_PNG}")
    p.add_argument("--strict", action="store_true", help="exit 1 when any object is unstable")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = check_scene(args.scene_dir, duration_s=args.duration, write_mjcf=args.write_mjcf)
        atomic_write_text(args.scene_dir / REPORT_JSON, json.dumps(report.to_dict(), indent=2))
        if not args.no_image and (args.scene_dir / SCENE_JSON).is_file():
            scene = read_scene(args.scene_dir)
            write_png(args.scene_dir / STABILITY_PNG,
                      stability_image(scene, report, _base_image(scene, args.scene_dir, args.image)))
    except (SimCheckError, SceneFormatError, OSError) as exc:
        print(f"dpa-sim-check: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.table())
    return 1 if args.strict and report.stable_rate < 1.0 else 0


if __name__ == "__main__":
    sys.exit(main())
