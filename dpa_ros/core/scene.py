"""The scene representation shared by the pipeline, the exporters and the ROS node.

A :class:`Scene` is what one reconstruction produces. All poses are in the camera optical frame
(REP 103: x right, y down, z forward), in metres, except in a scene kept in a fixed frame (the
node's scene memory, :meth:`dpa_ros.memory.SceneMemory.to_scene`): there ``frame_id`` is that
fixed frame (``odom``, ``map``), every pose, plane, gravity vector and cloud point is in it, and
``T_frame_camera`` is the latest camera's pose in it. ``scene.json`` (docs/interfaces.md) is its on-disk
form; :func:`write_scene` / :func:`read_scene` round-trip it with the object meshes
(``objects/<id>.obj``, in each object's own frame, unscaled) and the scene cloud
(``scene_cloud.ply``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh

from dpa_ros.core.camera import CameraModel
from dpa_ros.core.fileio import atomic_write, atomic_write_text

SCENE_JSON = "scene.json"
CLOUD_PLY = "scene_cloud.ply"
OBJECTS_DIR = "objects"


class SceneFormatError(ValueError):
    """A scene directory or scene.json that cannot be read."""


@dataclass
class SceneObject:
    """One placed object.

    Attributes:
        id: stable id within the scene (TF frame ``<prefix>object_<id>``).
        label: category.
        score: detector confidence in [0, 1].
        mesh: mesh in the object's own frame, unscaled (vertex colours kept when known).
        T_camera_object: 4×4 similarity transform object → camera optical frame; its upper-left
            3×3 block is ``scale * R``.
        scale: the uniform scale inside ``T_camera_object``.
        fit_error: final layout objective of the winning proposal (3D terms in m + λ · 2D terms in
            normalised image units; :mod:`dpa_ros.geometry.layout`).
        proposal_index: which mesh proposal won the layout (-1 when not known).
        proposal_errors: the best final layout objective of every proposal, in proposal order
            (empty when not known); ``fit_error`` is its minimum.
        support: what the object rests on after the physics stage: ``"floor"``, ``"plane_<k>"``
            (``background.planes[k]``, a support plane), ``"object_<id>"`` (on top of another
            object), ``"none"`` (nothing found below it) or ``""`` (the stage did not run).
        penetration_before_m, penetration_after_m: deepest interpenetration of this object with
            the floor, a support plane or another object, metres, before and after the physics
            stage (NaN when it did not run).
        physics_shift_m: how far the physics stage moved the object's centre, metres (0 when it
            did not run).
        physics_stretch: the object's height along gravity after the physics stage over its
            height before (1.0: not stretched; ``mesh`` is the stretched mesh).
    """

    id: int
    label: str
    score: float
    mesh: trimesh.Trimesh
    T_camera_object: np.ndarray
    scale: float = 1.0
    fit_error: float = float("nan")
    proposal_index: int = -1
    proposal_errors: list[float] = field(default_factory=list)
    support: str = ""
    penetration_before_m: float = float("nan")
    penetration_after_m: float = float("nan")
    physics_shift_m: float = 0.0
    physics_stretch: float = 1.0

    @property
    def rotation(self) -> np.ndarray:
        """Rotation part (3×3, orthonormal) of ``T_camera_object``."""
        return np.asarray(self.T_camera_object)[:3, :3] / self.scale

    @property
    def translation(self) -> np.ndarray:
        return np.asarray(self.T_camera_object)[:3, 3].copy()

    def mesh_in_camera(self) -> trimesh.Trimesh:
        """The mesh with its scale and pose applied, in the camera optical frame."""
        placed = self.mesh.copy()
        placed.apply_transform(np.asarray(self.T_camera_object, dtype=np.float64))
        return placed


@dataclass
class Plane:
    """A background plane n·p + d = 0 in the scene's frame (the camera optical frame, or the fixed
    frame of a memory scene); |n| = 1, n points at the camera (in a fixed frame: towards the side
    the cameras were on).

    Attributes:
        label: ``"floor"`` (the lowest large horizontal plane), ``"support"`` (a horizontal plane
            above the floor that is no instance: a table top, a shelf board), ``"wall"``
            (vertical) or ``"plane"`` (anything else).
        normal, offset: n and d, the scene's frame, metres.
        inlier_count: points that support the plane.
        polygon: (K, 3) corners in the scene's frame (metres) of the convex hull of the plane's inliers,
            projected onto the plane, in order around it; None when not known (the plane is then
            unbounded, as the floor is for most uses).
    """

    label: str
    normal: np.ndarray
    offset: float
    inlier_count: int = 0
    polygon: np.ndarray | None = None

    def to_dict(self) -> dict:
        return {"label": self.label, "normal": np.asarray(self.normal, float).tolist(),
                "offset": float(self.offset), "inlier_count": int(self.inlier_count),
                "polygon": None if self.polygon is None else np.asarray(self.polygon, float).tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Plane":
        polygon = d.get("polygon")
        return cls(label=str(d["label"]), normal=np.asarray(d["normal"], float), offset=float(d["offset"]),
                   inlier_count=int(d.get("inlier_count", 0)),
                   polygon=None if polygon is None else np.asarray(polygon, float).reshape(-1, 3))


@dataclass
class Background:
    """Planes fitted to non-object points and the gravity direction they imply (the scene's frame:
    the optical frame, or the fixed frame of a memory scene).

    ``gravity`` is a unit vector pointing down (towards the floor), or None when unknown.
    ``gravity_source`` says where it came from: ``"floor"`` (minus the fitted floor's normal),
    ``"given"`` (a vector handed to the library or ``dpa-reconstruct --gravity``), ``"parameter"``
    (the node's ``gravity`` parameter), ``"tf:<frame>"`` (the node's ``gravity_frame`` through TF),
    ``"imu"`` (the node's IMU topic) or ``"none"``.
    """

    planes: list[Plane] = field(default_factory=list)
    gravity: np.ndarray | None = None
    gravity_source: str = "none"

    @property
    def floor(self) -> Plane | None:
        return next((p for p in self.planes if p.label == "floor"), None)


@dataclass
class Scene:
    """Everything one reconstruction produced.

    Attributes:
        camera: intrinsics of the input image; ``camera.frame_id`` is the optical frame.
        objects: placed objects.
        background: fitted planes and gravity.
        cloud_points: (N, 3) scene points in the optical frame (metres), or empty.
        cloud_colors: (N, 3) uint8 RGB of those points, or empty.
        timings_s: wall-clock seconds per stage, in pipeline order.
        profile: which profile (or "instances") produced it.
        stamp_ns: the image's timestamp in nanoseconds (0 when unknown).
        T_frame_camera: for a scene kept in a fixed frame (``frame_id``, e.g. ``odom``): 4×4 rigid
            transform, the latest view's camera optical frame → that frame, metres; None when the
            scene's frame is the camera optical frame itself (one reconstruction).
    """

    camera: CameraModel
    objects: list[SceneObject] = field(default_factory=list)
    background: Background = field(default_factory=Background)
    cloud_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    cloud_colors: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.uint8))
    timings_s: dict[str, float] = field(default_factory=dict)
    profile: str = ""
    stamp_ns: int = 0
    T_frame_camera: np.ndarray | None = None

    @property
    def in_fixed_frame(self) -> bool:
        """Whether the scene lives in a fixed frame (a memory scene) rather than the camera optical frame."""
        return self.T_frame_camera is not None

    @property
    def frame_id(self) -> str:
        return self.camera.frame_id

    def to_json_dict(self) -> dict:
        """scene.json content (docs/interfaces.md); mesh paths are relative to the scene directory."""
        bg: dict = {"planes": [p.to_dict() for p in self.background.planes],
                    "gravity": None if self.background.gravity is None
                    else np.asarray(self.background.gravity, float).tolist(),
                    "gravity_source": self.background.gravity_source}
        return {
            "frame_id": self.frame_id,
            "camera": {"K": self.camera.K.ravel().tolist(), "width": self.camera.width,
                       "height": self.camera.height},
            "objects": [
                {"id": int(o.id), "label": o.label, "score": float(o.score),
                 "mesh": f"{OBJECTS_DIR}/{o.id}.obj",
                 "T_camera_object": np.asarray(o.T_camera_object, float).tolist(),
                 "scale": float(o.scale), "fit_error": float(o.fit_error),
                 "proposal_index": int(o.proposal_index),
                 "proposal_errors": [float(e) for e in o.proposal_errors],
                 "support": o.support,
                 "penetration_m": {"before": _json_float(o.penetration_before_m),
                                   "after": _json_float(o.penetration_after_m)},
                 "physics_shift_m": float(o.physics_shift_m),
                 "physics_stretch": float(o.physics_stretch)}
                for o in self.objects
            ],
            "background": bg,
            "cloud": CLOUD_PLY if len(self.cloud_points) else None,
            "timings_s": {k: float(v) for k, v in self.timings_s.items()},
            "profile": self.profile,
            "stamp_ns": int(self.stamp_ns),
            "T_frame_camera": None if self.T_frame_camera is None
            else np.asarray(self.T_frame_camera, float).tolist(),
        }


def _json_float(value: float) -> float | None:
    """A float for JSON, None for NaN (JSON has no NaN)."""
    return None if not np.isfinite(value) else float(value)


def _write_mesh(mesh: trimesh.Trimesh, path: Path) -> None:
    atomic_write(path, lambda p: mesh.export(p, file_type=path.suffix.lstrip(".")))


def write_scene(scene: Scene, out_dir: str | Path) -> Path:
    """Write scene.json, objects/<id>.obj and scene_cloud.ply under ``out_dir``; return scene.json's path.

    Every file is written atomically; scene.json is written last, so a reader that finds it
    finds the files it names.
    """
    out_dir = Path(out_dir)
    (out_dir / OBJECTS_DIR).mkdir(parents=True, exist_ok=True)
    for obj in scene.objects:
        _write_mesh(obj.mesh, out_dir / OBJECTS_DIR / f"{obj.id}.obj")
    if len(scene.cloud_points):
        colors = np.asarray(scene.cloud_colors, np.uint8) if len(scene.cloud_colors) else None
        cloud = trimesh.PointCloud(np.asarray(scene.cloud_points, float), colors=colors)
        atomic_write(out_dir / CLOUD_PLY, lambda p: cloud.export(p, file_type="ply"))
    json_path = out_dir / SCENE_JSON
    atomic_write_text(json_path, json.dumps(scene.to_json_dict(), indent=2))
    return json_path


def read_mesh(path: Path) -> trimesh.Trimesh:
    """A mesh file as one Trimesh (unprocessed); :class:`SceneFormatError` when it cannot be read or has no faces."""
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types on corrupt files
        raise SceneFormatError(f"cannot read mesh {path}: {exc}") from exc
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise SceneFormatError(f"mesh {path} has no faces")
    return mesh


def _nan_if_none(value) -> float:
    return float("nan") if value is None else float(value)


def read_scene(scene_dir: str | Path) -> Scene:
    """Load a scene directory written by :func:`write_scene` (or by hand, following docs/interfaces.md)."""
    scene_dir = Path(scene_dir)
    json_path = scene_dir / SCENE_JSON if scene_dir.is_dir() else scene_dir
    scene_dir = json_path.parent
    try:
        data = json.loads(json_path.read_text())
        cam = data["camera"]
        camera = CameraModel(K=np.asarray(cam["K"], float).reshape(3, 3), width=int(cam["width"]),
                             height=int(cam["height"]), frame_id=str(data.get("frame_id", "camera_optical_frame")))
        objects = []
        for o in data["objects"]:
            T = np.asarray(o["T_camera_object"], float).reshape(4, 4)
            objects.append(SceneObject(
                id=int(o["id"]), label=str(o["label"]), score=float(o.get("score", 1.0)),
                mesh=read_mesh(scene_dir / o["mesh"]), T_camera_object=T,
                scale=float(o.get("scale", np.cbrt(abs(np.linalg.det(T[:3, :3]))))),
                fit_error=float(o.get("fit_error", float("nan"))),
                proposal_index=int(o.get("proposal_index", -1)),
                proposal_errors=[float(e) for e in o.get("proposal_errors", [])],
                support=str(o.get("support", "")),
                penetration_before_m=_nan_if_none((o.get("penetration_m") or {}).get("before")),
                penetration_after_m=_nan_if_none((o.get("penetration_m") or {}).get("after")),
                physics_shift_m=float(o.get("physics_shift_m", 0.0)),
                physics_stretch=float(o.get("physics_stretch", 1.0))))
    except SceneFormatError:
        raise
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise SceneFormatError(f"cannot read scene {json_path}: {exc}") from exc
    bg = data.get("background") or {}
    background = Background(planes=[Plane.from_dict(p) for p in bg.get("planes", [])],
                            gravity=None if bg.get("gravity") is None else np.asarray(bg["gravity"], float),
                            gravity_source=str(bg.get("gravity_source", "none" if bg.get("gravity") is None
                                                      else "floor")))
    points = np.zeros((0, 3))
    colors = np.zeros((0, 3), np.uint8)
    if data.get("cloud"):
        cloud = trimesh.load(scene_dir / data["cloud"], process=False)
        points = np.asarray(cloud.vertices, float)
        if getattr(cloud, "colors", None) is not None and len(cloud.colors):
            colors = np.asarray(cloud.colors)[:, :3].astype(np.uint8)
    return Scene(camera=camera, objects=objects, background=background, cloud_points=points,
                 cloud_colors=colors, timings_s={k: float(v) for k, v in data.get("timings_s", {}).items()},
                 profile=str(data.get("profile", "")), stamp_ns=int(data.get("stamp_ns", 0)),
                 T_frame_camera=_frame_camera(data.get("T_frame_camera"), json_path))


def _frame_camera(value, json_path: Path) -> np.ndarray | None:
    """scene.json's ``T_frame_camera`` (null or a 4×4 matrix) as an array; SceneFormatError when malformed."""
    if value is None:
        return None
    try:
        T = np.asarray(value, float)
    except (TypeError, ValueError) as exc:
        raise SceneFormatError(f"cannot read scene {json_path}: T_frame_camera: {exc}") from exc
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise SceneFormatError(f"cannot read scene {json_path}: T_frame_camera must be a finite 4x4 matrix, "
                               f"got shape {T.shape}")
    return T
