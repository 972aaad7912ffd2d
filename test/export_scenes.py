"""Synthetic scenes with known ground truth for the export tests.

The ground-truth world is the export convention itself (z up, origin on the floor below the
camera, x = viewing direction projected on the floor), built here independently of
dpa_ros.export.frames: a camera 1.5 m above the floor, pitched down 20°, looking along +x.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import trimesh

from dpa_ros.core.camera import CameraModel
from dpa_ros.core.scene import Background, Plane, Scene, SceneObject

CAMERA_HEIGHT = 1.5
PITCH_DEG = 20.0


def rot_z(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])


def gt_T_world_camera(pitch_deg: float = PITCH_DEG, height: float = CAMERA_HEIGHT) -> np.ndarray:
    """Camera optical axes written out in world coordinates, pitched down by rotating about y."""
    p = np.radians(pitch_deg)
    forward = np.array([np.cos(p), 0.0, -np.sin(p)])   # optical z
    right = np.array([0.0, -1.0, 0.0])                  # optical x
    down = np.cross(forward, right)                     # optical y = z × x
    T = np.eye(4)
    T[:3, :3] = np.column_stack([right, down, forward])
    T[:3, 3] = [0.0, 0.0, height]
    return T


def similarity(R: np.ndarray, t, s: float) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = s * R
    T[:3, 3] = t
    return T


def colored(mesh: trimesh.Trimesh, rgb) -> trimesh.Trimesh:
    mesh.visual.vertex_colors = np.tile(list(rgb) + [255], (len(mesh.vertices), 1)).astype(np.uint8)
    return mesh


def gt_objects() -> list[tuple[int, str, trimesh.Trimesh, np.ndarray, float]]:
    """(id, label, object-frame mesh, T_world_object, scale): objects resting on the floor."""
    box = colored(trimesh.creation.box((0.5, 0.4, 0.8)), (200, 40, 40))               # 0.16 m³
    sphere = colored(trimesh.creation.icosphere(subdivisions=3, radius=0.6), (40, 200, 40))
    cyl = colored(trimesh.creation.cylinder(radius=0.2, height=0.5, sections=24), (40, 40, 200))
    return [
        (1, "cabinet", box, similarity(rot_z(30), [3.0, 0.5, 0.4], 1.0), 1.0),
        (2, "ball", sphere, similarity(rot_z(-50), [2.5, -0.8, 0.3], 0.5), 0.5),
        (5, "ashcan", cyl, similarity(rot_z(10), [4.0, -0.2, 0.5], 2.0), 2.0),
    ]


def floor_plane_camera(T_wc: np.ndarray) -> Plane:
    """The world plane z = 0 in the optical frame, normal towards the camera."""
    R, t = T_wc[:3, :3], T_wc[:3, 3]
    n_c = R.T @ np.array([0.0, 0.0, 1.0])
    return Plane(label="floor", normal=n_c, offset=float(t[2]), inlier_count=400)


def make_scene(with_floor: bool = True, with_cloud: bool = True, pitch_deg: float = PITCH_DEG) -> Scene:
    T_wc = gt_T_world_camera(pitch_deg)
    T_cw = np.linalg.inv(T_wc)
    objects = [SceneObject(id=i, label=lab, score=0.9, mesh=m, T_camera_object=T_cw @ T_wo, scale=s, fit_error=0.01)
               for i, lab, m, T_wo, s in gt_objects()]
    background = Background(planes=[floor_plane_camera(T_wc)] if with_floor else [], gravity=None)
    points = np.zeros((0, 3))
    colors = np.zeros((0, 3), np.uint8)
    if with_cloud:
        gx, gy = np.meshgrid(np.linspace(1.0, 5.0, 20), np.linspace(-2.0, 2.0, 20))
        floor_w = np.column_stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)])
        points = floor_w @ T_cw[:3, :3].T + T_cw[:3, 3]
        colors = np.tile(np.array([[90, 80, 70]], np.uint8), (len(points), 1))
    return Scene(camera=CameraModel.from_fov(64, 48, 60.0), objects=objects, background=background,
                 cloud_points=points, cloud_colors=colors, profile="test")


def sdformat_pkg() -> str | None:
    """pkg-config name of an installed libsdformat (>= 12, SDFormat 1.9), or None."""
    if shutil.which("g++") is None or shutil.which("pkg-config") is None:
        return None
    for name in ("sdformat15", "sdformat14", "sdformat13", "sdformat12"):
        if subprocess.run(["pkg-config", "--exists", name]).returncode == 0:
            return name
    return None


def run_sdf_check(gazebo_dir: Path, build_dir: Path) -> subprocess.CompletedProcess:
    """Compile test/export_sdf_check.cc against libsdformat into ``build_dir`` and run it on
    ``gazebo_dir/scene.sdf`` from inside that folder (as ``cd gazebo && gz sim scene.sdf`` would)."""
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", sdformat_pkg()], capture_output=True,
                           text=True, check=True).stdout.split()
    checker = build_dir / "export_sdf_check"
    subprocess.run(["g++", "-std=c++17", str(Path(__file__).with_name("export_sdf_check.cc")), *flags,
                    "-o", str(checker)], check=True, timeout=120)
    return subprocess.run([str(checker), str(gazebo_dir / "scene.sdf")], cwd=gazebo_dir,
                          capture_output=True, text=True, timeout=60)
