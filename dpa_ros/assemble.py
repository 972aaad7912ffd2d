"""The back half of the method from a metric depth map: targets, background, layout, scene.

This is the "bring your own priors" path (``dpa-reconstruct --instances``) and the back half of
the full pipeline: given the image, its metric depth, the camera and, per object instance, a
visible mask and candidate meshes, it places every object in metric 3D.

Mesh convention. Meshes handed in (``Instance.meshes``) follow the glTF convention — right-handed,
+Y up, the object's front toward +Z — unless ``Instance.up`` names another up axis (``+z`` for
ROS / Gazebo / Isaac / Blender / Shap-E assets; the table in :mod:`dpa_ros.geometry.mesh_frames`).
Origin and scale are free: the solver estimates position and size. Each placed object keeps its
mesh exactly as given, and its ``T_camera_object`` maps that mesh (its own frame and units, scale
included) into the camera optical frame. With a known gravity direction the solver keeps the
mesh's up axis vertical and only searches yaw (5 DoF).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import trimesh
from PIL import Image

from dpa_ros.core.camera import CameraModel
from dpa_ros.core.scene import Background, Scene, SceneObject
from dpa_ros.geometry.gravity import check_gravity
from dpa_ros.geometry.layout import LayoutConfig, LayoutProblem, solve_layout
from dpa_ros.geometry.mesh_frames import check_up
from dpa_ros.geometry.physics import PhysicsConfig, apply_results, object_surfaces, settle_objects
from dpa_ros.geometry.planes import fit_background, supporting_pixels
from dpa_ros.geometry.targets import InstanceInputError, TargetConfig, build_target, check_mask, smooth_depth_in_masks

#: Most points kept in a scene's point cloud.
MAX_CLOUD_POINTS = 60000


class InstancesFileError(ValueError):
    """An --instances JSON file (or one of its entries) that cannot be used."""


@dataclass
class Instance:
    """One detected object, ready for the layout stage.

    Attributes:
        label: category name.
        score: detector confidence in [0, 1].
        mask: (H, W) bool, the instance's visible pixels.
        meshes: mesh proposals, in the convention named by ``up`` (module docstring).
        crop_rgb: optional image crop (unused by the geometry).
        up: the meshes' up axis, one of :data:`~dpa_ros.geometry.mesh_frames.UP_AXES` ("+y": glTF).
    """

    label: str
    score: float
    mask: np.ndarray
    meshes: list[trimesh.Trimesh]
    crop_rgb: np.ndarray | None = None
    up: str = "+y"


def load_mask_png(path: str | Path) -> np.ndarray:
    """A mask image as (H, W) bool: a pixel is set when any colour channel (or L) is non-zero."""
    img = np.asarray(Image.open(path))
    if img.ndim == 3:
        img = img[..., :3].max(-1) if img.shape[2] >= 3 else img[..., 0]
    return img > 0


def _load_mesh(path: Path) -> trimesh.Trimesh:
    mesh = trimesh.load(path, force="mesh", process=False)
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise ValueError("mesh has no faces")
    return mesh


def load_instances_json(path: str | Path, mesh_up: str | None = None) -> list[Instance]:
    """Read an --instances file: a JSON list of ``{"label": str, "mask": PNG path, "meshes": [mesh
    paths], "score": float (optional, 1.0), "up": axis (optional)}``.

    Relative paths are relative to the JSON file. Meshes follow the glTF convention (+Y up, front
    +Z) unless the entry's ``"up"`` names another up axis; ``mesh_up`` (``--mesh-up``) sets the
    default for entries without one. Raises :class:`InstancesFileError` naming the file and the
    entry at fault.
    """
    try:
        default_up = check_up(mesh_up or "+y")
    except ValueError as exc:
        raise InstancesFileError(f"{path}: {exc}") from exc
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InstancesFileError(f"cannot read instances file {path}: {exc}") from exc
    if not isinstance(data, list) or not data:
        raise InstancesFileError(f"{path}: expected a non-empty JSON list of instances")
    out = []
    for i, entry in enumerate(data):
        where = f"{path}: instance {i}"
        if not isinstance(entry, dict):
            raise InstancesFileError(f"{where}: expected an object with label, mask, meshes")
        label = entry.get("label")
        if not isinstance(label, str) or not label:
            raise InstancesFileError(f"{where}: missing or empty 'label'")
        where = f"{path}: instance {i} ({label!r})"
        meshes = entry.get("meshes")
        if not isinstance(entry.get("mask"), str) or not isinstance(meshes, list) or not meshes:
            raise InstancesFileError(f"{where}: needs 'mask' (a PNG path) and 'meshes' (a non-empty list of paths)")
        try:
            score = float(entry.get("score", 1.0))
        except (TypeError, ValueError) as exc:
            raise InstancesFileError(f"{where}: 'score' is not a number") from exc
        try:
            up = check_up(entry["up"]) if "up" in entry else default_up
        except ValueError as exc:
            raise InstancesFileError(f"{where}: 'up': {exc}") from exc
        mask_path = path.parent / entry["mask"]
        try:
            mask = load_mask_png(mask_path)
        except (OSError, ValueError) as exc:
            raise InstancesFileError(f"{where}: cannot read mask {mask_path}: {exc}") from exc
        loaded = []
        for m in meshes:
            mesh_path = path.parent / str(m)
            try:
                loaded.append(_load_mesh(mesh_path))
            except Exception as exc:  # trimesh raises many types on unreadable files
                raise InstancesFileError(f"{where}: cannot use mesh {mesh_path}: {exc}") from exc
        out.append(Instance(label=label, score=score, mask=mask, meshes=loaded, up=up))
    return out


def _instance_up(inst: Instance, name: str) -> str:
    try:
        return check_up(inst.up)
    except ValueError as exc:
        raise InstanceInputError(f"instance {name}: {exc}") from exc


def _check_inputs(image_rgb: np.ndarray, depth: np.ndarray, camera: CameraModel) -> np.ndarray:
    shape = (camera.height, camera.width)
    if image_rgb.shape[:2] != shape:
        raise InstanceInputError(f"image is {image_rgb.shape[1]}x{image_rgb.shape[0]} but the camera is "
                                 f"{camera.width}x{camera.height}")
    depth = np.asarray(depth, dtype=np.float64)
    if depth.shape != shape:
        raise InstanceInputError(f"depth is {depth.shape[1] if depth.ndim > 1 else '?'}x{depth.shape[0]} but the "
                                 f"camera is {camera.width}x{camera.height}")
    valid = np.isfinite(depth) & (depth > 0)
    if not valid.any():
        raise InstanceInputError("depth map has no valid pixel (all NaN, zero or infinite)")
    return np.where(valid, depth, np.nan)


def layout_problems(depth: np.ndarray, camera: CameraModel, instances: list[Instance], masks: list[np.ndarray],
                    background: Background, config: LayoutConfig, targets: TargetConfig | None = None
                    ) -> tuple[list[LayoutProblem], np.ndarray]:
    """What :func:`assemble_scene` hands the layout solver: one problem per instance — its target
    points from the depth it fits and its supporting pixels (the fitted floor and walls outside
    every mask that it stands in front of, which hide nothing) — and that depth (z, metres;
    averaged inside each mask when noisy, ``targets.depth_smoothing``, default :class:`TargetConfig`).
    ``masks`` are the instances' checked masks, ``background`` the planes fitted outside them. Raises
    :class:`InstanceInputError` naming an unusable instance."""
    cfg = config
    smoothing = (targets or TargetConfig()).depth_smoothing
    outside = ~np.logical_or.reduce(masks)
    fit_depth = smooth_depth_in_masks(depth, masks, smoothing, 2 * cfg.occlusion_margin)
    problems = []
    for i, (inst, mask) in enumerate(zip(instances, masks)):
        name = f"{i} ({inst.label!r})"
        target = build_target(fit_depth, camera, mask, name, max_points=cfg.points, max_pixels=cfg.points,
                              seed=cfg.seed)
        supporting = supporting_pixels(depth, camera, background.planes, outside, cfg.occlusion_margin,
                                       points=target.points)
        problems.append(LayoutProblem(name, target, inst.meshes, up=_instance_up(inst, name), supporting=supporting))
    return problems, fit_depth


def assemble_scene(image_rgb: np.ndarray, metric_depth: np.ndarray, camera: CameraModel,
                   instances: list[Instance], config: LayoutConfig | None = None,
                   progress: Callable[[str, float], None] | None = None,
                   timings: dict[str, float] | None = None, profile: str = "instances",
                   gravity: np.ndarray | None = None, gravity_source: str = "given",
                   physics: PhysicsConfig | None = None, targets: TargetConfig | None = None) -> Scene:
    """Place ``instances`` in 3D and return the scene (poses in the camera optical frame, metres).

    Args:
        image_rgb: (H, W, 3) uint8 image (colours the scene cloud).
        metric_depth: (H, W) z-depth in metres; NaN, 0 and inf are invalid.
        camera: intrinsics; ``camera.frame_id`` becomes the scene frame.
        instances: masks and mesh proposals (each in its ``up`` convention).
        config: layout settings (default :class:`LayoutConfig`).
        progress: called as ``progress(stage, fraction)`` with stage in "background", "layout",
            "physics", "assemble" and fraction in [0, 1].
        timings: seconds per stage are added to this dict (and to ``scene.timings_s``).
        profile: recorded in the scene.
        gravity: known gravity direction (unit, pointing down, camera optical frame), e.g. from
            the robot's TF or IMU; it wins over the fitted floor's normal. None: gravity from the
            floor when one is found.
        gravity_source: recorded as ``background.gravity_source`` when ``gravity`` is given.
        physics: the physical-consistency stage after the layout (default :class:`PhysicsConfig`:
            on): every object rests on its support and no two interpenetrate
            (:func:`dpa_ros.geometry.physics.settle_objects`); its results go into each object's
            ``support``, ``penetration_*_m`` and ``physics_shift_m``.
        targets: how each instance's targets are built from the depth (default
            :class:`~dpa_ros.geometry.targets.TargetConfig`: noisy depth averaged over 5 × 5 pixels
            inside each mask).

    Raises :class:`~dpa_ros.geometry.targets.InstanceInputError` (a ValueError) naming the instance
    for an empty mask, a mask of the wrong size, no valid depth inside a mask, or an unusable mesh,
    and for an image/depth that does not match the camera or has no valid depth.
    """
    cfg = config or LayoutConfig()
    report = progress or (lambda stage, fraction: None)
    times = timings if timings is not None else {}
    depth = _check_inputs(np.asarray(image_rgb), metric_depth, camera)
    if not instances:
        raise InstanceInputError("no instances to place")

    t0 = time.perf_counter()
    report("background", 0.0)
    names = [f"{i} ({inst.label!r})" for i, inst in enumerate(instances)]
    masks = [check_mask(inst.mask, camera, name) for inst, name in zip(instances, names)]
    for inst, name in zip(instances, names):
        if not inst.meshes:
            raise InstanceInputError(f"instance {name}: no mesh proposals")
    objects_union = np.logical_or.reduce(masks)
    if gravity is not None:
        gravity = check_gravity(gravity)
    background = fit_background(camera.backproject(depth, ~objects_union), gravity=gravity, seed=cfg.seed)
    if gravity is not None:
        background.gravity_source = gravity_source
    times["background"] = time.perf_counter() - t0
    report("background", 1.0)

    t0 = time.perf_counter()
    report("layout", 0.0)
    problems, fit_depth = layout_problems(depth, camera, instances, masks, background, cfg, targets)
    results = solve_layout(problems, camera, depth=fit_depth, gravity=background.gravity, config=cfg,
                           progress=lambda f: report("layout", f))
    times["layout"] = time.perf_counter() - t0
    report("layout", 1.0)

    objects = [SceneObject(id=i, label=inst.label, score=float(inst.score), mesh=inst.meshes[res.proposal_index],
                           T_camera_object=res.T_camera_object, scale=res.scale, fit_error=res.fit_error,
                           proposal_index=res.proposal_index, proposal_errors=list(res.proposal_errors))
               for i, (inst, res) in enumerate(zip(instances, results))]

    t0 = time.perf_counter()
    report("physics", 0.0)
    physics = physics if physics is not None else PhysicsConfig()
    if physics.enabled:
        for k in object_surfaces(objects, background):  # an instance's own top is no separate support
            background.planes[k].label = "plane"
        apply_results(objects, settle_objects(objects, background, physics,
                                              observed=[p.target.points for p in problems]))
    times["physics"] = time.perf_counter() - t0
    report("physics", 1.0)

    t0 = time.perf_counter()
    report("assemble", 0.0)
    valid = np.isfinite(depth)
    v, u = np.nonzero(valid)
    if len(v) > MAX_CLOUD_POINTS:
        keep = np.sort(np.random.default_rng(cfg.seed).choice(len(v), MAX_CLOUD_POINTS, replace=False))
        v, u = v[keep], u[keep]
    sel = np.zeros_like(valid)
    sel[v, u] = True
    cloud = camera.backproject(depth, sel)     # row-major pixel order, the order of (v, u)
    rgb = np.asarray(image_rgb)
    colors = (rgb[v, u, :3] if rgb.ndim == 3 else np.repeat(rgb[v, u, None], 3, 1)).astype(np.uint8)
    times["assemble"] = time.perf_counter() - t0
    report("assemble", 1.0)
    return Scene(camera=camera, objects=objects, background=background, cloud_points=cloud, cloud_colors=colors,
                 timings_s=dict(times), profile=profile)
