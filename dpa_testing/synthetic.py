"""Synthetic ground-truth scenes: known meshes at known poses, rendered to depth, masks and RGB.

Used by the tests and the layout benchmark (and by any test that needs a small real scene).
Everything is exact geometry, no learned model: a z-buffer rasteriser ray-intersects every
pixel's ray with every triangle that covers it.

Frames: the camera optical frame (x right, y down, z forward), metres. Object meshes follow the
layout stage's input contract (:mod:`dpa_ros.geometry.mesh_frames`): glTF convention, +Y up, the
front toward +Z; they are centred on their bounding box and scaled so the longest side is 1, and
the ground-truth pose ``T_camera_object`` carries the object's true size as its uniform scale.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh

from dpa_ros.core.camera import CameraModel
from dpa_ros.core.scene import Background, Plane, Scene, SceneObject


def _box(extents, center) -> trimesh.Trimesh:
    return trimesh.creation.box(extents=extents, transform=trimesh.transformations.translation_matrix(center))


def _unit_size(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Centre on the bounding box and scale the longest side to 1."""
    mesh = mesh.copy()
    lo, hi = mesh.bounds
    mesh.apply_translation(-(lo + hi) / 2.0)
    mesh.apply_scale(1.0 / float(np.max(hi - lo)))
    return mesh


def make_l_shape() -> trimesh.Trimesh:
    """A non-symmetric L-shaped block (union of two boxes), glTF convention, longest side 1.

    The long leg lies along +x on the floor, the short upright leg stands (+y) at its -x end and
    is set back (-z, away from the front), so no rotation other than the identity maps it onto itself.
    """
    base = _box([1.0, 0.25, 0.5], [0.0, 0.0, 0.0])
    upright = _box([0.3, 0.6, 0.3], [-0.35, 0.425, -0.1])
    return _unit_size(trimesh.util.concatenate([base, upright]))


def make_u_shape() -> trimesh.Trimesh:
    """A U-shaped block (a low base with an upright at each end), glTF convention, longest side 1."""
    parts = [_box([1.0, 0.25, 0.4], [0.0, 0.0, 0.0])]
    for x in (-0.4, 0.4):
        parts.append(_box([0.2, 0.55, 0.4], [x, 0.4, 0.0]))
    return _unit_size(trimesh.util.concatenate(parts))


def make_chair() -> trimesh.Trimesh:
    """A chair-like union of boxes (seat, back, four legs), glTF convention (+y up, front +z).

    The legs reach down (-y) to the floor, the back rises (+y) at the rear (-z, away from a viewer
    facing the chair's front).
    """
    parts = [_box([0.5, 0.06, 0.5], [0.0, 0.0, 0.0]),             # seat
             _box([0.5, 0.5, 0.06], [0.0, 0.28, -0.22])]           # back
    for x in (-0.22, 0.22):
        for z in (-0.22, 0.22):
            parts.append(_box([0.05, 0.45, 0.05], [x, -0.255, z]))  # legs
    return _unit_size(trimesh.util.concatenate(parts))


def make_open_shelf() -> trimesh.Trimesh:
    """An open bookshelf of boards 2 % of its height thick (back panel, two sides, four shelves),
    glTF convention, longest side 1: thinner than a closest-point field's cells."""
    t = 0.03
    parts = [_box([1.0, 1.5, t], [0.0, 0.0, -0.2 + t / 2])]
    parts += [_box([t, 1.5, 0.4], [x, 0.0, 0.0]) for x in (-0.5 + t / 2, 0.5 - t / 2)]
    parts += [_box([1.0 - 2 * t, t, 0.4 - t], [0.0, y, t / 2]) for y in (-0.735, -0.25, 0.25, 0.735)]
    return _unit_size(trimesh.util.concatenate(parts))


def make_box() -> trimesh.Trimesh:
    """A cabinet-like box 1.0 × 0.8 × 0.5 (w × h × d), glTF convention."""
    return _unit_size(_box([1.0, 0.8, 0.5], [0.0, 0.0, 0.0]))


def make_cylinder() -> trimesh.Trimesh:
    """An upright cylinder (axis along y, glTF's up)."""
    cyl = trimesh.creation.cylinder(radius=0.3, height=0.8, sections=24)
    cyl.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    return _unit_size(cyl)


