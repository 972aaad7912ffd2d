"""A reconstructed scene in the types planners and trackers consume.

* :func:`scene_to_detections`: ``vision_msgs/Detection3DArray``, as isaac_ros_foundationpose
  publishes it: one Detection3D per object with ``results[0].hypothesis`` = (label, score),
  ``results[0].pose.pose`` = the object's pose (its mesh origin) and ``bbox`` = the box around the
  fitted mesh (axes of the object frame, size in metres with the object's scale applied; the centre
  is that box's centre, so it differs from the pose when the mesh origin is not its centre).
  ``id`` is the object's TF frame ``<frame_prefix>object_<id>``.
* :func:`scene_to_collision_objects`: one ``moveit_msgs/CollisionObject`` per object, id
  ``<frame_prefix>object_<id>``, ``operation`` ADD, the mesh in ``meshes[0]`` with its vertices
  scaled to metres in the object frame (MoveIt's meshes carry no scale), ``pose`` = the object's
  rigid pose and ``mesh_poses[0]`` the identity. :class:`CollisionObjectTracker` adds a REMOVE for
  every id of the previous scene that the new one does not re-ADD (an ADD replaces an object of the
  same id in MoveIt's planning scene).

Every message has the Scene's header: stamp = the image's stamp, frame = its optical frame.
The message types come from the real vision_msgs / moveit_msgs when a ROS install provides them,
else from the stand-ins in ``ros_shims/`` (same definitions, same type hashes).
"""
from __future__ import annotations

import copy

import numpy as np
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from moveit_msgs.msg import CollisionObject
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from shape_msgs.msg import Mesh
from vision_msgs.msg import Detection3D, Detection3DArray, ObjectHypothesisWithPose

from dpa_ros.ros.conversions import object_frame, pose_to_matrix

# The type hashes (RIHS01, ROS 2 Iron and later) that rosidl generates for the real packages'
# definitions (vision_msgs 4.1.1, moveit_msgs 2.6.0). The stand-ins in ros_shims/ must produce these.
DETECTION3D_ARRAY_TYPE_HASH = "RIHS01_793f5eab9595ac1c0da07873cc859db42eae51f0ee76056db8562515d830e018"
COLLISION_OBJECT_TYPE_HASH = "RIHS01_74b0acd6d56be032bf4f764b2c2633f50588b5fb2bd71e97206c59052747cf7e"


def _vertices(obj) -> np.ndarray:
    """(V, 3) float64 vertices of a ``dpa_ros/SceneObject``'s mesh, object frame, unscaled."""
    return np.array([(p.x, p.y, p.z) for p in obj.mesh.vertices], dtype=np.float64).reshape(-1, 3)


def object_bounding_box(obj) -> tuple[Pose, Vector3]:
    """(centre pose, size) of the box around an object's fitted mesh, in the Scene's frame.

    The box's axes are the object frame's; its size is the mesh's extent times ``obj.scale``
    (metres); its centre is the extent's midpoint carried by the object's pose. An object without
    vertices gets its own pose and size zero.
    """
    verts = _vertices(obj)
    if not len(verts):
        return copy.deepcopy(obj.pose), Vector3()
    lo, hi = verts.min(axis=0), verts.max(axis=0)
    T = pose_to_matrix(obj.pose, float(obj.scale))  # object frame -> scene frame, scale included
    centre = T[:3, :3] @ ((lo + hi) / 2.0) + T[:3, 3]
    size = (hi - lo) * float(obj.scale)
    o = obj.pose.orientation
    pose = Pose(position=Point(x=float(centre[0]), y=float(centre[1]), z=float(centre[2])),
                orientation=Quaternion(x=o.x, y=o.y, z=o.z, w=o.w))
    return pose, Vector3(x=float(size[0]), y=float(size[1]), z=float(size[2]))


def scene_to_detections(scene_msg, frame_prefix: str) -> Detection3DArray:
    """``vision_msgs/Detection3DArray`` of a ``dpa_ros/Scene`` (see the module docstring)."""
    out = Detection3DArray(header=copy.deepcopy(scene_msg.header))
    for obj in scene_msg.objects:
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = str(obj.label)
        hypothesis.hypothesis.score = float(obj.score)
        hypothesis.pose.pose = copy.deepcopy(obj.pose)
        detection = Detection3D(header=copy.deepcopy(scene_msg.header), results=[hypothesis],
                                id=object_frame(frame_prefix, obj.id))
        detection.bbox.center, detection.bbox.size = object_bounding_box(obj)
        out.detections.append(detection)
    return out


