"""Conversions between ROS 2 messages and numpy / the dpa_ros library, with no node and no DDS.

Every function here is pure (message in, value out, or the reverse) so it can be unit-tested
without a running graph. Malformed input raises :class:`ConversionError` (a ``ValueError``) whose
text is a one-line reason fit for a failed action result.

Images (``sensor_msgs/Image``): rgb8, bgr8, rgba8, bgra8, mono8 (also 8UC1/8UC3/8UC4 read as
mono8/bgr8/bgra8, the OpenCV convention), 32FC1, 16UC1 (and mono16). ``step`` may include row
padding and ``is_bigendian`` is honoured for 16/32-bit data. ``cv_bridge`` is used for decoding when
it is importable (a full ROS install), after this module's own validation; otherwise the own
numpy decoder, which is the one tested here.

Depth: 32FC1 is metres; 16UC1 is millimetres (REP 118 / OpenNI); both come back as float32 metres
with invalid pixels (0, negative, NaN, inf) set to NaN.

Point clouds (``sensor_msgs/PointCloud2``): x, y, z as FLOAT32 plus ``rgb`` as a uint32
``0x00RRGGBB`` stored in a FLOAT32 field, the PCL/RViz convention. Reading accepts any field
offsets, ``point_step``, ``row_step`` padding and endianness, and ``rgb``/``rgba`` as FLOAT32 or
UINT32.

Scenes: :func:`scene_to_msg` (library :class:`~dpa_ros.scene.Scene` → ``dpa_ros/msg/Scene``),
:func:`object_from_msg` (back, for clients), :func:`scene_to_markers` (RViz MarkerArray),
:func:`scene_to_transforms` (one ``TransformStamped`` per object). The object pose is the rigid part
of ``T_camera_object``; its uniform scale travels separately (``SceneObject.scale``, the marker's
``scale``), because neither ``Pose`` nor TF can carry a scale.
"""
from __future__ import annotations

import colorsys
import zlib
from typing import Sequence

import numpy as np
import trimesh
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point, Pose, Quaternion, TransformStamped, Vector3
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from shape_msgs.msg import Mesh, MeshTriangle
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from dpa_ros.geometry.camera import CameraInfoError, CameraModel
from dpa_ros.geometry.transforms import (
    pose_to_similarity,
    quaternion_to_rotation,
    rotation_to_quaternion,
    similarity_to_pose,
)
from dpa_ros.naming import object_name
from dpa_ros.scene import Scene as LibScene
from dpa_ros.scene import SceneObject as LibSceneObject

try:  # a full ROS install; the pip environment has neither
    from cv_bridge import CvBridge as _CvBridge  # type: ignore
except ImportError:  # pragma: no cover - depends on the installation
    _CvBridge = None
try:
    from sensor_msgs_py import point_cloud2 as _pc2  # type: ignore
except ImportError:  # pragma: no cover - depends on the installation
    _pc2 = None

__all__ = [
    "ConversionError", "ENCODINGS", "COLOR_ENCODINGS", "DEPTH_ENCODINGS",
    "image_to_numpy", "numpy_to_image", "image_to_rgb", "compressed_to_rgb", "rgb_to_compressed",
    "depth_to_metres", "camera_model_from_info", "camera_info_from_model",
    "stamp_to_ns", "ns_to_stamp", "matrix_to_pose", "pose_to_matrix", "rotation_to_quaternion",
    "quaternion_to_rotation", "pack_rgb", "unpack_rgb", "cloud_to_pointcloud2", "pointcloud2_to_arrays",
    "mesh_to_msg", "mesh_from_msg", "scene_to_msg", "object_from_msg", "scene_to_markers",
    "scene_to_transforms", "object_frame", "label_color",
]


class ConversionError(ValueError):
    """A message that cannot be converted; ``str(err)`` is a one-line reason."""


# encoding -> (numpy dtype of one channel, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "8UC1": (np.dtype(np.uint8), 1),
    "8UC3": (np.dtype(np.uint8), 3),
    "8UC4": (np.dtype(np.uint8), 4),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
}
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1", "8UC3", "8UC4")
DEPTH_ENCODINGS = ("32FC1", "16UC1", "mono16")