def look_at_level(height: float, pitch_deg: float) -> np.ndarray:
    """T_camera_world for a camera ``height`` m above a z-up world floor, pitched down by ``pitch_deg``.

    The world frame has z up, x to the camera's right, y forward (away from the camera); the
    camera sits at (0, 0, height).
    """
    p = np.radians(pitch_deg)
    # Rows: camera x, y, z axes expressed in world coordinates.
    x_c = np.array([1.0, 0.0, 0.0])
    z_c = np.array([0.0, np.cos(p), -np.sin(p)])            # forward, tilted down
    y_c = np.cross(z_c, x_c)                                 # down-ish
    R_cw = np.stack([x_c, y_c, z_c])
    T = np.eye(4)
    T[:3, :3] = R_cw
    T[:3, 3] = -R_cw @ np.array([0.0, 0.0, height])
    return T


# Rotation glTF object frame (x right, y up, z front = toward the camera) -> z-up world frame of
# look_at_level (x right, y away from the camera, z up).
R_WORLD_GLTF = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def object_pose(T_camera_world: np.ndarray, mesh: trimesh.Trimesh, scale: float, x: float, y: float,
                yaw_deg: float) -> np.ndarray:
    """T_camera_object (scale included) of a glTF-convention ``mesh`` standing on the floor at world
    (x, y), its front turned by ``yaw_deg`` (about world up) from facing the camera."""
    Rz = trimesh.transformations.rotation_matrix(np.radians(yaw_deg), [0, 0, 1])[:3, :3]
    R_wo = Rz @ R_WORLD_GLTF
    lowest = np.min((mesh.vertices @ R_wo.T)[:, 2]) * scale   # object's bottom in world z
    T_wo = np.eye(4)
    T_wo[:3, :3] = scale * R_wo
    T_wo[:3, 3] = [x, y, -lowest]
    return T_camera_world @ T_wo


