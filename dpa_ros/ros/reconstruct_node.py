"""The ``dpa_reconstructor`` node: camera frames in; scene, meshes, point cloud and TF out.

Executable ``reconstruct_node`` (``ros2 run dpa_ros reconstruct_node --ros-args --params-file
config/reconstruct.yaml``). This module is wiring: parameters come from :mod:`dpa_ros.ros.params`,
frames are matched by :mod:`dpa_ros.ros.frame_buffer` and converted by :mod:`dpa_ros.ros.inputs`,
requests are admitted and run by :mod:`dpa_ros.ros.scheduler`, gravity for a request comes from
:mod:`dpa_ros.ros.gravity_sources` (the ``gravity`` parameter, TF to ``gravity_frame``, or the IMU), the
reconstruction is :mod:`dpa_ros.pipeline`, and the outputs are built by :mod:`dpa_ros.ros.conversions`,
:mod:`dpa_ros.ros.planning` (Detection3DArray, CollisionObject), :mod:`dpa_ros.overlay`,
:mod:`dpa_ros.export.stamped` and :mod:`dpa_ros.geometry.clouds`. docs/interfaces.md lists the
topics, services, action, TF frames and parameters (``~`` is the node's private namespace).

Threading: subscription callbacks only store the unconverted messages. A request waits (up to
``frame_wait_s``) for the newest complete frame, converts and validates it at once (bad input fails
fast, even while busy in ``queue`` mode) and hands it to the scheduler's one worker thread, which runs
the pipeline and publishes. Requests wait for their job inside a reentrant callback group of a
MultiThreadedExecutor, so subscriptions, the action server, the service and the parameter services
stay responsive during a reconstruction.
"""
from __future__ import annotations

import collections
import time
from typing import Any

import numpy as np
import rclpy
import rclpy.logging
from rcl_interfaces.msg import SetParametersResult
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.exceptions import ParameterUninitializedException
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_srvs.srv import Trigger
from visualization_msgs.msg import MarkerArray

from dpa_ros.action import Reconstruct
from dpa_ros.export.stamped import export_stamped
from dpa_ros.geometry.clouds import subsample_evenly
from dpa_ros.geometry.gravity import floor_disagreement_deg
from dpa_ros.msg import Scene as SceneMsg
from dpa_ros.overlay import draw_overlay
from dpa_ros.ros import conversions as conv
from dpa_ros.ros import log_bridge
from dpa_ros.ros.frame_buffer import CAMERA_INFO, DEPTH, IMAGE, FrameBuffer, FrameUnavailable
from dpa_ros.ros.gravity_sources import GravitySources, GravityUnavailable
from dpa_ros.ros.inputs import Frame, InputError, frame_from_messages
from dpa_ros.ros.params import MAX_QUEUE_LIMIT, PARAMETER_INDEX, PARAMETERS, check_parameter, segmenter_thresholds
from dpa_ros.ros.scheduler import Busy, Job, Scheduler, StageTimer
from dpa_ros.ros.tf import StaticTransformPublisher

NODE_NAME = "dpa_reconstructor"
LATCHED_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
CONTINUOUS_TICK_S = 0.05


