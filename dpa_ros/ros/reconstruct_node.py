"""The ``dpa_reconstructor`` node: camera frames in; scene, meshes, point cloud and TF out.

Executable ``reconstruct_node`` (``ros2 run dpa_ros reconstruct_node --ros-args --params-file
config/reconstruct.yaml``). The node only adapts messages to :mod:`dpa_ros.pipeline`; every
parameter is declared with a descriptor below (:data:`PARAMETERS`) and documented in
``config/reconstruct.yaml``, whose values equal these defaults.

Interfaces (DESIGN.md §3; ``~`` is the node's private namespace, ``/<ns>/dpa_reconstructor``):

==================== ========================================= ===========================================
``image``            sub sensor_msgs/Image                     rgb8, bgr8, rgba8, bgra8, mono8
``image/compressed`` sub sensor_msgs/CompressedImage            with ``image_transport`` compressed/both
``camera_info``      sub sensor_msgs/CameraInfo                matched to the image by stamp
``depth``            sub sensor_msgs/Image                     32FC1 m / 16UC1 mm, with ``use_depth``
``~/reconstruct``    action dpa_ros/action/Reconstruct         feedback per stage, cancellable
``~/snapshot``       service std_srvs/Trigger                  message = summary or the failure reason
``~/scene``          pub dpa_ros/msg/Scene                     reliable, transient-local
``~/markers``        pub visualization_msgs/MarkerArray        DELETEALL, then mesh + label per object
``~/scene_cloud``    pub sensor_msgs/PointCloud2               xyz + rgb, in the image's optical frame
``/tf_static``       pub tf2_msgs/TFMessage                    ``<frame_prefix>object_<id>`` per object
``~/detections``     pub vision_msgs/Detection3DArray          with ``publish_detections`` (:mod:`.planning`)
``collision_object`` pub moveit_msgs/CollisionObject           one per object, ADD; REMOVE of stale ids
``~/overlay``        pub sensor_msgs/Image                     rgb8, the input image with the objects drawn
==================== ========================================= ===========================================

Threading: subscriptions only store the newest messages; a request converts and validates the
frame at once (bad input fails fast, even while busy in ``queue`` mode) and hands it to one worker
thread, which runs the pipeline and publishes. Requests wait on that worker inside a reentrant
callback group of a MultiThreadedExecutor, so subscriptions, the action server, the service and
parameter services stay responsive during a reconstruction.

Busy behaviour (``busy_policy``): ``reject`` — while a reconstruction runs (or is queued, including
a continuous one) an action goal is rejected and ``~/snapshot`` answers ``success: false`` with
a ``busy: ...`` message; ``queue`` — requests wait their turn, up to ``max_queue`` waiting, beyond
that they are refused the same way.

Continuous mode (``mode: continuous``): the newest frame is reconstructed whenever the worker is
idle, at most ``max_rate_hz`` times per second; frames that arrived while busy are dropped and a
frame is never reconstructed twice.
"""
from __future__ import annotations

import collections
import logging
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
import rclpy.logging
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from dpa_ros.action import Reconstruct
from dpa_ros.geometry.camera import CameraModel
from dpa_ros.msg import Scene as SceneMsg
from dpa_ros.overlay import PREVIEW_PNG, draw_overlay, write_png
from dpa_ros.ros import conversions as conv
from dpa_ros.ros.conversions import ConversionError
from dpa_ros.ros.tf import StaticTransformPublisher

NODE_NAME = "dpa_reconstructor"
LATCHED_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
MAX_QUEUE_LIMIT = 8


# ------------------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter: default (its type is the parameter's type), description, constraints."""

    name: str
    default: Any
    description: str
    read_only: bool = False
    choices: tuple[str, ...] = ()
    range: tuple[float, float] | None = None

    def descriptor(self) -> ParameterDescriptor:
        d = ParameterDescriptor(name=self.name, description=self.description, read_only=self.read_only)
        d.type = Parameter.Type.from_parameter_value(self.default).value
        if self.choices:
            d.additional_constraints = "one of: " + ", ".join(self.choices)
        if self.range is not None:
            lo, hi = self.range
            if isinstance(self.default, bool):
                pass
            elif isinstance(self.default, int):
                d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=0)]
            else:
                d.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
        return d


