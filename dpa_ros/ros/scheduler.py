"""Admission, queue, one worker thread and cancellation for reconstruction jobs, without ROS.

ROS-free (no rclpy import), so it is unit-tested without DDS. The node wires it up: a request first
asks for a :class:`Ticket` (:meth:`Scheduler.admit`, which refuses with :class:`Busy` and the reason),
then prepares its input and either submits a :class:`Job` with the ticket or releases it. One worker
thread runs the jobs in order with the ``execute`` function the node gives; whatever ``execute``
raises fails that job, never the worker. A job is cancelled when its own ``cancel_requested`` says so
or the scheduler is stopping; the node's ``execute`` passes :meth:`Scheduler.should_stop` to the
pipeline, which checks it between stages.

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