class ReconstructNode(Node):
    """``dpa_reconstructor``: see the module docstring."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        for spec in PARAMETERS:  # an empty array default (gravity) is declared by its type, unset
            default = spec.default if spec.default != [] else Parameter.Type.DOUBLE_ARRAY
            self.declare_parameter(spec.name, default, spec.descriptor())
        for spec in PARAMETERS:
            reason = check_parameter(spec.name, self._p(spec.name))
            if reason:
                raise ValueError(f"invalid parameter: {reason}")
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.profile = self._p("profile")
        self._log_handler = log_bridge.attach(self.get_logger())
        self._pipeline = None
        self._goal_tickets: collections.deque = collections.deque()  # admitted by _on_goal, used by _execute_goal
        # continuous mode: last start (monotonic s), last image stamp used, (incomplete newest stamp, since, warned)
        self._continuous: dict[str, Any] = {"started": 0.0, "stamp": -1, "incomplete": (None, 0.0, False)}

        # inputs: stored unconverted; a request converts only the frame it chooses
        reliability = (ReliabilityPolicy.BEST_EFFORT if self._p("input_reliability") == "best_effort"
                       else ReliabilityPolicy.RELIABLE)
        in_qos = QoSProfile(depth=self._p("input_depth"), history=HistoryPolicy.KEEP_LAST, reliability=reliability,
                            durability=DurabilityPolicy.VOLATILE)
        group = ReentrantCallbackGroup()
        subs = []
        if self._p("image_transport") in ("raw", "both"):
            subs.append(self.create_subscription(Image, "image", lambda m: self._store(IMAGE, m, "image"), in_qos,
                                                 callback_group=group))
        if self._p("image_transport") in ("compressed", "both"):
            subs.append(self.create_subscription(CompressedImage, "image/compressed",
                                                 lambda m: self._store(IMAGE, m, "image/compressed"), in_qos,
                                                 callback_group=group))
        image_topics = " or ".join(s.topic_name for s in subs)
        subs.append(self.create_subscription(CameraInfo, "camera_info", lambda m: self._store(CAMERA_INFO, m),
                                             in_qos, callback_group=group))
        topics = {IMAGE: image_topics, CAMERA_INFO: subs[-1].topic_name}
        if self._p("use_depth"):
            subs.append(self.create_subscription(Image, "depth", lambda m: self._store(DEPTH, m), in_qos,
                                                 callback_group=group))
            topics[DEPTH] = subs[-1].topic_name
        self._gravity = GravitySources(self, self._p, callback_group=group)
        self._frames = FrameBuffer(self._p("use_depth"), self._p("input_depth"),
                                   clock_ns=lambda: self.get_clock().now().nanoseconds, topics=topics)

        # outputs
        self._scene_pub = self.create_publisher(SceneMsg, "~/scene", LATCHED_QOS)
        self._marker_pub = self.create_publisher(MarkerArray, "~/markers", LATCHED_QOS)
        self._cloud_pub = self.create_publisher(PointCloud2, "~/scene_cloud", LATCHED_QOS)
        self._tf = StaticTransformPublisher(self)
        self._planning = self._planning_publisher()
        self._overlay_pub = self.create_publisher(Image, "~/overlay", LATCHED_QOS) if self._p("publish_overlay") \
            else None

        # triggers
        self._scheduler = Scheduler(self._execute, on_start=self._load_on_start if self._p("load_on_start") else None)
        requests = ReentrantCallbackGroup()
        self._action = ActionServer(self, Reconstruct, "~/reconstruct", self._execute_goal,
                                    goal_callback=self._on_goal, cancel_callback=self._on_cancel,
                                    callback_group=requests, result_timeout=300)
        self._snapshot = self.create_service(Trigger, "~/snapshot", self._on_snapshot, callback_group=requests)
        self._timer = self.create_timer(CONTINUOUS_TICK_S, self._on_timer,
                                        callback_group=MutuallyExclusiveCallbackGroup())
        imu = f"; imu {self._gravity.imu_topic}" if self._gravity.imu_topic else ""
        self.get_logger().info(
            f"ready: profile '{self.profile}', inputs {' + '.join(s.topic_name for s in subs)}; "
            f"mode {self._p('mode')}, busy_policy {self._p('busy_policy')}; tf backend {self._tf.backend}, "
            f"tf listener {self._gravity.tf_backend}{imu}"
            + "".join(f"; publishes {t}" for t in (self._planning.topics if self._planning else [])))

    # ------------------------------------------------------------------------------ parameters
    def _p(self, name: str) -> Any:
        try:
            return self.get_parameter(name).value
        except ParameterUninitializedException:  # an unset array parameter: its default, []
            return PARAMETER_INDEX[name].default

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
        if any(p.name == "gravity_frame" and p.value for p in params) and hasattr(self, "_gravity"):
            self._gravity.listen()  # a node started without a gravity source starts listening to TF
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------------------------- inputs
    def _store(self, stream: str, msg, source: str = "") -> None:
        self._frames.add(stream, conv.stamp_to_ns(msg.header.stamp), (source, msg) if stream == IMAGE else msg)

    def _choose(self, wait_s: float, newer_than_ns: int | None = None):
        return self._frames.select(float(self._p("sync_tolerance_s")), wait_s=wait_s,
                                   max_age_s=float(self._p("max_frame_age_s")),
                                   require_depth=bool(self._p("require_depth")), newer_than_ns=newer_than_ns)

    def capture_frame(self) -> Frame:
        """The newest complete frame (waiting up to ``frame_wait_s``), converted; raises InputError."""
        try:
            chosen = self._choose(float(self._p("frame_wait_s")))
        except FrameUnavailable as exc:
            raise InputError(str(exc)) from exc
        return self._convert(chosen)

    def _resolve_gravity(self, frame: Frame) -> tuple[np.ndarray | None, str, str]:
        """(gravity or None, source, detail) for ``frame`` (gravity_sources); InputError when a set
        source cannot give it: the request is refused, not reconstructed without its gravity."""
        try:
            return self._gravity.resolve(frame.frame_id, frame.stamp_ns)
        except GravityUnavailable as exc:
            raise InputError(str(exc)) from exc

    def _convert(self, chosen) -> Frame:
        try:
            return frame_from_messages(chosen, self._p("intrinsics"))
        except InputError:
            raise
        except Exception as exc:  # an unforeseen conversion failure is still the input's fault
            raise InputError(f"cannot use the input frame: {type(exc).__name__}: {exc}") from exc

    # -------------------------------------------------------------------------------- requests
    def _request(self, ticket, kind: str, prompt: str | None, goal_handle=None) -> Job:
        """Capture the frame and queue a job in ``ticket``'s place; InputError releases the place."""
        try:
            frame = self.capture_frame()
            gravity = self._resolve_gravity(frame)
        except InputError:
            ticket.release()
            raise
        for note in frame.notes:
            self.get_logger().warning(note)
        payload = {"frame": frame, "gravity": gravity, "prompt": prompt or self._p("prompt") or None,
                   "goal_handle": goal_handle}
        cancel = (lambda: goal_handle.is_cancel_requested) if goal_handle is not None else (lambda: False)
        return ticket.submit(Job(kind, payload, cancel_requested=cancel))

    def _admit(self):
        return self._scheduler.admit(self._p("busy_policy"), int(self._p("max_queue")))

    def _on_snapshot(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            job = self._request(self._admit(), "service", None)
        except (Busy, InputError) as exc:
            what = "refused" if isinstance(exc, Busy) else "failed"
            self.get_logger().warning(f"~/snapshot {what}: {exc}")
            response.success, response.message = False, str(exc)
            return response
        job.done.wait()
        response.success, response.message = job.success, job.message
        return response

    def _on_goal(self, goal: Reconstruct.Goal) -> GoalResponse:
        try:
            self._goal_tickets.append(self._admit())
        except Busy as exc:
            self.get_logger().warning(f"~/reconstruct goal rejected: {exc}")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_cancel(self, goal_handle) -> CancelResponse:
        self.get_logger().info("~/reconstruct: cancel requested; stopping at the next stage boundary")
        return CancelResponse.ACCEPT

    def _execute_goal(self, goal_handle) -> Reconstruct.Result:
        result = Reconstruct.Result()
        goal = goal_handle.request
        ticket = self._goal_tickets.popleft()  # places are interchangeable: any admitted one will do
        try:
            if goal.profile and goal.profile != self.profile:
                ticket.release()
                raise InputError(f"profile '{goal.profile}' is not loaded (this node runs '{self.profile}'; "
                                 "start another node for it)")
            job = self._request(ticket, "action", goal.prompt or None, goal_handle=goal_handle)
        except InputError as exc:
            self.get_logger().warning(f"~/reconstruct failed: {exc}")
            result.success, result.message = False, str(exc)
            goal_handle.abort()
            return result
        job.done.wait()
        result.success, result.message = job.success, job.message
        if job.result is not None:
            result.scene = job.result
        if job.cancelled and goal_handle.is_cancel_requested:
            goal_handle.canceled()
        elif job.success:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return result

    def _on_timer(self) -> None:
        """Continuous mode: the newest complete frame not reconstructed yet, when idle, at most max_rate_hz."""
        state = self._continuous
        now = time.monotonic()
        if self._p("mode") != "continuous" or now - state["started"] < 1.0 / float(self._p("max_rate_hz")):
            return
        newest = self._frames.newest_image_stamp()
        if newest is None or newest <= state["stamp"]:
            return  # nothing new: never reconstruct a frame twice
        ticket = self._scheduler.admit_if_idle()
        if ticket is None:
            return
        try:
            chosen = self._choose(0.0, newer_than_ns=state["stamp"])
        except FrameUnavailable as exc:  # companions may still come: warn once frame_wait_s has passed
            ticket.release()
            stamp, since, warned = state["incomplete"]
            if stamp != newest:
                state["incomplete"] = (newest, now, False)
            elif not warned and now - since > float(self._p("frame_wait_s")):
                self.get_logger().warning(f"continuous: no complete frame: {exc}")
                state["incomplete"] = (newest, since, True)
            return
        state["started"], state["stamp"] = now, chosen.image.stamp_ns
        try:
            frame = self._convert(chosen)
            gravity = self._resolve_gravity(frame)
        except InputError as exc:
            ticket.release()
            self.get_logger().warning(f"continuous: skipped frame {chosen.image.stamp_ns / 1e9:.3f} s: {exc}")
            return
        ticket.submit(Job("continuous", {"frame": frame, "gravity": gravity, "prompt": self._p("prompt") or None,
                                         "goal_handle": None}))

    # ------------------------------------------------------------------------------------ work
    def _load_on_start(self) -> None:
        try:
            self._load()
        except Exception as exc:  # reported now, retried (and reported) by every request
            self.get_logger().error(f"cannot load profile '{self.profile}': {exc}")

    def _load(self) -> None:
        """Build and load the pipeline once (on the worker thread); raises what loading raised."""
        from dpa_ros import pipeline as mod

        t0 = time.monotonic()
        seed = int(self._p("seed"))
        pipeline = mod.Pipeline.from_profile(self.profile, config_path=self._p("config_path") or None,
                                             weights_dir=self._p("weights_dir") or None,
                                             device=self._p("device") or None, seed=None if seed < 0 else seed)
        times = pipeline.load() or {}
        self._pipeline = pipeline
        detail = ", ".join(f"{k} {float(v):.2f} s" for k, v in times.items())
        self.get_logger().info(f"loaded profile '{self.profile}' in {time.monotonic() - t0:.2f} s ({detail})")

    def _thresholds(self) -> dict[str, float]:
        """Set threshold parameters win; the others (negative) take the loaded profile's segmenter values."""
        return segmenter_thresholds(self._p, getattr(getattr(self._pipeline, "profile", None), "segmenter", None))

    def _execute(self, job: Job) -> None:
        """Run on the scheduler's worker: load if needed, reconstruct, publish; fills the job's result."""
        from dpa_ros import pipeline as mod

        log = self.get_logger()
        frame, goal_handle = job.payload["frame"], job.payload["goal_handle"]
        what = f"{job.kind} reconstruction of frame {frame.stamp_ns / 1e9:.3f} s"

        def fail(reason: str) -> None:
            job.fail(reason)
            log.warning(f"{what} failed: {reason}")

        def feedback(stage: str, fraction: float) -> None:
            if goal_handle is not None:
                goal_handle.publish_feedback(Reconstruct.Feedback(stage=stage, progress=fraction))

        if self._pipeline is None:
            feedback("load", 0.0)
            try:
                self._load()
            except Exception as exc:  # MissingWeightsError, bad profile, import errors: keep serving
                fail(f"cannot load profile '{self.profile}': {exc}")
                return
        segmenter = getattr(self._pipeline, "segmenter", None)
        if segmenter is not None:  # thresholds apply from the next request (read at every call)
            segmenter.set_thresholds(**self._thresholds())
        timer = StageTimer(log.info, feedback)
        depth_text = "with sensor depth" if frame.depth is not None else "without sensor depth"
        log.info(f"{what} ({frame.source}, {frame.camera.width}x{frame.camera.height}, {depth_text}, "
                 f"prompt {job.payload['prompt'] or 'profile default'!r})")
        t0 = time.monotonic()
        try:
            gravity, source, _ = job.payload["gravity"]
            scene = self._pipeline.run(frame.rgb, frame.camera, frame.depth, prompt=job.payload["prompt"],
                                       progress=timer, cancel=lambda: self._scheduler.should_stop(job),
                                       gravity=gravity, gravity_source=source)
        except mod.Cancelled as exc:
            job.cancelled, job.message = True, f"cancelled: {exc}"
            log.info(f"{job.kind} reconstruction cancelled ({exc})")
            return
        except mod.ReconstructionError as exc:
            fail(str(exc))
            return
        except Exception as exc:  # any pipeline exception: report, keep serving
            fail(f"pipeline error: {type(exc).__name__}: {exc}")
            return
        elapsed = time.monotonic() - t0
        timer.finish()
        scene.stamp_ns = frame.stamp_ns
        job.result, notes = self._publish(scene, frame)
        notes = [self._gravity_note(scene, job.payload["gravity"])] + notes
        sec, nsec = divmod(frame.stamp_ns, 1_000_000_000)
        job.success = True
        job.message = (f"reconstructed {conv.summarize_scene_msg(job.result)} of frame {sec}.{nsec:09d} s "
                       f"in {elapsed:.2f} s {depth_text}" + "".join(f"; {x}" for x in frame.notes + notes))
        timings = ", ".join(f"{k} {v:.2f} s" for k, v in scene.timings_s.items())
        n = len(scene.objects)
        log.info(f"{job.kind} reconstruction done: {n} object{'s' if n != 1 else ''} in {elapsed:.2f} s "
                 f"({timings}); {len(scene.cloud_points)} cloud points" + "".join(f"; {x}" for x in notes))

    def _gravity_note(self, scene, gravity: tuple) -> str:
        """Where the scene's gravity came from; warns when a given one disagrees with the fitted floor."""
        given, source, detail = gravity
        if given is None:
            return f"gravity_source {scene.background.gravity_source}"
        angle = floor_disagreement_deg(given, scene.background)
        if angle is not None:
            limit = float(self._p("gravity_floor_warn_deg"))
            if angle > limit:
                warning = (f"{detail} differs from the fitted floor's normal by {angle:.1f} deg "
                           f"(gravity_floor_warn_deg {limit:g}); kept the given gravity")
                self.get_logger().warning(warning)
                return f"gravity_source {source}; {warning}"
        return f"gravity_source {source}"

    # --------------------------------------------------------------------------------- outputs
    def _publish(self, scene, frame: Frame) -> tuple[SceneMsg, list[str]]:
        """Export (with ``export_dir``) and publish one scene on every output; (Scene message, notes)."""
        notes: list[str] = []
        uris: dict[int, str] = {}
        overlay = None
        if self._overlay_pub is not None or self._p("export_dir"):
            try:
                overlay = draw_overlay(frame.rgb, scene)
            except Exception as exc:  # a picture must never cost the scene
                self.get_logger().warning(f"no overlay for this scene: {type(exc).__name__}: {exc}")
        if self._p("export_dir"):
            exported = export_stamped(scene, self._p("export_dir"), frame.stamp_ns, self._p("export_formats"),
                                      preview=overlay)
            for warning in exported.warnings:
                self.get_logger().warning(warning)
            uris = exported.mesh_uris
            notes += ([f"exported to {exported.directory}"] if exported.directory else []) + exported.warnings
        stamp = conv.ns_to_stamp(frame.stamp_ns)
        scene_msg = conv.scene_to_msg(scene, stamp=stamp, frame_id=frame.frame_id, mesh_uris=uris)
        mesh_mode = self._p("marker_mesh")
        if mesh_mode == "mesh_resource" and not uris:
            notes.append("marker_mesh mesh_resource needs export_dir: sent triangle lists")
        markers = conv.scene_to_markers(scene_msg, mesh_mode=mesh_mode, alpha=float(self._p("marker_alpha")),
                                        text_height=float(self._p("label_height_m")))
        points, colors = subsample_evenly(np.asarray(scene.cloud_points), np.asarray(scene.cloud_colors),
                                          int(self._p("cloud_max_points")))
        cloud = conv.cloud_to_pointcloud2(points, colors, frame.frame_id, stamp)
        self._tf.publish(conv.scene_to_transforms(scene_msg, self._p("frame_prefix")), replace=True)
        self._marker_pub.publish(markers)
        self._cloud_pub.publish(cloud)
        if self._planning is not None:
            self._planning.publish(scene_msg, self._p("frame_prefix"))
        if self._overlay_pub is not None and overlay is not None:
            self._overlay_pub.publish(conv.numpy_to_image(overlay, "rgb8", frame.frame_id, stamp))
        self._scene_pub.publish(scene_msg)
        return scene_msg, notes

    # -------------------------------------------------------------------------------- shutdown
    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop the worker (a running reconstruction is cancelled at its next stage boundary)."""
        self._scheduler.shutdown(timeout_s)
        log_bridge.detach(self._log_handler)


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
