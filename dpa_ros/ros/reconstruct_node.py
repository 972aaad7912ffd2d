"""The ``dpa_reconstructor`` node: camera frames in; scene, meshes, point cloud and TF out.

Executable ``reconstruct_node`` (``ros2 run dpa_ros reconstruct_node --ros-args --params-file
config/reconstruct.yaml``). This module is wiring: parameters come from :mod:`dpa_ros.ros.params`,
frames are matched by :mod:`dpa_ros.ros.frame_buffer` and converted by :mod:`dpa_ros.ros.inputs`,
requests are admitted, loaded for, run and described by :mod:`dpa_ros.ros.scheduler` (also
continuous mode's state), gravity for a request comes from :mod:`dpa_ros.ros.gravity_sources` (the
``gravity`` parameter, TF to ``gravity_frame``, or the IMU), the reconstruction is
:mod:`dpa_ros.pipeline` (or, for a goal's known objects read by :mod:`dpa_ros.ros.instances`,
:func:`dpa_ros.assemble.assemble_scene`), with ``fixed_frame`` set :mod:`dpa_ros.ros.scene_memory`
merges it into the scene memory (camera pose from TF at the image stamp), and
:mod:`dpa_ros.ros.scene_publisher` exports and publishes the outputs.
docs/interfaces.md lists the topics, services, action, TF frames and parameters (``~`` is the node's private namespace).

Threading: subscription callbacks only store the unconverted messages. A request waits (up to
``frame_wait_s``) for the newest complete frame, converts and validates it at once (bad input fails
fast, even while busy in ``queue`` mode) and hands it to the scheduler's one worker thread, which has
the pipeline run (in a child process with ``compute_process``, :mod:`dpa_ros.ros.compute`, so that its
Python never holds this process's interpreter lock while frames arrive), merges the memory and
publishes. Requests wait for their job inside a reentrant callback group of a MultiThreadedExecutor,
so subscriptions, the action server, the service and the parameter services stay responsive during a
reconstruction; a request during the start's model load waits for it (``load_wait_s``).
``torch_threads`` caps torch's intra-op pool so that, on a small CPU, intake keeps a core;
``max_image_size`` downscales the chosen frame.
"""
from __future__ import annotations

import collections
import sys
import threading
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
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_srvs.srv import Trigger

from dpa_ros.action import Reconstruct
from dpa_ros.ros import conversions as conv
from dpa_ros.ros import log_bridge
from dpa_ros.ros.compute import LocalCompute, ProcessCompute
from dpa_ros.ros.frame_buffer import CAMERA_INFO, DEPTH, IMAGE, FrameBuffer, FrameUnavailable
from dpa_ros.ros.gravity_sources import GravitySources, GravityUnavailable
from dpa_ros.ros.inputs import Frame, InputError, frame_from_messages
from dpa_ros.ros.instances import InstancesError, checked_roots, instances_from_goal
from dpa_ros.ros.params import MAX_QUEUE_LIMIT, PARAMETER_INDEX, PARAMETERS, check_parameter, segmenter_thresholds
from dpa_ros.ros.scene_memory import NodeMemory
from dpa_ros.ros.scene_publisher import ScenePublisher
from dpa_ros.ros.scheduler import (
    Busy,
    ContinuousTrigger,
    Job,
    PipelineLoader,
    Reconstructor,
    Request,
    Scheduler,
    gravity_note,
)
from dpa_ros.ros.tf_buffer import TfLookupError
from dpa_ros.srv import Forget

NODE_NAME = "dpa_reconstructor"
CONTINUOUS_TICK_S = 0.05
GIL_SWITCH_INTERVAL_S = 0.0005  # CPython's default is 0.005


