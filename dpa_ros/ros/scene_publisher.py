"""Every output of one reconstructed scene: export, ``~/scene``, markers, cloud, TF, planning, overlay.

:class:`ScenePublisher` owns the node's output publishers and the output policy (which outputs are
on, what the markers and the cloud look like), all read from the node's parameters at each scene,
so a parameter set at run time applies from the next scene. Every message carries the image's
stamp and the scene's frame: the camera optical frame (REP 103, metres), or ``fixed_frame`` when
the scene is the node's memory (:mod:`dpa_ros.ros.scene_memory`; the overlay is then drawn from
the view's own reconstruction).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, PointCloud2
from visualization_msgs.msg import MarkerArray

from dpa_ros.export.stamped import export_stamped
from dpa_ros.geometry.clouds import subsample_evenly
from dpa_ros.msg import Scene as SceneMsg
from dpa_ros.overlay import draw_overlay
from dpa_ros.ros import conversions as conv
from dpa_ros.ros.tf import StaticTransformPublisher

LATCHED_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)


def planning_publisher(node: Node, param: Callable[[str], Any]):
    """The Detection3DArray / CollisionObject publisher, or None when both are switched off;
    ValueError when they are on and vision_msgs / moveit_msgs are missing."""
    detections = param("detections_topic") if param("publish_detections") else None
    collision = param("collision_object_topic") if param("publish_collision_objects") else None
    if not (detections or collision):
        return None
    try:
        from dpa_ros.ros.planning import PlanningPublisher
    except ImportError as exc:
        raise ValueError(f"publish_detections / publish_collision_objects need vision_msgs and moveit_msgs "
                         f"({exc}); install them, or set both parameters to false") from exc
    return PlanningPublisher(node, detections, collision)


class ScenePublisher:
    """Publishes each scene on ``node``'s outputs (docs/interfaces.md); ``param(name)`` reads a node
    parameter. Call :meth:`publish` from one thread (the scheduler's worker)."""

    def __init__(self, node: Node, param: Callable[[str], Any]) -> None:
        self._node, self._p = node, param
        self._scene_pub = node.create_publisher(SceneMsg, "~/scene", LATCHED_QOS)
        self._marker_pub = node.create_publisher(MarkerArray, "~/markers", LATCHED_QOS)
        self._cloud_pub = node.create_publisher(PointCloud2, "~/scene_cloud", LATCHED_QOS)
        self.tf = StaticTransformPublisher(node)
        self.planning = planning_publisher(node, param)
        self._overlay_pub = node.create_publisher(Image, "~/overlay", LATCHED_QOS) if param("publish_overlay") \
            else None

    @property
    def planning_topics(self) -> list[str]:
        """The Detection3DArray / CollisionObject topics published (none when both are off)."""
        return self.planning.topics if self.planning else []

    def publish(self, scene, frame, view=None) -> tuple[SceneMsg, list[str]]:
        """Export (with ``export_dir``) and publish one scene on every output; (Scene message, notes).

        ``view``: this frame's reconstruction (optical frame) when ``scene`` is the memory (in
        ``scene.frame_id``); None when ``scene`` is the reconstruction itself.
        """
        log = self._node.get_logger()
        notes: list[str] = []
        uris: dict[int, str] = {}
        overlay = None
        frame_id = scene.frame_id if view is not None else frame.frame_id
        if self._overlay_pub is not None or self._p("export_dir"):
            try:
                overlay = draw_overlay(frame.rgb, view if view is not None else scene)
            except Exception as exc:  # a picture must never cost the scene
                log.warning(f"no overlay for this scene: {type(exc).__name__}: {exc}")
        if self._p("export_dir"):
            exported = export_stamped(scene, self._p("export_dir"), frame.stamp_ns, self._p("export_formats"),
                                      preview=overlay)
            for warning in exported.warnings:
                log.warning(warning)
            uris = exported.mesh_uris
            notes += ([f"exported to {exported.directory}"] if exported.directory else []) + exported.warnings
        stamp = conv.ns_to_stamp(frame.stamp_ns)
        scene_msg = conv.scene_to_msg(scene, stamp=stamp, frame_id=frame_id, mesh_uris=uris)
        mesh_mode = self._p("marker_mesh")
        if mesh_mode == "mesh_resource" and not uris:
            notes.append("marker_mesh mesh_resource needs export_dir: sent triangle lists")
        markers = conv.scene_to_markers(scene_msg, mesh_mode=mesh_mode, alpha=float(self._p("marker_alpha")),
                                        text_height=float(self._p("label_height_m")))
        points, colors = subsample_evenly(np.asarray(scene.cloud_points), np.asarray(scene.cloud_colors),
                                          int(self._p("cloud_max_points")))
        cloud = conv.cloud_to_pointcloud2(points, colors, frame_id, stamp)
        self.tf.publish(conv.scene_to_transforms(scene_msg, self._p("frame_prefix")), replace=True)
        self._marker_pub.publish(markers)
        self._cloud_pub.publish(cloud)
        if self.planning is not None:
            self.planning.publish(scene_msg, self._p("frame_prefix"))
        if self._overlay_pub is not None and overlay is not None:
            self._overlay_pub.publish(conv.numpy_to_image(overlay, "rgb8", frame.frame_id, stamp))  # image's frame
        self._scene_pub.publish(scene_msg)
        return scene_msg, notes
