"""The node's scene memory: every reconstruction merged into :class:`dpa_ros.memory.SceneMemory`
in the ``fixed_frame``, and the memory handed back as the scene to publish.

ROS-free (no rclpy import): the node looks up ``T_fixed_camera`` (camera optical frame → fixed
frame at the image stamp, metres) through TF and gives it here with the reconstructed scene (poses
in the camera optical frame). Each object's visible pixels are the goal instance's mask when the
request carried instances, else the pixels where the object's placed mesh is the nearest surface
(a ray cast of every pixel against all placed meshes) and agrees with the sensor depth. The depth
the memory fuses and tests visibility on is the sensor depth, or without one the placed meshes'
own (rendered) depth. The scene handed back carries the memory's floor and gravity in the fixed
frame and its objects rested on that floor (:meth:`dpa_ros.memory.SceneMemory.to_scene`), so
its export is simulation-ready.

What is published after a ``~/forget`` or ``~/clear_memory`` (:meth:`NodeMemory.current`) shows
only what is remembered: the last view's cloud without the points of the forgotten objects' masks,
and its reconstruction (drawn in the overlay, labelled with the memory ids) without those objects.

Thread-safe: the worker observes, the ``~/clear_memory`` and ``~/forget`` services forget, under
one lock.
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass

import numpy as np

from dpa_ros.memory import MemoryConfig, MemoryUpdate, SceneMemory

#: A rendered pixel belongs to an object's mask when the sensor depth is within this of the
#: placed mesh's depth (metres, plus DEPTH_AGREEMENT_REL of that depth).
DEPTH_AGREEMENT_M = 0.05
DEPTH_AGREEMENT_REL = 0.03


def rendered_visibility(scene) -> tuple[np.ndarray, np.ndarray]:
    """(depth, ids) of ``scene``'s placed objects seen by its camera: (H, W) z-depth in metres (NaN
    where no object) and the index in ``scene.objects`` of the nearest object per pixel (-1: none)."""
    import open3d as o3d

    camera = scene.camera
    h, w = camera.height, camera.width
    rays_scene = o3d.t.geometry.RaycastingScene()
    for obj in scene.objects:
        T = np.asarray(obj.T_camera_object, float)
        vertices = np.asarray(obj.mesh.vertices, float) @ T[:3, :3].T + T[:3, 3]
        rays_scene.add_triangles(o3d.core.Tensor(vertices.astype(np.float32)),
                                 o3d.core.Tensor(np.asarray(obj.mesh.faces, np.uint32)))
    u, v = camera.pixel_grid()
    directions = np.stack([u.ravel(), v.ravel(), np.ones(h * w)], 1) @ np.linalg.inv(camera.K).T  # z = 1
    rays = np.concatenate([np.zeros_like(directions), directions], 1).astype(np.float32)
    hit = rays_scene.cast_rays(o3d.core.Tensor(rays))
    t = hit["t_hit"].numpy().reshape(h, w).astype(float)  # z-depth, since every direction has z = 1
    ids = hit["geometry_ids"].numpy().reshape(h, w).astype(np.int64)
    missed = ~np.isfinite(t)
    ids[missed] = -1
    t[missed] = np.nan
    return t, ids


def visible_masks(scene, sensor_depth: np.ndarray | None) -> tuple[list[np.ndarray], np.ndarray]:
    """(per object its (H, W) bool visible pixels, the depth to fuse): see the module docstring."""
    rendered, ids = rendered_visibility(scene)
    if sensor_depth is None:
        return [ids == i for i in range(len(scene.objects))], rendered
    depth = np.asarray(sensor_depth, float)
    with np.errstate(invalid="ignore"):
        agrees = np.abs(depth - rendered) <= DEPTH_AGREEMENT_M + DEPTH_AGREEMENT_REL * rendered
    return [(ids == i) & agrees for i in range(len(scene.objects))], depth


def cloud_owners(scene, masks: list[np.ndarray], ids: list[int]) -> np.ndarray:
    """Per point of ``scene``'s cloud (optical frame, back-projected pixels), the memory id of the
    object whose mask holds its pixel (``ids``: per scene object), -1 for none (background)."""
    points = np.asarray(scene.cloud_points, float).reshape(-1, 3)
    owners = np.full(len(points), -1, np.int64)
    if not len(points) or not masks:
        return owners
    camera = scene.camera
    front = points[:, 2] > 0
    uv = np.round(camera.project(points[front])).astype(np.int64)
    u = np.clip(uv[:, 0], 0, camera.width - 1)
    v = np.clip(uv[:, 1], 0, camera.height - 1)
    found = np.full(len(uv), -1, np.int64)
    for mask, k in reversed(list(zip(masks, ids))):  # the first mask holding a pixel owns it
        found[np.asarray(mask, bool)[v, u]] = k
    owners[front] = found
    return owners


@dataclass
class Remembered:
    """One reconstruction after the memory.

    Attributes:
        scene: the whole memory in the fixed frame (stable ids, the view's cloud carried into it).
        update: what this view changed.
        view: the view's own reconstruction (optical frame) with each object's id its memory id,
            for the overlay.
        cloud_owners: per cloud point, the memory id of the object it was seen on, -1: background.
    """

    scene: object
    update: MemoryUpdate
    view: object = None
    cloud_owners: np.ndarray | None = None

    def summary(self, fixed_frame: str) -> str:
        """One line for the reply: the memory's objects and what this view changed."""
        u = self.update
        parts = [f"{name} {ids}" for name, ids in (("added", u.added), ("kept", u.kept), ("moved", u.moved),
                                                    ("forgotten", u.forgotten)) if ids]
        ids = [o.id for o in self.scene.objects]
        return f"memory in {fixed_frame}: {len(ids)} object(s) {ids}" + (f" ({', '.join(parts)})" if parts else "")


class NodeMemory:
    """The node's :class:`SceneMemory` in ``fixed_frame``; ``forget_after`` (snapshots) is read at
    every :meth:`observe`, so a parameter change applies from the next view."""

    def __init__(self, fixed_frame: str, forget_after: int) -> None:
        self.fixed_frame = fixed_frame
        self._memory = SceneMemory(MemoryConfig(forget_after=int(forget_after)))
        self._lock = threading.Lock()

    def observe(self, scene, T_fixed_camera: np.ndarray, sensor_depth: np.ndarray | None,
                masks: list[np.ndarray] | None = None, forget_after: int | None = None) -> Remembered:
        """Merge ``scene`` (camera optical frame) seen from ``T_fixed_camera``; ``masks``: the
        objects' visible pixels when known (goal instances), else rendered (module docstring)."""
        if masks is None:
            masks, depth = visible_masks(scene, sensor_depth)
        else:
            depth = sensor_depth if sensor_depth is not None else visible_masks(scene, None)[1]
        T = np.asarray(T_fixed_camera, float)
        with self._lock:
            if forget_after is not None:
                self._memory.config.forget_after = int(forget_after)
            update = self._memory.observe(scene, T, depth, masks)
            out = self._memory.to_scene(self.fixed_frame, like=scene)
        points = np.asarray(scene.cloud_points, float).reshape(-1, 3)
        out.cloud_points = points @ T[:3, :3].T + T[:3, 3]
        out.cloud_colors = np.asarray(scene.cloud_colors)
        view = dataclasses.replace(scene, objects=[dataclasses.replace(o, id=k)
                                                   for o, k in zip(scene.objects, update.ids)])
        return Remembered(out, update, view, cloud_owners(scene, masks, update.ids))

    def current(self, like: Remembered) -> Remembered:
        """The memory as it is now (after a forget or clear), with ``like``'s camera and stamp, and
        ``like``'s cloud and view without the objects no longer remembered (module docstring)."""
        with self._lock:
            out = self._memory.to_scene(self.fixed_frame, like=like.scene)
        ids = [o.id for o in out.objects]
        owners = like.cloud_owners if like.cloud_owners is not None else \
            np.full(len(like.scene.cloud_points), -1, np.int64)
        keep = (owners < 0) | np.isin(owners, ids)
        out.cloud_points = np.asarray(like.scene.cloud_points)[keep]
        out.cloud_colors = np.asarray(like.scene.cloud_colors)[keep]
        view = None if like.view is None else \
            dataclasses.replace(like.view, objects=[o for o in like.view.objects if o.id in ids])
        return Remembered(out, MemoryUpdate(ids=ids), view, owners[keep])

    def ids(self) -> list[int]:
        """The remembered ids, ascending."""
        with self._lock:
            return [o.id for o in self._memory.objects]

    def clear(self) -> list[int]:
        """Forget every object; the ids dropped (never reused)."""
        with self._lock:
            return self._memory.clear()

    def forget(self, object_id: int) -> bool:
        """Forget one object; False when none has that id."""
        with self._lock:
            return self._memory.forget(object_id)
