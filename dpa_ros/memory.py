"""Scene memory: objects kept over many views in a fixed frame (``odom``, ``map``), with stable ids.

Each reconstruction (a :class:`~dpa_ros.core.scene.Scene`, poses in the camera optical frame) is placed
in the fixed frame by ``T_fixed_camera`` (the camera pose at the image stamp, e.g. from TF) and
merged into the memory by :meth:`SceneMemory.observe`:

* Association. A new object matches a remembered one when their labels are compatible (equal,
  ignoring case and surrounding blanks) and their axis-aligned boxes in the fixed frame overlap by
  at least ``min_overlap`` of the smaller box's volume (greedy, largest overlap first). A new
  object left over matches a left-over remembered object of the same label whose centre lies
  within ``move_radius_m``: that object has moved.
* Fusion. A matched object keeps the remembered id. Its mask's depth points (in the fixed frame, at
  most ``points_per_view`` per view, the last ``max_views`` views) are kept with the view's camera
  centre, depth, mask and own fit, and its pose and scale are refit on every view
  (:mod:`dpa_ros.geometry.multiview_fit`): closest-point similarity steps to the faces that face
  each point's camera, then Gauss-Newton steps on each point's residual along its camera ray (where
  a depth camera's error lies) and on the views' silhouettes. Starts: the remembered pose and every
  kept view's own fit; and the remembered pose turned by each of the 24 axis rotations of the
  mesh's frame, first refit two-sided (the surface samples each view should have measured are also
  pulled to that view's nearest points, a wider basin), so a chair one view took for upside down
  is righted. The candidate (refit or not) with the least robust cost wins: points, free space
  (samples a view should have measured but saw through) and silhouettes, in standard deviations.
* Moves. When the new view's points lie further than ``move_tolerance_m`` (median) from the
  remembered surface and the new pose explains them better, the object moved: its old points are
  dropped and it takes the new view's pose, keeping its id.
* Forgetting. A remembered object that was not matched but should have been seen — at least
  ``min_visible_fraction`` of its surface samples project into the image, in front of the camera,
  and are not hidden by nearer observed depth (by more than ``occlusion_margin_m``) — counts a
  miss; after ``forget_after`` consecutive misses it is forgotten. A match resets the count; an
  object out of view or hidden keeps its count.
* Background. Each view's floor plane and gravity are carried into the fixed frame and kept over
  views (:mod:`dpa_ros.memory_background`); :meth:`SceneMemory.to_scene` hands them back with the
  objects rested on that floor, so an export of the memory is simulation-ready.

Frames: ``T_fixed_object`` maps the object's mesh (its own frame and units, unscaled) into the
fixed frame, scale included (upper-left block ``scale * R``). Distances are in metres.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import trimesh

from dpa_ros.core.camera import CameraModel
from dpa_ros.core.scene import Scene, SceneObject
from dpa_ros.geometry.multiview_fit import (
    Silhouette,
    ViewPoints,
    apply_transform,
    is_valid_similarity,
    nearest_depth,
    refine_point_to_plane,
    refit_similarity,
    surface_distance,
    truncated_costs,
    turned_starts,
)
from dpa_ros.memory_background import BackgroundMemory, settle_in_frame

#: Surface samples per object for the visibility test.
VISIBILITY_SAMPLES = 500

#: Refit steps of each turned start, and how many of the best of them are then refit in full.
TURN_ITERATIONS = 4
TURNS_REFIT = 3

#: Most point-to-plane steps that finish each refit.
PLANE_ITERATIONS = 8


@dataclass
class MemoryConfig:
    """Scene-memory settings (module docstring).

    Attributes:
        forget_after: consecutive views in which a remembered object should be visible but is not
            found before it is forgotten (≥ 1).
        min_overlap: box-overlap fraction (of the smaller box's volume) that associates two objects.
        move_radius_m: furthest a left-over object of the same label may have moved, metres.
        move_tolerance_m: median distance of the new points to the remembered surface beyond which
            the object is taken to have moved, metres.
        occlusion_margin_m: how far observed depth must lie in front of a surface sample to hide it.
        min_visible_fraction: fraction of surface samples that must be visible for an unmatched
            object to count a miss.
        points_per_view: most depth points kept per object and view.
        max_views: views whose points are kept per object (the oldest are dropped).
        icp_iterations: similarity-ICP steps of each refit.
        seed: seeds the point subsampling and surface sampling.
    """

    forget_after: int = 3
    min_overlap: float = 0.2
    move_radius_m: float = 1.0
    move_tolerance_m: float = 0.04
    occlusion_margin_m: float = 0.05
    min_visible_fraction: float = 0.1
    points_per_view: int = 400
    max_views: int = 5
    icp_iterations: int = 15
    seed: int = 0

    def validate(self) -> "MemoryConfig":
        """Raise ValueError naming the first setting out of range; returns self."""
        if int(self.forget_after) < 1:
            raise ValueError(f"forget_after must be at least 1, got {self.forget_after}")
        if not 0.0 < self.min_overlap <= 1.0:
            raise ValueError(f"min_overlap must be in (0, 1], got {self.min_overlap}")
        for name in ("move_radius_m", "move_tolerance_m", "occlusion_margin_m"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if not 0.0 < self.min_visible_fraction <= 1.0:
            raise ValueError(f"min_visible_fraction must be in (0, 1], got {self.min_visible_fraction}")
        for name in ("points_per_view", "max_views", "icp_iterations"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        return self


@dataclass
class RememberedObject:
    """One object of the memory.

    Attributes:
        id: stable id (TF frame ``<prefix>object_<id>``).
        label, score: from the latest view that saw it.
        mesh: mesh in its own frame, unscaled.
        T_fixed_object: 4×4 similarity, mesh → fixed frame (scale included).
        scale: the uniform scale inside ``T_fixed_object``.
        views: per view that saw it (the last ``max_views``), its depth points and own fit.
        misses: consecutive views in which it should have been visible but was not found.
        fit_error_m: mean distance of all kept points to the placed surface, metres.
    """

    id: int
    label: str
    score: float
    mesh: trimesh.Trimesh
    T_fixed_object: np.ndarray
    scale: float
    views: list["ViewPoints"] = field(default_factory=list)
    misses: int = 0
    fit_error_m: float = float("nan")


@dataclass
class MemoryUpdate:
    """What one :meth:`SceneMemory.observe` changed.

    Attributes:
        ids: the memory id given to each object of the observed scene, in its order.
        added: ids of new objects.
        kept: ids of remembered objects seen again in place (poses refit).
        moved: ids of remembered objects found at a new pose.
        forgotten: ids dropped in this view.
    """

    ids: list[int] = field(default_factory=list)
    added: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    moved: list[int] = field(default_factory=list)
    forgotten: list[int] = field(default_factory=list)


def labels_compatible(a: str, b: str) -> bool:
    """Whether two category labels name the same kind of object (equal up to case and blanks)."""
    return a.strip().lower() == b.strip().lower()


def _box(mesh: trimesh.Trimesh, T: np.ndarray) -> np.ndarray:
    v = apply_transform(T, np.asarray(mesh.vertices, float))
    return np.stack([v.min(0), v.max(0)])


def box_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection volume of two axis-aligned boxes ((2, 3): min, max) over the smaller one's volume."""
    inter = np.clip(np.minimum(a[1], b[1]) - np.maximum(a[0], b[0]), 0.0, None).prod()
    smaller = min(np.prod(a[1] - a[0]), np.prod(b[1] - b[0]))
    return float(inter / smaller) if smaller > 0 else 0.0


def _scale_of(T: np.ndarray) -> float:
    return float(np.cbrt(abs(np.linalg.det(T[:3, :3]))))


class SceneMemory:
    """Objects remembered over views in one fixed frame (module docstring)."""

    def __init__(self, config: MemoryConfig | None = None):
        self.config = (config or MemoryConfig()).validate()
        self._objects: dict[int, RememberedObject] = {}
        self._next_id = 0
        self._rng = np.random.default_rng(self.config.seed)
        self._background = BackgroundMemory()
        self._T_fixed_camera: np.ndarray | None = None

    @property
    def objects(self) -> list[RememberedObject]:
        """The remembered objects, by id."""
        return [self._objects[k] for k in sorted(self._objects)]

    def clear(self) -> list[int]:
        """Forget everything (objects, floor, gravity); returns the ids dropped. Ids are not reused."""
        dropped = sorted(self._objects)
        self._objects.clear()
        self._background.clear()
        return dropped

    def forget(self, object_id: int) -> bool:
        """Forget one object; False when no object has that id."""
        return self._objects.pop(int(object_id), None) is not None

    def _view_points(self, depth: np.ndarray, depth_near: np.ndarray, camera: CameraModel, mask: np.ndarray,
                     T_fixed_camera: np.ndarray, obj: SceneObject, T_fit: np.ndarray) -> ViewPoints:
        points = camera.backproject(depth, mask)
        if len(points) > self.config.points_per_view:
            points = points[np.sort(self._rng.choice(len(points), self.config.points_per_view, replace=False))]
        return ViewPoints(points=apply_transform(T_fixed_camera, points), origin=T_fixed_camera[:3, 3].copy(),
                          weight=points[:, 2] ** -4.0, T_fit=T_fit, mesh=obj.mesh, camera=camera, depth=depth,
                          T_camera_fixed=np.linalg.inv(T_fixed_camera), depth_near=depth_near,
                          silhouette=Silhouette(mask))

    def _fuse(self, mem: RememberedObject, obj: SceneObject, view: ViewPoints) -> bool:
        """Merge a new observation into ``mem``; True when the object was found to have moved.

        Candidates (:mod:`dpa_ros.geometry.multiview_fit`): the remembered pose and every kept
        view's own fit, each as it is and refit on every view's points (``refit_similarity``), and
        the ``TURNS_REFIT`` best of the remembered pose turned by each of ``CUBE_ROTATIONS`` (after
        ``TURN_ITERATIONS`` two-sided refit steps), refit two-sided then one-sided in full; each
        one-sided refit ends with at most ``PLANE_ITERATIONS`` point-to-plane steps
        (``refine_point_to_plane``). The candidate with the least ``truncated_costs`` wins.
        """
        cfg = self.config
        moved = False
        if len(view.points) >= 10 and mem.views:
            d_old = float(np.median(surface_distance(mem.mesh, mem.T_fixed_object, view.points)[0]))
            d_new = float(np.median(surface_distance(view.mesh, view.T_fit, view.points)[0]))
            moved = d_old > cfg.move_tolerance_m and d_new < d_old
        if moved:
            mem.views = []
        if len(view.points):
            mem.views = (mem.views + [view])[-cfg.max_views:]
        mem.label, mem.score = obj.label, float(obj.score)
        if not mem.views:
            mem.mesh, mem.T_fixed_object = view.mesh, view.T_fit
        else:
            starts = ([] if moved else [(mem.T_fixed_object, mem.mesh)]) + [(v.T_fit, v.mesh) for v in mem.views]
            margin = cfg.occlusion_margin_m

            def polished(mesh, T):  # closest-point steps reach the basin, point-to-plane steps its floor
                T = refit_similarity(mesh, T, mem.views, cfg.icp_iterations)
                return refine_point_to_plane(mesh, T, mem.views, PLANE_ITERATIONS, margin_m=margin), mesh

            candidates = []
            for T0, mesh in starts:
                candidates += [(T0, mesh), polished(mesh, T0)]
            T0, mesh = starts[0]
            turned = [(refit_similarity(mesh, T, mem.views, TURN_ITERATIONS, two_sided=True, margin_m=margin), mesh)
                      for T in turned_starts(T0, mesh)]
            for k in np.argsort(truncated_costs(turned, mem.views, margin))[:TURNS_REFIT]:
                T, mesh = turned[k]
                T = refit_similarity(mesh, T, mem.views, cfg.icp_iterations, two_sided=True, margin_m=margin)
                candidates.append(polished(mesh, T))
            candidates = [c for c in candidates if is_valid_similarity(c[0])] or [(view.T_fit, view.mesh)]
            costs = truncated_costs(candidates, mem.views, margin)
            mem.T_fixed_object, mem.mesh = candidates[int(np.argmin(costs))]
            points = np.concatenate([v.points for v in mem.views])
            mem.fit_error_m = float(surface_distance(mem.mesh, mem.T_fixed_object, points)[0].mean())
        mem.scale = _scale_of(mem.T_fixed_object)
        mem.misses = 0
        return moved

    def _should_be_visible(self, mem: RememberedObject, depth: np.ndarray, camera: CameraModel,
                           T_camera_fixed: np.ndarray) -> bool:
        samples, _ = trimesh.sample.sample_surface(mem.mesh, VISIBILITY_SAMPLES, seed=self.config.seed)
        p = apply_transform(T_camera_fixed @ mem.T_fixed_object, np.asarray(samples, float))
        front = p[:, 2] > 0.05
        uv = np.full((len(p), 2), -1.0)
        uv[front] = camera.project(p[front])
        u, v = np.round(uv[:, 0]).astype(int), np.round(uv[:, 1]).astype(int)
        inside = front & (u >= 0) & (u < camera.width) & (v >= 0) & (v < camera.height)
        observed = np.full(len(p), np.nan)
        observed[inside] = depth[v[inside], u[inside]]
        with np.errstate(invalid="ignore"):
            unhidden = inside & np.isfinite(observed) & (observed >= p[:, 2] - self.config.occlusion_margin_m)
        return unhidden.mean() >= self.config.min_visible_fraction

    def observe(self, scene: Scene, T_fixed_camera: np.ndarray, depth: np.ndarray,
                masks: list[np.ndarray]) -> MemoryUpdate:
        """Merge one reconstruction into the memory.

        Args:
            scene: the reconstruction (poses in the camera optical frame, metres).
            T_fixed_camera: 4×4 rigid camera-optical → fixed-frame transform at the image stamp.
            depth: (H, W) metric z-depth of the view (metres, NaN/0 invalid), the visibility test's
                and the fusion's input.
            masks: per scene object, in its order, its (H, W) bool visible pixels.

        Returns the :class:`MemoryUpdate`. Raises ValueError for masks that do not match the objects
        or the camera, or a depth map of the wrong size.
        """
        cfg = self.config
        camera = scene.camera
        T_fixed_camera = np.asarray(T_fixed_camera, float)
        depth = np.asarray(depth, float)
        if depth.shape != (camera.height, camera.width):
            raise ValueError(f"depth shape {depth.shape} does not match camera {camera.height}x{camera.width}")
        if len(masks) != len(scene.objects):
            raise ValueError(f"{len(masks)} masks for {len(scene.objects)} objects")
        for i, m in enumerate(masks):
            if np.shape(m) != depth.shape:
                raise ValueError(f"mask {i} has shape {np.shape(m)}, the image is {depth.shape}")
        self._background.observe(scene.background, T_fixed_camera)
        self._T_fixed_camera = T_fixed_camera.copy()
        placed = [T_fixed_camera @ np.asarray(o.T_camera_object, float) for o in scene.objects]
        depth_near = nearest_depth(depth)  # one per view, shared by its objects
        views = [self._view_points(depth, depth_near, camera, np.asarray(m, bool), T_fixed_camera, o, T)
                 for m, o, T in zip(masks, scene.objects, placed)]
        boxes = [_box(o.mesh, T) for o, T in zip(scene.objects, placed)]
        mem_boxes = {k: _box(m.mesh, m.T_fixed_object) for k, m in self._objects.items()}

        pairs = sorted(((box_overlap(boxes[i], mem_boxes[k]), i, k) for i, o in enumerate(scene.objects)
                        for k, m in self._objects.items() if labels_compatible(o.label, m.label)), reverse=True)
        match: dict[int, int] = {}
        for overlap, i, k in pairs:
            if overlap >= cfg.min_overlap and i not in match and k not in match.values():
                match[i] = k
        near = sorted((float(np.linalg.norm(boxes[i].mean(0) - mem_boxes[k].mean(0))), i, k)
                      for i, o in enumerate(scene.objects) if i not in match
                      for k, m in self._objects.items()
                      if k not in match.values() and labels_compatible(o.label, m.label))
        for dist, i, k in near:
            if dist <= cfg.move_radius_m and i not in match and k not in match.values():
                match[i] = k

        update = MemoryUpdate()
        for i, obj in enumerate(scene.objects):
            if i in match:
                k = match[i]
                (update.moved if self._fuse(self._objects[k], obj, views[i]) else update.kept).append(k)
            else:
                k = self._next_id
                self._next_id += 1
                mem = RememberedObject(id=k, label=obj.label, score=float(obj.score), mesh=obj.mesh,
                                       T_fixed_object=placed[i], scale=_scale_of(placed[i]))
                self._fuse(mem, obj, views[i])
                self._objects[k] = mem
                update.added.append(k)
            update.ids.append(k)

        T_camera_fixed = np.linalg.inv(T_fixed_camera)
        for k in sorted(set(self._objects) - set(update.ids)):
            mem = self._objects[k]
            if self._should_be_visible(mem, depth, camera, T_camera_fixed):
                mem.misses += 1
                if mem.misses >= cfg.forget_after:
                    del self._objects[k]
                    update.forgotten.append(k)
        return update

    def to_scene(self, fixed_frame: str, like: Scene, physics=None) -> Scene:
        """The memory as a :class:`Scene` in ``fixed_frame`` (its ``frame_id``): the objects with their
        stable ids, rested on the kept floor and on each other by the physics stage (``physics``: a
        :class:`~dpa_ros.geometry.physics.PhysicsConfig`, None for its defaults; the remembered poses
        themselves stay as fused), the kept background (floor, gravity, the latest view's other
        planes; :mod:`dpa_ros.memory_background`), ``T_frame_camera`` the latest view's camera pose;
        camera intrinsics, timings, profile and stamp from ``like`` (the latest view); no cloud (that
        is per view)."""
        camera = dataclasses.replace(like.camera, frame_id=fixed_frame)
        remembered = self.objects
        objects = [SceneObject(id=m.id, label=m.label, score=m.score, mesh=m.mesh,
                               T_camera_object=m.T_fixed_object.copy(), scale=m.scale, fit_error=m.fit_error_m)
                   for m in remembered]
        observed = [np.concatenate([v.points for v in m.views]) if m.views else None for m in remembered]
        objects, background = settle_in_frame(objects, self._background.background(), observed, physics)
        T = self._T_fixed_camera if self._T_fixed_camera is not None else np.eye(4)
        return Scene(camera=camera, objects=objects, background=background, timings_s=dict(like.timings_s),
                     profile=like.profile, stamp_ns=like.stamp_ns, T_frame_camera=T.copy())
