"""One synthetic scene seen from several camera poses, for the scene memory's tests and bench.

The world is the z-up frame of :func:`dpa_testing.synthetic.look_at_level` (x right, y away
from the first camera, z up; metres) with the floor (z = 0) and a back wall (y = 4.5). Objects are
glTF-convention meshes with ground-truth ``T_world_object`` poses (scale included); each view is a
camera pose ``T_world_camera`` (optical frame) rendered by the exact z-buffer of
:func:`dpa_testing.synthetic.render`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from dpa_ros.core.camera import CameraModel
from dpa_testing import synthetic

#: Side of the floor's square tiles, metres (:func:`floor_tiles`).
FLOOR_TILE_M = 0.25


@dataclass
class WorldObject:
    """A ground-truth object: label, glTF-convention mesh (longest side 1) and its pose in the world."""

    label: str
    mesh: trimesh.Trimesh
    T_world_object: np.ndarray

    @property
    def scale(self) -> float:
        return float(np.cbrt(abs(np.linalg.det(self.T_world_object[:3, :3]))))


@dataclass
class View:
    """One rendered view.

    Attributes:
        camera: intrinsics (optical frame ``camera.frame_id``).
        T_world_camera: 4×4 camera optical frame → world.
        rgb: (H, W, 3) uint8, flat colour per object.
        depth: (H, W) metres, NaN where nothing was hit.
        masks: per world object (in the world's order), its (H, W) bool visible pixels.
    """

    camera: CameraModel
    T_world_camera: np.ndarray
    rgb: np.ndarray
    depth: np.ndarray
    masks: list[np.ndarray]


def world_object(label: str, mesh: trimesh.Trimesh, scale: float, x: float, y: float, yaw_deg: float) -> WorldObject:
    """An object standing on the floor at world (x, y), metres, its front turned by ``yaw_deg``."""
    return WorldObject(label, mesh, synthetic.object_pose(np.eye(4), mesh, scale, x, y, yaw_deg))


def default_objects() -> list[WorldObject]:
    """The chair, L-shaped cabinet and box of :func:`dpa_testing.synthetic.make_scene`."""
    return [world_object("chair", synthetic.make_chair(), 0.8, -0.55, 2.6, 25.0),
            world_object("cabinet", synthetic.make_l_shape(), 0.9, 0.55, 2.9, -30.0),
            world_object("box", synthetic.make_box(), 0.5, 0.35, 2.0, 10.0)]


def camera_pose(x: float, y: float, yaw_deg: float, height: float = 1.2, pitch_deg: float = 20.0) -> np.ndarray:
    """T_world_camera of a camera ``height`` m above the floor at world (x, y), pitched down by
    ``pitch_deg`` and turned by ``yaw_deg`` about world up (positive: to the left)."""
    T = np.linalg.inv(synthetic.look_at_level(height, pitch_deg))
    Rz = trimesh.transformations.rotation_matrix(np.radians(yaw_deg), [0, 0, 1])
    Rz[:3, 3] = [x, y, 0.0]
    return Rz @ T


def floor_tiles(x=(-6.0, 6.0), y=(-2.0, 4.5), tile_m: float = FLOOR_TILE_M) -> trimesh.Trimesh:
    """The floor z = 0 over world ``x`` × ``y`` (metres) as square tiles of ``tile_m``, normals up.

    :func:`dpa_testing.synthetic.render` skips a triangle with a vertex behind the camera, so one
    big floor quad reaching behind the camera would not be drawn at all; tiles in front of it are."""
    xs = np.arange(x[0], x[1] + 1e-9, tile_m)
    ys = np.arange(y[0], y[1] + 1e-9, tile_m)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    vertices = np.column_stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)])
    ny = len(ys)
    faces = []
    for i in range(len(xs) - 1):
        for j in range(ny - 1):
            a, b, c, d = i * ny + j, (i + 1) * ny + j, (i + 1) * ny + j + 1, i * ny + j + 1
            faces += [[a, b, c], [a, c, d]]
    return trimesh.Trimesh(vertices=vertices, faces=np.array(faces), process=False)


def render_view(objects: list[WorldObject], T_world_camera: np.ndarray, width: int = 160, height: int = 120,
                hfov_deg: float = 70.0, noise_std: float = 0.0, seed: int = 0) -> View:
    """Render ``objects`` (plus floor and back wall) from ``T_world_camera``. ``noise_std`` adds
    Gaussian depth noise (metres, times depth²/4 m, as :func:`dpa_testing.synthetic.make_scene`)."""
    camera = synthetic.CameraModel.from_fov(width, height, hfov_deg)
    T_cw = np.linalg.inv(T_world_camera)
    quad = [[0, 1, 2], [0, 2, 3]]
    background = [floor_tiles(),
                  trimesh.Trimesh(vertices=[[-6, 4.5, 0], [6, 4.5, 0], [6, 4.5, 3], [-6, 4.5, 3]], faces=quad)]
    placed = []
    for m, T in [(o.mesh, T_cw @ o.T_world_object) for o in objects] + [(b, T_cw) for b in background]:
        m = m.copy()
        m.apply_transform(T)
        placed.append(m)
    depth, ids = synthetic.render(placed, camera)
    rng = np.random.default_rng(seed)
    palette = rng.integers(40, 255, size=(len(placed), 3))
    rgb = np.zeros((height, width, 3), np.uint8)
    for i in range(len(placed)):
        rgb[ids == i] = palette[i]
    if noise_std > 0:
        depth = depth + rng.normal(0.0, noise_std, depth.shape) * depth ** 2 / 4.0
    return View(camera=camera, T_world_camera=np.asarray(T_world_camera, float), rgb=rgb, depth=depth,
                masks=[ids == i for i in range(len(objects))])


#: Shapes a random layout draws from: label → mesh maker.
SHAPES = {"chair": synthetic.make_chair, "cabinet": synthetic.make_l_shape, "sofa": synthetic.make_u_shape,
          "shelf": synthetic.make_open_shelf, "box": synthetic.make_box, "bin": synthetic.make_cylinder}


def random_layout(seed: int, count: int = 3) -> tuple[list[WorldObject], list[np.ndarray]]:
    """A scene drawn from ``seed``: ``count`` different shapes of :data:`SHAPES` (longest side 0.4 to
    0.9 m, any yaw) standing apart on the floor 1.8 to 3.4 m before the first camera, and three
    camera poses (``T_world_camera``) 0.25 to 0.5 m apart, at 0.9 to 1.5 m height, pitched 12 to 30°
    down and turned towards the scene's middle, so every object is seen by every camera."""
    rng = np.random.default_rng(seed)
    labels = list(rng.choice(sorted(SHAPES), size=count, replace=False))
    objects: list[WorldObject] = []
    while len(objects) < count:
        label = labels[len(objects)]
        scale = float(rng.uniform(0.4, 0.9))
        x, y = float(rng.uniform(-0.9, 0.9)), float(rng.uniform(1.8, 3.4))
        # apart: the footprints' circumscribed circles (radius scale/√2) do not overlap
        if all(np.hypot(x - o.T_world_object[0, 3], y - o.T_world_object[1, 3]) > (scale + o.scale) / np.sqrt(2) + 0.05
               for o in objects):
            objects.append(world_object(str(label), SHAPES[label](), scale, x, y, float(rng.uniform(-180, 180))))
    middle = np.mean([o.T_world_object[:2, 3] for o in objects], axis=0)
    step = float(rng.uniform(0.25, 0.5))
    height, pitch = float(rng.uniform(0.9, 1.5)), float(rng.uniform(12.0, 30.0))
    poses = []
    for k in (-1, 0, 1):
        x = float(k * step + rng.uniform(-0.05, 0.05))
        yaw = float(np.degrees(np.arctan2(-(middle[0] - x), middle[1])))  # towards the middle (+yaw: left)
        poses.append(camera_pose(x, 0.0, yaw, height=height, pitch_deg=pitch))
    return objects, poses