def scaled_mesh(obj) -> Mesh:
    """The object's mesh with ``obj.scale`` applied to its vertices (metres, object frame)."""
    s = float(obj.scale)
    mesh = Mesh(triangles=list(obj.mesh.triangles))
    mesh.vertices = [Point(x=p.x * s, y=p.y * s, z=p.z * s) for p in obj.mesh.vertices]
    return mesh


def scene_to_collision_objects(scene_msg, frame_prefix: str) -> list[CollisionObject]:
    """One ADD ``moveit_msgs/CollisionObject`` per object of a ``dpa_ros/Scene``."""
    out = []
    for obj in scene_msg.objects:
        co = CollisionObject(header=copy.deepcopy(scene_msg.header), id=object_frame(frame_prefix, obj.id),
                             pose=copy.deepcopy(obj.pose), operation=CollisionObject.ADD)
        co.meshes = [scaled_mesh(obj)]
        co.mesh_poses = [Pose(orientation=Quaternion(w=1.0))]
        out.append(co)
    return out


def remove_objects(ids, header) -> list[CollisionObject]:
    """A REMOVE ``CollisionObject`` for each id (in ``header``'s frame, geometry empty)."""
    return [CollisionObject(header=copy.deepcopy(header), id=str(i), operation=CollisionObject.REMOVE) for i in ids]


class CollisionObjectTracker:
    """Remembers which collision object ids the last scene added, so the next scene can REMOVE
    the ones it does not replace. Not thread-safe: call it from one thread (the node's worker)."""

    def __init__(self) -> None:
        self._ids: list[str] = []

    @property
    def ids(self) -> list[str]:
        """The ids the last :meth:`update` added (in its order)."""
        return list(self._ids)

    def update(self, scene_msg, frame_prefix: str) -> list[CollisionObject]:
        """The messages that turn MoveIt's picture of the previous scene into this one: first a
        REMOVE per stale id (in the previous scene, not in this one), then an ADD per object."""
        adds = scene_to_collision_objects(scene_msg, frame_prefix)
        new_ids = [co.id for co in adds]
        stale = [i for i in self._ids if i not in set(new_ids)]
        self._ids = new_ids
        return remove_objects(stale, scene_msg.header) + adds


# Reliable and transient-local, like ~/scene: a planner that starts later still gets the last scene.
# Collision objects keep a history (REMOVEs, then ADDs) deep enough for one scene's burst, so a
# late-joining transient-local subscriber replays them in order and ends with the current scene;
# move_group's own subscription (reliable, volatile) is compatible and gets them live.
DETECTIONS_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.TRANSIENT_LOCAL)
COLLISION_OBJECT_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                                  durability=DurabilityPolicy.TRANSIENT_LOCAL)


class PlanningPublisher:
    """Publishes each new scene as a Detection3DArray and as CollisionObjects on ``node``.

    A topic of None switches that output off. Call :meth:`publish` from one thread.
    """

    def __init__(self, node: Node, detections_topic: str | None, collision_object_topic: str | None) -> None:
        self._detections = (node.create_publisher(Detection3DArray, detections_topic, DETECTIONS_QOS)
                            if detections_topic else None)
        self._collision = (node.create_publisher(CollisionObject, collision_object_topic, COLLISION_OBJECT_QOS)
                           if collision_object_topic else None)
        self._tracker = CollisionObjectTracker()

    @property
    def topics(self) -> list[str]:
        """Fully qualified names of the topics this publisher writes."""
        return [p.topic_name for p in (self._detections, self._collision) if p is not None]

    def publish(self, scene_msg, frame_prefix: str) -> None:
        """Publish the detections, then the collision objects (REMOVEs of stale ids first)."""
        if self._detections is not None:
            self._detections.publish(scene_to_detections(scene_msg, frame_prefix))
        if self._collision is not None:
            for co in self._tracker.update(scene_msg, frame_prefix):
                self._collision.publish(co)
