"""dpa_ros.ros.compute without ROS: the smoke pipeline (real model classes, tiny random weights) run in
a child process against the same pipeline in this process, its errors, cancellation, and a child
killed mid-run."""
from __future__ import annotations

import logging
import os
import signal

import numpy as np
import pytest

from dpa_ros.assemble import Instance
from dpa_ros.core.camera import CameraModel
from dpa_ros.pipeline import Cancelled, Pipeline, ReconstructionError
from dpa_ros.priors.config import ProfileError
from dpa_ros.ros.compute import DEFAULT_NICENESS, ComputeProcessError, LocalCompute, ProcessCompute
from dpa_testing import synthetic_views as sv

BUILD = dict(profile="smoke", seed=3)


@pytest.fixture(scope="module")
def camera(image):
    return CameraModel.from_fov(image.shape[1], image.shape[0], 60.0, frame_id="camera_color_optical_frame")


@pytest.fixture(scope="module")
def local():
    compute = LocalCompute(Pipeline.from_profile(**BUILD))
    compute.load()
    return compute


@pytest.fixture(scope="module")
def child():
    compute = ProcessCompute(BUILD)  # torch threads as here: the same float sums, the same scene
    compute.load()
    yield compute
    compute.close()


def _poses(scene) -> list[tuple[str, np.ndarray]]:
    return [(o.label, o.T_camera_object) for o in scene.objects]


def test_the_child_reconstructs_what_this_process_does(local, child, image, camera, caplog):
    assert child.pid is not None and child.pid != os.getpid()
    here = os.getpriority(os.PRIO_PROCESS, 0)  # the child yields the CPU to this process's intake
    assert os.getpriority(os.PRIO_PROCESS, child.pid) == min(here + DEFAULT_NICENESS, 19)
    assert child.profile.name == "smoke" and child.layout_config == local.layout_config
    stages = []
    with caplog.at_level(logging.INFO, logger="dpa_ros"):
        remote = child.run(image, camera, None, progress=lambda stage, f: stages.append((stage, f)))
    mine = local.run(image, camera, None)
    assert [label for label, _ in _poses(remote)] == [label for label, _ in _poses(mine)]
    for (_, a), (_, b) in zip(_poses(remote), _poses(mine)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    names = [s for s, _ in stages]
    assert names[0] == "segment" and names.index("layout") < names.index("physics")
    assert [f for _, f in stages] == sorted(f for _, f in stages)  # progress never goes back
    # the child's log records arrive under their own logger names, as if logged here
    assert any(r.name == "dpa_ros.pipeline" and "metric depth from" in r.getMessage() for r in caplog.records)


def test_thresholds_reach_the_child_segmenter_at_each_call(child, image, camera):
    keys = ("box_threshold", "text_threshold")
    with pytest.raises(ReconstructionError, match="no objects detected"):  # confidences are < 1
        child.run(image, camera, None, thresholds=dict.fromkeys(keys, 1.0))
    profile_values = {k: getattr(child.profile.segmenter, k) for k in keys}
    assert child.run(image, camera, None, thresholds=profile_values).objects


def test_errors_come_back_with_their_reason_and_the_child_keeps_serving(child, image, camera):
    pid = child.pid
    small = CameraModel.from_fov(16, 12, 60.0, frame_id="cam")
    with pytest.raises(ReconstructionError, match="image too small"):
        child.run(image[:12, :16], small, None)
    with pytest.raises(ValueError, match="unknown compute call"):
        child._call("load_everything", {})
    assert child.run(image, camera, None).objects and child.pid == pid


def test_cancel_stops_the_child_at_the_next_stage_boundary(child, image, camera):
    stages = []
    with pytest.raises(Cancelled, match="before stage 'enhance'"):
        child.run(image, camera, None, progress=lambda stage, f: stages.append(stage),
                  cancel=lambda: "segment" in stages)
    assert "enhance" not in stages
    assert child.run(image, camera, None).objects  # the next call is not cancelled


def test_a_child_killed_mid_run_fails_that_call_and_is_replaced_with_the_models_reloaded(child, image, camera):
    first = child.pid

    def kill_at_layout(stage: str, fraction: float) -> None:
        if stage == "layout" and child.pid == first:
            os.kill(first, signal.SIGKILL)

    with pytest.raises(ComputeProcessError, match="killed by signal 9 during 'run'.*new one is started"):
        child.run(image, camera, None, progress=kill_at_layout)
    assert child.pid is None
    stages = []
    scene = child.run(image, camera, None, progress=lambda stage, f: stages.append(stage))
    assert scene.objects and child.pid not in (None, first)
    assert stages[0] == "load"  # told that the new child loads the models first


def test_a_bad_profile_fails_where_it_is_built(tmp_path):
    with pytest.raises(ReconstructionError, match="unknown profile 'no_such_profile'"):
        ProcessCompute({"profile": "no_such_profile"})
    (tmp_path / "broken.yaml").write_text("layout: {iterations: -3}\n")
    with pytest.raises(ProfileError) as info:  # its own type, though it does not pickle
        ProcessCompute({"profile": "broken", "config_path": tmp_path})
    assert "iterations" in str(info.value)


def test_known_meshes_are_fitted_in_the_child_as_here(local, child):
    objects = sv.default_objects()
    view = sv.render_view(objects, sv.camera_pose(0.0, 0.0, 0.0), noise_std=0.0, seed=1)
    instances = [Instance(o.label, 1.0, m, [o.mesh]) for o, m in zip(objects, view.masks)]
    stages = []
    remote = child.fit_instances(view.rgb, view.depth, view.camera, instances,
                                 progress=lambda stage, f: stages.append((stage, f)))
    mine = local.fit_instances(view.rgb, view.depth, view.camera, instances)
    assert [o.label for o in remote.objects] == [o.label for o in objects]
    for a, b in zip(remote.objects, mine.objects):
        np.testing.assert_allclose(a.T_camera_object, b.T_camera_object, atol=1e-6)
    assert stages[0][0] == "background" and stages[-1] == ("assemble", 1.0)
    with pytest.raises(Cancelled):
        child.fit_instances(view.rgb, view.depth, view.camera, instances, cancel=lambda: True)


def test_close_stops_the_child_and_sigint_is_left_to_the_parent():
    compute = ProcessCompute(BUILD)
    pid = compute.pid
    os.kill(pid, signal.SIGINT)  # Ctrl-C reaches the whole process group; the child waits for its parent
    assert compute.profile.name == "smoke" and compute.pid == pid
    compute.close()
    assert compute.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
