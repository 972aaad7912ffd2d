"""The z-up world frame every export is written in, and how it is derived from a scene.

Convention (written into every exported file's metadata, see :meth:`WorldFrame.metadata`):

* right-handed, **z up**, lengths in **metres**, gravity along **-z**;
* **origin** on the floor, directly below the camera's optical centre, when the floor is known
  (a fitted floor plane, or a camera height given by the user); otherwise at the camera centre;
* **x** is the camera's viewing direction (optical +z) projected onto the horizontal plane
  (when the camera looks straight down, the image's "up" direction, optical -y, is used);
* **y** = z × x (to the left of the viewing direction, as in REP 103's x forward / y left).

Objects are fitted in the camera optical frame (REP 103: x right, y down, z forward). The world
frame is found from, in the order of ``ExportOptions.world_source == "auto"``:

1. the scene's floor plane n·p + d = 0 (n unit, pointing at the camera, so n is "up" and d is
   the camera height; a plane given with the opposite sign is read the same way);
2. the scene's gravity vector (unit, pointing down, optical frame);
3. a user-given ``T_world_camera`` (taken verbatim; e.g. from TF);
4. the camera pitch/roll given in :class:`ExportOptions` (a level camera by default).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpa_ros.core.scene import Plane, Scene
from dpa_ros.export.options import ExportError, ExportOptions

CONVENTION = ("dpa_ros world frame: right-handed, z up, metres, gravity -z; x = camera viewing direction "
              "projected on the floor, y = z cross x; origin on the floor below the camera when the floor "
              "is known, else at the camera")

# Level camera: optical axes expressed in the world frame (x right = -y_w, y down = -z_w, z fwd = x_w).
_R_WORLD_LEVEL_CAMERA = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@dataclass(frozen=True)
class WorldFrame:
    """The export world frame relative to the camera.

    Attributes:
        T_world_camera: 4×4 rigid transform, camera optical frame → world, metres.
        source: what it was derived from: ``floor``, ``gravity``, ``matrix`` or ``pitch_roll``.
        camera_height_m: camera height above the world origin's floor, or None when unknown.
        camera_frame_id: the optical frame the scene was fitted in.
    """

    T_world_camera: np.ndarray
    source: str
    camera_height_m: float | None
    camera_frame_id: str

    @property
    def rotation(self) -> np.ndarray:
        return self.T_world_camera[:3, :3]

    def points_to_world(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) optical-frame points → world points."""
        return np.asarray(points, np.float64) @ self.rotation.T + self.T_world_camera[:3, 3]

    def pose_to_world(self, T_camera_object: np.ndarray) -> np.ndarray:
        """4×4 (similarity) pose in the optical frame → the same pose in the world frame."""
        return self.T_world_camera @ np.asarray(T_camera_object, np.float64)

    def plane_to_world(self, plane: Plane) -> tuple[np.ndarray, float]:
        """(n_w, d_w) with n_w·p_w + d_w = 0 for an optical-frame plane."""
        n_w = self.rotation @ np.asarray(plane.normal, np.float64)
        return n_w, float(plane.offset - n_w @ self.T_world_camera[:3, 3])

    def metadata(self) -> dict:
        """JSON-able description of the frame, written into GLB extras, SDF comments, USD layer data."""
        return {
            "convention": CONVENTION,
            "up_axis": "Z",
            "meters_per_unit": 1.0,
            "gravity_direction": [0.0, 0.0, -1.0],
            "source": self.source,
            "camera_frame_id": self.camera_frame_id,
            "camera_height_m": self.camera_height_m,
            "T_world_camera": np.round(self.T_world_camera, 9).tolist(),
        }


def _unit(v: np.ndarray, what: str) -> np.ndarray:
    v = np.asarray(v, np.float64).reshape(3)
    n = np.linalg.norm(v)
    if not np.isfinite(n) or n < 1e-9:
        raise ExportError(f"{what} is zero or not finite: {v.tolist()}")
    return v / n


