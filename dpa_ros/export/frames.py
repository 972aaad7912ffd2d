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

A scene kept in a fixed frame (``Scene.in_fixed_frame``: the node's scene memory, in ``odom`` or
``map``) already has a place in the world, so its rule keeps that frame and only levels it
(:func:`world_from_fixed`; ``WorldFrame.T_world_camera`` then maps the fixed frame, not a camera,
to the world):

* **z** (up) is the floor normal, on the side away from gravity when the scene has a gravity vector
  not derived from that floor, else on the side the cameras were on (the latest camera,
  ``Scene.T_frame_camera``); without a floor, minus gravity; with neither, the fixed frame's own z
  (REP 105: ``odom`` and ``map`` are z up);
* **origin** on the floor, at the foot of the perpendicular from the fixed frame's origin (which
  may itself lie on the floor, as ``odom`` on a ground robot does); without a floor, the fixed
  frame's origin;
* **x** is the fixed frame's x axis projected on the floor (its y axis when x is vertical), so a
  z-up fixed frame whose origin is on the floor is the world frame unchanged.

``world_source`` ``"floor"`` and ``"gravity"`` pick the fixed-frame variants for such a scene,
``"matrix"`` takes ``T_world_camera`` as the fixed frame → world transform, and ``"pitch_roll"``
(a camera's tilt) is refused.
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
        source: what it was derived from: ``floor``, ``gravity``, ``matrix`` or ``pitch_roll``; for a
            scene in a fixed frame ``fixed_floor``, ``fixed_gravity``, ``fixed_frame`` (the frame
            as it is) or ``matrix``.
        camera_height_m: camera height above the world origin's floor (for a fixed-frame scene: the
            latest camera's height above the floor), or None when the floor is unknown.
        camera_frame_id: the frame the scene was fitted in (the optical frame), or the fixed frame
            of a memory scene; ``T_world_camera`` maps this frame to the world.
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
    if scene.in_fixed_frame:
        return _fixed_world(scene, options)
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


FIXED_SOURCES = {"auto": None, "floor": "fixed_floor", "gravity": "fixed_gravity", "matrix": "matrix"}


def world_from_fixed(up: np.ndarray, offset: float) -> np.ndarray:
    """T_world_fixed for a scene in a fixed frame: ``up`` (unit, fixed frame) is world z, the world
    origin is the point of the plane ``up·p + offset = 0`` (metres) nearest the fixed frame's
    origin, and world x is the fixed frame's x projected orthogonally to ``up`` (its y when x is
    within 0.1° of ``up``)."""
    z = _unit(up, "up direction")
    x = np.array([1.0, 0.0, 0.0]) - z[0] * z
    if np.linalg.norm(x) < 2e-3:
        x = np.array([0.0, 1.0, 0.0]) - z[1] * z
    x = _unit(x, "projected fixed-frame x axis")
    R = np.stack([x, np.cross(z, x), z])
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = -R @ (-float(offset) * z)
    return T


def _fixed_world(scene: Scene, options: ExportOptions) -> WorldFrame:
    """The world frame of a scene in a fixed frame (module docstring)."""
    if options.world_source not in FIXED_SOURCES:
        raise ExportError(f"world_source {options.world_source!r} describes a camera's tilt; the scene is in the "
                          f"fixed frame {scene.frame_id!r}: use auto, floor, gravity or matrix")
    floor, gravity = scene.background.floor, scene.background.gravity
    camera = _check_rigid(scene.T_frame_camera)[:3, 3]
    source = FIXED_SOURCES[options.world_source]
    if source is None:
        source = ("fixed_floor" if floor is not None else "fixed_gravity" if gravity is not None
                  else "matrix" if options.T_world_camera is not None else "fixed_frame")
    height = None
    if source == "fixed_floor":
        if floor is None:
            raise ExportError("world_source 'floor' but the scene has no floor plane")
        scale = float(np.linalg.norm(floor.normal))
        n, d = _unit(floor.normal, "floor normal"), float(floor.offset) / scale
        if gravity is not None and scene.background.gravity_source != "floor":
            side = -float(n @ _unit(gravity, "gravity vector"))
            if abs(side) < 1e-6:
                raise ExportError("the floor plane is parallel to gravity; cannot tell up from down")
        else:
            side = float(n @ camera + d)
            if abs(side) < 1e-6:
                raise ExportError("the floor plane passes through the latest camera; cannot tell up from down")
        n, d = np.sign(side) * n, np.sign(side) * d
        T, height = world_from_fixed(n, d), float(n @ camera + d)
    elif source == "fixed_gravity":
        if gravity is None:
            raise ExportError("world_source 'gravity' but the scene has no gravity vector")
        T = world_from_fixed(-_unit(gravity, "gravity vector"), 0.0)
    elif source == "matrix":
        if options.T_world_camera is None:
            raise ExportError("world_source 'matrix' needs T_world_camera")
        T = _check_rigid(options.T_world_camera)
    else:
        T = np.eye(4)
    return WorldFrame(T_world_camera=T, source=source, camera_height_m=height, camera_frame_id=scene.frame_id)
