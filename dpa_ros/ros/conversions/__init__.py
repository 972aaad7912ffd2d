"""Conversions between ROS 2 messages and numpy / the dpa_ros library, with no node and no DDS.

Every function here is pure (message in, value out, or the reverse) so it can be unit-tested
without a running graph. Malformed input raises :class:`ConversionError` (a ``ValueError``) whose
text is a one-line reason fit for a failed action result.

The functions live in one module per message family and are all importable from here
(``from dpa_ros.ros import conversions as conv``): :mod:`.stamps` (ConversionError, time stamps,
headers), :mod:`.images` (Image, CompressedImage, depth, CameraInfo), :mod:`.geometry` (Pose,
PointCloud2), :mod:`.scenes` (Mesh, Scene, TF) and :mod:`.markers` (MarkerArray, summaries).
"""
from dpa_ros.geometry.transforms import quaternion_to_rotation, rotation_to_quaternion
from dpa_ros.ros.conversions.geometry import (
    cloud_to_pointcloud2,
    matrix_to_pose,
    pack_rgb,
    pointcloud2_to_arrays,
    pose_to_matrix,
    unpack_rgb,
)
from dpa_ros.ros.conversions.images import (
    COLOR_ENCODINGS,
    DEPTH_ENCODINGS,
    ENCODINGS,
    camera_info_from_model,
    camera_model_from_info,
    compressed_to_rgb,
    depth_to_metres,
    image_to_numpy,
    image_to_rgb,
    numpy_to_image,
    rgb_to_compressed,
)
from dpa_ros.ros.conversions.markers import LABEL_NS, MESH_NS, label_color, scene_to_markers, summarize_scene_msg
from dpa_ros.ros.conversions.scenes import (
    mesh_from_msg,
    mesh_to_msg,
    object_frame,
    object_from_msg,
    scene_to_msg,
    scene_to_transforms,
)
from dpa_ros.ros.conversions.stamps import ConversionError, make_header, ns_to_stamp, stamp_to_ns

__all__ = [
    "ConversionError", "ENCODINGS", "COLOR_ENCODINGS", "DEPTH_ENCODINGS",
    "image_to_numpy", "numpy_to_image", "image_to_rgb", "compressed_to_rgb", "rgb_to_compressed",
    "depth_to_metres", "camera_model_from_info", "camera_info_from_model",
    "stamp_to_ns", "ns_to_stamp", "make_header", "matrix_to_pose", "pose_to_matrix", "rotation_to_quaternion",
    "quaternion_to_rotation", "pack_rgb", "unpack_rgb", "cloud_to_pointcloud2", "pointcloud2_to_arrays",
    "mesh_to_msg", "mesh_from_msg", "scene_to_msg", "object_from_msg", "scene_to_markers",
    "scene_to_transforms", "object_frame", "label_color", "summarize_scene_msg", "MESH_NS", "LABEL_NS",
]