def world_from_up(up_camera: np.ndarray, origin_camera: np.ndarray) -> np.ndarray:
    """T_world_camera for an "up" direction and a world origin, both in the optical frame.

    x is the optical axis projected on the plane orthogonal to ``up`` (optical -y when the camera
    looks along ``up``); ``origin_camera`` (metres) becomes the world origin.
    """
    z = _unit(up_camera, "up direction")
    forward = np.array([0.0, 0.0, 1.0])
    x = forward - (forward @ z) * z
    if np.linalg.norm(x) < 1e-6:  # looking straight up or down: image up is "forward"
        image_up = np.array([0.0, -1.0, 0.0])
        x = image_up - (image_up @ z) * z
    x = _unit(x, "projected viewing direction")
    y = np.cross(z, x)
    R = np.stack([x, y, z])  # rows: world axes in optical coordinates
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = -R @ np.asarray(origin_camera, np.float64)
    return T


def rotation_from_pitch_roll(pitch_deg: float, roll_deg: float) -> np.ndarray:
    """R_world_camera (3×3) for a camera with the given pitch and roll (degrees) and zero yaw.

    The camera is first pitched about the world y axis (positive = looking down), then rolled
    about its own viewing direction (positive = image right side down).
    """
    p, r = np.radians(pitch_deg), np.radians(roll_deg)
    R_pitch = np.array([[np.cos(p), 0.0, np.sin(p)], [0.0, 1.0, 0.0], [-np.sin(p), 0.0, np.cos(p)]])
    R_roll = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(r), -np.sin(r)], [0.0, np.sin(r), np.cos(r)]])
    return R_pitch @ R_roll @ _R_WORLD_LEVEL_CAMERA


def _from_gravity(gravity: np.ndarray, height: float | None) -> tuple[np.ndarray, float | None]:
    down = _unit(gravity, "gravity vector")
    origin = down * height if height is not None else np.zeros(3)
    return world_from_up(-down, origin), height


def _from_floor(floor: Plane) -> tuple[np.ndarray, float]:
    """Up is the floor normal on the camera's side (the sign of d says which side that is)."""
    n = _unit(floor.normal, "floor normal")
    signed_height = float(floor.offset) / float(np.linalg.norm(floor.normal))
    if not abs(signed_height) > 1e-6:
        raise ExportError(f"floor plane passes through the camera (offset {floor.offset}); cannot tell up from down")
    n, height = np.sign(signed_height) * n, abs(signed_height)
    return world_from_up(n, -n * height), height


def _check_rigid(T: np.ndarray) -> np.ndarray:
    T = np.asarray(T, np.float64)
    R = T[:3, :3]
    if (not np.all(np.isfinite(T)) or not np.allclose(R @ R.T, np.eye(3), atol=1e-5)
            or np.linalg.det(R) < 0 or not np.allclose(T[3], [0, 0, 0, 1])):
        raise ExportError("T_world_camera must be a rigid transform (orthonormal rotation, det +1, last row 0 0 0 1)")
    return T


def world_frame(scene: Scene, options: ExportOptions) -> WorldFrame:
    """Derive the export world frame for ``scene`` following ``options.world_source``."""
    source = options.world_source
    floor = scene.background.floor
    gravity = scene.background.gravity
    if source == "auto":
        if floor is not None:
            source = "floor"
        elif gravity is not None:
            source = "gravity"
        elif options.T_world_camera is not None:
            source = "matrix"
        else:
            source = "pitch_roll"
    if source == "floor":
        if floor is None:
            raise ExportError("world_source 'floor' but the scene has no floor plane")
        T, height = _from_floor(floor)
    elif source == "gravity":
        if gravity is None:
            raise ExportError("world_source 'gravity' but the scene has no gravity vector")
        T, height = _from_gravity(gravity, options.camera_height_m)
    elif source == "matrix":
        T, height = _check_rigid(options.T_world_camera), None
    else:
        T = np.eye(4)
        T[:3, :3] = rotation_from_pitch_roll(options.camera_pitch_deg, options.camera_roll_deg)
        height = options.camera_height_m
        T[:3, 3] = [0.0, 0.0, height or 0.0]
    return WorldFrame(T_world_camera=T, source=source, camera_height_m=height, camera_frame_id=scene.frame_id)
