"""Physical consistency after the layout: every object rests on its support, no two bodies interpenetrate.

:func:`settle_objects` takes the placed objects (each a mesh in its own frame and a 4×4 similarity
``T_camera_object``, object → camera optical frame, metres) and the fitted background, and moves each
object by a translation — never a rotation, never a scale — so that:

* it rests on its support: the floor, a support plane whose polygon lies under its centre, or the
  top of another object it stands on, ``contact_gap_m`` above it;
* no two bodies penetrate each other by more than a tolerance; overlapping pairs are pushed apart
  horizontally (perpendicular to gravity) by about the smallest translation, split between the two.

One exception to "translation only": an object is stretched (or compressed) along gravity with its
top held in place, by at most ``max_stretch`` of its height, so that its bottom meets the support
while its top, seen by the camera, and what stands on it stay where they were observed, when

* it carries others (something stands on its top: a table with cups on it);
* its observed depth points fit the stretched mesh better than the translated one (a generated
  table whose legs came out too short or too long, seen from above), and the correction is at
  least ``min_stretch_m``;
* or its support is farther below it (or deeper above its bottom) than ``max_shift_m``.

Support planes the background fit found on an instance's own top (:func:`object_surfaces`) are
that instance's surface, not separate boards.

All the work is done in a gravity-aligned frame: the optical frame rotated so that +z is up
(``-background.gravity``); distances are metres in either frame.

Measuring "inside" robustly: generated meshes need not be watertight, so a point counts as inside a
mesh when the majority of ``occupancy_rays`` rays from it cross the mesh an odd number of times
(open3d ``RaycastingScene.compute_occupancy``); a hole lets one ray out but not most. Its depth is its
distance to that mesh's surface. Vertical and horizontal extents (what stands on what, how far to push)
use first hits of ray casts, which need no closed surface at all.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh
from scipy.spatial import ConvexHull, QhullError

from dpa_ros.core.scene import Background, Plane, SceneObject
from dpa_ros.geometry.fields import raycasting_scene
from dpa_ros.geometry.gravity import check_gravity

_MIN_UP_COMPONENT = 0.5  # a floor or support plane whose normal is more than 60° off up supports nothing
_FAR = 1.0               # m: how far outside a body a ray starts
_MISFIT_CAP_M = 0.05     # m: the most one observed point adds to a body's misfit
_SURFACE_ABOVE_M = 0.03  # m: a support plane this far above an object's top may still be that top
_ONTO_TOLERANCE_M = 0.02  # m: a body whose bottom is this close to a support's top stands on it ...
_ONTO_MARGIN_M = 0.01     # m: ... and is slid this far inside its edge when its centre lies beyond it
_MIN_OBSERVED = 20       # observed points below which the observation decides nothing about the shape


class PhysicsConfigError(ValueError):
    """A :class:`PhysicsConfig` value out of range."""


@dataclass(frozen=True)
class PhysicsConfig:
    """Settings of the physical-consistency stage.

    Attributes:
        enabled: run the stage at all (off: :func:`settle_objects` returns every pose unchanged,
            support ``""``, penetrations NaN).
        max_penetration_m: the deepest two bodies may overlap afterwards (m); pairs deeper than
            ``separation_tolerance_m`` are pushed apart, and this is the bound the tests hold.
        contact_gap_m: a resting object sits this far (m) above its support, and pushed-apart pairs
            this far from each other (≥ 0).
        max_shift_m: the most (m) the stage moves an object vertically, and separately horizontally:
            the layout's error bound. A support that would lift the object more than this is not
            its support (it is something the object stands beside or under); an object that would
            fall further than this is left where it is, support ``"none"``.
        max_stretch: the most an object's height along gravity may change (fraction of it) when it is
            stretched instead of moved (module docstring); 0 turns stretching off.
        min_stretch_m: a vertical correction smaller than this (m) is a translation even where the
            observed points fit a stretch better: below a depth camera's noise the observation cannot
            tell the two apart, and the mesh stays as generated.
        separation_tolerance_m: pairs penetrating deeper than this (m) are pushed apart.
        samples: surface samples per object (with its vertices) for the penetration tests.
        columns: vertical rays per side of the grid that finds the top of a lower object under an
            upper one, and horizontal rays per side of the grid that measures how far to push a pair.
        directions: horizontal directions tried for pushing a pair apart (evenly spread over 360°).
        rounds: settle-and-separate rounds at most.
        occupancy_rays: rays per inside test (odd; the majority decides).
        seed: seed of the surface sampling.
    """

    enabled: bool = True
    max_penetration_m: float = 0.005
    contact_gap_m: float = 0.001
    max_shift_m: float = 0.15
    max_stretch: float = 0.5
    min_stretch_m: float = 0.01
    separation_tolerance_m: float = 0.001
    samples: int = 2000
    columns: int = 24
    directions: int = 16
    rounds: int = 8
    occupancy_rays: int = 3
    seed: int = 0

    def __post_init__(self):
        for name in ("max_penetration_m", "max_shift_m", "separation_tolerance_m", "min_stretch_m"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise PhysicsConfigError(f"PhysicsConfig.{name} must be a positive number of metres, got {value!r}")
        if not (np.isfinite(self.contact_gap_m) and 0 <= self.contact_gap_m < self.max_shift_m):
            raise PhysicsConfigError(f"PhysicsConfig.contact_gap_m must be in [0, max_shift_m), got "
                                     f"{self.contact_gap_m!r}")
        if not (np.isfinite(self.max_stretch) and 0 <= self.max_stretch < 1):
            raise PhysicsConfigError(f"PhysicsConfig.max_stretch must be in [0, 1), got {self.max_stretch!r}")
        if self.separation_tolerance_m > self.max_penetration_m:
            raise PhysicsConfigError("PhysicsConfig.separation_tolerance_m must not exceed max_penetration_m, got "
                                     f"{self.separation_tolerance_m!r} > {self.max_penetration_m!r}")
        for name, least in (("samples", 10), ("columns", 2), ("directions", 4), ("rounds", 1),
                            ("occupancy_rays", 1)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < least:
                raise PhysicsConfigError(f"PhysicsConfig.{name} must be an integer ≥ {least}, got {value!r}")
        if self.occupancy_rays % 2 == 0:
            raise PhysicsConfigError(f"PhysicsConfig.occupancy_rays must be odd, got {self.occupancy_rays}")


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


@dataclass
class _Body:
    """One object in the gravity frame: geometry relative to ``position`` (the origin's current place)."""

    vertices: np.ndarray     # (V, 3) relative to position
    faces: np.ndarray        # (F, 3) of the mesh
    points: np.ndarray       # (S + V, 3) surface samples and vertices, relative to position
    footprint: ConvexHull | None  # 2D hull of the vertices' (x, y), relative to position
    scene: object            # open3d RaycastingScene of the mesh, relative to position
    position: np.ndarray
    start: np.ndarray
    weight: float            # observed points (how well the observation pins it)
    observed: np.ndarray | None  # (N, 3) observed depth points, gravity frame (absolute), or None
    support: str = "none"
    below: int = -1          # index of the body it stands on, -1 for none
    stretch: float = 1.0     # height along gravity now over the given one
    carries: bool = False    # another body stands on its top (as placed by the layout)
    top: float = 0.0         # the given top (z relative to position) the stretch is anchored at

    def stretch_to(self, factor: float) -> None:
        """Set the height along gravity to ``factor`` × the given one, the top held in place."""
        k = factor / self.stretch
        for arr in (self.vertices, self.points):
            arr[:, 2] = self.top - (self.top - arr[:, 2]) * k
        self.scene = raycasting_scene(trimesh.Trimesh(self.vertices, self.faces, process=False))
        self.stretch = factor

    @property
    def lo(self) -> np.ndarray:
        return self.vertices.min(0) + self.position

    @property
    def hi(self) -> np.ndarray:
        return self.vertices.max(0) + self.position

    @property
    def centre_xy(self) -> np.ndarray:
        return (self.lo[:2] + self.hi[:2]) / 2.0


@dataclass
class _Surface:
    """A floor or support plane in the gravity frame: n·p + d = 0 with n_z > 0."""

    name: str
    normal: np.ndarray
    offset: float
    hull: ConvexHull | None  # 2D hull of the polygon's (x, y); None: unbounded
    is_floor: bool

    def height(self, xy: np.ndarray) -> np.ndarray:
        return -(self.offset + xy @ self.normal[:2]) / self.normal[2]

    def covers(self, xy: np.ndarray) -> np.ndarray:
        return np.ones(len(xy), bool) if self.hull is None else _in_hull(self.hull, xy)


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
    claimed = []
    for k, plane in enumerate(background.planes):
        if plane.label != "support" or plane.polygon is None or len(plane.polygon) < 3:
            continue
        centre = np.asarray(plane.polygon, float).mean(0) @ R.T
        for obj in objects:
            T = np.asarray(obj.T_camera_object, float)
            v = np.asarray(obj.mesh.vertices, float) @ (R @ T[:3, :3]).T + R @ T[:3, 3]
            lo, hi = v[:, 2].min(), v[:, 2].max()
            hull = _hull_2d(v[:, :2])
            if hull is not None and lo + 0.25 * (hi - lo) < centre[2] <= hi + _SURFACE_ABOVE_M and \
                    _in_hull(hull, centre[None, :2])[0]:
                claimed.append(k)
                break
    return claimed


def _floor_down(background: Background) -> np.ndarray:
    """Without gravity, the frame penetrations are measured in: minus the floor's normal, else +y."""
    floor = background.floor
    return np.array([0.0, 1.0, 0.0]) if floor is None else -check_gravity(floor.normal, "floor normal")


def _gravity_frame(gravity: np.ndarray) -> np.ndarray:
    """Rotation optical → gravity frame (rows: two horizontal axes, then up = −gravity)."""
    up = -gravity
    seed = np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    e1 = seed - (seed @ up) * up
    e1 /= np.linalg.norm(e1)
    return np.stack([e1, np.cross(up, e1), up])


def _hull_2d(xy: np.ndarray) -> ConvexHull | None:
    try:
        return ConvexHull(np.asarray(xy, float))
    except (QhullError, ValueError):  # fewer than 3 points, or all on a line
        return None


def _in_hull(hull: ConvexHull, xy: np.ndarray, margin: float = 1e-9) -> np.ndarray:
    eq = hull.equations
    return np.all(np.asarray(xy) @ eq[:, :2].T + eq[:, 2] <= margin, axis=1)


def _body(obj: SceneObject, R: np.ndarray, config: PhysicsConfig, observed: np.ndarray | None) -> _Body:
    T = np.asarray(obj.T_camera_object, float)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ValueError(f"object {obj.id}: T_camera_object must be a finite 4×4 matrix")
    mesh = obj.mesh
    if len(mesh.faces) == 0:
        raise ValueError(f"object {obj.id}: mesh has no faces")
    A = R @ T[:3, :3]
    vertices = np.asarray(mesh.vertices, float) @ A.T
    samples, _ = trimesh.sample.sample_surface(mesh, config.samples, seed=config.seed)
    points = np.concatenate([np.asarray(samples, float) @ A.T, vertices])
    scene = raycasting_scene(trimesh.Trimesh(vertices, mesh.faces, process=False))
    position = R @ T[:3, 3]
    seen = None
    if observed is not None:
        seen = np.asarray(observed, float).reshape(-1, 3) @ R.T
        seen = seen[np.all(np.isfinite(seen), axis=1)]
    weight = 0.0 if seen is None else float(len(seen))
    return _Body(vertices, np.asarray(mesh.faces), points, _hull_2d(vertices[:, :2]), scene, position,
                 position.copy(), weight, seen, top=float(vertices[:, 2].max()))


def _surfaces(planes: list[Plane], R: np.ndarray, need_up: bool) -> list[_Surface]:
    """The floor and support planes in the gravity frame, normals flipped to point up; with ``need_up``
    only those within 60° of level (the others carry nothing), else all (only measured against)."""
    out = []
    for k, plane in enumerate(planes):
        if plane.label not in ("floor", "support"):
            continue
        n = R @ np.asarray(plane.normal, float)
        d = float(plane.offset)
        if n[2] < 0 and need_up:
            n, d = -n, -d
        if need_up and n[2] < _MIN_UP_COMPONENT:
            continue
        hull = None
        if plane.label == "support" and plane.polygon is not None:
            hull = _hull_2d((np.asarray(plane.polygon, float) @ R.T)[:, :2])
            if hull is None:
                continue  # a degenerate polygon bounds nothing an object could stand on
        name = "floor" if plane.label == "floor" else f"plane_{k}"
        out.append(_Surface(name, n, d, hull, plane.label == "floor"))
    return out


def _cast(scene, origins: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Distance along ``direction`` (unit) from each origin to its first hit on ``scene``, inf for a miss."""
    import open3d as o3d

    rays = np.concatenate([origins, np.broadcast_to(direction, origins.shape)], axis=-1).astype(np.float32)
    return scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy().astype(float)


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
    k = factor / body.stretch
    vertices = body.vertices.copy()
    vertices[:, 2] = body.top - (body.top - vertices[:, 2]) * k
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


def _pair_depth(a: _Body, b: _Body, config: PhysicsConfig) -> float:
    """Deepest point (m) of either body inside the other (0 when none)."""
    import open3d as o3d

    if np.any(a.lo > b.hi) or np.any(b.lo > a.hi):
        return 0.0
    deepest = 0.0
    for x, y in ((a, b), (b, a)):
        p = x.points + x.position
        p = p[np.all((p >= y.lo) & (p <= y.hi), axis=1)] - y.position
        if len(p) == 0:
            continue
        query = o3d.core.Tensor(p.astype(np.float32))
        inside = y.scene.compute_occupancy(query, nsamples=config.occupancy_rays).numpy() > 0.5
        if inside.any():
            depth = y.scene.compute_distance(o3d.core.Tensor(p[inside].astype(np.float32))).numpy()
            deepest = max(deepest, float(depth.max()))
    return deepest


def _surface_depth(body: _Body, surface: _Surface, config: PhysicsConfig) -> float:
    """Deepest point (m, along the plane's normal) of the body below ``surface`` (inside its polygon,
    at most ``max_shift_m`` below a support plane); 0 when none."""
    p = body.points + body.position
    p = p[surface.covers(p[:, :2])]
    depth = -(p @ surface.normal + surface.offset)
    if not surface.is_floor:
        depth = depth[depth <= config.max_shift_m]
    return float(max(0.0, depth.max(initial=0.0)))


def _penetrations(bodies: list[_Body], surfaces: list[_Surface], config: PhysicsConfig) -> list[float]:
    deepest = [max([_surface_depth(b, s, config) for s in surfaces], default=0.0) for b in bodies]
    for i in range(len(bodies)):
        for j in range(i + 1, len(bodies)):
            d = _pair_depth(bodies[i], bodies[j], config)
            deepest[i], deepest[j] = max(deepest[i], d), max(deepest[j], d)
    return deepest


def _push(a: _Body, b: _Body, config: PhysicsConfig) -> tuple[float, np.ndarray]:
    """The smallest horizontal move s (m) of ``a`` along a unit direction d (gravity frame) that
    leaves it ahead of ``b`` on every sampled line along d, over ``config.directions`` directions."""
    angles = 2 * np.pi * np.arange(config.directions) / config.directions
    best = (np.inf, np.array([1.0, 0.0, 0.0]))
    k = config.columns
    u = (np.arange(k) + 0.5) / k
    lo_z, hi_z = max(a.lo[2], b.lo[2]), min(a.hi[2], b.hi[2])
    if hi_z <= lo_z:
        return 0.0, best[1]
    va, vb = a.vertices + a.position, b.vertices + b.position
    for angle in angles:
        d = np.array([np.cos(angle), np.sin(angle), 0.0])
        side = np.array([-d[1], d[0], 0.0])
        lo_s = max((va @ side).min(), (vb @ side).min())
        hi_s = min((va @ side).max(), (vb @ side).max())
        if hi_s <= lo_s:
            return 0.0, d
        ss, zz = np.meshgrid(lo_s + u * (hi_s - lo_s), lo_z + u * (hi_z - lo_z))
        base = ss.reshape(-1, 1) * side + zz.reshape(-1, 1) * np.array([0.0, 0.0, 1.0])
        back_start = min((va @ d).min(), (vb @ d).min()) - _FAR
        front_start = max((va @ d).max(), (vb @ d).max()) + _FAR
        t_a = _cast(a.scene, base + back_start * d - a.position, d)
        t_b = _cast(b.scene, base + front_start * d - b.position, -d)
        both = np.isfinite(t_a) & np.isfinite(t_b)
        if not both.any():
            continue
        s = max(0.0, float(np.max((front_start - t_b[both]) - (back_start + t_a[both]))))
        if s < best[0]:
            best = (s, d)
    return (0.0 if not np.isfinite(best[0]) else best[0] + config.contact_gap_m), best[1]


def _riders(bodies: list[_Body], base: int) -> list[int]:
    """``base`` and every body standing on it, directly or through others."""
    group = [base]
    for idx in group:
        group.extend(i for i, b in enumerate(bodies) if b.below == idx and i not in group)
    return group


def _separate(bodies: list[_Body], config: PhysicsConfig) -> bool:
    """Push apart every pair penetrating deeper than the tolerance; True when any moved."""
    pairs = []
    for i in range(len(bodies)):
        for j in range(i + 1, len(bodies)):
            if bodies[i].below == j or bodies[j].below == i:
                continue  # a stacked pair's vertical overlap is the support step's business
            depth = _pair_depth(bodies[i], bodies[j], config)
            if depth > config.separation_tolerance_m:
                pairs.append((depth, i, j))
    moved = False
    for _, i, j in sorted(pairs, reverse=True):
        a, b = bodies[i], bodies[j]
        s, d = _push(a, b, config)
        if s <= 0:
            continue
        total = a.weight + b.weight
        share_a = 0.5 if total == 0 else b.weight / total
        room_a, room_b = _room(a, config), _room(b, config)
        move_a = min(share_a * s, room_a)
        move_b = min(s - move_a, room_b)
        move_a = min(s - move_b, room_a)
        for idx, step in ((i, move_a * d), (j, -move_b * d)):
            for r in _riders(bodies, idx):
                bodies[r].position += step
        moved = moved or move_a + move_b > 0
    return moved


def _room(body: _Body, config: PhysicsConfig) -> float:
    """How much further (m) the body may move horizontally."""
    return max(0.0, config.max_shift_m - float(np.linalg.norm((body.position - body.start)[:2])))
