"""The full pipeline (image → Scene) with the smoke profile on a real photo, and its contract."""
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dpa_ros.core.camera import CameraModel
from dpa_ros.core.scene import read_scene, write_scene
from dpa_ros.geometry.depth_alignment import DepthAlignmentError
from dpa_ros.pipeline import (
    STAGES,
    Cancelled,
    MissingWeightsError,
    Pipeline,
    ReconstructionError,
    _align,
    _median_scaled,
)
from dpa_ros.priors.depth import sensor_depth

ASSET = Path(__file__).parent / "assets" / "coffee.png"


@pytest.fixture(scope="module")
def camera(image):
    return CameraModel.from_fov(image.shape[1], image.shape[0], 60.0, frame_id="camera_color_optical_frame")


@pytest.fixture(scope="module")
def pipeline():
    return Pipeline.from_profile("smoke")


@pytest.fixture(scope="module")
def first_run(pipeline, image, camera):
    reports = []
    t0 = time.perf_counter()
    scene = pipeline.run(image, camera, progress=lambda stage, f: reports.append((stage, f)))
    return scene, reports, time.perf_counter() - t0


def test_stage_names():
    assert STAGES == ("segment", "enhance", "score", "generate", "depth", "layout", "background", "physics", "assemble")


def test_end_to_end_smoke_on_photo(first_run, camera, tmp_path):
    scene, reports, seconds = first_run
    assert scene.profile == "smoke" and scene.frame_id == "camera_color_optical_frame"
    assert len(scene.objects) > 0
    for obj in scene.objects:
        assert obj.label in ("cup", "plate", "spoon", "table") and 0.4 < obj.score <= 1.0
        T = np.asarray(obj.T_camera_object)
        assert T.shape == (4, 4) and np.all(np.isfinite(T)) and np.allclose(T[3], [0, 0, 0, 1])
        assert obj.scale > 0 and np.allclose(obj.rotation @ obj.rotation.T, np.eye(3), atol=1e-5)
        assert T[2, 3] > 0  # in front of the camera
        assert np.isfinite(obj.fit_error) and len(obj.mesh.faces) > 0
    assert set(STAGES) <= set(scene.timings_s) and all(v >= 0 for v in scene.timings_s.values())
    assert scene.timings_s["load"] > 0  # first run loaded the models lazily
    assert len(scene.cloud_points) > 0 and np.all(np.isfinite(scene.cloud_points))

    # progress: stages of STAGES, overall fraction non-decreasing in [0, 1], ending at 1
    fractions = [f for _, f in reports]
    assert {s for s, _ in reports} == set(STAGES)
    assert all(0.0 <= f <= 1.0 for f in fractions) and fractions == sorted(fractions) and fractions[-1] == 1.0

    json_path = write_scene(scene, tmp_path / "scene")
    data = json.loads(json_path.read_text())
    assert {"frame_id", "camera", "objects", "background", "timings_s"} <= set(data)
    assert len(data["camera"]["K"]) == 9 and data["camera"]["width"] == camera.width
    for o in data["objects"]:
        assert {"id", "label", "score", "mesh", "T_camera_object", "scale", "fit_error"} <= set(o)
        assert (json_path.parent / o["mesh"]).is_file()
    back = read_scene(tmp_path / "scene")
    assert [o.label for o in back.objects] == [o.label for o in scene.objects]
    for a, b in zip(back.objects, scene.objects):
        np.testing.assert_allclose(a.T_camera_object, b.T_camera_object, atol=1e-9)
    assert back.profile == "smoke" and set(STAGES) <= set(back.timings_s)


def test_reproducible_under_seed(first_run, pipeline, image, camera):
    scene, _, _ = first_run
    again = pipeline.run(image, camera)  # models now resident: no "load" entry
    assert "load" not in again.timings_s
    assert [(o.label, o.score, o.proposal_index) for o in again.objects] == \
        [(o.label, o.score, o.proposal_index) for o in scene.objects]
    for a, b in zip(again.objects, scene.objects):
        np.testing.assert_allclose(a.T_camera_object, b.T_camera_object, rtol=1e-6, atol=1e-9)
        np.testing.assert_array_equal(a.mesh.vertices, b.mesh.vertices)


def test_sensor_depth_sets_the_metric_scale(pipeline, image, camera):
    # a floor-like ramp, 1 m at the top row to 2 m at the bottom
    depth = np.repeat(np.linspace(1.0, 2.0, image.shape[0], dtype=np.float32)[:, None], image.shape[1], axis=1)
    depth[:10] = 0.0  # invalid rows are filled from the prediction aligned to the sensor
    metric, source = pipeline.metric_depth(image, camera, sensor_depth(depth, camera), np.zeros(image.shape[:2], bool))
    assert source == "sensor+model" and metric.shape == image.shape[:2]
    np.testing.assert_allclose(metric[10:], depth[10:], rtol=1e-6)
    assert np.all(np.isfinite(metric[:10])) and np.all(metric[:10] > 0)
    full, source = pipeline.metric_depth(image, camera, np.full(image.shape[:2], 2.0), np.zeros(image.shape[:2], bool))
    assert source == "sensor" and np.all(full == 2.0)


