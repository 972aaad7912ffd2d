"""The stage's entry points: :func:`settle_objects`, :func:`apply_results` and :func:`object_surfaces`."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from dpa_ros.core.scene import Background, SceneObject
from dpa_ros.geometry.gravity import check_gravity
from dpa_ros.geometry.physics.bodies import (
    _body,
    _floor_down,
    _gravity_frame,
    _hull_2d,
    _in_hull,
    _penetrations,
    _surfaces,
)
from dpa_ros.geometry.physics.config import PhysicsConfig
from dpa_ros.geometry.physics.separation import _separate
from dpa_ros.geometry.physics.support import _mark_carriers, _settle

_SURFACE_ABOVE_M = 0.03  # m: a support plane this far above an object's top may still be that top


@dataclass
class ObjectPhysics:
    """What the stage did to one object.

    Attributes:
        support: ``"floor"``, ``"plane_<k>"`` (``background.planes[k]``), ``"object_<id>"`` (the
            object it stands on), ``"none"`` (nothing to rest on within reach, or no gravity) or
            ``""`` (the stage is disabled).
        penetration_before_m, penetration_after_m: deepest penetration (m) of this object into the
            floor or a support plane (below it, inside its polygon, at most ``max_shift_m`` deep —
            deeper is under the board, not in it) or into another object, or of another object into
            it; NaN when disabled.
        shift_m: |translation change| of the object's origin (m).
        T_camera_object: the new 4×4 similarity, object → optical frame (rotation and scale as given).
        stretch: the object's new height along gravity over its old one (1.0: not stretched).
        vertices: the mesh's vertices in the object's own frame after the stretch ((V, 3); the
            given ones when ``stretch`` is 1).
    """

    support: str
    penetration_before_m: float
    penetration_after_m: float
    shift_m: float
    T_camera_object: np.ndarray
    stretch: float = 1.0
    vertices: np.ndarray | None = None


def settle_objects(objects: list[SceneObject], background: Background, config: PhysicsConfig,
                   observed: list[np.ndarray] | None = None) -> list[ObjectPhysics]:
    """Rest every object on its support and push interpenetrating pairs apart; one result per object.

    Args:
        objects: placed objects (mesh in its own frame, ``T_camera_object`` object → optical frame).
        background: its ``gravity`` (unit, down, optical frame) and its planes; planes labelled
            ``"floor"`` and ``"support"`` within 60° of level can carry objects: the floor everywhere
            (its polygon, if any, is where it was seen, not where it ends), a support plane only
            under its ``polygon`` (none: unbounded). Walls and other planes are ignored.
        config: the stage's settings.
        observed: per object its observed depth points ((N, 3), optical frame, metres) or None: a
            pair pushed apart moves the better observed body less (shares in inverse proportion to
            the point counts; equal shares when None).

    Without gravity (``background.gravity is None``) there is no down: nothing is moved, every
    support is ``"none"``, and penetrations are measured (before = after; into the floor and support
    planes along their normals). With ``config.enabled`` False nothing is measured either (support
    ``""``, NaN).

    Objects are settled bottom-up (lowest first): each rests on the highest surface under its centre
    that lifts it by at most ``max_shift_m`` (the floor, a support plane, or an object settled
    before it). Then pairs penetrating deeper than ``separation_tolerance_m`` that do not stand on
    each other are pushed apart horizontally along the best of ``directions`` directions, each moving
    with whatever stands on it; settling and pushing repeat for up to ``rounds`` rounds.
    """
    if observed is not None and len(observed) != len(objects):
        raise ValueError(f"observed has {len(observed)} entries for {len(objects)} objects")
    if not config.enabled:
        return [ObjectPhysics("", float("nan"), float("nan"), 0.0, np.array(o.T_camera_object, float))
                for o in objects]
    gravity = None if background.gravity is None else check_gravity(background.gravity, "background.gravity")
    R = _gravity_frame(gravity if gravity is not None else _floor_down(background))
    bodies = [_body(o, R, config, None if observed is None else observed[i]) for i, o in enumerate(objects)]
    surfaces = _surfaces(background.planes, R, need_up=gravity is not None)
    before = _penetrations(bodies, surfaces, config)
    _mark_carriers(bodies, config)
    if gravity is not None:
        for _ in range(config.rounds):
            _settle(bodies, surfaces, objects, config)
            if not _separate(bodies, config):
                break
        _settle(bodies, surfaces, objects, config)
    after = _penetrations(bodies, surfaces, config)
    results = []
    for o, b, pb, pa in zip(objects, bodies, before, after):
        T = np.array(o.T_camera_object, float)
        move = R.T @ (b.position - b.start)
        T[:3, 3] += move
        vertices = np.asarray(o.mesh.vertices, float)
        if b.stretch != 1.0:  # the body's vertices (gravity frame, relative to position) back to the object frame
            vertices = np.linalg.solve(R @ T[:3, :3], b.vertices.T).T
        results.append(ObjectPhysics(b.support, pb, pa, float(np.linalg.norm(move)), T, b.stretch, vertices))
    return results


def apply_results(objects: list[SceneObject], results: list[ObjectPhysics]) -> None:
    """Write :func:`settle_objects`' results into the objects (pose, support, penetrations, shift), in place."""
    if len(objects) != len(results):
        raise ValueError(f"{len(results)} physics results for {len(objects)} objects")
    for obj, r in zip(objects, results):
        obj.T_camera_object = np.array(r.T_camera_object, float)
        if r.stretch != 1.0:
            obj.mesh = trimesh.Trimesh(r.vertices, obj.mesh.faces, visual=obj.mesh.visual, process=False)
        obj.physics_stretch = float(r.stretch)
        obj.support = r.support
        obj.penetration_before_m = float(r.penetration_before_m)
        obj.penetration_after_m = float(r.penetration_after_m)
        obj.physics_shift_m = float(r.shift_m)


def object_surfaces(objects: list[SceneObject], background: Background) -> list[int]:
    """Indices into ``background.planes`` of the support planes that are an object's own surface.

    The background is fitted to the pixels outside every mask, and a mask a few pixels short leaves
    part of a table top outside it: the fit then finds a support plane where the table instance's
    top is, and a simulator gets a static slab through the table. A support plane is an object's
    surface when the centre of its polygon lies over the object's footprint, at a height above the
    lowest quarter of the object and at most ``_SURFACE_ABOVE_M`` above its top (gravity frame). A
    plane an object stands on lies at the object's bottom, and stays a support. Without gravity
    there is no height, and no plane is claimed.
    """
    if background.gravity is None:
        return []
    R = _gravity_frame(check_gravity(background.gravity, "background.gravity"))
    extents = []  # per object: its lowest and highest height and its footprint, gravity frame
    for obj in objects:
        T = np.asarray(obj.T_camera_object, float)
        v = np.asarray(obj.mesh.vertices, float) @ (R @ T[:3, :3]).T + R @ T[:3, 3]
        extents.append((v[:, 2].min(), v[:, 2].max(), _hull_2d(v[:, :2])))
    claimed = []
    for k, plane in enumerate(background.planes):
        if plane.label != "support" or plane.polygon is None or len(plane.polygon) < 3:
            continue
        centre = np.asarray(plane.polygon, float).mean(0) @ R.T
        if any(hull is not None and lo + 0.25 * (hi - lo) < centre[2] <= hi + _SURFACE_ABOVE_M
               and _in_hull(hull, centre[None, :2])[0] for lo, hi, hull in extents):
            claimed.append(k)
    return claimed
