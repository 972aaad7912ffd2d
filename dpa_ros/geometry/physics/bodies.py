"""Bodies and support surfaces in the gravity frame (+z up, metres), ray casts against them, and how
deep they interpenetrate."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh
from scipy.spatial import ConvexHull, QhullError

from dpa_ros.core.scene import Background, Plane, SceneObject
from dpa_ros.geometry.fields import raycasting_scene
from dpa_ros.geometry.gravity import check_gravity
from dpa_ros.geometry.physics.config import PhysicsConfig

_MIN_UP_COMPONENT = 0.5  # a floor or support plane whose normal is more than 60° off up supports nothing
_FAR = 1.0               # m: how far outside a body a ray starts


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

    def stretched_z(self, z: np.ndarray, factor: float) -> np.ndarray:
        """Heights ``z`` (relative to position) of this body stretched to ``factor`` × its given height,
        the top held in place."""
        return self.top - (self.top - z) * (factor / self.stretch)

    def stretch_to(self, factor: float) -> None:
        """Set the height along gravity to ``factor`` × the given one, the top held in place."""
        for arr in (self.vertices, self.points):
            arr[:, 2] = self.stretched_z(arr[:, 2], factor)
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


def _room(body: _Body, config: PhysicsConfig) -> float:
    """How much further (m) the body may move horizontally."""
    return max(0.0, config.max_shift_m - float(np.linalg.norm((body.position - body.start)[:2])))