class ReconstructNode(Node):
    """``dpa_reconstructor``: see the module docstring."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        for spec in PARAMETERS:  # an empty array default (gravity, mesh_roots) is declared by its type, unset
            default = spec.default if spec.default != [] else (
                Parameter.Type.STRING_ARRAY if spec.item_type is str else Parameter.Type.DOUBLE_ARRAY)
            self.declare_parameter(spec.name, default, spec.descriptor())
        for spec in PARAMETERS:
            reason = check_parameter(spec.name, self._p(spec.name))
            if reason:
                raise ValueError(f"invalid parameter: {reason}")
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.profile = self._p("profile")
        self._log_handler = log_bridge.attach(self.get_logger())
        self._goal_tickets: collections.deque = collections.deque()  # admitted by _on_goal, used by _execute_goal
        self._continuous = ContinuousTrigger()

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

        # outputs; the scene memory (fixed_frame set) is published instead of each view's scene
        self._outputs = ScenePublisher(self, self._p)
        self._publish_lock = threading.Lock()  # the worker and the memory services both publish
        self._memory = NodeMemory(self._p("fixed_frame"), int(self._p("forget_after"))) \
            if self._p("fixed_frame") else None
        self._last_memory: tuple | None = None  # (Remembered, frame) last published
        if self._memory is not None:
            self._gravity.listen()  # every view is placed in fixed_frame through TF

        # work: the pipeline is loaded and run on the scheduler's worker thread
        self._loader = PipelineLoader(self.profile, self._build_pipeline, self.get_logger(),
                                      loading_at_start=bool(self._p("load_on_start")))
        reconstruct = Reconstructor(self._loader, self._publish, conv.summarize_scene_msg, self._gravity_note,
                                    self._thresholds, self._feedback, lambda job: self._scheduler.should_stop(job),
                                    self.get_logger(), images_received=lambda: self._frames.received(IMAGE),
                                    remember=self._remember if self._memory is not None else None)
        self._scheduler = Scheduler(reconstruct,
                                    on_start=self._loader.load_on_start if self._p("load_on_start") else None)

        # triggers
        requests = ReentrantCallbackGroup()
        self._action = ActionServer(self, Reconstruct, "~/reconstruct", self._execute_goal,
                                    goal_callback=self._on_goal, cancel_callback=self._on_cancel,
                                    callback_group=requests, result_timeout=300)
        self._snapshot = self.create_service(Trigger, "~/snapshot", self._on_snapshot, callback_group=requests)
        self._clear_memory = self.create_service(Trigger, "~/clear_memory", self._on_clear_memory,
                                                 callback_group=requests)
        self._forget = self.create_service(Forget, "~/forget", self._on_forget, callback_group=requests)
        self._timer = self.create_timer(CONTINUOUS_TICK_S, self._on_timer,
                                        callback_group=MutuallyExclusiveCallbackGroup())
        imu = f"; imu {self._gravity.imu_topic}" if self._gravity.imu_topic else ""
        memory = f"; memory in {self._p('fixed_frame')}" if self._memory is not None else ""
        self.get_logger().info(
            f"ready: profile '{self.profile}', inputs {' + '.join(s.topic_name for s in subs)}; "
            f"mode {self._p('mode')}, busy_policy {self._p('busy_policy')}; tf backend {self._outputs.tf.backend}, "
            f"tf listener {self._gravity.tf_backend}{imu}{memory}"
            + "".join(f"; publishes {t}" for t in self._outputs.planning_topics))

    # ------------------------------------------------------------------------------ parameters
    def _p(self, name: str) -> Any:
        try:
            return self.get_parameter(name).value
        except ParameterUninitializedException:  # an unset array parameter: its default, []
            return PARAMETER_INDEX[name].default

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

    def _choose(self, wait_s: float, newer_than_ns: int | None = None, asked_ns: int | None = None):
        return self._frames.select(float(self._p("sync_tolerance_s")), wait_s=wait_s,
                                   max_age_s=float(self._p("max_frame_age_s")),
                                   require_depth=bool(self._p("require_depth")), newer_than_ns=newer_than_ns,
                                   asked_ns=asked_ns)

    def capture_frame(self, asked_ns: int | None = None) -> Frame:
        """The newest complete frame (waiting up to ``frame_wait_s``), converted; raises InputError.
        ``asked_ns``: when the request came (ROS clock), which frame ages are measured against."""
        try:
            chosen = self._choose(float(self._p("frame_wait_s")), asked_ns=asked_ns)
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
            return frame_from_messages(chosen, self._p("intrinsics"), int(self._p("max_image_size")),
                                       self._p("distortion"))
        except InputError:
            raise
        except Exception as exc:  # an unforeseen conversion failure is still the input's fault
            raise InputError(f"cannot use the input frame: {type(exc).__name__}: {exc}") from exc

    # -------------------------------------------------------------------------------- requests
    def _fixed_from_camera(self, frame: Frame) -> np.ndarray | None:
        """With the memory on, T fixed_frame <- camera optical frame at the image stamp (4×4, metres),
        else None; InputError when TF cannot give it: the view is refused, never placed by guess."""
        if self._memory is None:
            return None
        fixed = self._memory.fixed_frame
        try:
            return self._gravity.listen().lookup(fixed, frame.frame_id, frame.stamp_ns,
                                                 float(self._p("tf_tolerance_s")), float(self._p("tf_wait_s")))
        except TfLookupError as exc:
            raise InputError(f"scene memory: no transform {fixed} <- {frame.frame_id} at the image stamp: {exc}") \
                from exc

    def _goal_instances(self, entries, frame: Frame) -> list | None:
        """A goal's ``instances`` as layout instances for ``frame`` (None when there are none); InputError."""
        if not entries:
            return None
        try:
            roots = checked_roots(list(self._p("mesh_roots")))
            return instances_from_goal(entries, frame.camera.width, frame.camera.height, roots,
                                       int(self._p("max_image_size")))
        except (InstancesError, ValueError) as exc:
            raise InputError(f"goal instances refused: {exc}") from exc

    def _request(self, ticket, kind: str, prompt: str | None, goal_handle=None, instances=()) -> Job:
        """Capture the frame and queue a job in ``ticket``'s place; InputError releases the place."""
        try:
            if instances and not list(self._p("mesh_roots")):  # refused before waiting for a frame
                raise InputError("goal instances refused: this node reads no meshes: set the mesh_roots "
                                 "parameter to send instances")
            asked_ns = self.get_clock().now().nanoseconds
            self._wait_for_load(goal_handle)
            frame = self.capture_frame(asked_ns)
            gravity = self._resolve_gravity(frame)
            layout_instances = self._goal_instances(instances, frame)
            T_fixed_camera = self._fixed_from_camera(frame)
        except InputError:
            ticket.release()
            raise
        for note in frame.notes:
            self.get_logger().warning(note)
        cancel = (lambda: goal_handle.is_cancel_requested) if goal_handle is not None else (lambda: False)
        return ticket.submit(Job(kind, Request(frame, gravity, self._prompt(prompt), goal_handle,
                                               instances=layout_instances, T_fixed_camera=T_fixed_camera),
                                 cancel_requested=cancel))

    def _wait_for_load(self, goal_handle) -> None:
        """While the models load (``load_on_start``), wait up to ``load_wait_s`` for them (a goal is told
        in its feedback, stage ``load``), so that the request then takes the newest frame; InputError
        when the load outlasts the wait."""
        if not self._loader.loading:
            return
        if goal_handle is not None:
            goal_handle.publish_feedback(Reconstruct.Feedback(stage="load", progress=0.0))
        wait_s = float(self._p("load_wait_s"))
        self.get_logger().info(f"request waits for the models of profile '{self.profile}' to load "
                               f"(at most {wait_s:g} s, load_wait_s)")
        if not self._loader.wait_loaded(wait_s):
            raise InputError(f"the models of profile '{self.profile}' are still loading after {wait_s:g} s "
                             "(load_wait_s); try again once the node logs 'loaded profile'")

    def _prompt(self, prompt: str | None) -> str | None:
        """The request's prompt, else the ``prompt`` parameter, else None (the profile's default)."""
        return prompt or self._p("prompt") or None

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
            job = self._request(ticket, "action", goal.prompt or None, goal_handle=goal_handle,
                                instances=goal.instances)
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
        trigger = self._continuous
        now = time.monotonic()
        if self._p("mode") != "continuous":
            return
        newest = self._frames.newest_image_stamp()
        if not trigger.due(now, float(self._p("max_rate_hz")), newest):
            return
        ticket = self._scheduler.admit_if_idle()
        if ticket is None:
            return
        try:
            chosen = self._choose(0.0, newer_than_ns=trigger.stamp)
        except FrameUnavailable as exc:  # companions may still come: warn once frame_wait_s has passed
            ticket.release()
            if trigger.incomplete(newest, now, float(self._p("frame_wait_s"))):
                self.get_logger().warning(f"continuous: no complete frame: {exc}")
            return
        trigger.start(now, chosen.image.stamp_ns)
        try:
            frame = self._convert(chosen)
            gravity = self._resolve_gravity(frame)
            T_fixed_camera = self._fixed_from_camera(frame)
        except InputError as exc:
            ticket.release()
            self.get_logger().warning(f"continuous: skipped frame {chosen.image.stamp_ns / 1e9:.3f} s: {exc}")
            return
        ticket.submit(Job("continuous", Request(frame, gravity, self._prompt(None), T_fixed_camera=T_fixed_camera)))

    # ------------------------------------------------------------------------------------ work
    def _build_pipeline(self):
        """The unloaded pipeline of ``profile`` with the node's parameters, in its own process with
        ``compute_process`` (called on the worker)."""
        seed = int(self._p("seed"))
        build = dict(profile=self.profile, config_path=self._p("config_path") or None,
                     weights_dir=self._p("weights_dir") or None, device=self._p("device") or None,
                     seed=None if seed < 0 else seed)
        threads = int(self._p("torch_threads"))
        if self._p("compute_process"):
            return ProcessCompute(build, torch_threads=threads)
        from dpa_ros import pipeline as mod

        if threads > 0:  # process-wide intra-op pool; the executor's intake threads keep the rest
            import torch

            torch.set_num_threads(threads)
        return LocalCompute(mod.Pipeline.from_profile(**build))

    def _publish(self, scene, frame, view=None):
        with self._publish_lock:
            return self._outputs.publish(scene, frame, view)

    def _remember(self, scene, request: Request) -> tuple[Any, str, Any]:
        """Merge a view into the memory (worker thread); (the memory's scene in fixed_frame, note,
        the view's reconstruction labelled with the memory ids, for the overlay)."""
        frame = request.frame
        masks = [inst.mask for inst in request.instances] if request.instances else None
        remembered = self._memory.observe(scene, request.T_fixed_camera, frame.depth, masks,
                                          forget_after=int(self._p("forget_after")))
        self._last_memory = (remembered, frame)
        return remembered.scene, remembered.summary(self._memory.fixed_frame), remembered.view

    def _republish_memory(self) -> str:
        """Publish the memory after a forget or clear (the last view's cloud and overlay without the
        objects no longer remembered); a note for the reply."""
        last = self._last_memory
        if last is None:
            return "nothing published yet"
        remembered, frame = last
        now = self._memory.current(remembered)
        self._last_memory = (now, frame)
        self._publish(now.scene, frame, now.view)
        return f"republished {now.summary(self._memory.fixed_frame)}"

    def _on_clear_memory(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        if self._memory is None:
            response.success, response.message = False, "scene memory is off (fixed_frame is empty)"
            return response
        dropped = self._memory.clear()
        response.success = True
        response.message = f"forgot {len(dropped)} object(s) {dropped}; {self._republish_memory()}"
        self.get_logger().info(f"~/clear_memory: {response.message}")
        return response

    def _on_forget(self, request: Forget.Request, response: Forget.Response) -> Forget.Response:
        if self._memory is None:
            response.success, response.message = False, "scene memory is off (fixed_frame is empty)"
        elif not self._memory.forget(request.id):
            response.success = False
            response.message = f"no remembered object has id {request.id} (remembered: {self._memory.ids()})"
        else:
            response.success = True
            response.message = f"forgot object {request.id}; {self._republish_memory()}"
            self.get_logger().info(f"~/forget: {response.message}")
        return response

    def _thresholds(self) -> dict[str, float]:
        """Set threshold parameters win; the others (negative) take the loaded profile's segmenter values."""
        profile = getattr(self._loader.pipeline, "profile", None)
        return segmenter_thresholds(self._p, getattr(profile, "segmenter", None))

    def _feedback(self, request: Request, stage: str, fraction: float) -> None:
        if request.goal_handle is not None:
            request.goal_handle.publish_feedback(Reconstruct.Feedback(stage=stage, progress=fraction))

    def _gravity_note(self, scene, gravity: tuple) -> str:
        return gravity_note(scene, gravity, float(self._p("gravity_floor_warn_deg")), self.get_logger().warning)

    # -------------------------------------------------------------------------------- shutdown
    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop the worker (a running reconstruction is cancelled at its next stage boundary)."""
        self._scheduler.shutdown(timeout_s)
        self._loader.close()
        log_bridge.detach(self._log_handler)


def main(args: list[str] | None = None) -> None:
    # a thread that waits for the GIL gets it within this interval: the executor's intake threads
    # take a frame's three messages in turn, each step under the GIL, while the worker runs Python
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
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
