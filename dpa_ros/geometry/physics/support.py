"""Resting each body on its support: translated along gravity, slid just inside a support's edge,
or stretched with its top held (the package docstring says when)."""
from __future__ import annotations

import numpy as np
import trimesh
from scipy.spatial import ConvexHull

from dpa_ros.core.scene import SceneObject
from dpa_ros.geometry.fields import raycasting_scene
from dpa_ros.geometry.physics.bodies import _FAR, _Body, _cast, _in_hull, _room, _Surface
from dpa_ros.geometry.physics.config import PhysicsConfig

_MISFIT_CAP_M = 0.05     # m: the most one observed point adds to a body's misfit
_ONTO_TOLERANCE_M = 0.02  # m: a body whose bottom is this close to a support's top stands on it ...
_ONTO_MARGIN_M = 0.01     # m: ... and is slid this far inside its edge when its centre lies beyond it
_MIN_OBSERVED = 20       # observed points below which the observation decides nothing about the shape


def _stack_lift(upper: _Body, lower: _Body, config: PhysicsConfig) -> float | None:
    """The vertical move (m) that puts ``upper``'s underside ``contact_gap_m`` above ``lower``'s top,
    over the columns both cover; None when no vertical line meets both."""
    lo = np.maximum(upper.lo[:2], lower.lo[:2])
    hi = np.minimum(upper.hi[:2], lower.hi[:2])
    if np.any(hi <= lo):
        return None
    k = config.columns
    u = (np.arange(k) + 0.5) / k
    xy = np.stack(np.meshgrid(lo[0] + u * (hi[0] - lo[0]), lo[1] + u * (hi[1] - lo[1])), -1).reshape(-1, 2)
    top_start = lower.hi[2] + _FAR
    bottom_start = upper.lo[2] - _FAR
    down = _cast(lower.scene, np.column_stack([xy, np.full(len(xy), top_start)]) - lower.position,
                 np.array([0.0, 0.0, -1.0]))
    up = _cast(upper.scene, np.column_stack([xy, np.full(len(xy), bottom_start)]) - upper.position,
               np.array([0.0, 0.0, 1.0]))
    both = np.isfinite(down) & np.isfinite(up)
    if not both.any():
        return None
    return float(np.max((top_start - down[both]) - (bottom_start + up[both]))) + config.contact_gap_m


def _plane_lift(body: _Body, surface: _Surface, gap: float) -> float | None:
    """The vertical move (m) that puts the body's lowest vertex over ``surface`` ``gap`` above it."""
    v = body.vertices + body.position
    v = v[surface.covers(v[:, :2])]
    if len(v) == 0:
        return None
    return float(np.max(surface.height(v[:, :2]) - v[:, 2])) + gap


def _settle(bodies: list[_Body], surfaces: list[_Surface], objects: list[SceneObject],
            config: PhysicsConfig) -> None:
    """Move each body along gravity onto its support, lowest body first (see :func:`settle_objects`)."""
    settled: list[int] = []
    for i in sorted(range(len(bodies)), key=lambda i: bodies[i].lo[2]):
        body = bodies[i]
        centre = body.centre_xy[None]
        reach = min(_room(body, config), float(np.min(np.ptp(body.vertices[:, :2], axis=0))) / 2.0)
        candidates = []   # (lift, support name, index of the body below or -1, horizontal slide onto it)
        for s in surfaces:
            slide = np.zeros(2) if s.covers(centre)[0] else _slide_onto(s.hull, body.centre_xy, np.zeros(2), reach)
            lift = None if slide is None else _plane_lift(body, s, config.contact_gap_m)
            if lift is not None and (s.is_floor or lift <= config.max_shift_m) and _may_slide(slide, lift):
                candidates.append((lift, s.name, -1, slide))
        for j in settled:
            other = bodies[j]
            if other.footprint is None:
                continue
            slide = _slide_onto(other.footprint, body.centre_xy, other.position[:2], reach)
            lift = None if slide is None else _stack_lift(body, other, config)
            if lift is not None and lift <= config.max_shift_m and _may_slide(slide, lift):
                candidates.append((lift, f"object_{objects[j].id}", j, slide))
        settled.append(i)
        if not candidates:
            body.support, body.below = "none", -1
            continue
        lift, name, below, slide = max(candidates, key=lambda c: c[0])
        if np.any(slide):  # its bottom is at the support's top, its centre just beyond the support's edge
            body.position[:2] += slide
            lift = _plane_lift(body, next(s for s in surfaces if s.name == name), config.contact_gap_m) \
                if below < 0 else _stack_lift(body, bodies[below], config)
            if lift is None:  # nothing under it after all
                body.position[:2] -= slide
                body.support, body.below = "none", -1
                continue
        moved = body.position[2] - body.start[2]
        if (body.carries and abs(lift) > config.contact_gap_m
                or abs(lift) >= config.min_stretch_m and _observation_prefers_stretch(body, lift, config)) \
                and _stretch_onto(body, lift, config):
            body.support, body.below = name, below  # its top, and what stands on it, stay where observed
            continue
        if abs(moved + lift) > config.max_shift_m:  # out of the layout's error bound: stretch, or give up
            if _stretch_onto(body, lift, config):
                body.support, body.below = name, below
            elif moved + lift < 0:  # it would fall further than the observation allows
                body.support, body.below = "none", -1
            else:
                body.position[2] = body.start[2] + config.max_shift_m
                body.support, body.below = name, below
            continue
        body.position[2] = body.start[2] + moved + lift
        body.support, body.below = name, below