# --------------------------------------------------------------------------------------------- time
def stamp_to_ns(stamp: Time) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    ns = int(ns)
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _header(frame_id: str, stamp: Time | int | None) -> Header:
    if stamp is None:
        stamp = Time()
    elif not isinstance(stamp, Time):
        stamp = ns_to_stamp(stamp)
    return Header(frame_id=frame_id, stamp=stamp)


# ------------------------------------------------------------------------------------------- images
def _check_image(msg: Image) -> tuple[np.dtype, int]:
    """Validate an Image's geometry; return (channel dtype, channels)."""
    if msg.encoding not in ENCODINGS:
        raise ConversionError(f"unsupported image encoding '{msg.encoding}' "
                              f"(supported: {', '.join(ENCODINGS)})")
    if msg.height <= 0 or msg.width <= 0:
        raise ConversionError(f"image has zero size ({msg.width}x{msg.height})")
    dtype, channels = ENCODINGS[msg.encoding]
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.step < row_bytes:
        raise ConversionError(f"image step {msg.step} is smaller than width*pixel size {row_bytes} "
                              f"({msg.width} px of {msg.encoding})")
    if len(msg.data) != msg.step * msg.height:
        raise ConversionError(f"image data has {len(msg.data)} bytes but step*height = "
                              f"{msg.step}*{msg.height} = {msg.step * msg.height}")
    return dtype, channels


def image_to_numpy(msg: Image) -> np.ndarray:
    """The pixels of ``msg`` as an array in its own encoding's channel order, native byte order.

    Shape (H, W) for one channel, (H, W, C) otherwise; a fresh, C-contiguous array.
    Raises ConversionError for unknown encodings, zero size, or data/step/height mismatches.
    """
    dtype, channels = _check_image(msg)
    if _CvBridge is not None:  # pragma: no cover - only on a full ROS install
        try:
            arr = np.ascontiguousarray(_CvBridge().imgmsg_to_cv2(msg, desired_encoding="passthrough"))
            return arr.copy()
        except Exception:  # fall back to the own decoder below
            pass
    buf = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)
    row_bytes = msg.width * channels * dtype.itemsize
    rows = buf[:, :row_bytes]
    wire = dtype.newbyteorder(">" if msg.is_bigendian else "<") if dtype.itemsize > 1 else dtype
    arr = np.ascontiguousarray(rows).view(wire).astype(dtype, copy=True)
    shape = (msg.height, msg.width) if channels == 1 else (msg.height, msg.width, channels)
    return arr.reshape(shape)


def numpy_to_image(array: np.ndarray, encoding: str, frame_id: str = "", stamp: Time | int | None = None,
                   step: int | None = None, is_bigendian: bool = False) -> Image:
    """An Image from an array laid out for ``encoding`` (channel order is the caller's business).

    ``step`` larger than the row size pads each row with zero bytes; ``is_bigendian`` writes 16/32-bit
    data big-endian. Raises ConversionError when the array does not fit the encoding.
    """
    if encoding not in ENCODINGS:
        raise ConversionError(f"unsupported image encoding '{encoding}'")
    dtype, channels = ENCODINGS[encoding]
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] != channels:
        raise ConversionError(f"array of shape {np.asarray(array).shape} does not fit {encoding} "
                              f"({channels} channel(s))")
    height, width = arr.shape[:2]
    wire = dtype.newbyteorder(">" if is_bigendian else "<") if dtype.itemsize > 1 else dtype
    rows = np.ascontiguousarray(arr.astype(wire)).view(np.uint8).reshape(height, width * channels * dtype.itemsize)
    row_bytes = rows.shape[1]
    step = row_bytes if step is None else int(step)
    if step < row_bytes:
        raise ConversionError(f"step {step} is smaller than the row size {row_bytes}")
    if step > row_bytes:
        rows = np.concatenate([rows, np.zeros((height, step - row_bytes), np.uint8)], axis=1)
    msg = Image(header=_header(frame_id, stamp), height=height, width=width, encoding=encoding,
                is_bigendian=int(bool(is_bigendian)), step=step)
    msg.data = rows.tobytes()
    return msg


