"""Admission, queue, one worker thread and cancellation for reconstruction jobs, without ROS.

ROS-free (no rclpy import), so it is unit-tested without DDS. The node wires it up: a request first
asks for a :class:`Ticket` (:meth:`Scheduler.admit`, which refuses with :class:`Busy` and the reason),
then prepares its input and either submits a :class:`Job` with the ticket or releases it. One worker
thread runs the jobs in order with the ``execute`` function the node gives; whatever ``execute``
raises fails that job, never the worker. A job is cancelled when its own ``cancel_requested`` says so
or the scheduler is stopping; the node's ``execute`` passes :meth:`Scheduler.should_stop` to the
pipeline, which checks it between stages.

The rest of a job's life is here too: :class:`Request` (a job's input), :class:`PipelineLoader`
(builds and loads the profile's pipeline once), :class:`Reconstructor` (the ``execute`` that runs the
pipeline and words the result), :func:`gravity_note` and :class:`ContinuousTrigger` (continuous
mode's when and which frame); the node only wires them to ROS.

Busy policies: ``reject`` — while a job runs or waits, every new request is refused; ``queue`` — up
to ``max_queue`` requests wait behind the running one, more are refused.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

BUSY_POLICIES = ("reject", "queue")

log = logging.getLogger(__name__)


class Busy(RuntimeError):
    """A request refused by admission; ``str(err)`` is the reason (``busy: ...`` or shutting down)."""


@dataclass
class Job:
    """One reconstruction request.

    ``kind`` names where it came from (``action``, ``service``, ``continuous``; used in logs and busy
    reasons), ``payload`` is the node's input (the converted frame and prompt), ``cancel_requested``
    says whether its caller asked to stop it. The worker fills ``success``, ``cancelled``,
    ``message`` and ``result`` and then sets ``done``.
    """

    kind: str
    payload: Any = None
    cancel_requested: Callable[[], bool] = lambda: False
    done: threading.Event = field(default_factory=threading.Event)
    success: bool = False
    cancelled: bool = False
    message: str = ""
    result: Any = None

    def fail(self, message: str) -> None:
        self.success, self.message = False, message


class Ticket:
    """An admitted request's place: used exactly once, by :meth:`submit` or :meth:`release`."""

    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler
        self._used = False

    def submit(self, job: Job) -> Job:
        """Queue ``job`` in this ticket's place; returns it (wait on ``job.done``)."""
        self._use()
        self._scheduler._enqueue(job)
        return job

    def release(self) -> None:
        """Give the place back without a job (the request failed before it could be queued)."""
        self._use()
        self._scheduler._release()

    def _use(self) -> None:
        if self._used:
            raise RuntimeError("a ticket is used once")
        self._used = True