PARAMETERS: tuple[ParamSpec, ...] = (
    # models (fixed for the node's life: changing them means reloading every model)
    ParamSpec("profile", "paper", "Model profile: paper, fast, smoke, or a name under config_path", read_only=True),
    ParamSpec("config_path", "", "Profile YAML file or directory of NAME.yaml ('' = the package's config/profiles)",
              read_only=True),
    ParamSpec("weights_dir", "", "Local model weights directory ('' = $DPA_WEIGHTS_DIR or the Hugging Face cache)",
              read_only=True),
    ParamSpec("device", "", "Torch device: cpu, cuda, cuda:1 ... ('' = the profile's choice)", read_only=True),
    ParamSpec("seed", -1, "Random seed of the generative stages (-1 = the profile's seed)", read_only=True,
              range=(-1, 2**31 - 1)),
    ParamSpec("load_on_start", True, "Load the models when the node starts (false: on the first request)",
              read_only=True),
    ParamSpec("box_threshold", 0.3, "Grounding DINO box threshold (applied from the next request on)",
              range=(0.0, 1.0)),
    ParamSpec("text_threshold", 0.25, "Grounding DINO text threshold (applied from the next request on)",
              range=(0.0, 1.0)),
    ParamSpec("score_threshold", 0.4, "Keep instances with detector confidence above this (sigma; applied "
              "from the next request on)", range=(0.0, 1.0)),
    ParamSpec("prompt", "", "Detection prompt of categories, 'chair. table.' ('' = the profile's prompt)"),
    # inputs
    ParamSpec("image_transport", "raw", "Colour input: raw (image), compressed (image/compressed) or both",
              read_only=True, choices=("raw", "compressed", "both")),
    ParamSpec("use_depth", False, "Subscribe to the aligned depth image (32FC1 m or 16UC1 mm)", read_only=True),
    ParamSpec("require_depth", False, "With use_depth: fail a request when no depth frame matches the image"),
    ParamSpec("input_reliability", "best_effort", "QoS reliability of the input subscriptions "
              "(best_effort = sensor-data QoS, also receives from reliable publishers)", read_only=True,
              choices=("best_effort", "reliable")),
    ParamSpec("input_depth", 5, "QoS history depth of the input subscriptions (and frames kept for matching)",
              read_only=True, range=(1, 100)),
    ParamSpec("sync_tolerance_s", 0.02, "Largest stamp difference between image, camera_info and depth",
              range=(0.0, 10.0)),
    ParamSpec("intrinsics", "auto", "Camera matrix: k (raw image), p (rectified image: left 3x3 of P), "
              "auto (P when the distortion is all zero, else K)", choices=("auto", "k", "p")),
    # triggering
    ParamSpec("mode", "on_demand", "on_demand: reconstruct on ~/reconstruct or ~/snapshot; continuous: "
              "also reconstruct the newest frame whenever idle", choices=("on_demand", "continuous")),
    ParamSpec("max_rate_hz", 0.2, "Continuous mode: most reconstructions started per second",
              range=(0.001, 30.0)),
    ParamSpec("busy_policy", "reject", "While a reconstruction runs: reject new requests, or queue them",
              choices=("reject", "queue")),
    ParamSpec("max_queue", 2, "busy_policy queue: most requests waiting behind the running one",
              range=(1, MAX_QUEUE_LIMIT)),
    # outputs
    ParamSpec("frame_prefix", "dpa_", "Object TF frames are <frame_prefix>object_<id>"),
    ParamSpec("export_dir", "", "Export every scene to <export_dir>/<stamp>/ ('' = no export)"),
    ParamSpec("export_formats", ["glb", "obj", "ply", "gazebo", "usd"],
              "Formats written besides scene.json (dpa_ros.export): glb, obj, ply, gazebo, usd"),
    ParamSpec("marker_mesh", "triangle_list", "Mesh markers: triangle_list (inline, coloured) or "
              "mesh_resource (file:// URI of the exported mesh; needs export_dir)",
              choices=("triangle_list", "mesh_resource")),
    ParamSpec("marker_alpha", 1.0, "Opacity of the mesh markers", range=(0.0, 1.0)),
    ParamSpec("label_height_m", 0.08, "Height of the text label markers (m)", range=(0.001, 10.0)),
    ParamSpec("cloud_max_points", 0, "Most points in ~/scene_cloud, evenly subsampled (0 = all)",
              range=(0, 100_000_000)),
    ParamSpec("publish_detections", True, "Publish each scene as vision_msgs/Detection3DArray on detections_topic",
              read_only=True),
    ParamSpec("detections_topic", "~/detections", "Topic of the Detection3DArray (reliable, transient-local)",
              read_only=True),
    ParamSpec("publish_collision_objects", True, "Publish one moveit_msgs/CollisionObject per object on "
              "collision_object_topic (ADD; REMOVE for the previous scene's objects)", read_only=True),
    ParamSpec("collision_object_topic", "collision_object", "Topic of the CollisionObjects (move_group listens "
              "on collision_object)", read_only=True),
    ParamSpec("publish_overlay", True, "Publish ~/overlay (sensor_msgs/Image rgb8): the input image with each "
              "object's silhouette, outline and label; also written as preview.png with export_dir",
              read_only=True),
)
PARAMETER_INDEX = {p.name: p for p in PARAMETERS}


