"""Where the node's reconstructions run: in its own process (:class:`ProcessCompute`) or in the node's
(:class:`LocalCompute`), behind one small interface. ROS-free.

The pipeline is Python-heavy (the layout solver's many small tensor steps, mask and mesh handling),
and Python holds the interpreter lock. In the node's process it competes for that lock with the
executor threads that take in the camera's messages, so intake falls behind a large stream while a
reconstruction runs. :class:`ProcessCompute` builds and loads the pipeline in a child process and
sends it only the chosen frame (already converted and downscaled); the node's process keeps the
lock for intake, the requests and publishing. A child that dies (killed for memory, a crash in a
model's native code) fails the running request with its exit code; the next request starts a new
child and reloads the models, and the node keeps serving. The child runs at a lower CPU priority
(``niceness``): when the cores are short, the camera's frames are taken in first and the
reconstruction gets the rest, instead of both slowing down.

Both classes have: ``profile`` and ``layout_config`` (the settings a goal's instances are fitted
with), ``load()`` (seconds per model), ``run(...)`` (the full pipeline), ``fit_instances(...)``
(known meshes, as ``dpa-reconstruct --instances``) and ``close()``.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
import threading
from typing import Any, Callable

import numpy as np

from dpa_ros.priors.errors import Cancelled, ReconstructionError

log = logging.getLogger(__name__)

#: How often (seconds) the parent checks ``cancel()`` and the child's health during a call.
POLL_S = 0.05
DEFAULT_NICENESS = 10  # the compute process yields the CPU to intake when the cores are short
FIT_STAGES = ("background", "layout", "physics", "assemble")


class ComputeProcessError(ReconstructionError):
    """The compute process exited during a call; ``str(err)`` says with which exit code."""


def _never() -> bool:
    return False


class LocalCompute:
    """A :class:`dpa_ros.pipeline.Pipeline` run in this process (see the module docstring)."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.profile = pipeline.profile
        self.layout_config = pipeline.layout_config

    def load(self) -> dict[str, float]:
        """Load every model; seconds per model."""
        return self.pipeline.load() or {}

    def run(self, image_rgb: np.ndarray, camera: Any, depth: np.ndarray | None, *, prompt: str | None = None,
            thresholds: dict[str, float] | None = None, gravity: np.ndarray | None = None,
            gravity_source: str = "given", progress: Callable[[str, float], None] | None = None,
            cancel: Callable[[], bool] = _never) -> Any:
        """:meth:`dpa_ros.pipeline.Pipeline.run`, with the segmenter's ``thresholds`` set first."""
        segmenter = getattr(self.pipeline, "segmenter", None)
        if thresholds and segmenter is not None:
            segmenter.set_thresholds(**thresholds)
        return self.pipeline.run(image_rgb, camera, depth, prompt=prompt, progress=progress, cancel=cancel,
                                 gravity=gravity, gravity_source=gravity_source)

    def fit_instances(self, image_rgb: np.ndarray, depth: np.ndarray, camera: Any, instances: list, *,
                      gravity: np.ndarray | None = None, gravity_source: str = "given",
                      progress: Callable[[str, float], None] | None = None, cancel: Callable[[], bool] = _never) -> Any:
        """Known meshes (:class:`dpa_ros.assemble.Instance`) fitted to sensor ``depth`` (metres) with
        the profile's layout, targets and physics settings; no model is used. ReconstructionError names an
        instance the layout refuses."""
        from dpa_ros.assemble import assemble_scene

        if cancel():
            raise Cancelled("cancelled before stage 'background'")
        def overall(stage: str, fraction: float) -> None:  # the stage's fraction -> the whole fit's
            if progress is not None:
                progress(stage, (FIT_STAGES.index(stage) + fraction) / len(FIT_STAGES))

        try:
            return assemble_scene(image_rgb, depth, camera, instances, config=self.layout_config,
                                  physics=self.profile.physics, targets=self.profile.targets, profile="instances",
                                  gravity=gravity, gravity_source=gravity_source, progress=overall)
        except ValueError as exc:  # InstanceInputError: no valid depth in a mask, an unusable mesh
            raise ReconstructionError(f"goal instances could not be fitted: {exc}") from exc

    def close(self, timeout_s: float = 10.0) -> None:
        """Nothing to stop in this process."""