class Scheduler:
    """One worker thread that runs admitted jobs in order.

    Args:
        execute: runs one job on the worker thread and fills its result fields.
        on_start: runs first on the worker thread (model loading with ``load_on_start``); what it
            raises is logged, not fatal.
    """

    def __init__(self, execute: Callable[[Job], None], on_start: Callable[[], None] | None = None) -> None:
        self._execute = execute
        self._on_start = on_start
        self._lock = threading.Lock()
        self._pending = 0  # admitted, not finished: queued + running
        self._running: Job | None = None
        self._running_since = 0.0
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="dpa_reconstruct_worker", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------- admission
    def admit(self, busy_policy: str = "reject", max_queue: int = 1) -> Ticket:
        """A place for one request, or :class:`Busy` with the reason it is refused."""
        if busy_policy not in BUSY_POLICIES:
            raise ValueError(f"busy_policy must be one of {', '.join(BUSY_POLICIES)}, got '{busy_policy}'")
        with self._lock:
            if self._stop.is_set():
                raise Busy("node is shutting down")
            if self._pending > 0:
                if busy_policy == "reject":
                    if self._running is not None:
                        since = time.monotonic() - self._running_since
                        what = f"{self._running.kind} reconstruction running for {since:.1f} s"
                    else:
                        what = "a reconstruction is about to start"
                    raise Busy(f"busy: {what} (busy_policy reject)")
                if self._pending >= max_queue + 1:
                    raise Busy(f"busy: queue full ({self._pending - 1} waiting, max_queue {max_queue})")
                log.info("request queued behind %d other(s) (busy_policy queue)", self._pending)
            self._pending += 1
            return Ticket(self)

    def admit_if_idle(self) -> Ticket | None:
        """A place only when nothing runs or waits (continuous mode never queues), else None."""
        with self._lock:
            if self._stop.is_set() or self._pending > 0:
                return None
            self._pending += 1
            return Ticket(self)

    @property
    def pending(self) -> int:
        """Admitted requests not finished yet (waiting + running)."""
        with self._lock:
            return self._pending

    def should_stop(self, job: Job) -> bool:
        """True when ``job`` is to stop: its caller cancelled it or the scheduler is shutting down."""
        return self._stop.is_set() or bool(job.cancel_requested())

    def _enqueue(self, job: Job) -> None:
        self._jobs.put(job)

    def _release(self) -> None:
        with self._lock:
            self._pending -= 1

    # ---------------------------------------------------------------------------------- worker
    def _work(self) -> None:
        if self._on_start is not None:
            try:
                self._on_start()
            except Exception:  # the first request retries and reports
                log.exception("start-up task failed")
        while True:
            job = self._jobs.get()
            if job is None:
                break
            with self._lock:
                self._running, self._running_since = job, time.monotonic()
            try:
                if self._stop.is_set():
                    job.cancelled, job.message = True, "node is shutting down"
                elif job.cancel_requested():
                    job.cancelled, job.message = True, "cancelled before it started"
                else:
                    self._execute(job)
            except Exception as exc:  # never let anything kill the worker
                job.fail(f"internal error: {type(exc).__name__}: {exc}")
                log.exception("%s job failed", job.kind)
            finally:
                with self._lock:
                    self._running = None
                    self._pending -= 1
                job.done.set()
        # fail whatever is still queued so that no caller waits forever
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.fail("node is shutting down")
                job.done.set()

    def shutdown(self, timeout_s: float = 10.0) -> bool:
        """Stop admitting, let the running job stop at its next check, fail the queued ones.

        Returns True when the worker ended within ``timeout_s``.
        """
        self._stop.set()
        self._jobs.put(None)
        self._thread.join(timeout=timeout_s)
        return not self._thread.is_alive()


class StageTimer:
    """Pipeline progress callback that logs each stage's duration and forwards the progress.

    ``timer(stage, fraction)`` is given to :meth:`dpa_ros.pipeline.Pipeline.run` as ``progress``;
    ``forward(stage, fraction)`` (action feedback) gets the fraction clamped to [0, 1]. Call
    :meth:`finish` after the run to log the last stage.
    """

    def __init__(self, logger: Callable[[str], None], forward: Callable[[str, float], None] | None = None) -> None:
        self._logger = logger
        self._forward = forward
        self._stage: str | None = None
        self._since = 0.0

    def __call__(self, stage: str, fraction: float) -> None:
        now = time.monotonic()
        if stage != self._stage:
            self.finish(now)
            self._stage, self._since = stage, now
        if self._forward is not None:
            self._forward(str(stage), float(min(max(fraction, 0.0), 1.0)))

    def finish(self, now: float | None = None) -> None:
        if self._stage is not None:
            now = time.monotonic() if now is None else now
            self._logger(f"stage {self._stage} done in {now - self._since:.2f} s")
            self._stage = None


