"""Poses (geometry_msgs/Pose <-> 4x4 matrices) and point clouds (sensor_msgs/PointCloud2 <-> numpy).

Point clouds (``sensor_msgs/PointCloud2``): x, y, z as FLOAT32 plus ``rgb`` as a uint32
``0x00RRGGBB`` stored in a FLOAT32 field, the PCL/RViz convention. Reading accepts any field
offsets, ``point_step``, ``row_step`` padding and endianness, and ``rgb``/``rgba`` as FLOAT32 or
UINT32.
"""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, Quaternion
from sensor_msgs.msg import PointCloud2, PointField

from dpa_ros.geometry.transforms import (
    pose_to_similarity,
    similarity_to_pose,
)

try:
    from sensor_msgs_py import point_cloud2 as _pc2  # type: ignore
except ImportError:  # pragma: no cover - depends on the installation
    _pc2 = None

from dpa_ros.ros.conversions.stamps import ConversionError, make_header


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
    msg = PointCloud2(header=make_header(frame_id, stamp), height=1, width=len(pts), fields=fields,
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
