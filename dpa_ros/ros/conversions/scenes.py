"""Meshes (shape_msgs/Mesh <-> trimesh), scenes (library Scene <-> dpa_ros/msg/Scene) and their TF transforms.

Scenes: :func:`scene_to_msg` (library :class:`~dpa_ros.core.scene.Scene` → ``dpa_ros/msg/Scene``),
:func:`object_from_msg` (back, for clients), :func:`scene_to_markers` (RViz MarkerArray),
:func:`scene_to_transforms` (one ``TransformStamped`` per object). The object pose is the rigid part
of ``T_camera_object``; its uniform scale travels separately (``SceneObject.scale``, the marker's
``scale``), because neither ``Pose`` nor TF can carry a scale.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import trimesh
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Quaternion, TransformStamped, Vector3
from shape_msgs.msg import Mesh, MeshTriangle
from std_msgs.msg import ColorRGBA, Header

from dpa_ros.core.scene import Scene as LibScene
from dpa_ros.core.scene import SceneObject as LibSceneObject
from dpa_ros.naming import object_name
from dpa_ros.ros.conversions.geometry import matrix_to_pose, pose_to_matrix
from dpa_ros.ros.conversions.stamps import ConversionError, make_header


# ------------------------------------------------------------------------------------------ scenes
def _points(xyz: np.ndarray) -> list[Point]:
    return [Point(x=x, y=y, z=z) for x, y, z in np.asarray(xyz, dtype=np.float64).tolist()]


def _vertex_colors(mesh: trimesh.Trimesh) -> np.ndarray | None:
    """(V, 4) float RGBA in [0, 1] when the mesh carries per-vertex colours, else None."""
    visual = getattr(mesh, "visual", None)
    if visual is None or getattr(visual, "kind", None) != "vertex":
        return None
    cols = np.asarray(visual.vertex_colors)
    if cols.shape[0] != len(mesh.vertices):
        return None
    return cols[:, :4].astype(np.float64) / 255.0


def mesh_to_msg(mesh: trimesh.Trimesh) -> tuple[Mesh, list[ColorRGBA]]:
    """(shape_msgs/Mesh, per-vertex colours or []) of a trimesh, vertices unchanged."""
    msg = Mesh()
    msg.vertices = _points(mesh.vertices)
    msg.triangles = [MeshTriangle(vertex_indices=f) for f in np.asarray(mesh.faces, dtype=np.uint32)]
    cols = _vertex_colors(mesh)
    colors = [] if cols is None else [ColorRGBA(r=r, g=g, b=b, a=a) for r, g, b, a in cols.tolist()]
    return msg, colors


def mesh_from_msg(mesh: Mesh, vertex_colors: Sequence[ColorRGBA] = ()) -> trimesh.Trimesh:
    """A trimesh from shape_msgs/Mesh (+ optional per-vertex colours), vertices unchanged."""
    verts = np.array([(p.x, p.y, p.z) for p in mesh.vertices], dtype=np.float64).reshape(-1, 3)
    faces = np.array([t.vertex_indices for t in mesh.triangles], dtype=np.int64).reshape(-1, 3)
    if len(faces) and (faces.max() >= len(verts)):
        raise ConversionError(f"mesh triangle index {faces.max()} out of range ({len(verts)} vertices)")
    colors = None
    if len(vertex_colors) == len(verts) and len(verts):
        colors = np.round(np.array([(c.r, c.g, c.b, c.a) for c in vertex_colors]) * 255).astype(np.uint8)
    return trimesh.Trimesh(vertices=verts, faces=faces, vertex_colors=colors, process=False)


def scene_to_msg(scene: LibScene, stamp: Time | int | None = None, frame_id: str | None = None,
                 mesh_uris: dict[int, str] | None = None):
    """``dpa_ros/msg/Scene`` of a library scene. ``stamp`` defaults to ``scene.stamp_ns``.

    ``mesh_uris`` maps object id → ``file://`` URI of its exported mesh (``SceneObject.mesh_uri``).
    """
    from dpa_ros.msg import BackgroundPlane, Scene, SceneObject, StageTiming

    msg = Scene(header=make_header(frame_id or scene.frame_id, scene.stamp_ns if stamp is None else stamp))
    for obj in scene.objects:
        mesh, colors = mesh_to_msg(obj.mesh)
        msg.objects.append(SceneObject(
            id=int(obj.id), label=str(obj.label), score=float(obj.score), mesh=mesh, vertex_colors=colors,
            pose=matrix_to_pose(obj.T_camera_object, obj.scale), scale=float(obj.scale),
            fit_error=float(obj.fit_error), mesh_uri=(mesh_uris or {}).get(int(obj.id), "")))
    for plane in scene.background.planes:
        bp = BackgroundPlane(label=str(plane.label), inlier_count=int(plane.inlier_count))
        n = np.asarray(plane.normal, dtype=np.float64).reshape(3)
        bp.plane.coef = [float(n[0]), float(n[1]), float(n[2]), float(plane.offset)]
        msg.background_planes.append(bp)
    if scene.background.gravity is not None:
        g = np.asarray(scene.background.gravity, dtype=np.float64).reshape(3)
        msg.gravity = Vector3(x=float(g[0]), y=float(g[1]), z=float(g[2]))
    msg.timings = [StageTiming(stage=str(k), seconds=float(v)) for k, v in scene.timings_s.items()]
    msg.profile = str(scene.profile)
    return msg


def object_from_msg(msg) -> LibSceneObject:
    """A library SceneObject from a ``dpa_ros/msg/SceneObject`` (for clients that want numpy)."""
    return LibSceneObject(id=int(msg.id), label=msg.label, score=float(msg.score),
                          mesh=mesh_from_msg(msg.mesh, msg.vertex_colors),
                          T_camera_object=pose_to_matrix(msg.pose, msg.scale), scale=float(msg.scale),
                          fit_error=float(msg.fit_error))


def object_frame(frame_prefix: str, object_id: int) -> str:
    """TF frame name of an object: ``<frame_prefix>object_<id>`` (docs/interfaces.md, TF), the
    exports' name with the default prefix (:func:`dpa_ros.naming.object_name`)."""
    return object_name(object_id, frame_prefix)


def scene_to_transforms(scene_msg, frame_prefix: str) -> list[TransformStamped]:
    """One TransformStamped per object of a ``dpa_ros/msg/Scene``: parent = the scene's frame
    (the image's optical frame), child = ``<frame_prefix>object_<id>``, stamp = the image's stamp.
    The transform is the object's rigid pose; its scale is not representable in TF."""
    out = []
    for obj in scene_msg.objects:
        t = TransformStamped(header=Header(frame_id=scene_msg.header.frame_id, stamp=scene_msg.header.stamp),
                             child_frame_id=object_frame(frame_prefix, obj.id))
        p, o = obj.pose.position, obj.pose.orientation
        t.transform.translation = Vector3(x=p.x, y=p.y, z=p.z)
        t.transform.rotation = Quaternion(x=o.x, y=o.y, z=o.z, w=o.w)
        out.append(t)
    return out