def parameter_defaults() -> dict[str, Any]:
    """{name: default} of every declared parameter (config/reconstruct.yaml holds the same values)."""
    return {p.name: p.default for p in PARAMETERS}


def check_parameter(name: str, value: Any) -> str | None:
    """The reason ``value`` is not allowed for ``name`` (choices), or None."""
    spec = PARAMETER_INDEX.get(name)
    if spec is None:
        return None
    if spec.choices and value not in spec.choices:
        return f"{name} must be one of {', '.join(spec.choices)}, got '{value}'"
    if name == "export_formats":
        from dpa_ros.export import FORMATS as known

        bad = [f for f in value if f not in known]
        if bad:
            return f"export_formats: unknown format(s) {bad}; choose from {', '.join(known)}"
    return None


class _RosLogHandler(logging.Handler):
    """Forwards the library's Python logging (``dpa_ros.*``: pipeline, priors, export) to the node's log."""

    def __init__(self, ros_logger) -> None:
        super().__init__(logging.INFO)
        self.ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = f"{record.name}: {record.getMessage()}"
            if record.levelno >= logging.ERROR:
                self.ros_logger.error(text)
            elif record.levelno >= logging.WARNING:
                self.ros_logger.warning(text)
            else:
                self.ros_logger.info(text)
        except Exception:  # logging must never raise
            pass


# ------------------------------------------------------------------------------------ frames, jobs
class InputError(ValueError):
    """A request's input frame is unusable; ``str(err)`` is the reason."""


@dataclass
class Frame:
    """One converted input frame, ready for the pipeline."""

    stamp_ns: int
    frame_id: str
    rgb: np.ndarray
    camera: CameraModel
    depth: np.ndarray | None
    source: str
    notes: list[str] = field(default_factory=list)


@dataclass
class Job:
    kind: str  # "action" | "service" | "continuous"
    frame: Frame
    prompt: str | None
    goal_handle: Any = None
    done: threading.Event = field(default_factory=threading.Event)
    success: bool = False
    cancelled: bool = False
    message: str = ""
    scene_msg: SceneMsg | None = None

    def cancel_requested(self) -> bool:
        return bool(self.goal_handle is not None and self.goal_handle.is_cancel_requested)


def _nearest(msgs, stamp_ns: int) -> tuple[Any, float]:
    """(message with the stamp closest to stamp_ns, |Δ| in s), or (None, inf)."""
    best, best_dt = None, float("inf")
    for m in msgs:
        dt = abs(conv.stamp_to_ns(m.header.stamp) - stamp_ns) / 1e9
        if dt < best_dt:
            best, best_dt = m, dt
    return best, best_dt


