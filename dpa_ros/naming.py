"""The one name of a reconstructed object, shared by TF, markers, planner messages and every export.

``<prefix>object_<id>`` with the node's default ``frame_prefix`` ``dpa_``: the TF child frame, the
Detection3D / CollisionObject id, the Gazebo model and folder, the USD prim, the MJCF body and the
GLB / OBJ node all read ``dpa_object_3`` for object 3. ROS-free.
"""
from __future__ import annotations

#: The node's default ``frame_prefix`` and the exports' prefix.
DEFAULT_PREFIX = "dpa_"


def object_name(object_id: int, prefix: str = DEFAULT_PREFIX) -> str:
    """``<prefix>object_<id>``: the TF frame, message id and export name of object ``object_id``."""
    return f"{prefix}object_{int(object_id)}"