def test_metric_depth_model_is_the_reference_without_sensor_depth(image, camera):
    """No sensor depth: the metric-depth model sets the scale, before the floor-height fallback."""
    metric_model = {"source": "tiny", "kind": "depth_anything", "output": "metric", "image_size": 56, "seed": 8}
    pipe = Pipeline.from_profile("smoke", overrides={"depth": {"metric_model": metric_model}})
    no_objects = np.zeros(image.shape[:2], bool)
    metric, source = pipe.metric_depth(image, camera, None, no_objects)
    assert source == "metric_model" and metric.shape == image.shape[:2]
    reference = pipe.metric_model.predict(image)  # metres, from the metric head (at most max_depth = 20 m)
    valid = np.isfinite(metric)
    assert valid.mean() > 0.5 and 0 < np.nanmedian(metric) <= 20.0
    # the relative prediction is aligned to the metric model: same scale, not the floor's
    np.testing.assert_allclose(np.nanmedian(metric), np.median(reference[reference > 0]), rtol=0.01)
    without, fallback = Pipeline.from_profile("smoke").metric_depth(image, camera, None, no_objects)
    assert fallback == "floor" and np.isfinite(without).mean() > 0.5  # camera_height_m 1.2 below a level camera


def test_alignment_helpers():
    rng = np.random.default_rng(0)
    true = rng.uniform(1.0, 4.0, (40, 50))
    disparity = 3.0 / true + 0.2  # a relative disparity: affine in inverse depth
    np.testing.assert_allclose(_align(disparity, true, "disparity", None), true, rtol=1e-6)
    rel_depth = 0.5 * true - 0.3
    np.testing.assert_allclose(_align(rel_depth, true, "depth", None), true, rtol=1e-6)
    with pytest.raises(DepthAlignmentError):
        _align(np.ones_like(true), true, "depth", None)  # constant prediction: no scale
    scaled = _median_scaled(disparity, "disparity", 2.5)
    assert np.isclose(np.median(scaled), 2.5) and np.all(np.isfinite(scaled))
    assert np.all(_median_scaled(np.zeros((4, 4)), "disparity", 2.5) == 2.5)


def test_no_detections(image, camera):
    strict = Pipeline.from_profile("smoke", overrides={"segmenter": {"box_threshold": 1.0}})
    with pytest.raises(ReconstructionError, match=r"^no objects detected for prompt 'chair\. lamp\.'$"):
        strict.run(image, camera, prompt="chair. lamp.")
    assert not strict.enhancer.loaded  # failed at the first stage


def test_bad_inputs_fail_before_any_model_loads(image, camera):
    pipe = Pipeline.from_profile("smoke")
    cases = [(image[:20, :20], CameraModel.from_fov(20, 20, 60.0), "image too small"),
             (image, CameraModel.from_fov(320, 240, 60.0), "camera is 320x240"),
             (image.astype(np.float32), camera, "uint8"),
             (image[:, :, 0], camera, "RGB")]
    for img, cam, reason in cases:
        with pytest.raises(ReconstructionError, match=reason):
            pipe.run(img, cam)
    with pytest.raises(ReconstructionError, match="depth shape"):
        pipe.run(image, camera, depth=np.ones((10, 10), np.float32))
    assert not any(m.loaded for m in pipe.models().values())
    with pytest.raises(ReconstructionError, match=r"layout\.iters: unknown key \(did you mean 'iterations'\?\)"):
        Pipeline.from_profile("smoke", overrides={"layout": {"iters": 3}})
    with pytest.raises(ReconstructionError, match="unknown device 'gpu0'"):
        Pipeline.from_profile("smoke", device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ReconstructionError, match="CUDA is not available"):
            Pipeline.from_profile("smoke", device="cuda")


def test_cancel_between_stages(pipeline, image, camera):
    with pytest.raises(Cancelled, match="before stage 'segment'"):
        pipeline.run(image, camera, cancel=lambda: True)
    polls = []
    stages = []

    def cancel():
        polls.append(1)
        return len(polls) > 2

    with pytest.raises(Cancelled, match="before stage 'score'"):
        pipeline.run(image, camera, cancel=cancel, progress=lambda s, f: stages.append(s))
    assert stages[-1] == "enhance" and isinstance(Cancelled("x"), ReconstructionError)


def test_missing_weights_paper_profile(tmp_path, monkeypatch, image, camera):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("DPA_WEIGHTS_DIR", raising=False)
    pipe = Pipeline.from_profile("paper", weights_dir=tmp_path / "weights", device="cpu")
    with pytest.raises(MissingWeightsError, match="dpa-weights download --profile paper") as info:
        pipe.load()
    assert "IDEA-Research/grounding-dino-base" in str(info.value) and str(tmp_path / "weights") in str(info.value)
    with pytest.raises(MissingWeightsError):
        pipe.run(image, camera)