def image_to_rgb(msg: Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a colour or mono Image; raises ConversionError otherwise."""
    if msg.encoding not in ENCODINGS:
        raise ConversionError(f"unsupported image encoding '{msg.encoding}' "
                              f"(colour images: {', '.join(COLOR_ENCODINGS)})")
    if msg.encoding not in COLOR_ENCODINGS:
        raise ConversionError(f"image encoding '{msg.encoding}' is not a colour encoding "
                              f"({', '.join(COLOR_ENCODINGS)})")
    arr = image_to_numpy(msg)
    enc = msg.encoding
    if arr.ndim == 2:
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
    if enc in ("rgb8", "rgba8"):
        return np.ascontiguousarray(arr[:, :, :3])
    return np.ascontiguousarray(arr[:, :, 2::-1])  # bgr8, bgra8, 8UC3, 8UC4


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """(H, W, 3) uint8 RGB decoded from a CompressedImage (JPEG, PNG, ... via OpenCV)."""
    import cv2

    if "compresseddepth" in msg.format.lower().replace(" ", ""):
        raise ConversionError(f"compressed depth ('{msg.format}') is not a colour image")
    if len(msg.data) == 0:
        raise ConversionError("compressed image has no data")
    bgr = cv2.imdecode(np.frombuffer(msg.data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise ConversionError(f"compressed image ({msg.format or 'unknown format'}, {len(msg.data)} bytes) "
                              "cannot be decoded")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def rgb_to_compressed(rgb: np.ndarray, fmt: str = "png", frame_id: str = "",
                      stamp: Time | int | None = None) -> CompressedImage:
    """A CompressedImage (``png`` or ``jpeg``) of an RGB array, as image_transport would send it."""
    import cv2

    ext = {"png": ".png", "jpeg": ".jpg", "jpg": ".jpg"}[fmt]
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(np.asarray(rgb, np.uint8)[:, :, ::-1]))
    if not ok:
        raise ConversionError(f"cannot encode image as {fmt}")
    msg = CompressedImage(header=_header(frame_id, stamp), format=f"rgb8; {fmt} compressed bgr8")
    msg.data = buf.tobytes()
    return msg


def depth_to_metres(msg: Image) -> np.ndarray:
    """(H, W) float32 depth in metres; invalid pixels (0, < 0, NaN, inf) become NaN.

    32FC1 is taken as metres, 16UC1/mono16 as millimetres (REP 118).
    """
    if msg.encoding not in DEPTH_ENCODINGS:
        raise ConversionError(f"unsupported depth encoding '{msg.encoding}' (use 32FC1 metres or 16UC1 mm)")
    arr = image_to_numpy(msg)
    if msg.encoding == "32FC1":
        depth = arr.astype(np.float32, copy=True)
    else:
        depth = arr.astype(np.float32) * np.float32(0.001)
    depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
    return depth


# ------------------------------------------------------------------------------------------ cameras
def camera_model_from_info(msg: CameraInfo, intrinsics: str = "auto", frame_id: str | None = None) -> CameraModel:
    """A :class:`CameraModel` from a CameraInfo.

    ``intrinsics`` chooses the matrix:

    - ``"k"``: ``K`` (the intrinsics of the raw, possibly distorted image; distortion is recorded but
      not applied, so the pipeline sees a pinhole camera);
    - ``"p"``: the left 3×3 of ``P``, the intrinsics of the *rectified* image (image_proc's
      ``image_rect``); falls back to ``K`` when ``P`` is all zero;
    - ``"auto"``: ``P`` when the distortion coefficients are all zero and ``P`` is set (the image is
      then already undistorted, as RGB-D drivers and rectified streams publish it, and ``P`` is what
      describes it), else ``K``.

    Raises ConversionError when the size is zero or the chosen matrix is missing/zero/invalid.
    """
    if intrinsics not in ("auto", "k", "p"):
        raise ConversionError(f"intrinsics must be auto, k or p, got '{intrinsics}'")
    if msg.width <= 0 or msg.height <= 0:
        raise ConversionError(f"camera_info has zero size ({msg.width}x{msg.height}); is the camera calibrated?")
    K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    P = np.asarray(msg.p, dtype=np.float64).reshape(3, 4)[:, :3]
    dist = tuple(float(c) for c in msg.d)
    p_valid = bool(np.any(P != 0)) and P[0, 0] > 0 and P[1, 1] > 0
    use_p = p_valid and (intrinsics == "p" or (intrinsics == "auto" and not any(dist)))
    M = P if use_p else K
    if not np.any(M != 0):
        raise ConversionError("camera_info K is all zero (uncalibrated camera)")
    try:
        return CameraModel(K=M, width=int(msg.width), height=int(msg.height),
                           frame_id=frame_id or msg.header.frame_id or "camera_optical_frame",
                           distortion=() if use_p else dist)
    except CameraInfoError as exc:
        raise ConversionError(f"camera_info is unusable: {exc}") from exc


def camera_info_from_model(camera: CameraModel, stamp: Time | int | None = None,
                           frame_id: str | None = None) -> CameraInfo:
    """A CameraInfo describing ``camera`` (plumb_bob, identity R, P = [K | 0])."""
    msg = CameraInfo(header=_header(frame_id or camera.frame_id, stamp), width=camera.width,
                     height=camera.height, distortion_model="plumb_bob")
    msg.k = camera.K.ravel().tolist()
    msg.d = list(camera.distortion) or [0.0] * 5
    msg.r = np.eye(3).ravel().tolist()
    P = np.zeros((3, 4))
    P[:, :3] = camera.K
    msg.p = P.ravel().tolist()
    return msg


# ------------------------------------------------------------------------------------------- poses
def matrix_to_pose(T: np.ndarray, scale: float = 1.0) -> Pose:
    """The rigid pose of a similarity transform whose 3×3 block is ``scale * R``
    (:func:`dpa_ros.geometry.transforms.similarity_to_pose`)."""
    try:
        t, q = similarity_to_pose(T, scale)
    except ValueError as exc:
        raise ConversionError(f"object {exc}") from exc
    return Pose(position=Point(x=float(t[0]), y=float(t[1]), z=float(t[2])),
                orientation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])))


def pose_to_matrix(pose: Pose, scale: float = 1.0) -> np.ndarray:
    """4×4 similarity transform from a Pose and a uniform scale (inverse of :func:`matrix_to_pose`)."""
    o, p = pose.orientation, pose.position
    try:
        return pose_to_similarity((p.x, p.y, p.z), (o.x, o.y, o.z, o.w), scale)
    except ValueError as exc:
        raise ConversionError(f"pose orientation: {exc}") from exc


# ------------------------------------------------------------------------------------ point clouds
_FLOAT32 = PointField.FLOAT32
_PF_DTYPES = {PointField.INT8: "i1", PointField.UINT8: "u1", PointField.INT16: "i2", PointField.UINT16: "u2",
              PointField.INT32: "i4", PointField.UINT32: "u4", PointField.FLOAT32: "f4", PointField.FLOAT64: "f8"}


def pack_rgb(colors: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 RGB → (N,) uint32 ``0x00RRGGBB`` (view it as float32 for an ``rgb`` field)."""
    c = np.asarray(colors, dtype=np.uint32).reshape(-1, 3)
    return (c[:, 0] << 16) | (c[:, 1] << 8) | c[:, 2]


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """(N,) uint32 (or float32 bit pattern) ``0x00RRGGBB`` → (N, 3) uint8 RGB."""
    p = np.asarray(packed)
    if p.dtype != np.uint32:
        p = np.ascontiguousarray(p.astype(p.dtype.newbyteorder("="))).view(np.uint32)
    return np.stack([(p >> 16) & 0xFF, (p >> 8) & 0xFF, p & 0xFF], axis=1).astype(np.uint8)


def cloud_to_pointcloud2(points: np.ndarray, colors: np.ndarray | None = None, frame_id: str = "",
                         stamp: Time | int | None = None) -> PointCloud2:
    """An unorganised PointCloud2 (height 1) with float32 x, y, z and, with colours, a packed ``rgb``.

    Layout: x@0, y@4, z@8 (FLOAT32), rgb@12 (FLOAT32 holding uint32 0x00RRGGBB); point_step 16
    (12 without colours), little-endian. ``is_dense`` is True when every coordinate is finite.
    """
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    fields = [PointField(name=n, offset=4 * i, datatype=_FLOAT32, count=1) for i, n in enumerate("xyz")]
    names, formats = ["x", "y", "z"], ["<f4", "<f4", "<f4"]
    if colors is not None:
        cols = np.asarray(colors).reshape(-1, 3)
        if len(cols) != len(pts):
            raise ConversionError(f"{len(cols)} colours for {len(pts)} points")
        fields.append(PointField(name="rgb", offset=12, datatype=_FLOAT32, count=1))
        names.append("rgb")
        formats.append("<u4")
    rec = np.empty(len(pts), dtype=np.dtype({"names": names, "formats": formats}))
    rec["x"], rec["y"], rec["z"] = pts[:, 0], pts[:, 1], pts[:, 2]
    if colors is not None:
        rec["rgb"] = pack_rgb(cols)
    msg = PointCloud2(header=_header(frame_id, stamp), height=1, width=len(pts), fields=fields,
                      is_bigendian=False, point_step=rec.dtype.itemsize, row_step=rec.dtype.itemsize * len(pts),
                      is_dense=bool(np.all(np.isfinite(pts))))
    msg.data = rec.tobytes()
    return msg


def pointcloud2_to_arrays(msg: PointCloud2) -> tuple[np.ndarray, np.ndarray | None]:
    """(points (N, 3) float64, colours (N, 3) uint8 or None) from a PointCloud2.

    Reads fields by name and offset, so any layout, padding (``point_step``/``row_step``) and byte
    order works; colours come from an ``rgb`` or ``rgba`` field (FLOAT32 or UINT32).
    """
    by_name = {f.name: f for f in msg.fields}
    missing = [n for n in "xyz" if n not in by_name]
    if missing:
        raise ConversionError(f"point cloud has no field(s) {missing} (fields: {sorted(by_name)})")
    n_points = msg.width * msg.height
    if msg.point_step <= 0 and n_points:
        raise ConversionError("point cloud point_step is zero")
    if msg.height and msg.row_step < msg.width * msg.point_step:
        raise ConversionError(f"row_step {msg.row_step} < width*point_step {msg.width * msg.point_step}")
    if len(msg.data) < msg.row_step * msg.height:
        raise ConversionError(f"point cloud data has {len(msg.data)} bytes, expected row_step*height = "
                              f"{msg.row_step * msg.height}")
    order = ">" if msg.is_bigendian else "<"
    raw = np.frombuffer(msg.data, np.uint8)[: msg.row_step * msg.height].reshape(msg.height, msg.row_step)
    raw = np.ascontiguousarray(raw[:, : msg.width * msg.point_step]).reshape(n_points, msg.point_step)

    def column(field: PointField) -> np.ndarray:
        if field.datatype not in _PF_DTYPES:
            raise ConversionError(f"field '{field.name}' has unknown datatype {field.datatype}")
        dt = np.dtype(order + _PF_DTYPES[field.datatype])
        if field.offset + dt.itemsize > msg.point_step:
            raise ConversionError(f"field '{field.name}' lies outside point_step {msg.point_step}")
        return np.ascontiguousarray(raw[:, field.offset: field.offset + dt.itemsize]).view(dt).reshape(-1)

    pts = np.stack([column(by_name[n]).astype(np.float64) for n in "xyz"], axis=1)
    colors = None
    for name in ("rgb", "rgba"):
        if name in by_name:
            f = by_name[name]
            if f.datatype not in (PointField.FLOAT32, PointField.UINT32, PointField.INT32):
                raise ConversionError(f"colour field '{name}' must be a 4-byte type, got datatype {f.datatype}")
            col = column(PointField(name=name, offset=f.offset, datatype=PointField.UINT32, count=1))
            colors = unpack_rgb(col.astype(np.uint32))
            break
    return pts, colors


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

    msg = Scene(header=_header(frame_id or scene.frame_id, scene.stamp_ns if stamp is None else stamp))
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