class ProcessCompute:
    """The pipeline built from ``build`` (the keyword arguments of
    :meth:`dpa_ros.pipeline.Pipeline.from_profile`) and run in a child process (module docstring).

    The child is started here and builds the pipeline (not loaded); a bad profile raises here, as
    building in this process would. ``torch_threads`` > 0 caps the child's torch intra-op pool;
    ``niceness`` is added to the child's scheduling niceness (``os.nice``; 0 keeps this process's).
    Calls are serialised; each blocks until the child answers, forwarding its progress and log
    records, and passes ``cancel()`` on within ``POLL_S`` seconds.
    """

    def __init__(self, build: dict[str, Any], torch_threads: int = 0, niceness: int = DEFAULT_NICENESS) -> None:
        self._build = dict(build)
        self._threads = int(torch_threads)
        self._niceness = int(niceness)
        self._context = multiprocessing.get_context("spawn")  # no fork of a process holding DDS and torch threads
        self._lock = threading.Lock()
        self._process: Any = None
        self._conn: Any = None
        self._cancel = self._context.Event()
        self._loaded = False
        self.profile: Any = None
        self.layout_config: Any = None
        self._start()

    @property
    def pid(self) -> int | None:
        """The child's process id (None while none runs)."""
        return self._process.pid if self._process is not None and self._process.is_alive() else None

    def load(self) -> dict[str, float]:
        """Load every model in the child; seconds per model."""
        times = self._call("load", {})
        self._loaded = True
        return times

    def run(self, image_rgb: np.ndarray, camera: Any, depth: np.ndarray | None, *, prompt: str | None = None,
            thresholds: dict[str, float] | None = None, gravity: np.ndarray | None = None,
            gravity_source: str = "given", progress: Callable[[str, float], None] | None = None,
            cancel: Callable[[], bool] = _never) -> Any:
        """:meth:`LocalCompute.run` in the child."""
        return self._call("run", dict(image_rgb=image_rgb, camera=camera, depth=depth, prompt=prompt,
                                      thresholds=thresholds, gravity=gravity, gravity_source=gravity_source),
                          progress, cancel)

    def fit_instances(self, image_rgb: np.ndarray, depth: np.ndarray, camera: Any, instances: list, *,
                      gravity: np.ndarray | None = None, gravity_source: str = "given",
                      progress: Callable[[str, float], None] | None = None, cancel: Callable[[], bool] = _never) -> Any:
        """:meth:`LocalCompute.fit_instances` in the child."""
        return self._call("fit_instances", dict(image_rgb=image_rgb, depth=depth, camera=camera, instances=instances,
                                                gravity=gravity, gravity_source=gravity_source), progress, cancel)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the child: asked first, then terminated, then killed."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if process is None:
            return
        try:
            conn.send(("stop", {}))
        except (OSError, ValueError):
            pass
        process.join(timeout_s)
        if process.is_alive():
            process.terminate()
            process.join(2.0)
        if process.is_alive():
            process.kill()
            process.join(2.0)
        conn.close()

    # ------------------------------------------------------------------------------- internals
    def _start(self) -> None:
        parent, child = self._context.Pipe()
        self._process = self._context.Process(target=_child_main, name="dpa_compute", daemon=True,
                                              args=(child, self._cancel, self._build, self._threads, self._niceness,
                                                    os.getpid()))
        self._process.start()
        child.close()
        self._conn = parent
        try:
            self.profile, self.layout_config = self._receive("build", None, _never)
        except BaseException:
            self.close(2.0)
            raise

    def _call(self, op: str, kwargs: dict, progress: Callable[[str, float], None] | None = None,
              cancel: Callable[[], bool] = _never) -> Any:
        with self._lock:
            if self._process is None:  # the last child died: a new one, with the models reloaded
                log.warning("starting a new compute process (the last one exited)")
                self._start()
                if self._loaded:
                    if progress is not None:
                        progress("load", 0.0)
                    self._send("load", {})
                    self._receive("load", None, cancel)
            self._send(op, kwargs, cancel)
            return self._receive(op, progress, cancel)

    def _send(self, op: str, kwargs: dict, cancel: Callable[[], bool] = _never) -> None:
        process, conn = self._process, self._conn
        self._cancel.clear()
        if cancel():  # already cancelled: the child sees it at its first stage boundary
            self._cancel.set()
        try:
            conn.send((op, kwargs))
        except (OSError, ValueError) as exc:
            raise self._died(op, process, conn) from exc

    def _receive(self, op: str, progress: Callable[[str, float], None] | None, cancel: Callable[[], bool]) -> Any:
        process, conn = self._process, self._conn  # close() from another thread may drop them meanwhile
        while True:
            if not self._cancel.is_set() and cancel():
                self._cancel.set()
            try:
                ready = conn.poll(POLL_S)
                if not ready:
                    if not process.is_alive():
                        raise self._died(op, process, conn)
                    continue
                kind, *body = conn.recv()
            except (EOFError, OSError) as exc:
                raise self._died(op, process, conn) from exc
            if kind == "progress" and progress is not None:
                progress(*body)
            elif kind == "log":
                level, name, text = body
                logging.getLogger(name).log(level, "%s", text)
            elif kind == "result":
                return body[0]
            elif kind == "error":
                raise _rebuilt(body[0])

    def _died(self, op: str, process, conn) -> ComputeProcessError:
        process.join(1.0)
        code = process.exitcode
        conn.close()
        if self._process is process:
            self._process = self._conn = None
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited with code {code}"
        return ComputeProcessError(f"the compute process {how} during '{op}' (out of memory, or a crash in a "
                                   "model's native code); a new one is started, models reloaded, at the next request")


