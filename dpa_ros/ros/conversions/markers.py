"""RViz markers (visualization_msgs/MarkerArray) of a dpa_ros/msg/Scene, and a one-line scene summary."""
from __future__ import annotations

import colorsys
import zlib

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Vector3
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from dpa_ros.ros.conversions.geometry import pose_to_matrix
from dpa_ros.ros.conversions.stamps import ConversionError


def label_color(label: str, alpha: float = 1.0) -> ColorRGBA:
    """A stable, saturated colour per label (hue from a CRC of the text)."""
    hue = (zlib.crc32(label.encode()) % 360) / 360.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.65, 0.95)
    return ColorRGBA(r=r, g=g, b=b, a=float(alpha))


MESH_NS = "dpa_meshes"
LABEL_NS = "dpa_labels"


def scene_to_markers(scene_msg, mesh_mode: str = "triangle_list", alpha: float = 1.0,
                     text_height: float = 0.08, delete_all: bool = True) -> MarkerArray:
    """RViz markers of a ``dpa_ros/msg/Scene``.

    Order: one DELETEALL (when ``delete_all``: the new scene replaces whatever was shown), then per
    object a mesh marker (ns ``dpa_meshes``, id = object id) and a TEXT_VIEW_FACING label (ns
    ``dpa_labels``, id = object id) just above the object's top (optical frame: y is down).

    ``mesh_mode``: ``triangle_list`` (the mesh inline, per-vertex colours when known, else a colour
    per label) or ``mesh_resource`` (``SceneObject.mesh_uri``; objects without a URI fall back to a
    triangle list). Markers are in the scene's frame with the object's pose and its uniform scale.
    """
    if mesh_mode not in ("triangle_list", "mesh_resource"):
        raise ConversionError(f"mesh_mode must be triangle_list or mesh_resource, got '{mesh_mode}'")
    header = Header(frame_id=scene_msg.header.frame_id, stamp=scene_msg.header.stamp)
    markers: list[Marker] = []
    if delete_all:
        markers.append(Marker(header=header, action=Marker.DELETEALL))
    for obj in scene_msg.objects:
        s = float(obj.scale)
        colour = label_color(obj.label, alpha)
        m = Marker(header=header, ns=MESH_NS, id=int(obj.id), action=Marker.ADD, pose=obj.pose,
                   scale=Vector3(x=s, y=s, z=s), color=colour, frame_locked=False,
                   lifetime=Duration(sec=0, nanosec=0))
        if mesh_mode == "mesh_resource" and obj.mesh_uri:
            m.type = Marker.MESH_RESOURCE
            m.mesh_resource = obj.mesh_uri
            m.mesh_use_embedded_materials = True
        else:
            m.type = Marker.TRIANGLE_LIST
            idx = [i for tri in obj.mesh.triangles for i in tri.vertex_indices.tolist()]
            verts = obj.mesh.vertices
            m.points = [verts[i] for i in idx]
            if len(obj.vertex_colors) == len(verts) and len(verts):
                cols = obj.vertex_colors
                m.colors = [ColorRGBA(r=cols[i].r, g=cols[i].g, b=cols[i].b, a=float(alpha)) for i in idx]
                m.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=float(alpha))
        markers.append(m)
        # label above the object's top (smallest y in the optical frame) at its centre
        if len(obj.mesh.vertices):
            T = pose_to_matrix(obj.pose, s)
            v = np.array([(p.x, p.y, p.z) for p in obj.mesh.vertices]) @ T[:3, :3].T + T[:3, 3]
            lo, hi = v.min(axis=0), v.max(axis=0)
            centre = (lo + hi) / 2
            pos = Point(x=float(centre[0]), y=float(lo[1] - text_height), z=float(centre[2]))
        else:
            pos = obj.pose.position
        text = Marker(header=header, ns=LABEL_NS, id=int(obj.id), type=Marker.TEXT_VIEW_FACING,
                      action=Marker.ADD, scale=Vector3(x=0.0, y=0.0, z=float(text_height)),
                      color=ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0), text=f"{obj.id}: {obj.label} {obj.score:.2f}")
        text.pose.position = pos
        text.pose.orientation.w = 1.0
        markers.append(text)
    return MarkerArray(markers=markers)


def summarize_scene_msg(scene_msg) -> str:
    """One line: object count and labels, e.g. ``3 objects (chair, table, lamp)``."""
    labels = ", ".join(f"{o.id}:{o.label}" for o in scene_msg.objects)
    n = len(scene_msg.objects)
    return f"{n} object{'s' if n != 1 else ''}" + (f" ({labels})" if labels else "")
