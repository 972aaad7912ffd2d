"""The scene memory's background: a floor and gravity kept over views in the fixed frame.

Each view's background (:class:`~dpa_ros.core.scene.Background`, camera optical frame) is carried
into the fixed frame by ``T_fixed_camera`` (camera optical frame → fixed frame, metres):

* Floor. The view's floor plane n·p + d = 0 becomes n_f = R n, d_f = d − n_f·t (R, t: the
  rotation and translation of ``T_fixed_camera``), with n_f turned towards that view's camera
  centre t. The memory's floor is the consensus of the last ``MAX_FLOORS`` views' floors: the
  largest group (by inlier count) of floors within ``FLOOR_ANGLE_DEG`` and ``FLOOR_OFFSET_M`` of
  one of them, averaged (normals and offsets weighted by inlier count). A view whose floor fit is a
  table top or a wall then does not move the kept floor. It is unbounded (no polygon).
* Gravity. A view's gravity from a sensor or a parameter (``gravity_source`` not ``"floor"``) is
  carried by R and kept, the latest one winning; otherwise gravity is minus the kept floor's
  normal (``"floor"``), or unknown.
* Other planes (support planes, walls) are those of the latest view, carried into the fixed frame
  (polygons included).

:func:`settle_in_frame` then rests the memory's objects on that floor and on each other with the
pipeline's own physics stage (:mod:`dpa_ros.geometry.physics`), which works in any frame whose
planes and gravity are given in it.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from dpa_ros.core.scene import Background, Plane, SceneObject

#: Views whose floors are kept for the consensus.
MAX_FLOORS = 20
#: Two floors agree when their normals are within this angle (degrees) and offsets within this (m).
FLOOR_ANGLE_DEG = 5.0
FLOOR_OFFSET_M = 0.05


def plane_to_frame(plane: Plane, T: np.ndarray) -> Plane:
    """``plane`` (camera optical frame) in the frame ``T`` (4×4 rigid, optical → that frame, metres)
    maps into, its normal turned towards the camera centre (``T``'s translation); polygon carried too."""
    T = np.asarray(T, float)
    R, t = T[:3, :3], T[:3, 3]
    scale = float(np.linalg.norm(plane.normal))
    if not np.isfinite(scale) or scale < 1e-9:
        raise ValueError(f"plane {plane.label!r} has a zero or non-finite normal {np.asarray(plane.normal).tolist()}")
    n = R @ (np.asarray(plane.normal, float) / scale)
    d = float(plane.offset) / scale - float(n @ t)
    if float(n @ t) + d < 0:  # n·c + d is the camera's signed height: make it positive
        n, d = -n, -d
    polygon = None if plane.polygon is None else np.asarray(plane.polygon, float) @ R.T + t
    return Plane(label=plane.label, normal=n, offset=d, inlier_count=int(plane.inlier_count), polygon=polygon)


class BackgroundMemory:
    """The fixed-frame floor, gravity and latest planes of a :class:`~dpa_ros.memory.SceneMemory`
    (module docstring)."""

    def __init__(self) -> None:
        self._floors: list[Plane] = []
        self._planes: list[Plane] = []
        self._gravity: np.ndarray | None = None
        self._gravity_source = "none"

    def clear(self) -> None:
        """Forget every floor, plane and gravity vector."""
        self.__init__()

    def observe(self, background: Background, T_fixed_camera: np.ndarray) -> None:
        """Carry one view's ``background`` (optical frame) into the fixed frame and keep it."""
        T = np.asarray(T_fixed_camera, float)
        floor = background.floor
        if floor is not None:
            self._floors = (self._floors + [plane_to_frame(floor, T)])[-MAX_FLOORS:]
        self._planes = [plane_to_frame(p, T) for p in background.planes if p.label != "floor"]
        if background.gravity is not None and background.gravity_source != "floor":
            g = T[:3, :3] @ np.asarray(background.gravity, float)
            self._gravity, self._gravity_source = g / np.linalg.norm(g), background.gravity_source

    def floor(self) -> Plane | None:
        """The consensus floor in the fixed frame (module docstring), or None before any floor was seen."""
        if not self._floors:
            return None
        normals = np.array([p.normal for p in self._floors])
        offsets = np.array([p.offset for p in self._floors])
        weights = np.array([max(int(p.inlier_count), 1) for p in self._floors], float)
        agree = ((normals @ normals.T >= np.cos(np.radians(FLOOR_ANGLE_DEG)))
                 & (np.abs(offsets[:, None] - offsets[None, :]) <= FLOOR_OFFSET_M))
        best = agree[int(np.argmax(agree.astype(float) @ weights))]
        w = weights[best]
        n = w @ normals[best]
        scale = float(np.linalg.norm(n))
        return Plane(label="floor", normal=n / scale, offset=float(w @ offsets[best]) / w.sum(),
                     inlier_count=int(w.sum()))

    def background(self) -> Background:
        """The kept background in the fixed frame: the consensus floor first, then the latest view's
        other planes; gravity as the module docstring says."""
        floor = self.floor()
        planes = ([floor] if floor is not None else []) + [dataclasses.replace(p) for p in self._planes]
        if self._gravity is not None:
            return Background(planes=planes, gravity=self._gravity.copy(), gravity_source=self._gravity_source)
        if floor is not None:
            return Background(planes=planes, gravity=-floor.normal, gravity_source="floor")
        return Background(planes=planes)


def settle_in_frame(objects: list[SceneObject], background: Background,
                    observed: list[np.ndarray] | None, physics=None) -> tuple[list[SceneObject], Background]:
    """(objects, background): copies of ``objects`` (poses in ``background``'s frame) rested on its
    floor, its support planes and each other by :func:`dpa_ros.geometry.physics.settle_objects`
    (``physics``: a :class:`~dpa_ros.geometry.physics.PhysicsConfig`, default settings when None;
    ``observed``: per object its depth points in that frame, metres), and a copy of ``background``
    whose support planes that are an object's own top are relabelled ``"plane"`` (as the pipeline
    does). Without gravity the poses stay and only the penetrations are measured."""
    from dpa_ros.geometry.physics import PhysicsConfig, apply_results, object_surfaces, settle_objects

    out = [dataclasses.replace(o, T_camera_object=np.array(o.T_camera_object, float)) for o in objects]
    background = dataclasses.replace(background, planes=[dataclasses.replace(p) for p in background.planes])
    if not out:
        return out, background
    physics = physics if physics is not None else PhysicsConfig()
    for k in object_surfaces(out, background):  # an object's own top is no separate support
        background.planes[k].label = "plane"
    apply_results(out, settle_objects(out, background, physics, observed=observed))
    return out, background