def _slide_onto(hull: ConvexHull, centre_xy: np.ndarray, offset: np.ndarray, reach: float) -> np.ndarray | None:
    """The shortest horizontal move (m, gravity frame) that puts ``centre_xy`` ``_ONTO_MARGIN_M`` inside
    ``hull`` (whose coordinates are relative to ``offset``): zeros when the centre is inside already,
    None when the move would exceed ``reach`` or the hull is too small to hold it."""
    normals, offsets = hull.equations[:, :2], hull.equations[:, 2]   # unit outward normals: n·p + b ≤ 0 inside
    c = np.asarray(centre_xy, float) - offset
    if np.all(normals @ c + offsets <= 0):
        return np.zeros(2)
    b = offsets + _ONTO_MARGIN_M   # the hull shrunk by the margin
    # the nearest point of the shrunk hull lies on one of its edge lines, or at a corner of two of them
    points = [c - (normals @ c + b)[:, None] * normals]
    i, j = np.triu_indices(len(normals), 1)
    det = normals[i, 0] * normals[j, 1] - normals[i, 1] * normals[j, 0]
    ok = np.abs(det) > 1e-9
    i, j, det = i[ok], j[ok], det[ok]
    points.append(np.column_stack([(-b[i] * normals[j, 1] + b[j] * normals[i, 1]) / det,
                                   (-b[j] * normals[i, 0] + b[i] * normals[j, 0]) / det]))
    points = np.concatenate(points)
    points = points[np.all(points @ normals.T + b <= 1e-9, axis=1)]
    if len(points) == 0:
        return None
    move = points[np.argmin(np.linalg.norm(points - c, axis=1))] - c
    return move if np.linalg.norm(move) <= reach else None


def _may_slide(slide: np.ndarray, lift: float) -> bool:
    """A support whose edge the centre lies beyond carries the body only when the body's bottom is
    already at its top (within ``_ONTO_TOLERANCE_M``): the observation put it there."""
    return not np.any(slide) or abs(lift) <= _ONTO_TOLERANCE_M


def _mark_carriers(bodies: list[_Body], config: PhysicsConfig) -> None:
    """Flag each body something stands on: another body whose centre lies over its footprint and
    whose bottom is in its upper half, at most ``max_shift_m`` above its top."""
    for i, base in enumerate(bodies):
        if base.footprint is None:
            continue
        middle = (base.lo[2] + base.hi[2]) / 2.0
        for j, other in enumerate(bodies):
            if j != i and middle <= other.lo[2] <= base.hi[2] + config.max_shift_m and \
                    _in_hull(base.footprint, other.centre_xy[None] - base.position[:2])[0]:
                base.carries = True
                break


def _observation_misfit(scene, points: np.ndarray) -> float:
    """Mean distance (m) of ``points`` to the mesh of ``scene``, each capped at ``_MISFIT_CAP_M`` (a point of
    a neighbour the mask took in counts, but only so much)."""
    import open3d as o3d

    d = scene.compute_distance(o3d.core.Tensor(points.astype(np.float32))).numpy()
    return float(np.mean(np.minimum(d, _MISFIT_CAP_M)))


def _stretch_factor(body: _Body, lift: float) -> float | None:
    """The stretch that moves the body's bottom by ``lift`` (m) with its top held; None for a flat body."""
    height = (body.top - body.vertices[:, 2].min()) / body.stretch  # the given height
    return None if height <= 0 else body.stretch - lift / height


def _observation_prefers_stretch(body: _Body, lift: float, config: PhysicsConfig) -> bool:
    """Whether the observed depth points fit the body better stretched along gravity (top held, bottom
    moved by ``lift`` m) than translated by ``lift``: a generated mesh's height is less certain than where
    the camera saw its top. False without observed points (translation keeps the generated shape)."""
    if body.observed is None or len(body.observed) < _MIN_OBSERVED:
        return False
    factor = _stretch_factor(body, lift)
    if factor is None or abs(factor - 1.0) > config.max_stretch:
        return False
    seen = body.observed - body.position
    translated = _observation_misfit(body.scene, seen - np.array([0.0, 0.0, lift]))
    vertices = body.vertices.copy()
    vertices[:, 2] = body.stretched_z(vertices[:, 2], factor)
    stretched = _observation_misfit(raycasting_scene(trimesh.Trimesh(vertices, body.faces, process=False)), seen)
    return stretched < translated


def _stretch_onto(body: _Body, lift: float, config: PhysicsConfig) -> bool:
    """Stretch (``lift`` < 0) or compress (> 0) the body along gravity, top held, so that its bottom
    moves by ``lift`` (m); False, and nothing changed, when that is more than ``max_stretch``."""
    factor = _stretch_factor(body, lift)
    if factor is None or abs(factor - 1.0) > config.max_stretch:
        return False
    body.stretch_to(factor)
    return True