# -------------------------------------------------------------------------------------------- node
class ReconstructNode(Node):
    """``dpa_reconstructor``: see the module docstring."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        for spec in PARAMETERS:
            self.declare_parameter(spec.name, spec.default, spec.descriptor())
        for spec in PARAMETERS:
            reason = check_parameter(spec.name, self.get_parameter(spec.name).value)
            if reason:
                raise ValueError(f"invalid parameter: {reason}")
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.profile = self._p("profile")
        self._log_handler = _RosLogHandler(self.get_logger())
        lib_logger = logging.getLogger("dpa_ros")
        lib_logger.addHandler(self._log_handler)
        lib_logger.propagate = False  # printed once, through the node's logger
        if lib_logger.level == logging.NOTSET or lib_logger.level > logging.INFO:
            lib_logger.setLevel(logging.INFO)

        self._lock = threading.Lock()
        self._images: collections.deque = collections.deque(maxlen=1)  # newest colour frame (raw or compressed)
        n = self._p("input_depth")
        self._infos: collections.deque = collections.deque(maxlen=max(n, 10))
        self._depths: collections.deque = collections.deque(maxlen=max(n, 5))
        self._pending = 0  # admitted requests not finished yet (queued + running)
        self._running: Job | None = None
        self._running_since = 0.0
        self._jobs: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._last_continuous_start = 0.0
        self._last_continuous_stamp = -1

        # models
        self._pipeline = None
        self._pipeline_mod = None
        self._load_error: str | None = None
        self._load_times: dict[str, float] = {}

        # inputs
        reliability = (ReliabilityPolicy.BEST_EFFORT if self._p("input_reliability") == "best_effort"
                       else ReliabilityPolicy.RELIABLE)
        in_qos = QoSProfile(depth=n, history=HistoryPolicy.KEEP_LAST, reliability=reliability,
                            durability=DurabilityPolicy.VOLATILE)
        self._sub_group = ReentrantCallbackGroup()
        transport = self._p("image_transport")
        self._image_topics = []
        if transport in ("raw", "both"):
            sub = self.create_subscription(Image, "image", lambda m: self._on_image(m, "image"), in_qos,
                                           callback_group=self._sub_group)
            self._image_topics.append(sub.topic_name)
        if transport in ("compressed", "both"):
            sub = self.create_subscription(CompressedImage, "image/compressed",
                                           lambda m: self._on_image(m, "image/compressed"), in_qos,
                                           callback_group=self._sub_group)
            self._image_topics.append(sub.topic_name)
        self._info_sub = self.create_subscription(CameraInfo, "camera_info", self._on_info, in_qos,
                                                  callback_group=self._sub_group)
        self._depth_sub = None
        if self._p("use_depth"):
            self._depth_sub = self.create_subscription(Image, "depth", self._on_depth, in_qos,
                                                       callback_group=self._sub_group)

        # outputs
        self._scene_pub = self.create_publisher(SceneMsg, "~/scene", LATCHED_QOS)
        self._marker_pub = self.create_publisher(MarkerArray, "~/markers", LATCHED_QOS)
        self._cloud_pub = self.create_publisher(PointCloud2, "~/scene_cloud", LATCHED_QOS)
        self._tf = StaticTransformPublisher(self)
        self._planning = self._planning_publisher()
        self._overlay_pub = self.create_publisher(Image, "~/overlay", LATCHED_QOS) if self._p("publish_overlay") \
            else None

        # triggers
        self._request_group = ReentrantCallbackGroup()
        self._action = ActionServer(self, Reconstruct, "~/reconstruct", self._execute_goal,
                                    goal_callback=self._on_goal, cancel_callback=self._on_cancel,
                                    callback_group=self._request_group, result_timeout=300)
        self._snapshot = self.create_service(Trigger, "~/snapshot", self._on_snapshot,
                                             callback_group=self._request_group)
        self._timer = self.create_timer(0.05, self._on_timer, callback_group=MutuallyExclusiveCallbackGroup())

        self._worker = threading.Thread(target=self._work, name="dpa_reconstruct_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"ready: profile '{self.profile}', inputs {', '.join(self._image_topics)} + {self._info_sub.topic_name}"
            + (f" + {self._depth_sub.topic_name}" if self._depth_sub else "")
            + f"; mode {self._p('mode')}, busy_policy {self._p('busy_policy')}; tf backend {self._tf.backend}"
            + "".join(f"; publishes {t}" for t in (self._planning.topics if self._planning else [])))

    # ------------------------------------------------------------------------------- helpers
    def _p(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _planning_publisher(self):
        """The Detection3DArray / CollisionObject publisher, or None when both are switched off."""
        detections = self._p("detections_topic") if self._p("publish_detections") else None
        collision = self._p("collision_object_topic") if self._p("publish_collision_objects") else None
        if not (detections or collision):
            return None
        try:
            from dpa_ros.ros.planning import PlanningPublisher
        except ImportError as exc:
            raise ValueError(f"publish_detections / publish_collision_objects need vision_msgs and moveit_msgs "
                             f"({exc}); install them, or set both parameters to false") from exc
        return PlanningPublisher(self, detections, collision)

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for p in params:
            reason = check_parameter(p.name, p.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    # -------------------------------------------------------------------------------- inputs
    def _on_image(self, msg, source: str) -> None:
        with self._lock:
            self._images.append((source, msg))

    def _on_info(self, msg: CameraInfo) -> None:
        with self._lock:
            self._infos.append(msg)

    def _on_depth(self, msg: Image) -> None:
        with self._lock:
            self._depths.append(msg)

    def capture_frame(self) -> Frame:
        """The newest colour image with its matching camera_info (and depth), converted and checked.

        Raises InputError with the reason when anything is missing or malformed.
        """
        with self._lock:
            latest = self._images[-1] if self._images else None
            infos, depths = list(self._infos), list(self._depths)
        if latest is None:
            raise InputError(f"no image received yet on {' or '.join(self._image_topics)}")
        source, img = latest
        stamp_ns = conv.stamp_to_ns(img.header.stamp)
        tol = float(self._p("sync_tolerance_s"))
        if not infos:
            raise InputError(f"missing camera_info: nothing received on {self._info_sub.topic_name}")
        info, dt = _nearest(infos, stamp_ns)
        if dt > tol:
            raise InputError(f"missing camera_info for the image stamped {stamp_ns / 1e9:.3f} s: the nearest of "
                             f"{len(infos)} camera_info messages is {dt:.3f} s away (sync_tolerance_s {tol})")
        try:
            rgb = conv.image_to_rgb(img) if source == "image" else conv.compressed_to_rgb(img)
        except ConversionError as exc:
            raise InputError(f"bad image on {source}: {exc}") from exc
        frame_id = img.header.frame_id or info.header.frame_id
        if not frame_id:
            raise InputError("image and camera_info both have an empty header.frame_id")
        try:
            camera = conv.camera_model_from_info(info, self._p("intrinsics"), frame_id=frame_id)
        except ConversionError as exc:
            raise InputError(f"bad camera_info: {exc}") from exc
        h, w = rgb.shape[:2]
        if (camera.width, camera.height) != (w, h):
            raise InputError(f"camera_info is {camera.width}x{camera.height} but the image is {w}x{h}")
        notes: list[str] = []
        if camera.is_distorted:
            notes.append("distortion coefficients ignored (pinhole model; use a rectified image with intrinsics: p)")
        depth = None
        if self._depth_sub is not None:
            dmsg, ddt = _nearest(depths, stamp_ns)
            if dmsg is None or ddt > tol:
                why = ("no depth received yet on " + self._depth_sub.topic_name if dmsg is None
                       else f"the nearest depth frame is {ddt:.3f} s away (sync_tolerance_s {tol})")
                if self._p("require_depth"):
                    raise InputError(f"missing depth: {why}")
                notes.append(f"reconstructing without depth: {why}")
            else:
                try:
                    depth = conv.depth_to_metres(dmsg)
                except ConversionError as exc:
                    raise InputError(f"bad depth image: {exc}") from exc
                if depth.shape != (h, w):
                    raise InputError(f"depth image is {depth.shape[1]}x{depth.shape[0]} but the colour image is "
                                     f"{w}x{h} (depth must be aligned to the colour image)")
                if not np.isfinite(depth).any():
                    raise InputError("depth image has no valid pixel (all NaN, zero, negative or infinite)")
        return Frame(stamp_ns=stamp_ns, frame_id=frame_id, rgb=rgb, camera=camera, depth=depth, source=source,
                     notes=notes)

    # ------------------------------------------------------------------------------ admission
    def _admit(self) -> str | None:
        """Reserve a place for a request; the reason it is refused, or None when admitted."""
        with self._lock:
            if self._stop.is_set():
                return "node is shutting down"
            if self._pending > 0:
                if self._p("busy_policy") == "reject":
                    since = time.monotonic() - self._running_since if self._running else 0.0
                    what = f"{self._running.kind} reconstruction running for {since:.1f} s" if self._running \
                        else "a reconstruction is about to start"
                    return f"busy: {what} (busy_policy reject)"
                max_queue = int(self._p("max_queue"))
                if self._pending >= max_queue + 1:
                    return f"busy: queue full ({self._pending - 1} waiting, max_queue {max_queue})"
                self.get_logger().info(f"request queued behind {self._pending} other(s) (busy_policy queue)")
            self._pending += 1
            return None

    def _release(self) -> None:
        with self._lock:
            self._pending -= 1

    def _submit(self, kind: str, prompt: str | None, goal_handle=None) -> Job:
        """Capture the frame and enqueue a job (the caller holds an admission). Raises InputError."""
        try:
            frame = self.capture_frame()
        except InputError:
            raise
        except Exception as exc:  # an unforeseen conversion failure must not leak the admission
            raise InputError(f"cannot use the input frame: {type(exc).__name__}: {exc}") from exc
        job = Job(kind=kind, frame=frame, prompt=prompt or self._p("prompt") or None, goal_handle=goal_handle)
        for note in frame.notes:
            self.get_logger().warning(note)
        self._jobs.put(job)
        return job

    # ------------------------------------------------------------------------------- service
    def _on_snapshot(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        reason = self._admit()
        if reason:
            self.get_logger().warning(f"~/snapshot refused: {reason}")
            response.success, response.message = False, reason
            return response
        try:
            job = self._submit("service", None)
        except InputError as exc:
            self._release()
            self.get_logger().warning(f"~/snapshot failed: {exc}")
            response.success, response.message = False, str(exc)
            return response
        job.done.wait()
        response.success, response.message = job.success, job.message
        return response

    # -------------------------------------------------------------------------------- action
    def _on_goal(self, goal: Reconstruct.Goal) -> GoalResponse:
        reason = self._admit()
        if reason:
            self.get_logger().warning(f"~/reconstruct goal rejected: {reason}")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_cancel(self, goal_handle) -> CancelResponse:
        self.get_logger().info("~/reconstruct: cancel requested; stopping at the next stage boundary")
        return CancelResponse.ACCEPT

    def _execute_goal(self, goal_handle) -> Reconstruct.Result:
        result = Reconstruct.Result()
        goal = goal_handle.request
        job = None
        try:
            if goal.profile and goal.profile != self.profile:
                raise InputError(f"profile '{goal.profile}' is not loaded (this node runs '{self.profile}'; "
                                 "start another node for it)")
            job = self._submit("action", goal.prompt or None, goal_handle=goal_handle)
        except InputError as exc:
            self._release()
            self.get_logger().warning(f"~/reconstruct failed: {exc}")
            result.success, result.message = False, str(exc)
            goal_handle.abort()
            return result
        job.done.wait()
        result.success, result.message = job.success, job.message
        if job.scene_msg is not None:
            result.scene = job.scene_msg
        if job.cancelled and goal_handle.is_cancel_requested:
            goal_handle.canceled()
        elif job.success:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return result

    # ---------------------------------------------------------------------------- continuous
    def _on_timer(self) -> None:
        if self._p("mode") != "continuous" or self._stop.is_set():
            return
        now = time.monotonic()
        if now - self._last_continuous_start < 1.0 / float(self._p("max_rate_hz")):
            return
        with self._lock:
            if self._pending > 0 or not self._images:
                return
            newest = conv.stamp_to_ns(self._images[-1][1].header.stamp)
            if newest <= self._last_continuous_stamp:
                return  # nothing new: never reconstruct a frame twice
            self._pending += 1
        self._last_continuous_start = now
        self._last_continuous_stamp = newest
        try:
            self._submit("continuous", None)
        except InputError as exc:
            self._release()
            self.get_logger().warning(f"continuous: skipped frame {newest / 1e9:.3f} s: {exc}")

    # -------------------------------------------------------------------------------- worker
    def _import_pipeline(self):
        if self._pipeline_mod is None:
            from dpa_ros import pipeline as mod

            self._pipeline_mod = mod
        return self._pipeline_mod

    def _ensure_loaded(self) -> None:
        """Build and load the pipeline once; on failure remember why (retried on the next request)."""
        if self._pipeline is not None:
            return
        t0 = time.monotonic()
        mod = self._import_pipeline()
        overrides = {"segmenter": self._thresholds()}
        seed = int(self._p("seed"))
        pipeline = mod.Pipeline.from_profile(self.profile, config_path=self._p("config_path") or None,
                                             overrides=overrides, weights_dir=self._p("weights_dir") or None,
                                             device=self._p("device") or None, seed=None if seed < 0 else seed)
        times = pipeline.load() or {}
        total = time.monotonic() - t0
        self._load_times = {k: float(v) for k, v in times.items()}
        self._pipeline = pipeline
        self._load_error = None
        detail = ", ".join(f"{k} {v:.2f} s" for k, v in self._load_times.items())
        self.get_logger().info(f"loaded profile '{self.profile}' in {total:.2f} s ({detail})")

    def _thresholds(self) -> dict[str, float]:
        return {"box_threshold": float(self._p("box_threshold")), "text_threshold": float(self._p("text_threshold")),
                "keep_threshold": float(self._p("score_threshold"))}

    def _apply_thresholds(self) -> None:
        """Give the loaded segmenter the current thresholds (its config is read at every call)."""
        cfg = getattr(getattr(self._pipeline, "segmenter", None), "cfg", None)
        if isinstance(cfg, dict):
            cfg.update(self._thresholds())

    def _try_load(self) -> str | None:
        try:
            self._ensure_loaded()
            return None
        except Exception as exc:  # MissingWeightsError, bad profile, import errors: keep serving
            self._load_error = f"cannot load profile '{self.profile}': {exc}"
            self.get_logger().error(self._load_error)
            return self._load_error

    def _work(self) -> None:
        if self._p("load_on_start"):
            self._try_load()
        while not self._stop.is_set():
            try:
                job = self._jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            if job is None:
                break
            with self._lock:
                self._running, self._running_since = job, time.monotonic()
            try:
                self._run(job)
            except Exception as exc:  # never let anything kill the worker
                job.success, job.message = False, f"internal error: {type(exc).__name__}: {exc}"
                self.get_logger().error(f"{job.message}\n{traceback.format_exc()}")
            finally:
                with self._lock:
                    self._running = None
                    self._pending -= 1
                job.done.set()
        # fail whatever is still queued so no caller waits forever
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.success, job.message = False, "node is shutting down"
                job.done.set()

    def _fail(self, job: Job, reason: str) -> None:
        job.success, job.message = False, reason
        self.get_logger().warning(f"{job.kind} reconstruction of frame {job.frame.stamp_ns / 1e9:.3f} s failed: {reason}")

    def _run(self, job: Job) -> None:
        log = self.get_logger()
        if job.cancel_requested() or self._stop.is_set():
            job.cancelled, job.message = True, "cancelled before it started"
            return
        if self._pipeline is None:
            if job.goal_handle is not None:
                job.goal_handle.publish_feedback(Reconstruct.Feedback(stage="load", progress=0.0))
            reason = self._try_load()
            if reason:
                self._fail(job, reason)
                return
        mod = self._pipeline_mod
        self._apply_thresholds()
        stage_state = {"stage": None, "t": time.monotonic()}

        def progress(stage: str, fraction: float) -> None:
            now = time.monotonic()
            if stage != stage_state["stage"]:
                if stage_state["stage"] is not None:
                    log.info(f"stage {stage_state['stage']} done in {now - stage_state['t']:.2f} s")
                stage_state["stage"], stage_state["t"] = stage, now
            if job.goal_handle is not None:
                job.goal_handle.publish_feedback(Reconstruct.Feedback(stage=str(stage),
                                                                      progress=float(min(max(fraction, 0.0), 1.0))))

        def cancel() -> bool:
            return self._stop.is_set() or job.cancel_requested()

        frame = job.frame
        t0 = time.monotonic()
        log.info(f"{job.kind} reconstruction of frame {frame.stamp_ns / 1e9:.3f} s ({frame.source}, "
                 f"{frame.camera.width}x{frame.camera.height}, depth {'yes' if frame.depth is not None else 'no'}, "
                 f"prompt {job.prompt or 'profile default'!r})")
        try:
            scene = self._pipeline.run(frame.rgb, frame.camera, frame.depth, prompt=job.prompt,
                                       progress=progress, cancel=cancel)
        except mod.Cancelled as exc:
            job.cancelled, job.message = True, f"cancelled: {exc}"
            log.info(f"{job.kind} reconstruction cancelled ({exc})")
            return
        except mod.ReconstructionError as exc:
            self._fail(job, str(exc))
            return
        except Exception as exc:  # any pipeline exception: report, keep serving
            self._fail(job, f"pipeline error: {type(exc).__name__}: {exc}")
            log.debug(traceback.format_exc())
            return
        elapsed = time.monotonic() - t0
        if stage_state["stage"] is not None:
            log.info(f"stage {stage_state['stage']} done in {time.monotonic() - stage_state['t']:.2f} s")
        scene.stamp_ns = frame.stamp_ns
        job.scene_msg, notes = self._publish(scene, frame)
        n = len(scene.objects)
        timings = ", ".join(f"{k} {v:.2f} s" for k, v in scene.timings_s.items())
        job.success = True
        sec, nsec = divmod(frame.stamp_ns, 1_000_000_000)
        job.message = (f"reconstructed {conv.summarize_scene_msg(job.scene_msg)} of frame {sec}.{nsec:09d} s "
                       f"in {elapsed:.2f} s"
                       + "".join(f"; {x}" for x in frame.notes + notes))
        log.info(f"{job.kind} reconstruction done: {n} object{'s' if n != 1 else ''} in {elapsed:.2f} s "
                 f"({timings}); {len(scene.cloud_points)} cloud points" + "".join(f"; {x}" for x in notes))

    # ------------------------------------------------------------------------------- outputs
    def _export(self, scene, stamp_ns: int, overlay: np.ndarray | None) -> tuple[dict[int, str], list[str]]:
        """Write scene.json + meshes (+ export formats, + the overlay as preview.png) to
        <export_dir>/<stamp>/; (mesh URIs, notes)."""
        export_dir = self._p("export_dir")
        if not export_dir:
            return {}, []
        from dpa_ros.scene import write_scene

        base = Path(export_dir).expanduser().resolve()
        name = f"{stamp_ns // 1_000_000_000}_{stamp_ns % 1_000_000_000:09d}"
        out = base / name
        k = 1
        while out.exists():
            k += 1
            out = base / f"{name}-{k}"
        notes = []
        t0 = time.monotonic()
        try:
            write_scene(scene, out)
        except Exception as exc:
            return {}, [f"export to {out} failed: {type(exc).__name__}: {exc}"]
        uris = {int(o.id): (out / "objects" / f"{o.id}.obj").as_uri() for o in scene.objects}
        if overlay is not None:
            write_png(out / PREVIEW_PNG, overlay)
        formats = list(self._p("export_formats"))
        if formats:
            try:
                from dpa_ros.export import export_scene

                export_scene(out, formats=formats, scene=scene)
            except ImportError as exc:
                notes.append(f"export formats skipped ({exc}); wrote scene.json and meshes")
            except Exception as exc:
                notes.append(f"export of {', '.join(formats)} failed: {type(exc).__name__}: {exc}")
        self.get_logger().info(f"exported scene to {out} in {time.monotonic() - t0:.2f} s")
        notes.insert(0, f"exported to {out}")
        return uris, notes

    def _publish(self, scene, frame: Frame) -> tuple[SceneMsg, list[str]]:
        overlay = None
        if self._overlay_pub is not None or self._p("export_dir"):
            try:
                overlay = draw_overlay(frame.rgb, scene)
            except Exception as exc:  # a picture must never cost the scene
                self.get_logger().warning(f"no overlay for this scene: {type(exc).__name__}: {exc}")
        uris, notes = self._export(scene, frame.stamp_ns, overlay)
        for note in notes[1:]:
            self.get_logger().warning(note)
        stamp = conv.ns_to_stamp(frame.stamp_ns)
        scene_msg = conv.scene_to_msg(scene, stamp=stamp, frame_id=frame.frame_id, mesh_uris=uris)
        mode = self._p("marker_mesh")
        if mode == "mesh_resource" and not uris:
            notes.append("marker_mesh mesh_resource needs export_dir: sent triangle lists")
        markers = conv.scene_to_markers(scene_msg, mesh_mode=mode, alpha=float(self._p("marker_alpha")),
                                        text_height=float(self._p("label_height_m")))
        pts, cols = np.asarray(scene.cloud_points), np.asarray(scene.cloud_colors)
        max_pts = int(self._p("cloud_max_points"))
        if max_pts and len(pts) > max_pts:
            idx = np.linspace(0, len(pts) - 1, max_pts).round().astype(np.int64)
            pts, cols = pts[idx], (cols[idx] if len(cols) == len(scene.cloud_points) else cols)
        cloud = conv.cloud_to_pointcloud2(pts, cols if len(cols) == len(pts) and len(pts) else None,
                                          frame.frame_id, stamp)
        self._tf.publish(conv.scene_to_transforms(scene_msg, self._p("frame_prefix")), replace=True)
        self._marker_pub.publish(markers)
        self._cloud_pub.publish(cloud)
        if self._planning is not None:
            self._planning.publish(scene_msg, self._p("frame_prefix"))
        if self._overlay_pub is not None and overlay is not None:
            self._overlay_pub.publish(conv.numpy_to_image(overlay, "rgb8", frame.frame_id, stamp))
        self._scene_pub.publish(scene_msg)
        return scene_msg, notes

    # ------------------------------------------------------------------------------ shutdown
    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop the worker (a running reconstruction is cancelled at its next stage boundary)."""
        self._stop.set()
        self._jobs.put(None)
        self._worker.join(timeout=timeout_s)
        logging.getLogger("dpa_ros").removeHandler(self._log_handler)


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = ReconstructNode()
        except ValueError as exc:  # a parameter value outside its choices
            rclpy.logging.get_logger(NODE_NAME).fatal(str(exc))
            raise SystemExit(2) from None
        executor = MultiThreadedExecutor(num_threads=MAX_QUEUE_LIMIT + 4)
        executor.add_node(node)
        try:
            executor.spin()
        finally:
            executor.shutdown(timeout_sec=1.0)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.shutdown()
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
