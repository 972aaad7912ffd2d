"""``dpa-export SCENE_DIR --format glb,obj,ply,gazebo,usd,mjcf [--force] ...``

Exports a scene directory written by ``dpa-reconstruct`` (``scene.json`` + meshes) into the
z-up world frame of :mod:`dpa_ros.export.frames`. Prints one line per written file; exit code 0
on success, 2 with a one-line reason on bad input or a refused overwrite.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from dpa_ros.core.scene import SceneFormatError
from dpa_ros.export import FORMATS, ExportError, ExportOptions, export_scene
from dpa_ros.export.options import COLLISION_METHODS, DECOMPOSERS, WORLD_SOURCES


def _matrix(text: str) -> np.ndarray:
    """16 numbers (row-major, comma or space separated) or a path to a text/.npy file holding them."""
    path = Path(text)
    if path.is_file():
        values = np.load(path) if path.suffix == ".npy" else np.loadtxt(path, delimiter=None, ndmin=1)
    else:
        values = np.array([float(v) for v in text.replace(",", " ").split()])
    values = np.asarray(values, np.float64).ravel()
    if values.size != 16:
        raise argparse.ArgumentTypeError(f"T_world_camera needs 16 numbers, got {values.size}")
    return values.reshape(4, 4)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dpa-export", description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("scene_dir", type=Path, help="directory with scene.json")
    p.add_argument("--format", default=",".join(FORMATS), help=f"comma-separated subset of {','.join(FORMATS)}")
    p.add_argument("--force", action="store_true", help="replace existing export files/directories")
    p.add_argument("--world", choices=WORLD_SOURCES, default="auto", help="world frame source")
    p.add_argument("--pitch", type=float, default=0.0, help="camera pitch, degrees, positive looking down")
    p.add_argument("--roll", type=float, default=0.0, help="camera roll, degrees, positive right side down")
    p.add_argument("--camera-height", type=float, default=None, help="camera height above the floor, metres")
    p.add_argument("--T-world-camera", type=_matrix, default=None, dest="T_world_camera",
                   help="4x4 camera optical frame -> world, 16 row-major numbers or a file")
    p.add_argument("--face-budget", type=int, default=None, help="decimate objects to at most this many faces")
    p.add_argument("--collision", choices=COLLISION_METHODS, default="auto",
                   help="auto: one convex hull for convex objects, a convex decomposition for concave ones")
    p.add_argument("--decomposer", choices=DECOMPOSERS, default="vhacd", help="convex decomposition library")
    p.add_argument("--max-convex-hulls", type=int, default=16, help="at most this many parts per decomposed object")
    p.add_argument("--density", type=float, default=500.0, help="object density, kg/m^3")
    p.add_argument("--static", action="store_true", help="objects do not move (Gazebo static, USD kinematic)")
    p.add_argument("--no-rigid-body", dest="rigid_body", action="store_false",
                   help="USD: colliders only, no RigidBodyAPI/MassAPI (Gazebo models become static)")
    p.add_argument("--usdc", action="store_true", help="also write scene.usdc")
    p.add_argument("--glb-z-up", action="store_true",
                   help="scene.glb in the z-up world frame instead of glTF's +Y up (for tools ignoring glTF's axes)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        options = ExportOptions(
            world_source=args.world, camera_pitch_deg=args.pitch, camera_roll_deg=args.roll,
            camera_height_m=args.camera_height, T_world_camera=args.T_world_camera, face_budget=args.face_budget,
            collision=args.collision, decomposer=args.decomposer, max_convex_hulls=args.max_convex_hulls,
            density_kg_m3=args.density,
            static=args.static, rigid_body=args.rigid_body, usdc=args.usdc, overwrite=args.force,
            glb_z_up=args.glb_z_up)
        written = export_scene(args.scene_dir, args.format.split(","), options)
    except (ExportError, SceneFormatError) as exc:
        print(f"dpa-export: {exc}", file=sys.stderr)
        return 2
    for fmt, paths in written.items():
        for path in paths:
            print(f"{fmt}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