def test_load_reports_seconds_per_model():
    pipe = Pipeline.from_profile("smoke", overrides={"enhancer": {"candidates": 0}})
    times = pipe.load()
    assert list(times) == ["segment", "score", "generate", "depth"]  # no enhancer when M = 0
    assert all(t > 0 for t in times.values())
    assert all(t == 0.0 for t in pipe.load().values())  # resident: second load is free


def test_cli_full_pipeline(tmp_path, camera):
    from dpa_ros.cli import reconstruct

    cam_yaml = tmp_path / "camera.yaml"
    cam_yaml.write_text(yaml.safe_dump(camera.to_camera_info_dict()))
    out = tmp_path / "out"
    rc = reconstruct.main(["--image", str(ASSET), "--camera-info", str(cam_yaml), "--profile", "smoke",
                           "--out", str(out), "--export", "none", "--no-progress"])
    assert rc == 0
    scene = read_scene(out)
    assert len(scene.objects) > 0 and scene.profile == "smoke" and set(STAGES) <= set(scene.timings_s)


def test_bench_script_smoke(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_pipeline", Path(__file__).parents[1] / "bench" / "pipeline.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--repeat", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "paper RTX 3090" in out and all(stage in out for stage in STAGES)
    (record,) = [json.loads(p.read_text()) for p in tmp_path.glob("pipeline_smoke_cpu_*.json")]
    assert set(STAGES) <= set(record["runs"][0]["stages"]) and record["runs"][0]["objects"] > 0
    assert set(record["load_s"]) == {"segment", "enhance", "score", "generate", "depth"}


def test_cli_reports_pipeline_errors_in_one_line(tmp_path, camera, capsys, monkeypatch):
    from dpa_ros.cli import reconstruct

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("DPA_WEIGHTS_DIR", raising=False)
    cam_yaml = tmp_path / "camera.yaml"
    cam_yaml.write_text(yaml.safe_dump(camera.to_camera_info_dict()))
    rc = reconstruct.main(["--image", str(ASSET), "--camera-info", str(cam_yaml), "--profile", "paper",
                           "--device", "cpu", "--out", str(tmp_path / "out"), "--export", "none", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "missing weights" in err and "dpa-weights download --profile paper" in err


@pytest.mark.slow
def test_bench_random_weights_one_stage_on_cpu(tmp_path, capsys):
    """The --random-weights path at real size, one cheap stage (DPT-Hybrid depth) on the CPU."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_pipeline", Path(__file__).parents[1] / "bench" / "pipeline.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = ["--profile", "paper", "--random-weights", "--device", "cpu", "--only", "depth", "--repeat", "1",
            "--out", str(tmp_path)]
    assert bench.main(args) == 0
    (record,) = [json.loads(p.read_text()) for p in tmp_path.glob("pipeline_paper_random_depth_cpu_*.json")]
    assert record["image_size"] == [640, 480] and record["runs"][0]["stages"]["depth"] > 0
    assert "0.21" in capsys.readouterr().out  # the paper's depth time, side by side


@pytest.mark.real_weights
def test_real_weights_fast_profile_end_to_end(image, camera, tmp_path):
    from dpa_ros.priors import weights
    from dpa_ros.priors.profiles import load_profile

    missing = [st.spec.describe() for st in weights.check(load_profile("fast")) if not st.ok]
    if missing:
        pytest.skip(f"weights absent: {', '.join(missing)} (dpa-weights download --profile fast)")
    scene = Pipeline.from_profile("fast").run(image, camera, prompt="cup. spoon. plate.")
    assert any(o.label == "cup" for o in scene.objects)
    assert len(read_scene(write_scene(scene, tmp_path).parent).objects) == len(scene.objects)


def test_complete_sensor_depth_needs_no_depth_model(image, camera):
    pipe = Pipeline.from_profile("smoke")
    depth = np.full(image.shape[:2], 1.2, np.float32)
    scene = pipe.run(image, camera, depth=depth)
    assert not pipe.depth_model.loaded and len(scene.objects) > 0
    for obj in scene.objects:  # the front of each object on the 1.2 m the sensor saw
        nearest = np.asarray(obj.mesh_in_camera().vertices)[:, 2].min()
        assert abs(nearest - 1.2) < 0.2, (obj.label, nearest)
    np.testing.assert_allclose(np.median(scene.cloud_points[:, 2]), 1.2, rtol=1e-6)


def test_no_mesh_for_any_instance_is_a_reconstruction_error(image, camera):
    pipe = Pipeline.from_profile("smoke")
    pipe.generator.load()
    with torch.no_grad():
        pipe.generator.pipe.shap_e_renderer.mlp.mlp[-1].bias[0] = -100.0  # every latent decodes to nothing
    with pytest.raises(ReconstructionError, match=r"none of the \d+ detected objects could be placed"):
        pipe.run(image, camera)
