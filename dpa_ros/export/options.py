"""Options shared by the exporters, and the error they raise."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WORLD_SOURCES = ("auto", "floor", "gravity", "pitch_roll", "matrix")
COLLISION_METHODS = ("auto", "convex_hull", "decomposition")
DECOMPOSERS = ("vhacd", "coacd")


class ExportError(ValueError):
    """An export that cannot be done (bad option, unusable object, target exists ...)."""


@dataclass
class ExportOptions:
    """How :func:`dpa_ros.export.export_scene` builds the world frame and the simulator assets.

    Attributes:
        world_source: where the z-up world frame comes from (see :mod:`dpa_ros.export.frames`):
            ``"auto"`` (the floor plane if the scene has one, else the scene's gravity vector, else
            ``T_world_camera`` if given, else ``camera_pitch_deg``/``camera_roll_deg``),
            ``"floor"``, ``"gravity"``, ``"pitch_roll"`` or ``"matrix"`` (``T_world_camera``). A
            scene kept in a fixed frame (``Scene.T_frame_camera`` set: the node's memory) has its
            own rules for ``"auto"``, ``"floor"`` and ``"gravity"`` (the fixed frame levelled on its
            floor), takes ``T_world_camera`` as world ← fixed frame, and refuses ``"pitch_roll"``.
        camera_pitch_deg: camera pitch, degrees, positive when the camera looks down.
        camera_roll_deg: camera roll about its viewing direction, degrees, positive when the
            image's right side is lower (clockwise as seen from behind the camera).
        camera_height_m: camera height above the floor, metres, for the ``gravity`` and
            ``pitch_roll`` sources (the world origin is then on the floor below the camera);
            None puts the origin at the camera.
        T_world_camera: 4×4 rigid transform camera optical frame → world (metres), for
            ``"matrix"``; the caller promises its world is z-up.
        face_budget: maximum faces per object mesh; larger meshes are decimated (quadric edge
            collapse, vertex colours kept). None keeps every face.
        collision: collision geometry of every simulator export (Gazebo, USD, MJCF get the same
            convex parts, :mod:`dpa_ros.export.collision`): ``"auto"`` (one convex hull for a
            convex object, a convex decomposition for a concave one: a table, a chair, a mug),
            ``"convex_hull"`` (always one hull) or ``"decomposition"`` (always decomposed).
        decomposer: ``"vhacd"`` (V-HACD, package ``vhacdx``, the default) or ``"coacd"`` (CoACD).
            V-HACD is the default by ``bench/collision.py`` (concave objects resting on the floor
            in MuJoCo with a probe where the shape holds it: a box on a table top or chair seat,
            a ball inside a mug or bowl): every V-HACD scene stayed still, while CoACD at a
            per-object time budget ran into the part limit on thin-walled mugs and bowls, took
            longer there, and let the probe move; CoACD's parts hug flat-sided furniture more
            tightly (less bulge), which did not change stability. One hull per object pushes
            whatever rests in or on a concave object out of it, hence the decomposition.
        max_convex_hulls: upper bound on convex parts per decomposed object.
        density_kg_m3: density that turns the collision parts' volume into mass, kg/m³.
        static: objects do not move: Gazebo ``<static>true``; USD rigid bodies are kinematic.
        rigid_body: USD objects get ``UsdPhysics.RigidBodyAPI`` and ``MassAPI``; without it they
            are static colliders (and Gazebo models are static too).
        usdc: also write the binary ``scene.usdc`` beside ``scene.usda``.
        overwrite: replace existing export files and non-empty export directories.
        glb_z_up: write ``scene.glb`` in the z-up world frame as it is, instead of glTF's +Y up
            (for tools that ignore glTF's convention).
    """

    world_source: str = "auto"
    camera_pitch_deg: float = 0.0
    camera_roll_deg: float = 0.0
    camera_height_m: float | None = None
    T_world_camera: np.ndarray | None = None
    face_budget: int | None = None
    collision: str = "auto"
    decomposer: str = "vhacd"
    max_convex_hulls: int = 16
    density_kg_m3: float = 500.0
    static: bool = False
    rigid_body: bool = True
    usdc: bool = False
    overwrite: bool = False
    glb_z_up: bool = False

    def __post_init__(self) -> None:
        if self.world_source not in WORLD_SOURCES:
            raise ExportError(f"world_source must be one of {', '.join(WORLD_SOURCES)}, got {self.world_source!r}")
        if self.collision not in COLLISION_METHODS:
            raise ExportError(f"collision must be one of {', '.join(COLLISION_METHODS)}, got {self.collision!r}")
        if self.decomposer not in DECOMPOSERS:
            raise ExportError(f"decomposer must be one of {', '.join(DECOMPOSERS)}, got {self.decomposer!r}")
        if self.face_budget is not None and self.face_budget < 4:
            raise ExportError(f"face_budget must be at least 4 faces, got {self.face_budget}")
        if not np.isfinite(self.density_kg_m3) or self.density_kg_m3 <= 0:
            raise ExportError(f"density_kg_m3 must be positive, got {self.density_kg_m3}")
        if self.max_convex_hulls < 1:
            raise ExportError(f"max_convex_hulls must be at least 1, got {self.max_convex_hulls}")
        if self.camera_height_m is not None and not self.camera_height_m > 0:
            raise ExportError(f"camera_height_m must be positive, got {self.camera_height_m}")
        if self.T_world_camera is not None:
            T = np.asarray(self.T_world_camera, dtype=np.float64)
            if T.shape != (4, 4):
                raise ExportError(f"T_world_camera must be 4x4, got shape {T.shape}")
            self.T_world_camera = T
        if self.world_source == "matrix" and self.T_world_camera is None:
            raise ExportError("world_source 'matrix' needs T_world_camera")

    @property
    def dynamic(self) -> bool:
        """Whether objects are simulated as free rigid bodies."""
        return self.rigid_body and not self.static
