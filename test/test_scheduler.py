"""dpa_ros.ros.scheduler without ROS: real threads, jobs whose execute blocks on events the test controls."""
from __future__ import annotations

import threading
import time

import pytest

from dpa_ros.ros.scheduler import Busy, ContinuousTrigger, Job, PipelineLoader, Scheduler, StageTimer


class Worker:
    """An ``execute`` that records the order of jobs and blocks each until the test lets it go."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.gates: dict[str, threading.Event] = {}
        self.entered = threading.Condition()

    def gate(self, name: str) -> threading.Event:
        return self.gates.setdefault(name, threading.Event())

    def __call__(self, job: Job) -> None:
        with self.entered:
            self.started.append(job.payload)
            self.entered.notify_all()
        if job.payload == "explode":
            raise RuntimeError("boom")
        self.gate(job.payload).wait(10.0)
        job.success, job.message = True, f"did {job.payload}"

    def wait_started(self, name: str, timeout_s: float = 5.0) -> None:
        with self.entered:
            assert self.entered.wait_for(lambda: name in self.started, timeout_s), self.started


@pytest.fixture
def worker():
    w = Worker()
    yield w
    for g in w.gates.values():
        g.set()


def run(scheduler: Scheduler, name: str, policy: str = "reject", max_queue: int = 1, **kw) -> Job:
    return scheduler.admit(policy, max_queue).submit(Job("service", name, **kw))


def test_reject_refuses_with_what_is_running(worker):
    s = Scheduler(worker)
    try:
        first = run(s, "a")
        worker.wait_started("a")
        time.sleep(0.15)
        busy = r"^busy: service reconstruction running for [\d.]+ s \(busy_policy reject\)$"
        with pytest.raises(Busy, match=busy) as err:
            s.admit("reject")
        assert float(str(err.value).split("running for ")[1].split(" s")[0]) >= 0.1
        assert s.admit_if_idle() is None
        worker.gate("a").set()
        assert first.done.wait(5.0) and first.success and first.message == "did a"
        assert s.pending == 0
        assert run(s, "b") is not None  # free again
    finally:
        worker.gate("b").set()
        s.shutdown()


def test_queue_runs_in_order_up_to_max_queue(worker):
    s = Scheduler(worker)
    try:
        jobs = [run(s, "a", "queue", 2)]
        worker.wait_started("a")
        jobs += [run(s, "b", "queue", 2), run(s, "c", "queue", 2)]
        with pytest.raises(Busy, match=r"^busy: queue full \(2 waiting, max_queue 2\)$"):
            s.admit("queue", 2)
        assert s.pending == 3
        for name in "abc":
            worker.gate(name).set()
        assert all(j.done.wait(5.0) and j.success for j in jobs)
        assert worker.started == ["a", "b", "c"]
    finally:
        s.shutdown()


def test_a_released_ticket_frees_its_place_and_is_used_once(worker):
    s = Scheduler(worker)
    try:
        ticket = s.admit()
        with pytest.raises(Busy, match="about to start"):
            s.admit()
        ticket.release()
        assert s.pending == 0
        with pytest.raises(RuntimeError, match="used once"):
            ticket.submit(Job("service", "x"))
    finally:
        s.shutdown()


def test_a_job_cancelled_while_queued_never_runs(worker):
    s = Scheduler(worker)
    try:
        first = run(s, "a", "queue", 1)
        worker.wait_started("a")
        flag = threading.Event()
        second = run(s, "b", "queue", 1, cancel_requested=flag.is_set)
        flag.set()
        worker.gate("a").set()
        assert second.done.wait(5.0) and second.cancelled and not second.success
        assert second.message == "cancelled before it started" and worker.started == ["a"]
        assert first.success
    finally:
        s.shutdown()


def test_an_exception_fails_the_job_and_the_worker_goes_on(worker):
    s = Scheduler(worker)
    try:
        bad = run(s, "explode")
        assert bad.done.wait(5.0) and not bad.success and bad.message == "internal error: RuntimeError: boom"
        worker.gate("after").set()
        good = run(s, "after")
        assert good.done.wait(5.0) and good.success
    finally:
        s.shutdown()


def test_shutdown_stops_the_running_job_and_fails_the_queued_ones():
    stops: list[bool] = []
    holder: dict = {}
    started = threading.Event()

    def execute(job: Job) -> None:  # like the pipeline: checks should_stop between stages
        started.set()
        while not holder["s"].should_stop(job):
            time.sleep(0.01)
        stops.append(True)
        job.cancelled, job.message = True, "cancelled: stopping"

    s = holder["s"] = Scheduler(execute)
    running = run(s, "a", "queue", 2)
    assert started.wait(5.0)
    queued = run(s, "b", "queue", 2)
    assert s.shutdown(5.0)  # True: done within its own timeout
    assert running.done.is_set() and running.cancelled and stops == [True]
    assert queued.done.is_set() and queued.message == "node is shutting down"
    with pytest.raises(Busy, match="^node is shutting down$"):
        s.admit()


def test_on_start_runs_first_on_the_worker_and_its_failure_is_not_fatal(worker):
    order: list[str] = []

    def on_start() -> None:
        order.append(threading.current_thread().name)
        raise OSError("no weights")

    s = Scheduler(worker, on_start=on_start)
    try:
        worker.gate("a").set()
        job = run(s, "a")
        assert job.done.wait(5.0) and job.success
        assert order == ["dpa_reconstruct_worker"]
    finally:
        s.shutdown()


def test_bad_policy_is_refused(worker):
    s = Scheduler(worker)
    try:
        with pytest.raises(ValueError, match="busy_policy must be one of reject, queue"):
            s.admit("drop")
    finally:
        s.shutdown()


def test_stage_timer_logs_each_stage_once_and_clamps_progress():
    lines: list[str] = []
    fed: list[tuple[str, float]] = []
    timer = StageTimer(lines.append, lambda s, f: fed.append((s, f)))
    for stage, f in [("segment", -0.1), ("segment", 0.1), ("depth", 0.5), ("layout", 1.2)]:
        timer(stage, f)
    timer.finish()
    timer.finish()
    assert [line.split(" done")[0] for line in lines] == ["stage segment", "stage depth", "stage layout"]
    assert fed == [("segment", 0.0), ("segment", 0.1), ("depth", 0.5), ("layout", 1.0)]


def test_continuous_trigger_keeps_the_rate_never_repeats_a_frame_and_warns_once():
    trigger = ContinuousTrigger()
    assert not trigger.due(10.0, 2.0, None)  # no image yet
    assert trigger.due(10.0, 2.0, 100)
    trigger.start(10.0, 100)
    assert not trigger.due(10.2, 2.0, 200)  # 0.2 s < 1 / 2 Hz
    assert not trigger.due(11.0, 2.0, 100)  # the same image again
    assert trigger.due(11.0, 2.0, 200)
    # the newest image (300) stays incomplete: one warning, once frame_wait_s (0.5 s) has passed
    assert [trigger.incomplete(300, t, 0.5) for t in (11.0, 11.3, 11.6, 12.0)] == [False, False, True, False]
    assert not trigger.incomplete(400, 12.1, 0.5)  # a newer image starts its own wait
    assert trigger.incomplete(400, 12.7, 0.5)


class Logger:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, text: str) -> None:
        self.lines.append(("info", text))

    def error(self, text: str) -> None:
        self.lines.append(("error", text))


class Loadable:
    def __init__(self) -> None:
        self.loads = 0

    def load(self) -> dict[str, float]:
        self.loads += 1
        return {"segmenter": 0.5}


def test_pipeline_loader_loads_once_and_reports_a_failure_each_time():
    log, built = Logger(), []
    loader = PipelineLoader("smoke", lambda: built.append(Loadable()) or built[-1], log)
    assert loader.ensure_loaded() is None and loader.ensure_loaded() is None
    assert len(built) == 1 and built[0].loads == 1 and loader.pipeline is built[0]
    level, text = log.lines[0]
    assert level == "info" and "loaded profile 'smoke'" in text and "segmenter 0.50 s" in text

    def missing():
        raise FileNotFoundError("no weights in /nowhere")

    failing = PipelineLoader("full", missing, log)
    failing.load_on_start()
    assert log.lines[-1] == ("error", "cannot load profile 'full': no weights in /nowhere")
    assert failing.ensure_loaded() == "cannot load profile 'full': no weights in /nowhere"
    assert failing.pipeline is None