@dataclass
class Request:
    """The input of one reconstruction job (a :class:`Job`'s ``payload``).

    ``frame`` is the converted :class:`dpa_ros.ros.inputs.Frame`, ``gravity`` the (unit vector in
    the camera optical frame or None, source, detail) of :mod:`dpa_ros.ros.gravity_sources`,
    ``prompt`` the text prompt (None: the profile's default) and ``goal_handle`` the action goal that
    gets feedback (None for the service and continuous mode). ``instances``: a goal's known objects
    (:class:`dpa_ros.assemble.Instance`, masks the frame's size): when given, they are fitted instead
    of running the learned stages. ``T_fixed_camera``: with the scene memory on, the 4×4 camera
    optical frame → ``fixed_frame`` transform at the image stamp (metres).
    """

    frame: Any
    gravity: tuple
    prompt: str | None
    goal_handle: Any = None
    instances: list | None = None
    T_fixed_camera: Any = None


class ContinuousTrigger:
    """Continuous mode's state: when the next reconstruction may start and which frame it takes.

    It starts at most ``max_rate_hz`` times a second (monotonic seconds), never on an image it
    already started on (image stamps in integer nanoseconds), and says once when the newest image
    has stayed without a complete frame for longer than ``frame_wait_s``.
    """

    def __init__(self) -> None:
        self.started = 0.0  # monotonic time of the last start
        self.stamp = -1  # image stamp of the last frame started on
        self._incomplete: tuple[int | None, float, bool] = (None, 0.0, False)  # (newest stamp, since, warned)

    def due(self, now: float, max_rate_hz: float, newest_stamp: int | None) -> bool:
        """True when the rate allows a start and an image newer than the last one has arrived."""
        if now - self.started < 1.0 / max_rate_hz:
            return False
        return newest_stamp is not None and newest_stamp > self.stamp  # never reconstruct a frame twice

    def incomplete(self, newest_stamp: int, now: float, frame_wait_s: float) -> bool:
        """Record that ``newest_stamp`` has no complete frame yet (companions may still come); True
        exactly once, when it has stayed so for longer than ``frame_wait_s``: warn then."""
        stamp, since, warned = self._incomplete
        if stamp != newest_stamp:
            self._incomplete = (newest_stamp, now, False)
        elif not warned and now - since > frame_wait_s:
            self._incomplete = (newest_stamp, since, True)
            return True
        return False

    def start(self, now: float, stamp: int) -> None:
        """A reconstruction starts at ``now`` on the image stamped ``stamp``."""
        self.started, self.stamp = now, stamp