def render(meshes: list[trimesh.Trimesh], camera: CameraModel) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffer meshes given in the optical frame.

    Returns ``depth`` (H, W) float64 metres, NaN where no surface, and ``ids`` (H, W) int: the
    index of the visible mesh, -1 where none. Triangles with a vertex at z <= 1 cm are skipped
    (keep geometry in front of the camera).
    """
    H, W = camera.height, camera.width
    depth = np.full((H, W), np.inf)
    ids = np.full((H, W), -1, dtype=np.int64)
    Kinv = np.linalg.inv(camera.K)
    for mi, mesh in enumerate(meshes):
        tris = np.asarray(mesh.vertices, float)[np.asarray(mesh.faces)]   # (F, 3, 3)
        tris = tris[np.all(tris[:, :, 2] > 0.01, axis=1)]
        for tri in tris:
            uv = camera.project(tri)
            u0, v0 = np.floor(uv.min(0)).astype(int)
            u1, v1 = np.ceil(uv.max(0)).astype(int)
            u0, v0 = max(u0, 0), max(v0, 0)
            u1, v1 = min(u1, W - 1), min(v1, H - 1)
            if u0 > u1 or v0 > v1:
                continue
            vv, uu = np.mgrid[v0:v1 + 1, u0:u1 + 1]
            p = np.stack([uu.ravel(), vv.ravel()], 1).astype(float)
            a, b, c = uv
            den = (b[1] - c[1]) * (a[0] - c[0]) + (c[0] - b[0]) * (a[1] - c[1])
            if abs(den) < 1e-12:
                continue
            l1 = ((b[1] - c[1]) * (p[:, 0] - c[0]) + (c[0] - b[0]) * (p[:, 1] - c[1])) / den
            l2 = ((c[1] - a[1]) * (p[:, 0] - c[0]) + (a[0] - c[0]) * (p[:, 1] - c[1])) / den
            inside = (l1 >= -1e-9) & (l2 >= -1e-9) & (1 - l1 - l2 >= -1e-9)
            if not inside.any():
                continue
            p = p[inside]
            rays = np.concatenate([p, np.ones((len(p), 1))], 1) @ Kinv.T     # z = 1 rays
            n = np.cross(tri[1] - tri[0], tri[2] - tri[0])
            nr = rays @ n
            ok = np.abs(nr) > 1e-12
            z = np.where(ok, (n @ tri[0]) / np.where(ok, nr, 1.0), np.inf)
            pu, pv = p[:, 0].astype(int), p[:, 1].astype(int)
            closer = ok & (z > 0) & (z < depth[pv, pu])
            depth[pv[closer], pu[closer]] = z[closer]
            ids[pv[closer], pu[closer]] = mi
    depth[~np.isfinite(depth)] = np.nan
    return depth, ids


@dataclass
class SyntheticScene:
    """A rendered ground-truth scene.

    Attributes:
        camera: the pinhole camera.
        rgb: (H, W, 3) uint8 image (flat colour per object, shaded floor).
        depth: (H, W) float metres, NaN where nothing was hit (noise already applied).
        masks: per object, (H, W) bool visible pixels.
        meshes: per object, its mesh in glTF convention (what the solver is given).
        labels: per object category name.
        poses: per object, ground-truth T_camera_object (4×4, scale included).
        scales: per object ground-truth uniform scale.
        gravity: unit down vector in the optical frame.
        camera_height: metres above the floor.
        floor: the floor plane (optical frame).
    """

    camera: CameraModel
    rgb: np.ndarray
    depth: np.ndarray
    masks: list[np.ndarray]
    meshes: list[trimesh.Trimesh]
    labels: list[str]
    poses: list[np.ndarray]
    scales: list[float]
    gravity: np.ndarray
    camera_height: float
    floor: Plane
    extra: dict = field(default_factory=dict)

    def ground_truth_scene(self) -> Scene:
        """The ground truth as a :class:`Scene` (for writing with write_scene or scoring with dpa-eval)."""
        objects = [SceneObject(id=i, label=lab, score=1.0, mesh=m, T_camera_object=T, scale=s, fit_error=0.0,
                               proposal_index=0)
                   for i, (lab, m, T, s) in enumerate(zip(self.labels, self.meshes, self.poses, self.scales))]
        return Scene(camera=self.camera, objects=objects,
                     background=Background(planes=[self.floor], gravity=self.gravity.copy()), profile="ground_truth")


_DEFAULT_OBJECTS = (
    # (label, builder, scale m, world x, world y, yaw deg)
    ("chair", make_chair, 0.8, -0.55, 2.6, 25.0),
    ("cabinet", make_l_shape, 0.9, 0.55, 2.9, -30.0),
    ("box", make_box, 0.5, 0.35, 2.0, 10.0),
)


def make_scene(width: int = 160, height: int = 120, hfov_deg: float = 70.0, camera_height: float = 1.2,
               pitch_deg: float = 20.0, objects=_DEFAULT_OBJECTS, noise_std: float = 0.0,
               seed: int = 0) -> SyntheticScene:
    """Render a small room corner: a floor, a back wall and ``objects`` standing on the floor.

    ``objects`` is a sequence of (label, builder() -> glTF-convention mesh, scale m, world x, world y,
    yaw degrees) in the z-up world of :func:`look_at_level`. With the defaults the box stands in
    front of the L-shaped "cabinet" and hides about a quarter of it. ``noise_std`` adds Gaussian noise (metres,
    multiplied by depth²/4 m, the usual structured-light growth) to the depth.
    """
    camera = CameraModel.from_fov(width, height, hfov_deg)
    T_cw = look_at_level(camera_height, pitch_deg)
    meshes, labels, poses, scales, placed = [], [], [], [], []
    for label, builder, scale, x, y, yaw in objects:
        mesh = builder()
        T = object_pose(T_cw, mesh, scale, x, y, yaw)
        m = mesh.copy()
        m.apply_transform(T)
        meshes.append(mesh)
        labels.append(label)
        poses.append(T)
        scales.append(float(scale))
        placed.append(m)
    quad = [[0, 1, 2], [0, 2, 3]]
    floor_w = trimesh.Trimesh(vertices=[[-4, 0.3, 0], [4, 0.3, 0], [4, 6, 0], [-4, 6, 0]], faces=quad)
    wall_w = trimesh.Trimesh(vertices=[[-4, 4.5, 0], [4, 4.5, 0], [4, 4.5, 3], [-4, 4.5, 3]], faces=quad)
    background = []
    for m in (floor_w, wall_w):
        m = m.copy()
        m.apply_transform(T_cw)
        background.append(m)
    depth, ids = render(placed + background, camera)
    n = len(placed)
    masks = [ids == i for i in range(n)]
    rng = np.random.default_rng(seed)
    palette = rng.integers(40, 255, size=(n + 2, 3))
    rgb = np.zeros((height, width, 3), np.uint8)
    for i in range(n + 2):
        rgb[ids == i] = palette[i]
    if noise_std > 0:
        depth = depth + rng.normal(0.0, noise_std, depth.shape) * (depth ** 2) / 4.0
    gravity = T_cw[:3, :3] @ np.array([0.0, 0.0, -1.0])
    up = -gravity
    # Floor: world z = 0, i.e. up·p + camera_height = 0 in the optical frame; normal points at the camera.
    floor = Plane(label="floor", normal=up, offset=float(camera_height))
    return SyntheticScene(camera=camera, rgb=rgb, depth=depth, masks=masks, meshes=meshes, labels=labels,
                          poses=poses, scales=scales, gravity=gravity, camera_height=camera_height, floor=floor,
                          extra={"ids": ids, "T_camera_world": T_cw})