# ----------------------------------------------------------------------------------- the child
class _PipeLogHandler(logging.Handler):
    """Sends the child's log records to the parent, which logs them under the same logger name."""

    def __init__(self, conn) -> None:
        super().__init__(logging.INFO)
        self._conn = conn

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            self._conn.send(("log", record.levelno, record.name, text))
        except Exception:  # logging must never raise
            pass


def _portable(exc: BaseException) -> BaseException | tuple[type, str]:
    """``exc`` if it survives pickling, else (its class, its message) for :func:`_rebuilt`: an
    exception whose ``__init__`` takes other arguments than its message (MissingWeightsError,
    ProfileError) keeps its type and its text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return type(exc), str(exc)


def _rebuilt(sent: BaseException | tuple[type, str]) -> BaseException:
    if isinstance(sent, BaseException):
        return sent
    cls, text = sent
    exc = cls.__new__(cls)
    BaseException.__init__(exc, text)
    return exc


def _child_main(conn, cancel_event, build: dict, torch_threads: int, niceness: int, parent_pid: int) -> None:
    """The compute process: build the pipeline, then answer calls until ``stop`` or the parent is gone.

    Ctrl-C in a terminal (or ``ros2 launch`` stopping) signals the whole process group: the child
    ignores SIGINT and is stopped by its parent (or ends when the parent's end of the pipe closes)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    root = logging.getLogger()
    root.handlers[:] = [_PipeLogHandler(conn)]
    root.setLevel(logging.INFO)
    try:
        if niceness > 0:
            os.nice(niceness)
        if torch_threads > 0:
            import torch

            torch.set_num_threads(torch_threads)
        from dpa_ros.pipeline import Pipeline

        compute = LocalCompute(Pipeline.from_profile(**build))
        conn.send(("result", (compute.profile, compute.layout_config)))
    except BaseException as exc:
        conn.send(("error", _portable(exc)))
        return

    def stopped() -> bool:  # cancel, or the node that asked is gone
        return cancel_event.is_set() or os.getppid() != parent_pid

    def progress(stage: str, fraction: float) -> None:
        conn.send(("progress", stage, fraction))

    while True:
        try:
            op, kwargs = conn.recv()
        except (EOFError, OSError):
            return
        if op == "stop":
            return
        try:
            if op == "load":
                result = compute.load()
            elif op in ("run", "fit_instances"):
                result = getattr(compute, op)(**kwargs, progress=progress, cancel=stopped)
            else:
                raise ValueError(f"unknown compute call '{op}'")
            conn.send(("result", result))
        except BaseException as exc:  # every failure goes back to the request; the child keeps serving
            conn.send(("error", _portable(exc)))