class PipelineLoader:
    """The profile's pipeline, built and loaded once, on the worker thread.

    Args:
        profile: the profile's name (for messages).
        build: returns the unloaded compute (:class:`dpa_ros.ros.compute.ProcessCompute` or
            :class:`dpa_ros.ros.compute.LocalCompute`, the node's parameters applied).
        logger: has ``info`` and ``error`` (the node's logger).
        loading_at_start: a load is about to start (``load_on_start``): :attr:`loading` is True from
            now on, so that a request in the meantime waits for it (:meth:`wait_loaded`).
    """

    def __init__(self, profile: str, build: Callable[[], Any], logger: Any, loading_at_start: bool = False) -> None:
        self.profile = profile
        self._build = build
        self._log = logger
        self.pipeline: Any = None
        self._built: Any = None
        self._idle = threading.Event()  # no load in progress
        if not loading_at_start:
            self._idle.set()

    @property
    def loading(self) -> bool:
        """A load is in progress (or, with ``loading_at_start``, about to start)."""
        return not self._idle.is_set()

    def wait_loaded(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for a load in progress to end (loaded or failed); False on timeout."""
        return self._idle.wait(max(float(timeout_s), 0.0))

    def built(self) -> Any:
        """The pipeline, built but not necessarily loaded: its layout and physics settings fit goal
        instances without the models. Raises what building raised."""
        if self.pipeline is not None:
            return self.pipeline
        if self._built is None:
            self._built = self._build()
        return self._built

    def load(self) -> None:
        """Build and load the pipeline; raises what loading raised."""
        t0 = time.monotonic()
        self._idle.clear()
        try:
            compute = self.built()  # kept when loading fails: the next request retries the same one
            times = compute.load() or {}
            self.pipeline = compute
        finally:
            self._idle.set()
        detail = ", ".join(f"{k} {float(v):.2f} s" for k, v in times.items())
        self._log.info(f"loaded profile '{self.profile}' in {time.monotonic() - t0:.2f} s ({detail})")

    def load_on_start(self) -> None:
        """:meth:`load`, with a failure reported now (and retried, and reported, by every request)."""
        try:
            self.load()
        except Exception as exc:
            self._log.error(f"cannot load profile '{self.profile}': {exc}")

    def close(self) -> None:
        """Stop the compute (its process, if it has one)."""
        compute = self.pipeline if self.pipeline is not None else self._built
        if compute is not None:
            compute.close()

    def ensure_loaded(self) -> str | None:
        """Load when not loaded yet; None when loaded, else the reason it cannot be."""
        if self.pipeline is not None:
            return None
        try:
            self.load()
        except Exception as exc:  # MissingWeightsError, bad profile, import errors: keep serving
            return f"cannot load profile '{self.profile}': {exc}"
        return None


class Reconstructor:
    """Runs one :class:`Job` (payload a :class:`Request`) on the worker: load if needed,
    reconstruct, publish, and fill the job's result and message.

    Args:
        loader: the :class:`PipelineLoader`.
        publish: ``publish(scene, frame, view) -> (result, notes)`` exports and publishes the scene
            (``view``: the reconstruction of this frame, in its optical frame, when ``scene`` is the
            memory); ``result`` becomes ``job.result`` (the Scene message).
        summarize: one line describing ``result`` (object count and labels).
        gravity_note: ``gravity_note(scene, request.gravity) -> str``, where the gravity came from.
        thresholds: the segmenter's current thresholds (applied at every run).
        feedback: ``feedback(request, stage, fraction)``, progress for the request's caller.
        should_stop: :meth:`Scheduler.should_stop`.
        logger: has ``info`` and ``warning``.
        images_received: the count of images taken in so far; the images taken in per second while
            the pipeline ran (the intake rate) is then logged and told in the job's message.
        remember: with the scene memory on, ``remember(scene, request) -> (memory scene, note,
            view)`` merges the reconstruction into the memory; the memory scene is published
            instead, and ``view`` (the reconstruction relabelled with the memory ids) is drawn in
            the overlay.
    """

    def __init__(self, loader: PipelineLoader, publish: Callable, summarize: Callable[[Any], str],
                 gravity_note: Callable[[Any, tuple], str], thresholds: Callable[[], dict],
                 feedback: Callable[[Request, str, float], None], should_stop: Callable[[Job], bool],
                 logger: Any, images_received: Callable[[], int] | None = None,
                 remember: Callable[[Any, Request], tuple[Any, str, Any]] | None = None) -> None:
        self._remember = remember
        self._loader, self._publish, self._summarize = loader, publish, summarize
        self._gravity_note, self._thresholds, self._feedback = gravity_note, thresholds, feedback
        self._should_stop, self._log, self._images_received = should_stop, logger, images_received

    def __call__(self, job: Job) -> None:
        from dpa_ros import pipeline as mod

        log = self._log
        request: Request = job.payload
        frame = request.frame
        what = f"{job.kind} reconstruction of frame {frame.stamp_ns / 1e9:.3f} s"

        def fail(reason: str) -> None:
            job.fail(reason)
            log.warning(f"{what} failed: {reason}")

        if not request.instances and self._loader.pipeline is None:
            self._feedback(request, "load", 0.0)
            reason = self._loader.ensure_loaded()
            if reason:
                fail(reason)
                return
        timer = StageTimer(log.info, lambda stage, fraction: self._feedback(request, stage, fraction))
        depth_text = "with sensor depth" if frame.depth is not None else "without sensor depth"
        given = f"{len(request.instances)} goal instance(s)" if request.instances else \
            f"prompt {request.prompt or 'profile default'!r}"
        log.info(f"{what} ({frame.source}, {frame.camera.width}x{frame.camera.height}, {depth_text}, {given})")
        t0 = time.monotonic()
        received0 = self._images_received() if self._images_received else 0
        try:
            scene = self._fit_instances(job, timer) if request.instances else self._run_pipeline(job, timer)
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
        intake = []
        if self._images_received and elapsed > 0:
            taken = self._images_received() - received0
            intake = [f"intake {taken / elapsed:.1f} images/s during the reconstruction ({taken} in {elapsed:.2f} s)"]
        scene.stamp_ns = frame.stamp_ns
        notes = [self._gravity_note(scene, request.gravity)]
        if self._remember is not None:
            try:
                published, memory_note, view = self._remember(scene, request)
            except ValueError as exc:
                fail(f"scene memory: {exc}")
                return
            notes.append(memory_note)
            job.result, published_notes = self._publish(published, frame, view)
        else:
            job.result, published_notes = self._publish(scene, frame, None)
        notes += published_notes + intake
        sec, nsec = divmod(frame.stamp_ns, 1_000_000_000)
        job.success = True
        job.message = (f"reconstructed {self._summarize(job.result)} of frame {sec}.{nsec:09d} s "
                       f"in {elapsed:.2f} s {depth_text}" + "".join(f"; {x}" for x in frame.notes + notes))
        timings = ", ".join(f"{k} {v:.2f} s" for k, v in scene.timings_s.items())
        n = len(scene.objects)
        log.info(f"{job.kind} reconstruction done: {n} object{'s' if n != 1 else ''} in {elapsed:.2f} s "
                 f"({timings}); {len(scene.cloud_points)} cloud points" + "".join(f"; {x}" for x in notes))

    def _run_pipeline(self, job: Job, timer: StageTimer):
        """The full pipeline on the job's frame (scene in its optical frame); the segmenter's
        thresholds are read at every call, so a changed parameter applies from the next request."""
        request: Request = job.payload
        frame = request.frame
        gravity, source, _ = request.gravity
        return self._loader.pipeline.run(frame.rgb, frame.camera, frame.depth, prompt=request.prompt,
                                         thresholds=self._thresholds(), gravity=gravity, gravity_source=source,
                                         progress=timer, cancel=lambda: self._should_stop(job))

    def _fit_instances(self, job: Job, timer: StageTimer):
        """The goal's instances fitted to the frame's sensor depth with the profile's layout, targets
        and physics settings (``dpa-reconstruct --instances``; no model is loaded). Raises
        ReconstructionError without sensor depth or naming an instance the layout refuses."""
        from dpa_ros import pipeline as mod

        request: Request = job.payload
        frame = request.frame
        if frame.depth is None:
            raise mod.ReconstructionError("goal instances are fitted to sensor depth: this frame has none "
                                          "(set use_depth true and publish depth)")
        gravity, source, _ = request.gravity
        return self._loader.built().fit_instances(frame.rgb, frame.depth, frame.camera, request.instances,
                                                  gravity=gravity, gravity_source=source, progress=timer,
                                                  cancel=lambda: self._should_stop(job))


def gravity_note(scene: Any, gravity: tuple, warn_deg: float, warn: Callable[[str], None]) -> str:
    """Where ``scene``'s gravity came from (``gravity`` is a :class:`Request`'s); calls ``warn``
    when a given gravity differs from the fitted floor's normal by more than ``warn_deg`` degrees."""
    from dpa_ros.geometry.gravity import floor_disagreement_deg

    given, source, detail = gravity
    if given is None:
        return f"gravity_source {scene.background.gravity_source}"
    angle = floor_disagreement_deg(given, scene.background)
    if angle is not None and angle > warn_deg:
        warning = (f"{detail} differs from the fitted floor's normal by {angle:.1f} deg "
                   f"(gravity_floor_warn_deg {warn_deg:g}); kept the given gravity")
        warn(warning)
        return f"gravity_source {source}; {warning}"
    return f"gravity_source {source}"
